// One named adapter of a LoraLinear and the seam its variants plug into
// (docs/ARCHITECTURE.md §LoRA variants). The layer (lora-linear.ts) computes the low-rank
// product h = dropout(x)·Aᵀ and, in backward, the gradients of A, B and the input from the
// gradient the variant hands back; a variant (plain LoRA in variants.ts, DoRA in dora.ts)
// says how the adapter's output enters the layer's result, what that does to the gradient,
// and how it merges into the base weight (merge.ts runs the merge).
import type { F32Buf } from '../backend/index.js';
import type { Dropout } from '../nn/dropout.js';
import type { Linear } from '../nn/linear.js';
import type { Buffers, Parameter } from '../nn/module.js';
import { loraScaling } from './config.js';

/** What a variant and the merge see of the adapter layer. */
export interface AdapterLayer {
  readonly base: Linear;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** weight stored [in, out] (GPT-2 Conv1D) */
  readonly transposed: boolean;
  /** the layer's scratch buffers */
  readonly buffers: Buffers;
  /** ' <module path>' (or '') for messages */
  readonly label: string;
}

/** What a forward recorded for backward, per adapter applied. */
export interface AdapterStep {
  a: LoraAdapter;
  /** the input the adapter saw (x, or dropout(x)) */
  xd: Float32Array;
  /** set by the variant's forward (DoRA: the base term was recomputed as W·xd) */
  viaDropout: boolean;
  /** dropout changed the input (xd is not x), so dx takes the adapter's part through the mask */
  masked: boolean;
}

/** The low-rank factors a variant may need before the adapter exists (at creation). */
export type LowRank = Pick<LoraAdapter, 'A' | 'B' | 'r' | 'scaling'>;

/**
 * A LoRA variant, as PEFT's LoraVariant: its own forward, backward, merge and unmerge around
 * the shared low-rank product. Implementations are stateless objects; per-adapter state lives
 * in the adapter's buffers and, while merged, in what merge() returns.
 */
export interface LoraVariant {
  /** 'LoRA', 'DoRA' (for messages) */
  readonly name: string;
  /** backward() rewrites G in place (so the layer hands it a copy of dy) */
  readonly rewritesGradient: boolean;
  /** whether per-row adapter names (mixed batches, inference) may use it */
  readonly perRow: boolean;
  /** A parameter the variant adds to a new adapter (DoRA: the magnitude [O]), or null. */
  extraParameter(layer: AdapterLayer, a: LowRank): Parameter | null;
  /**
   * Adds the adapter into out[N, O] (the running result), given xd = dropout(x) and
   * h = xd·Aᵀ [N, R]. Returns AdapterStep.viaDropout.
   */
  forward(layer: AdapterLayer, a: LoraAdapter, xd: Float32Array, h: Float32Array, N: number, out: Float32Array): boolean;
  /**
   * From G [N, O], the gradient of the result after this adapter: adds into the variant's own
   * parameter gradients, returns the gradient the low-rank product s·h·Bᵀ sees. It may rewrite
   * G in place (what the adapters before it and the base then see) and add input-gradient
   * work of its own into dxd [N, I] (null when no input gradient is wanted through the mask).
   */
  backward(layer: AdapterLayer, step: AdapterStep, G: Float32Array, dxd: Float32Array | null, N: number): Float32Array;
  /** Merges into w (f32, W's layout) given delta = s·B·A in that layout; returns what unmerge needs. */
  merge(layer: AdapterLayer, a: LoraAdapter, w: F32Buf, delta: F32Buf): unknown;
  /** The inverse of merge on the merged f32 weight, with merge's result. */
  unmerge(layer: AdapterLayer, a: LoraAdapter, w: F32Buf, delta: F32Buf, state: unknown): void;
}

/** One named adapter of a LoraLinear. Parameters are f32. */
export class LoraAdapter {
  readonly name: string;
  readonly r: number;
  readonly alpha: number;
  readonly useRslora: boolean;
  readonly scaling: number;
  /** [R, I] */
  readonly A: Parameter;
  /** [O, R] */
  readonly B: Parameter;
  /** [O] (lora_bias) */
  readonly bias: Parameter | null;
  /** [O] (DoRA) */
  readonly magnitude: Parameter | null;
  readonly dropout: Dropout;
  readonly variant: LoraVariant;
  /** activations of the last forward */
  readonly buffers: Buffers;
  /**
   * PiSSA: the factors the adapter started from (the base holds W − s·B₀·A₀), kept so the
   * adapter can be saved as a plain LoRA delta on the original W (files.ts, pissaAsLora)
   */
  pissaInitial: { A: Float32Array; B: Float32Array } | null = null;

  constructor(name: string, r: number, alpha: number, useRslora: boolean, A: Parameter, B: Parameter, bias: Parameter | null, magnitude: Parameter | null, dropout: Dropout, variant: LoraVariant, buffers: Buffers) {
    this.name = name;
    this.r = r;
    this.alpha = alpha;
    this.useRslora = useRslora;
    this.scaling = loraScaling(alpha, r, useRslora);
    this.A = A;
    this.B = B;
    this.bias = bias;
    this.magnitude = magnitude;
    this.dropout = dropout;
    this.variant = variant;
    this.buffers = buffers;
  }

  get useDora(): boolean {
    return this.magnitude !== null;
  }

  /** [name, parameter] with PEFT's in-memory suffixes (lora_A.<name>.weight …). */
  namedParameters(): [string, Parameter][] {
    const n = this.name;
    const out: [string, Parameter][] = [
      [`lora_A.${n}.weight`, this.A],
      [`lora_B.${n}.weight`, this.B],
    ];
    if (this.bias) out.push([`lora_B.${n}.bias`, this.bias]);
    if (this.magnitude) out.push([`lora_magnitude_vector.${n}.weight`, this.magnitude]);
    return out;
  }

  setTrainable(flag: boolean): void {
    for (const [, p] of this.namedParameters()) p.requiresGrad = flag;
  }
}
