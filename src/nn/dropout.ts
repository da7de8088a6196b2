// Dropout: inverted dropout in training mode (y = x · mask, mask ∈ {0, 1/(1−p)}), the
// identity in eval mode or when p = 0. The mask comes from a seeded Rng, so a run that
// restores the Rng state (checkpoint resume, gradient-checkpointing recompute) draws the
// same mask again; backward applies the mask of the last forward. The draws are host-side by
// nature (one seeded stream); the products are the backend's mul kernel.
import { getBackend } from '../backend/index.js';
import { ShapeError } from '../tensor/tensor.js';
import { Module } from './module.js';
import { Rng } from '../tensor/rng.js';

export class Dropout extends Module {
  readonly p: number;
  /** the stream masks are drawn from (shared with other layers if the caller passes one Rng) */
  rng: Rng;
  private mask: Float32Array | null = null;
  private n = 0;

  constructor(p: number, rng: Rng = new Rng(0)) {
    super();
    if (!(p >= 0 && p < 1)) throw new RangeError(`Dropout: p must be in [0, 1), got ${p}`);
    this.p = p;
    this.rng = rng;
  }

  /** whether forward() changes anything (training mode and p > 0) */
  get active(): boolean {
    return this.training && this.p > 0;
  }

  /** y[n] = x[n] · mask[n]; returns x itself when inactive, else a buffer owned by the layer */
  forward(x: Float32Array): Float32Array {
    this.n = x.length;
    if (!this.active) {
      this.mask = null;
      return x;
    }
    const n = x.length;
    const be = getBackend();
    const mem = be.memory;
    const mask = this.buffers.get('mask', n);
    const out = this.buffers.get('out', n);
    const keep = 1 / (1 - this.p);
    const p = this.p;
    const rng = this.rng;
    // drawn on the host into the mask's view, or uploaded (docs/ARCHITECTURE.md §Backend memory)
    const host = mem.hostVisible ? mem.view(mask) : new Float32Array(n);
    for (let i = 0; i < n; i++) host[i] = rng.nextFloat() < p ? 0 : keep;
    if (!mem.hostVisible) mem.write(mask, host);
    be.mul(out, x, mask);
    this.mask = mask;
    return out;
  }

  /** dx[n] = dy[n] · mask[n] (dy itself when the last forward was inactive) */
  backward(dy: Float32Array): Float32Array {
    if (dy.length !== this.n) throw new ShapeError(`Dropout.backward: dy has ${dy.length} elements, the last forward had ${this.n}`);
    const mask = this.mask;
    if (!mask) return dy;
    const dx = this.buffers.get('dx', dy.length);
    getBackend().mul(dx, dy, mask);
    return dx;
  }
}
