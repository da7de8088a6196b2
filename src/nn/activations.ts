// Activations as parameter-free modules: GELU (exact or tanh), SiLU, SwiGLU.
// Each forward saves its input (by reference: it must stay unchanged until backward) and
// returns a buffer owned by the module; each backward returns a fresh input gradient.
import { getBackend, type GeluApprox } from '../backend/index.js';
import { ShapeError } from '../tensor/tensor.js';
import { Module } from './module.js';

function checkSame(what: string, name: string, got: number, want: number): void {
  if (got !== want) throw new ShapeError(`${what}: ${name} has ${got} elements, expected ${want}`);
}

/** y = gelu(x): exact (erf, GPT-2 'gelu') or the tanh approximation ('gelu_new', 'gelu_pytorch_tanh') */
export class GELU extends Module {
  readonly approx: GeluApprox;
  private x: Float32Array | null = null;

  constructor(approx: GeluApprox = 'none') {
    super();
    this.approx = approx;
  }

  /** y[n] from x[n] */
  forward(x: Float32Array): Float32Array {
    const out = this.buffers.get('out', x.length);
    getBackend().geluForward(out, x, this.approx);
    this.x = x;
    return out;
  }

  /** dx[n] = gelu'(x[n]) · dy[n] */
  backward(dy: Float32Array): Float32Array {
    const x = this.x;
    if (!x) throw new Error('GELU.backward called before forward');
    checkSame('GELU.backward', 'dy', dy.length, x.length);
    const dx = this.buffers.zeros('dx', x.length);
    getBackend().geluBackward(dx, x, dy, this.approx);
    return dx;
  }
}

/** y = x · sigmoid(x) */
export class SiLU extends Module {
  private x: Float32Array | null = null;

  /** y[n] from x[n] */
  forward(x: Float32Array): Float32Array {
    const out = this.buffers.get('out', x.length);
    getBackend().siluForward(out, x);
    this.x = x;
    return out;
  }

  /** dx[n] = silu'(x[n]) · dy[n] */
  backward(dy: Float32Array): Float32Array {
    const x = this.x;
    if (!x) throw new Error('SiLU.backward called before forward');
    checkSame('SiLU.backward', 'dy', dy.length, x.length);
    const dx = this.buffers.zeros('dx', x.length);
    getBackend().siluBackward(dx, x, dy);
    return dx;
  }
}

/** y = silu(gate) · up (the gated unit of LLaMA's MLP) */
export class SwiGLU extends Module {
  private gate: Float32Array | null = null;
  private up: Float32Array | null = null;

  /** y[n] from gate[n], up[n] */
  forward(gate: Float32Array, up: Float32Array): Float32Array {
    checkSame('SwiGLU.forward', 'up', up.length, gate.length);
    const out = this.buffers.get('out', gate.length);
    getBackend().swigluForward(out, gate, up);
    this.gate = gate;
    this.up = up;
    return out;
  }

  /** dgate[n], dup[n] from dy[n] */
  backward(dy: Float32Array): { dgate: Float32Array; dup: Float32Array } {
    const { gate, up } = this;
    if (!gate || !up) throw new Error('SwiGLU.backward called before forward');
    checkSame('SwiGLU.backward', 'dy', dy.length, gate.length);
    const dgate = this.buffers.zeros('dgate', gate.length);
    const dup = this.buffers.zeros('dup', gate.length);
    getBackend().swigluBackward(dgate, dup, dy, gate, up);
    return { dgate, dup };
  }
}
