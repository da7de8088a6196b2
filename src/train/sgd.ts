// SGD with momentum (PyTorch semantics: buf = μ·buf + (1 − dampening)·g, nesterov optional,
// weight decay added to the gradient).
// The update is the backend's sgd kernel.
import { getBackend } from '../backend/index.js';
import type { Parameter } from '../nn/module.js';

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export class SGD {
  lr: number;
  readonly momentum: number;
  readonly dampening: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  readonly params: readonly Parameter[];
  private readonly bufs: (Float32Array | null)[];
  stepCount = 0;

  constructor(params: readonly Parameter[], opts: SGDOptions) {
    if (!(opts.lr >= 0)) throw new Error(`SGD: lr must be ≥ 0, got ${opts.lr}`);
    this.params = params;
    this.lr = opts.lr;
    this.momentum = opts.momentum ?? 0;
    this.dampening = opts.dampening ?? 0;
    this.weightDecay = opts.weightDecay ?? 0;
    this.nesterov = opts.nesterov ?? false;
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) throw new Error('SGD: nesterov needs momentum > 0 and dampening 0');
    this.bufs = params.map(() => null);
  }

  step(): void {
    const be = getBackend();
    const { lr, momentum, dampening, weightDecay, nesterov } = this;
    this.params.forEach((p, i) => {
      const g = p.grad;
      if (!g) return;
      let buf = this.bufs[i]!;
      const first = buf === null;
      if (momentum !== 0 && !buf) buf = this.bufs[i] = be.memory.alloc(g.length);
      be.sgd(p.data, g, buf, { lr, momentum, dampening, weightDecay, nesterov, first });
    });
    this.stepCount++;
  }

  /** Momentum buffers, for checkpoints. */
  state(): { step: number; buffers: (Float32Array | null)[] } {
    return { step: this.stepCount, buffers: this.bufs.map((b) => (b ? b.slice() : null)) };
  }

  loadState(s: { step: number; buffers: (Float32Array | null)[] }): void {
    if (s.buffers.length !== this.params.length) throw new Error(`SGD.loadState: state has ${s.buffers.length} buffers, optimizer has ${this.params.length} parameters`);
    this.stepCount = s.step;
    s.buffers.forEach((b, i) => {
      if (b && b.length !== this.params[i]!.value.size) throw new Error(`SGD.loadState: buffer ${i} has ${b.length} elements, parameter has ${this.params[i]!.value.size}`);
      this.bufs[i] = b ? b.slice() : null;
    });
  }
}
