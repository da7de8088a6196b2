// AdamW (PyTorch semantics, decoupled weight decay, Loshchilov & Hutter):
//   m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²,  m̂ = m/(1 − β1ᵗ),  v̂ = v/(1 − β2ᵗ)
//   p ← p − lr·(m̂/(√v̂ + eps) + wd·p)
// Defaults as torch.optim.AdamW: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01.
// The update itself is the backend's adamw kernel; parameters without a gradient buffer
// (frozen) are skipped.
import { getBackend } from '../backend/index.js';
import type { Parameter } from '../nn/module.js';

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export interface AdamWState {
  step: number;
  m: Float32Array[];
  v: Float32Array[];
}

export class AdamW {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly params: readonly Parameter[];
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];
  stepCount = 0;

  constructor(params: readonly Parameter[], opts: AdamWOptions = {}) {
    const lr = opts.lr ?? 1e-3;
    const [b1, b2] = opts.betas ?? [0.9, 0.999];
    const eps = opts.eps ?? 1e-8;
    const wd = opts.weightDecay ?? 0.01;
    const problems: string[] = [];
    if (!(lr >= 0)) problems.push(`lr must be ≥ 0, got ${lr}`);
    if (!(b1 >= 0 && b1 < 1)) problems.push(`betas[0] must be in [0, 1), got ${b1}`);
    if (!(b2 >= 0 && b2 < 1)) problems.push(`betas[1] must be in [0, 1), got ${b2}`);
    if (!(eps >= 0)) problems.push(`eps must be ≥ 0, got ${eps}`);
    if (!(wd >= 0)) problems.push(`weight_decay must be ≥ 0, got ${wd}`);
    params.forEach((p, i) => {
      if (p.value.dtype !== 'f32') problems.push(`parameter ${i} is ${p.value.dtype}; trainable parameters must be f32`);
    });
    if (problems.length) throw new Error(`AdamW: ${problems.join('; ')}`);
    this.params = params;
    this.lr = lr;
    this.beta1 = b1;
    this.beta2 = b2;
    this.eps = eps;
    this.weightDecay = wd;
    const mem = getBackend().memory;
    this.m = params.map((p) => mem.alloc(p.value.size));
    this.v = params.map((p) => mem.alloc(p.value.size));
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    this.stepCount++;
    const be = getBackend();
    const args = { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay, step: this.stepCount };
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      be.adamw(p.data, p.grad, this.m[i]!, this.v[i]!, args);
    });
  }

  /** Clears every gradient buffer of the optimizer's parameters. */
  zeroGrad(): void {
    for (const p of this.params) p.grad?.fill(0);
  }

  /** Moments and step count, for checkpoints. */
  state(): AdamWState {
    return { step: this.stepCount, m: this.m.map((a) => a.slice()), v: this.v.map((a) => a.slice()) };
  }

  loadState(s: AdamWState): void {
    if (s.m.length !== this.params.length || s.v.length !== this.params.length) {
      throw new Error(`AdamW.loadState: state has ${s.m.length}/${s.v.length} moment buffers, optimizer has ${this.params.length} parameters`);
    }
    s.m.forEach((a, i) => {
      const n = this.params[i]!.value.size;
      if (a.length !== n || s.v[i]!.length !== n) throw new Error(`AdamW.loadState: moments of parameter ${i} have ${a.length}/${s.v[i]!.length} elements, the parameter has ${n}`);
      this.m[i]!.set(a);
      this.v[i]!.set(s.v[i]!);
    });
    this.stepCount = s.step;
  }
}
