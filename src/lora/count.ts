// Parameter counts from config.json alone (no weights allocated): the model's family lists its
// modules with their shapes (ModelFamily.moduleShapes, docs/ARCHITECTURE.md §Model families),
// the adapter config is matched against them exactly as getPeftModel does, and
//   trainable = Σ_targets r·(in + out) (+ out for DoRA's magnitude, + out for lora_bias)
//             + modules_to_save + biases made trainable by `bias`
//   base      = every weight of the model (tied embeddings counted once)
import { getModelFamily } from '../models/registry.js';
import type { ModuleShape } from '../models/family.js';
import type { LoraConfig, LoraConfigInput } from './config.js';
import { parseLoraConfig } from './config.js';
import { planTargets, rankAndAlpha } from './match.js';

/**
 * The modules (with their parameters, plus containers) of a model described by config.json:
 * its family's declaration (ModelFamily.moduleShapes), nothing allocated. Throws for an
 * unsupported model_type or a config its family rejects.
 */
export function modulesFromConfig(cfg: Record<string, unknown>): ModuleShape[] {
  const fam = getModelFamily(cfg.model_type, 'countLoraParameters: config.json');
  return fam.moduleShapes(fam.parseConfig(cfg, 'countLoraParameters: config.json'));
}

export interface LoraParameterCount {
  /** adapter parameters plus modules_to_save copies and trainable biases */
  trainable: number;
  /** parameters of the base model */
  base: number;
  /** PEFT's "all params": base + adapter parameters + modules_to_save copies */
  all: number;
  /** the adapted module names */
  targets: string[];
}

/** Counts LoRA and base parameters for an HF config.json object, without allocating weights. */
export function countLoraParameters(hfConfig: Record<string, unknown>, loraConfig: LoraConfig | LoraConfigInput): LoraParameterCount {
  const { config } = parseLoraConfig(loraConfig as Record<string, unknown>);
  const mods = modulesFromConfig(hfConfig);
  const modelType = typeof hfConfig.model_type === 'string' ? hfConfig.model_type : undefined;
  const plan = planTargets(config, mods.map((m) => ({ name: m.name, linear: m.linear })), modelType);
  const base = mods.reduce((n, m) => n + m.params.reduce((k, p) => k + p.size, 0), 0);
  let adapter = 0;
  const targets = new Set(plan.targets);
  for (const m of mods) {
    if (!targets.has(m.name)) continue;
    const { r } = rankAndAlpha(config, m.name);
    adapter += r * (m.in! + m.out!);
    if (config.use_dora) adapter += m.out!;
    if (config.lora_bias) adapter += m.out!;
  }
  let saved = 0;
  const savedNames: string[] = [];
  for (const t of config.modules_to_save ?? []) {
    for (const m of mods) {
      if (!m.name.endsWith(t) || savedNames.some((s) => m.name.startsWith(`${s}.`))) continue;
      savedNames.push(m.name);
      saved += m.params.reduce((k, p) => k + p.size, 0);
    }
  }
  let bias = 0;
  if (config.bias !== 'none') {
    for (const m of mods) {
      if (savedNames.some((s) => m.name === s || m.name.startsWith(`${s}.`))) continue;
      if (config.bias === 'lora_only' && !targets.has(m.name)) continue;
      for (const p of m.params) if (p.name.endsWith('.bias')) bias += p.size;
    }
  }
  return { trainable: adapter + saved + bias, base, all: base + adapter + saved, targets: plan.targets };
}
