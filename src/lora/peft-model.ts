// PeftModel: a model with LoRA adapters injected (PEFT's PeftModel / LoraModel).
//
// getPeftModel(model, config, name) freezes every base parameter, wraps each matched Linear
// in a LoraLinear (through Module.setModule, so parents keep working), makes copies of the
// modules_to_save modules, and activates the adapter. Several adapters can live on one
// base: addAdapter / loadAdapter add more, setAdapter chooses the active ones (summed),
// deleteAdapter removes one, disableAdapter(fn) runs the base alone, and
// withAdapterNames(names, fn) picks an adapter per batch row for inference.
// An adapter is trainable exactly when it is active and its config is not inference_mode.
import { warn as emitWarning } from '../io/errors.js';
import { commas } from '../io/format.js';
import { Linear } from '../nn/linear.js';
import type { Module, Parameter } from '../nn/module.js';
import { Rng } from '../tensor/rng.js';
import type { LoraConfig, LoraConfigInput } from './config.js';
import { parseLoraConfig } from './config.js';
import { BASE_ADAPTER, LoraContext, LoraLinear } from './lora-linear.js';
import type { ModuleInfo } from './match.js';
import { planTargets, rankAndAlpha } from './match.js';
import { ModulesToSave } from './modules-to-save.js';

export interface PeftModelOptions {
  /** seed of the stream used for adapter initialisation and dropout masks (default 0) */
  seed?: number;
  /** model_type (config.json) for default target_modules; read from model.config.model_type when absent */
  modelType?: string;
}

function warn(msg: string): void {
  emitWarning(msg, 'LORAKIT_PEFT');
}

/** Accepts a validated config or PEFT-named options; emits unknown-key warnings. */
function toConfig(c: LoraConfig | LoraConfigInput): LoraConfig {
  const { config, warnings } = parseLoraConfig(c as Record<string, unknown>);
  for (const w of warnings) warn(`LoraConfig: ${w}`);
  return config;
}

export class PeftModel<M extends Module = Module> {
  /** the base model, with LoraLinear layers in place of the targeted Linears */
  readonly model: M;
  readonly context = new LoraContext();
  /** adapter name → config, in the order they were added */
  readonly peftConfig = new Map<string, LoraConfig>();
  readonly rng: Rng;
  private readonly modelType: string | undefined;
  private activeList: string[] = [];
  private readonly layerMap = new Map<string, LoraLinear>();
  private readonly saveMap = new Map<string, ModulesToSave>();

  constructor(model: M, opts: PeftModelOptions = {}) {
    this.model = model;
    this.rng = new Rng(opts.seed ?? 0);
    const cfg = (model as unknown as { config?: { model_type?: unknown } }).config;
    this.modelType = opts.modelType ?? (typeof cfg?.model_type === 'string' ? cfg.model_type : undefined);
  }

  /** The LoraLinear layers by module path. */
  get loraLayers(): ReadonlyMap<string, LoraLinear> {
    return this.layerMap;
  }

  /** modules_to_save entries by module path. */
  get modulesToSave(): ReadonlyMap<string, ModulesToSave> {
    return this.saveMap;
  }

  get activeAdapters(): readonly string[] {
    return this.activeList;
  }

  /** The first active adapter (PEFT's active_adapter). */
  get activeAdapter(): string {
    const a = this.activeList[0];
    if (a === undefined) throw new Error('PeftModel: no adapter is active');
    return a;
  }

  get adapterNames(): string[] {
    return [...this.peftConfig.keys()];
  }

  config(name: string): LoraConfig {
    const c = this.peftConfig.get(name);
    if (!c) throw new Error(`PeftModel: no adapter "${name}" (adapters: ${this.adapterNames.join(', ') || 'none'})`);
    return c;
  }

  private modulesInfo(): ModuleInfo[] {
    return this.model.namedModules().map(([name, m]) => ({ name, linear: m instanceof Linear || m instanceof LoraLinear, type: m.constructor.name }));
  }

  /**
   * Injects a new adapter (not active, frozen). Returns the module paths it was added to.
   * Used by getPeftModel, addAdapter, loadAdapterFiles and addWeightedAdapter (weighted.ts).
   */
  injectAdapter(name: string, cfg: LoraConfig, opts: { targets?: readonly string[] } = {}): string[] {
    let config = cfg;
    if (this.peftConfig.has(name)) throw new Error(`PeftModel: adapter "${name}" exists already`);
    if (name === BASE_ADAPTER || name === '' || name.includes('.')) throw new Error(`PeftModel: invalid adapter name ${JSON.stringify(name)} (non-empty, no dots, not "${BASE_ADAPTER}")`);
    let targets: string[];
    if (opts.targets) {
      targets = [...opts.targets];
    } else {
      const plan = planTargets(config, this.modulesInfo(), this.modelType);
      for (const w of plan.warnings) warn(`getPeftModel: ${w}`);
      targets = plan.targets;
      // As PEFT, the config records what was resolved: the family default, or for
      // 'all-linear' the layer names (leaf names, as PEFT 0.14 writes them).
      if (config.target_modules === null) config = { ...config, target_modules: [...(plan.resolved as string[])] };
      else if (typeof config.target_modules === 'string' && config.target_modules.toLowerCase() === 'all-linear') {
        config = { ...config, target_modules: [...new Set(targets.map((t) => t.slice(t.lastIndexOf('.') + 1)))].sort() };
      }
    }
    const layers = targets.map((path) => {
      const m = this.model.getModule(path);
      if (m instanceof LoraLinear) return m;
      if (!(m instanceof Linear)) throw new Error(`PeftModel: module ${path} is a ${m.constructor.name}, not a Linear`);
      return m;
    });
    // PEFT forces fan_in_fan_out to the layer's layout, with a warning.
    const conv = layers.filter((m) => m.transposed).length;
    if (conv && !config.fan_in_fan_out) warn(`fan_in_fan_out is False but ${conv} target module(s) are Conv1D (weights stored [in, out]); using fan_in_fan_out = True for them`);
    if (conv < layers.length && config.fan_in_fan_out) warn(`fan_in_fan_out is True but ${layers.length - conv} target module(s) are Linear (weights stored [out, in]); using fan_in_fan_out = False for them`);
    // PEFT also rewrites the config (layer by layer, so the last target decides); the saved file says so
    if (layers.length && (conv > 0 || config.fan_in_fan_out)) config = { ...config, fan_in_fan_out: layers[layers.length - 1]!.transposed };

    targets.forEach((path, i) => {
      let layer = layers[i]!;
      if (!(layer instanceof LoraLinear)) {
        const wrapped = new LoraLinear(layer, { path, context: this.context });
        wrapped.training = layer.training;
        wrapped.setActive(this.activeList);
        this.model.setModule(path, wrapped);
        this.layerMap.set(path, wrapped);
        layer = wrapped;
      }
      const { r, alpha } = rankAndAlpha(config, path);
      const a = (layer as LoraLinear).addAdapter(name, {
        r,
        alpha,
        dropout: config.lora_dropout,
        useRslora: config.use_rslora,
        useDora: config.use_dora,
        loraBias: config.lora_bias,
        init: config.init_lora_weights,
        rng: this.rng,
      });
      a.setTrainable(false);
    });

    for (const target of config.modules_to_save ?? []) {
      let found = false;
      for (const [path, m] of this.model.namedModules()) {
        if (path === '' || !path.endsWith(target) || m instanceof LoraLinear) continue;
        if ([...this.saveMap.keys()].some((p) => path.startsWith(`${p}.`))) continue;
        let entry = this.saveMap.get(path);
        if (!entry) {
          entry = new ModulesToSave(path, m);
          this.warnIfShared(entry);
          this.saveMap.set(path, entry);
        }
        entry.addCopy(name);
        found = true;
      }
      if (!found) warn(`modules_to_save entry ${JSON.stringify(target)} matches no module`);
    }
    this.peftConfig.set(name, config);
    return targets;
  }

  private warnIfShared(entry: ModulesToSave): void {
    const own = new Set(entry.module.parameters());
    const prefix = `${entry.path}.`;
    const shared = this.model.namedParameters().filter(([n, p]) => own.has(p) && !n.startsWith(prefix));
    if (shared.length) warn(`modules_to_save ${entry.path}: its parameters are shared with ${shared.map(([n]) => n).join(', ')} (tied weights); the trained copy is used there too`);
  }

  /** Adds another adapter (inactive until setAdapter). */
  addAdapter(name: string, config: LoraConfig | LoraConfigInput): void {
    this.injectAdapter(name, toConfig(config));
  }

  /** Chooses the active adapter(s); several are summed. Active adapters become trainable unless inference_mode. */
  setAdapter(names: string | readonly string[]): void {
    const list = typeof names === 'string' ? [names] : [...names];
    const unknown = list.filter((n) => !this.peftConfig.has(n));
    if (unknown.length) throw new Error(`setAdapter: unknown adapter(s) ${unknown.join(', ')} (adapters: ${this.adapterNames.join(', ') || 'none'})`);
    for (const e of this.saveMap.values()) {
      const withCopy = list.filter((n) => e.has(n));
      if (withCopy.length > 1) throw new Error(`setAdapter: adapters ${withCopy.join(', ')} both have a modules_to_save copy of ${e.path}; only one of them can be active`);
    }
    this.activeList = list;
    for (const l of this.layerMap.values()) l.setActive(list);
    this.updateTrainable();
  }

  private updateTrainable(): void {
    const active = new Set(this.activeList);
    const trainable = (n: string): boolean => active.has(n) && !this.peftConfig.get(n)!.inference_mode;
    for (const l of this.layerMap.values()) for (const n of l.adapterNames()) l.adapter(n).setTrainable(trainable(n));
    for (const e of this.saveMap.values()) {
      for (const n of e.adapters) e.setTrainable(n, trainable(n));
      e.use(e.adapters.find((n) => active.has(n)) ?? null);
    }
    // bias: 'all' → every bias of the model; 'lora_only' → the biases of adapted layers
    const biasAll = this.activeList.some((n) => trainable(n) && this.peftConfig.get(n)!.bias === 'all');
    const loraOnly = this.activeList.filter((n) => trainable(n) && this.peftConfig.get(n)!.bias === 'lora_only');
    const saved = new Set<Parameter>();
    for (const e of this.saveMap.values()) for (const p of e.module.parameters()) saved.add(p);
    for (const [name, p] of this.model.namedParameters()) {
      if (saved.has(p) || !(name === 'bias' || name.endsWith('.bias')) || /\.lora_B\.[^.]+\.bias$/.test(name)) continue;
      let want = biasAll;
      if (!want && loraOnly.length) {
        const owner = name.slice(0, -'.bias'.length);
        const l = this.layerMap.get(owner);
        want = !!l && loraOnly.some((n) => l.hasAdapter(n));
      }
      p.requiresGrad = want;
    }
  }

  /** Removes an adapter; layers left without adapters go back to their plain Linear. */
  deleteAdapter(name: string): void {
    this.config(name);
    for (const [path, l] of [...this.layerMap]) {
      if (!l.hasAdapter(name)) continue;
      l.deleteAdapter(name);
      if (l.adapterNames().length === 0) {
        this.model.setModule(path, l.base);
        this.layerMap.delete(path);
      }
    }
    for (const [path, e] of [...this.saveMap]) {
      if (!e.has(name)) continue;
      e.deleteCopy(name);
      if (e.adapters.length === 0) this.saveMap.delete(path);
    }
    this.peftConfig.delete(name);
    const rest = this.activeList.filter((n) => n !== name);
    if (rest.length === 0 && this.activeList.length && this.peftConfig.size) {
      const next = this.adapterNames[0]!;
      warn(`deleteAdapter: "${name}" was the active adapter; "${next}" is active now`);
      rest.push(next);
    }
    this.setAdapter(rest);
  }

  /** Runs fn with every adapter off (the base model alone); restores afterwards (also for async fn). */
  disableAdapter<T>(fn: () => T): T {
    const prev = this.context.disabled;
    const inUse = [...this.saveMap.values()].map((e) => [e, e.inUse] as const);
    this.context.disabled = true;
    for (const [e] of inUse) e.use(null);
    const restore = (): void => {
      this.context.disabled = prev;
      for (const [e, a] of inUse) e.use(a);
    };
    let result: T;
    try {
      result = fn();
    } catch (err) {
      restore();
      throw err;
    }
    if (result instanceof Promise) return result.finally(restore) as T;
    restore();
    return result;
  }

  /**
   * Per-row adapters for the following forwards (inference): one name per batch row
   * (B names for N = B·T rows), "__base__" for the base model alone; null clears.
   */
  setAdapterNames(names: readonly string[] | null): void {
    if (names !== null) {
      const problems: string[] = [];
      const unknown = [...new Set(names)].filter((n) => n !== BASE_ADAPTER && !this.peftConfig.has(n));
      if (unknown.length) problems.push(`unknown adapter(s) ${unknown.join(', ')} (adapters: ${this.adapterNames.join(', ')}, or "${BASE_ADAPTER}")`);
      if ([...this.layerMap.values()].some((l) => l.merged.length)) problems.push('adapters are merged; unmerge() first');
      const dora = [...new Set(names)].filter((n) => this.peftConfig.get(n)?.use_dora);
      if (dora.length) problems.push(`per-row adapters cannot be used with DoRA adapter(s) ${dora.join(', ')}`);
      const mts = [...this.saveMap.values()].filter((e) => names.some((n) => e.has(n)));
      if (mts.length) problems.push(`per-row adapters are not supported with modules_to_save (${mts.map((e) => e.path).join(', ')})`);
      if (problems.length) throw new Error(`setAdapterNames: ${problems.join('; ')}`);
    }
    this.context.adapterNames = names === null ? null : [...names];
  }

  /** Runs fn with per-row adapters set, then clears them. */
  withAdapterNames<T>(names: readonly string[], fn: () => T): T {
    this.setAdapterNames(names);
    let result: T;
    try {
      result = fn();
    } catch (err) {
      this.context.adapterNames = null;
      throw err;
    }
    if (result instanceof Promise) return result.finally(() => (this.context.adapterNames = null)) as T;
    this.context.adapterNames = null;
    return result;
  }

  // ---------------------------------------------------------------- merge

  /** Merges the active adapters (or the given ones) into the base weights. */
  merge(opts: { adapterNames?: readonly string[]; safeMerge?: boolean } = {}): void {
    const names = opts.adapterNames ?? this.activeList;
    for (const n of names) this.config(n);
    const done: LoraLinear[] = [];
    try {
      for (const l of this.layerMap.values()) {
        const before = l.merged.length;
        l.merge({ adapterNames: names, safeMerge: opts.safeMerge ?? false });
        if (before === 0 && l.merged.length > 0) done.push(l);
      }
    } catch (err) {
      // a safe merge that fails leaves the model as it was (layers merged by this call are undone)
      for (const l of done) l.unmerge();
      throw err;
    }
  }

  unmerge(): void {
    for (const l of this.layerMap.values()) if (l.merged.length) l.unmerge();
  }

  /**
   * Merges the active adapters and returns the plain model: every LoraLinear is replaced by
   * its (merged) Linear, and modules_to_save keep the active adapter's copy. The PeftModel
   * is empty afterwards.
   */
  mergeAndUnload(opts: { adapterNames?: readonly string[]; safeMerge?: boolean } = {}): M {
    this.merge(opts);
    return this.unloadAll();
  }

  /** Returns the plain model without merging (adapters dropped). */
  unload(): M {
    this.unmerge();
    for (const e of this.saveMap.values()) e.use(null);
    return this.unloadAll();
  }

  private unloadAll(): M {
    for (const [path, l] of this.layerMap) {
      l.dropMergeState();
      this.model.setModule(path, l.base);
    }
    for (const e of this.saveMap.values()) {
      for (const p of e.module.parameters()) p.requiresGrad = false;
      e.bake();
    }
    this.layerMap.clear();
    this.saveMap.clear();
    this.peftConfig.clear();
    this.activeList = [];
    return this.model;
  }

  // ---------------------------------------------------------------- counting

  /** [trainable, all] parameter counts as PEFT's get_nb_trainable_parameters (copies of modules_to_save included). */
  getNbTrainableParameters(): [number, number] {
    let trainable = 0;
    let all = 0;
    for (const p of this.model.parameters()) {
      all += p.value.size;
      if (p.requiresGrad) trainable += p.value.size;
    }
    for (const e of this.saveMap.values()) all += e.adapters.length * e.size;
    return [trainable, all];
  }

  /** `trainable params: N || all params: M || trainable%: P` exactly as PEFT prints it. */
  trainableParametersLine(): string {
    const [t, a] = this.getNbTrainableParameters();
    return `trainable params: ${commas(t)} || all params: ${commas(a)} || trainable%: ${((100 * t) / a).toFixed(4)}`;
  }

  printTrainableParameters(): void {
    console.log(this.trainableParametersLine());
  }

  /** The parameters an optimizer should update. */
  trainableParameters(): [string, Parameter][] {
    return this.model.trainableParameters();
  }
}

/**
 * Wraps the matched modules of `model` with a LoRA adapter and returns the PeftModel.
 * The base is frozen; the adapter is active and trainable (unless inference_mode).
 */
export function getPeftModel<M extends Module>(model: M, config: LoraConfig | LoraConfigInput, adapterName = 'default', opts: PeftModelOptions = {}): PeftModel<M> {
  const cfg = toConfig(config);
  if (model.namedModules().some(([, m]) => m instanceof LoraLinear)) {
    throw new Error('getPeftModel: the model has LoRA layers already; use the existing PeftModel (addAdapter) or mergeAndUnload() it first');
  }
  const peft = new PeftModel(model, opts);
  model.requiresGrad(false);
  peft.injectAdapter(adapterName, cfg);
  peft.setAdapter(adapterName);
  return peft;
}
