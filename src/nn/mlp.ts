// The two MLP shapes of decoder blocks, over rows x[N, C] with hidden width H:
//   GatedMLP (LLaMA, Mistral, Qwen): y = down(act(gate(x)) · up(x)), act silu (SwiGLU) or the
//                                     tanh gelu (GeGLU, Gemma); gate and up may be one fused
//                                     projection C → 2H, gate in the first H columns (Phi-3's
//                                     gate_up_proj: LoRA then adapts the fused projection, as PEFT)
//   GeluMLP (GPT-2, BERT, OPT …):    y = proj(gelu(fc(x)))
// Children are RowLayers named as in the checkpoint (configurable) and are looked up
// through the module tree on every call, so LoRA injection may replace them.
import { getBackend, type GeluApprox } from '../backend/index.js';
import { ShapeError, type DType } from '../tensor/tensor.js';
import { joinColumns, splitColumns } from './attention.js';
import { Linear } from './linear.js';
import type { RowLayer } from './linear.js';
import { Module } from './module.js';
import { InferenceBuffers } from './checkpoint.js';
import { addInputGrad, childRowLayer, hasTrainable } from './rowlayer.js';

/** The gate's activation: silu (SwiGLU) or gelu with the tanh approximation (GeGLU, gelu_pytorch_tanh). */
export type GateActivation = 'silu' | 'gelu_tanh';

export interface GatedMLPOptions {
  /** biases on all three projections (default false) */
  bias?: boolean | undefined;
  dtype?: DType | undefined;
  /** default 'silu' */
  activation?: GateActivation | undefined;
  /**
   * child names; default gate_proj, up_proj, down_proj. With `gateUp` set (Phi-3: 'gate_up_proj')
   * one fused projection C → 2H gives gate (first H columns) and up side by side.
   */
  names?: { gate?: string; up?: string; down?: string; gateUp?: string } | undefined;
}

/** y[N, C] = down(act(gate(x)) · up(x)), gate/up: C → H (or gate_up: C → 2H), down: H → C */
export class GatedMLP extends Module {
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly activation: GateActivation;
  readonly names: { gate: string; up: string; down: string; gateUp: string | null };
  /** whether backward() computes dx */
  computeInputGrad = true;
  private N = 0;
  private g: Float32Array | null = null;
  private u: Float32Array | null = null;

  constructor(hiddenSize: number, intermediateSize: number, opts: GatedMLPOptions = {}) {
    super();
    this.hiddenSize = hiddenSize;
    this.intermediateSize = intermediateSize;
    this.activation = opts.activation ?? 'silu';
    const n = opts.names ?? {};
    this.names = { gate: n.gate ?? 'gate_proj', up: n.up ?? 'up_proj', down: n.down ?? 'down_proj', gateUp: n.gateUp ?? null };
    const lin = (i: number, o: number): Linear => new Linear(i, o, { bias: opts.bias ?? false, dtype: opts.dtype ?? 'f32' });
    if (this.names.gateUp) {
      this.registerModule(this.names.gateUp, lin(hiddenSize, 2 * intermediateSize));
    } else {
      this.registerModule(this.names.gate, lin(hiddenSize, intermediateSize));
      this.registerModule(this.names.up, lin(hiddenSize, intermediateSize));
    }
    this.registerModule(this.names.down, lin(intermediateSize, hiddenSize));
  }

  /** the fused gate/up projection (only with names.gateUp) */
  get gateUp(): RowLayer {
    if (!this.names.gateUp) throw new Error('GatedMLP.gateUp: this MLP has separate gate and up projections');
    return childRowLayer(this, this.names.gateUp, 'GatedMLP');
  }

  get gate(): RowLayer {
    return childRowLayer(this, this.names.gate, 'GatedMLP');
  }
  get up(): RowLayer {
    return childRowLayer(this, this.names.up, 'GatedMLP');
  }
  get down(): RowLayer {
    return childRowLayer(this, this.names.down, 'GatedMLP');
  }

  /** whether backward() reads the x of forward (see RowLayer.savesInput) */
  get savesInput(): boolean {
    if (this.names.gateUp) return this.gateUp.savesInput !== false;
    return this.gate.savesInput !== false || this.up.savesInput !== false;
  }

  /** y[N, C] from x[N, C]; x must stay unchanged until backward; y is owned by a child (see RowLayer.forward for `transient`) */
  forward(x: Float32Array, N: number, transient = false): Float32Array {
    const C = this.hiddenSize;
    const H = this.intermediateSize;
    if (x.length !== N * C) throw new ShapeError(`GatedMLP.forward: x has ${x.length} elements, expected [${N}, ${C}] = ${N * C}`);
    let g: Float32Array;
    let u: Float32Array;
    if (this.names.gateUp) {
      const gu = this.gateUp.forward(x, N, true); // [N, 2H], split into copies at once
      g = this.buffers.get('g', N * H);
      u = this.buffers.get('u', N * H);
      splitColumns(gu, N, [g, u], [H, H]);
    } else {
      g = this.gate.forward(x, N); // [N, H]
      u = this.up.forward(x, N); // [N, H]
    }
    const down = this.down;
    // h is read again only by a down projection that learns
    // Over a KV cache (InferenceBuffers: no backward follows) SwiGLU writes over the gate's
    // output, which nothing reads again: one [N, H] array less streamed through the caches
    // (a 512-token prompt: ~5% of the forward at one thread; docs/ARCHITECTURE.md §Decoding).
    // Host memory only: a device may not bind one buffer as both input and output.
    const inPlace = this.activation === 'silu' && this.buffers instanceof InferenceBuffers && getBackend().memory.hostVisible;
    const h = inPlace ? g : down.savesInput === false ? this.buffers.scratch('h', N * H) : this.buffers.get('h', N * H);
    if (this.activation === 'silu') getBackend().swigluForward(h, g, u);
    else gegluForward(h, g, u);
    this.g = g;
    this.u = u;
    this.N = N;
    return down.forward(h, N, transient);
  }

  /** parameter gradients += …; returns dx[N, C] or null */
  backward(dy: Float32Array): Float32Array | null {
    const { N, g, u } = this;
    const C = this.hiddenSize;
    const H = this.intermediateSize;
    if (!g || !u) throw new Error('GatedMLP.backward called before forward');
    if (dy.length !== N * C) throw new ShapeError(`GatedMLP.backward: dy has ${dy.length} elements, expected [${N}, ${C}] = ${N * C}`);
    if (!this.computeInputGrad && !hasTrainable(this)) return null;
    const down = this.down;
    const inner = this.names.gateUp ? [this.names.gateUp] : [this.names.gate, this.names.up];
    // dh is needed only when something below down needs a gradient
    down.computeInputGrad = this.computeInputGrad || inner.some((n) => hasTrainable(this.getModule(n)));
    const dh = down.backward(dy); // [N, H]
    if (!dh) return null;
    const dg = this.buffers.scratch('dg', N * H);
    const du = this.buffers.scratch('du', N * H);
    if (this.activation === 'silu') getBackend().swigluBackward(dg, du, dh, g, u, false);
    else gegluBackward(dg, du, dh, g, u);
    if (this.names.gateUp) {
      const gateUp = this.gateUp;
      gateUp.computeInputGrad = this.computeInputGrad;
      const dgu = this.buffers.scratch('dgu', N * 2 * H);
      joinColumns(dgu, N, [dg, du], [H, H]);
      const dx = gateUp.backward(dgu);
      return this.computeInputGrad ? dx : null;
    }
    const gate = this.gate;
    const up = this.up;
    gate.computeInputGrad = this.computeInputGrad;
    up.computeInputGrad = this.computeInputGrad;
    // dx = gate's dx, with up's added into it
    const dxg = gate.backward(dg);
    const dx = addInputGrad(up, du, dxg ?? undefined);
    return this.computeInputGrad && dxg ? dx : null;
  }
}

/** h[n] = gelu_tanh(g[n]) · u[n] (GeGLU) */
function gegluForward(h: Float32Array, g: Float32Array, u: Float32Array): void {
  const be = getBackend();
  be.geluForward(h, g, 'tanh');
  be.mul(h, h, u);
}

/** writes dg[n] = dh[n] · u[n] · gelu_tanh'(g[n]), du[n] = dh[n] · gelu_tanh(g[n]) */
function gegluBackward(dg: Float32Array, du: Float32Array, dh: Float32Array, g: Float32Array, u: Float32Array): void {
  const be = getBackend();
  // du holds dh · u for a moment: the gelu backward adds gelu'(g) times it into the zeroed dg
  be.mul(du, dh, u);
  dg.fill(0);
  be.geluBackward(dg, g, du, 'tanh');
  be.geluForward(du, g, 'tanh');
  be.mul(du, du, dh);
}

export interface GeluMLPOptions {
  /** biases on both projections (default true) */
  bias?: boolean | undefined;
  /** weights stored [in, out] (GPT-2 Conv1D) */
  transposed?: boolean | undefined;
  /** gelu exact ('none', default) or tanh approximation */
  approx?: GeluApprox | undefined;
  dtype?: DType | undefined;
  /** child names; default fc1, fc2 (GPT-2: c_fc, c_proj) */
  names?: { fc?: string; proj?: string } | undefined;
}

/** y[N, C] = proj(gelu(fc(x))), fc: C → H, proj: H → C */
export class GeluMLP extends Module {
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly approx: GeluApprox;
  readonly names: { fc: string; proj: string };
  /** whether backward() computes dx */
  computeInputGrad = true;
  private N = 0;
  private h: Float32Array | null = null;

  constructor(hiddenSize: number, intermediateSize: number, opts: GeluMLPOptions = {}) {
    super();
    this.hiddenSize = hiddenSize;
    this.intermediateSize = intermediateSize;
    this.approx = opts.approx ?? 'none';
    this.names = { fc: opts.names?.fc ?? 'fc1', proj: opts.names?.proj ?? 'fc2' };
    const o = { bias: opts.bias ?? true, transposed: opts.transposed ?? false, dtype: opts.dtype ?? 'f32' };
    this.registerModule(this.names.fc, new Linear(hiddenSize, intermediateSize, o));
    this.registerModule(this.names.proj, new Linear(intermediateSize, hiddenSize, o));
  }

  get fc(): RowLayer {
    return childRowLayer(this, this.names.fc, 'GeluMLP');
  }
  get proj(): RowLayer {
    return childRowLayer(this, this.names.proj, 'GeluMLP');
  }

  /** whether backward() reads the x of forward (see RowLayer.savesInput) */
  get savesInput(): boolean {
    return this.fc.savesInput !== false;
  }

  /** y[N, C] from x[N, C]; x must stay unchanged until backward; y is owned by a child (see RowLayer.forward for `transient`) */
  forward(x: Float32Array, N: number, transient = false): Float32Array {
    const C = this.hiddenSize;
    const H = this.intermediateSize;
    if (x.length !== N * C) throw new ShapeError(`GeluMLP.forward: x has ${x.length} elements, expected [${N}, ${C}] = ${N * C}`);
    const h = this.fc.forward(x, N); // [N, H]
    const proj = this.proj;
    // a is read again only by a projection that learns
    const a = proj.savesInput === false ? this.buffers.scratch('a', N * H) : this.buffers.get('a', N * H);
    getBackend().geluForward(a, h, this.approx);
    this.h = h;
    this.N = N;
    return proj.forward(a, N, transient);
  }

  /** parameter gradients += …; returns dx[N, C] or null */
  backward(dy: Float32Array): Float32Array | null {
    const { N, h } = this;
    const C = this.hiddenSize;
    const H = this.intermediateSize;
    if (!h) throw new Error('GeluMLP.backward called before forward');
    if (dy.length !== N * C) throw new ShapeError(`GeluMLP.backward: dy has ${dy.length} elements, expected [${N}, ${C}] = ${N * C}`);
    if (!this.computeInputGrad && !hasTrainable(this)) return null;
    const fc = this.fc;
    const proj = this.proj;
    proj.computeInputGrad = this.computeInputGrad || hasTrainable(this.getModule(this.names.fc));
    fc.computeInputGrad = this.computeInputGrad;
    const da = proj.backward(dy); // [N, H]
    if (!da) return null;
    const dh = this.buffers.scratchZeros('dh', N * H);
    getBackend().geluBackward(dh, h, da, this.approx);
    return fc.backward(dh);
  }
}
