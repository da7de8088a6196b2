// Optimizers behind one small interface, parameter groups (no weight decay on biases and
// norms by default), and the flattening of optimizer state into tensors for checkpoints.
import type { Parameter } from '../nn/module.js';
import { Tensor } from '../tensor/tensor.js';
import { AdamW } from './adamw.js';
import { SGD } from './sgd.js';

/** Optimizer state: numbers and lists of f32 buffers (null where a buffer was never made), nested. */
export type OptimizerState = { [key: string]: number | (Float32Array | null)[] | OptimizerState };

export interface Optimizer {
  /** learning rate used by the next step() (the schedule sets it) */
  lr: number;
  readonly params: readonly Parameter[];
  step(): void;
  zeroGrad(): void;
  state(): OptimizerState;
  loadState(s: OptimizerState): void;
}

export type OptimizerKind = 'adamw' | 'sgd';

export interface OptimizerOptions {
  kind?: OptimizerKind;
  lr: number;
  weightDecay?: number;
  /** AdamW */
  betas?: [number, number];
  eps?: number;
  /** SGD */
  momentum?: number;
  /** which parameters get no weight decay; default: biases and norm weights */
  noDecay?: (name: string, p: Parameter) => boolean;
}

/** Biases, norms (LayerNorm/RMSNorm weights) and 1-D vectors such as DoRA magnitudes get no weight decay. */
export function defaultNoDecay(name: string, p: Parameter): boolean {
  return p.shape.length <= 1 || /(^|\.)bias$/.test(name) || /norm|ln_/i.test(name);
}

class Single implements Optimizer {
  constructor(private readonly inner: AdamW | SGD) {}
  get lr(): number {
    return this.inner.lr;
  }
  set lr(v: number) {
    this.inner.lr = v;
  }
  get params(): readonly Parameter[] {
    return this.inner.params;
  }
  step(): void {
    this.inner.step();
  }
  zeroGrad(): void {
    for (const p of this.inner.params) p.grad?.fill(0);
  }
  state(): OptimizerState {
    return this.inner.state() as unknown as OptimizerState;
  }
  loadState(s: OptimizerState): void {
    (this.inner.loadState as (s: unknown) => void)(s);
  }
}

/** Several optimizers (parameter groups) stepping together with one learning rate. */
class Groups implements Optimizer {
  private rate: number;
  constructor(private readonly groups: Record<string, Optimizer>) {
    this.rate = Object.values(groups)[0]?.lr ?? 0;
  }
  get lr(): number {
    return this.rate;
  }
  set lr(v: number) {
    this.rate = v;
    for (const g of Object.values(this.groups)) g.lr = v;
  }
  get params(): readonly Parameter[] {
    return Object.values(this.groups).flatMap((g) => g.params);
  }
  step(): void {
    for (const g of Object.values(this.groups)) g.step();
  }
  zeroGrad(): void {
    for (const g of Object.values(this.groups)) g.zeroGrad();
  }
  state(): OptimizerState {
    return Object.fromEntries(Object.entries(this.groups).map(([k, g]) => [k, g.state()]));
  }
  loadState(s: OptimizerState): void {
    for (const [k, g] of Object.entries(this.groups)) {
      const sub = s[k];
      if (!sub || typeof sub !== 'object' || Array.isArray(sub)) throw new Error(`optimizer state has no group "${k}"`);
      g.loadState(sub);
    }
  }
}

function make(kind: OptimizerKind, params: Parameter[], o: OptimizerOptions, weightDecay: number): Optimizer {
  if (kind === 'sgd') return new Single(new SGD(params, { lr: o.lr, momentum: o.momentum ?? 0, weightDecay }));
  return new Single(new AdamW(params, { lr: o.lr, weightDecay, ...(o.betas ? { betas: o.betas } : {}), ...(o.eps !== undefined ? { eps: o.eps } : {}) }));
}

/** An optimizer over the trainable parameters, with weight decay only where it belongs. */
export function createOptimizer(named: readonly [string, Parameter][], o: OptimizerOptions): Optimizer {
  const kind = o.kind ?? 'adamw';
  if (kind !== 'adamw' && kind !== 'sgd') throw new Error(`optimizer "${kind as string}" is not one of adamw, sgd`);
  const trainable = named.filter(([, p]) => p.requiresGrad);
  if (trainable.length === 0) throw new Error('createOptimizer: no trainable parameters (is every parameter frozen?)');
  const wd = o.weightDecay ?? (kind === 'adamw' ? 0.01 : 0);
  const isNoDecay = o.noDecay ?? defaultNoDecay;
  const decay = trainable.filter(([n, p]) => !isNoDecay(n, p)).map(([, p]) => p);
  const noDecay = trainable.filter(([n, p]) => isNoDecay(n, p)).map(([, p]) => p);
  if (wd === 0 || noDecay.length === 0) return make(kind, trainable.map(([, p]) => p), o, wd);
  if (decay.length === 0) return make(kind, noDecay, o, 0);
  return new Groups({ decay: make(kind, decay, o, wd), no_decay: make(kind, noDecay, o, 0) });
}

/** Flattens optimizer state into named tensors (buffers) and a JSON object (numbers, nulls). */
export function flattenState(s: OptimizerState, prefix = ''): { tensors: Map<string, Tensor>; json: Record<string, unknown> } {
  const tensors = new Map<string, Tensor>();
  const json: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (typeof v === 'number') json[key] = v;
    else if (Array.isArray(v)) {
      json[key] = { buffers: v.length, missing: v.flatMap((b, i) => (b ? [] : [i])) };
      v.forEach((b, i) => {
        if (b) tensors.set(`${key}.${i}`, Tensor.fromF32(b, [b.length]));
      });
    } else {
      const sub = flattenState(v, key);
      for (const [n, t] of sub.tensors) tensors.set(n, t);
      Object.assign(json, sub.json);
    }
  }
  return { tensors, json };
}

/** The inverse of flattenState. */
export function unflattenState(tensors: ReadonlyMap<string, Tensor>, json: Record<string, unknown>): OptimizerState {
  const root: OptimizerState = {};
  const put = (key: string, value: OptimizerState[string]): void => {
    const parts = key.split('.');
    let node = root;
    for (const p of parts.slice(0, -1)) node = (node[p] ??= {}) as OptimizerState;
    node[parts[parts.length - 1]!] = value;
  };
  for (const [key, v] of Object.entries(json)) {
    if (typeof v === 'number') put(key, v);
    else {
      const { buffers, missing } = v as { buffers: number; missing: number[] };
      const list: (Float32Array | null)[] = [];
      for (let i = 0; i < buffers; i++) {
        if (missing.includes(i)) list.push(null);
        else {
          const t = tensors.get(`${key}.${i}`);
          if (!t) throw new Error(`optimizer state: tensor ${key}.${i} is missing`);
          list.push(t.toF32Array());
        }
      }
      put(key, list);
    }
  }
  return root;
}
