// Rotary embedding frequencies from a config's rope_theta and rope_scaling, computed as
// transformers' modeling_rope_utils does (in float32 arithmetic: every step is rounded
// with Math.fround, as torch evaluates it on a float32 tensor).
//
//   default:  inv_freq[i] = 1 / theta^(2i / D)                       i = 0 … D/2 − 1
//   linear:   inv_freq / factor
//   dynamic:  default with theta' = theta · (factor·L/Lmax − (factor − 1))^(D/(D−2)) once the
//             sequence length L exceeds max_position_embeddings (NTK-aware scaling)
//   llama3:   wavelengths 2π/inv_freq above original_max/low_freq_factor are divided by
//             factor, those below original_max/high_freq_factor kept, and the band between
//             interpolated smoothly (Llama 3.1)
//   longrope: 1 / (ext[i] · theta^(2i / D)) with ext = long_factor once the sequence is longer than
//             original_max_position_embeddings, else short_factor; cos and sin are multiplied by
//             attention_factor (default √(1 + ln f / ln original_max), f = max_position_embeddings /
//             original_max_position_embeddings) (Phi-3, Phi-4-mini)
// D is the rotated size: head_dim · partial_rotary_factor where the family allows partial rotary.
import { ropeInvFreq as defaultInvFreq } from '../nn/attention.js';
import { ConfigReader } from './config.js';

const f = Math.fround;

export type RopeType = 'default' | 'linear' | 'dynamic' | 'llama3' | 'longrope';
export const ROPE_TYPES: readonly RopeType[] = ['default', 'linear', 'dynamic', 'llama3', 'longrope'];

export interface RopeSpec {
  type: RopeType;
  /** rope_theta */
  theta: number;
  /** rotated dimensions (head_dim · partial_rotary_factor) */
  dim: number;
  /** rope_scaling.factor (1 for default) */
  factor: number;
  /** llama3 */
  lowFreqFactor?: number;
  highFreqFactor?: number;
  /** llama3, longrope: original_max_position_embeddings; dynamic: max_position_embeddings */
  originalMaxPositions?: number;
  /** longrope: the per-frequency factors [D/2] for sequences up to / past originalMaxPositions */
  shortFactor?: readonly number[];
  longFactor?: readonly number[];
  /** multiplies cos and sin (longrope's attention_factor; 1 for the others) */
  attentionScaling?: number;
}

/** llama3 scaling applied to default inv_freq (transformers' _compute_llama3_parameters). */
export function llama3InvFreq(invFreq: Float32Array, factor: number, lowFreqFactor: number, highFreqFactor: number, originalMax: number): Float32Array {
  const lowWavelen = originalMax / lowFreqFactor;
  const highWavelen = originalMax / highFreqFactor;
  const out = new Float32Array(invFreq.length);
  const twoPi = f(2 * Math.PI);
  const fac = f(factor);
  for (let i = 0; i < invFreq.length; i++) {
    const inv = invFreq[i]!;
    // `2π / inv_freq` on a tensor is reciprocal(inv_freq) · 2π
    const wavelen = f(f(1 / inv) * twoPi);
    let scaled = wavelen > lowWavelen ? f(inv / fac) : inv;
    const medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
    if (medium) {
      // smooth = (original_max / wavelen − low) / (high − low)
      const smooth = f(f(f(f(1 / wavelen) * f(originalMax)) - f(lowFreqFactor)) / f(highFreqFactor - lowFreqFactor));
      // (1 − smooth) · inv / factor + smooth · inv
      const a = f(f(f(f(1) - smooth) * scaled) / fac);
      const b = f(smooth * scaled);
      scaled = f(a + b);
    }
    out[i] = scaled;
  }
  return out;
}

/** inv_freq for a sequence of `seqLen` positions (only 'dynamic' depends on it). */
export function ropeInvFreq(spec: RopeSpec, seqLen = 0): Float32Array {
  switch (spec.type) {
    case 'default':
      return defaultInvFreq(spec.dim, spec.theta);
    case 'linear': {
      const inv = defaultInvFreq(spec.dim, spec.theta);
      for (let i = 0; i < inv.length; i++) inv[i] = f(inv[i]! / f(spec.factor));
      return inv;
    }
    case 'dynamic': {
      const maxPos = spec.originalMaxPositions ?? 0;
      if (seqLen <= maxPos) return defaultInvFreq(spec.dim, spec.theta);
      const D = spec.dim;
      const theta = spec.theta * Math.pow((spec.factor * seqLen) / maxPos - (spec.factor - 1), D / (D - 2));
      return defaultInvFreq(D, theta);
    }
    case 'llama3':
      return llama3InvFreq(defaultInvFreq(spec.dim, spec.theta), spec.factor, spec.lowFreqFactor ?? 1, spec.highFreqFactor ?? 4, spec.originalMaxPositions ?? 8192);
    case 'longrope': {
      const ext = seqLen > (spec.originalMaxPositions ?? 0) ? spec.longFactor! : spec.shortFactor!;
      // 1 / (ext · base^e): the default inv_freq is 1 / base^e, so base^e is recomputed as torch does
      const D = spec.dim;
      const base = f(spec.theta);
      const out = new Float32Array(D / 2);
      for (let i = 0; i < D / 2; i++) out[i] = f(1 / f(f(ext[i]!) * f(Math.pow(base, f((2 * i) / D)))));
      return out;
    }
  }
}


/**
 * Reads rope_theta, partial_rotary_factor and rope_scaling from a config (problems are
 * recorded on the reader). `headDim` is the attention head size.
 */
export function parseRope(r: ConfigReader, headDim: number, maxPositions: number, thetaDefault = 10000, opts: { partialRotary?: boolean } = {}): RopeSpec {
  const theta = r.number('rope_theta', thetaDefault);
  const partial = r.number('partial_rotary_factor', 1);
  const dim = Math.floor(headDim * partial);
  if (dim % 2 !== 0 || dim <= 0) r.fail(`"partial_rotary_factor" × head_dim = ${headDim} × ${partial} must give a positive even number of rotated dimensions, got ${dim}`);
  if (dim !== headDim && !opts.partialRotary) r.fail(`"partial_rotary_factor" = ${partial} (partial rotary embeddings) is not supported for this model type; expected 1`);
  const s = r.object('rope_scaling');
  if (!s) return { type: 'default', theta, dim, factor: 1 };
  // transformers accepts the older "type" key as well as "rope_type"
  const typeKey = s.has('rope_type') ? 'rope_type' : 'type';
  s.known('rope_type', 'type');
  const rawType = s.json[typeKey];
  if (typeof rawType !== 'string') {
    r.fail(`"rope_scaling.rope_type" must be a string (one of ${ROPE_TYPES.join(', ')}), got ${rawType === undefined ? 'nothing' : JSON.stringify(rawType)}`);
    return { type: 'default', theta, dim, factor: 1 };
  }
  if (!(ROPE_TYPES as readonly string[]).includes(rawType)) {
    r.fail(`"rope_scaling.rope_type" = ${JSON.stringify(rawType)} is not supported; supported rope types: ${ROPE_TYPES.join(', ')}`);
    return { type: 'default', theta, dim, factor: 1 };
  }
  const type = rawType as RopeType;
  if (type === 'default') return { type, theta, dim, factor: 1 };
  if (type === 'longrope') return parseLongRope(r, s, theta, dim, maxPositions);
  const factor = s.number('factor');
  if (type === 'linear') return { type, theta, dim, factor };
  if (type === 'dynamic') {
    return { type, theta, dim, factor, originalMaxPositions: s.int('original_max_position_embeddings', maxPositions) };
  }
  const lowFreqFactor = s.number('low_freq_factor');
  const highFreqFactor = s.number('high_freq_factor');
  const originalMaxPositions = s.int('original_max_position_embeddings');
  if (highFreqFactor <= lowFreqFactor) r.fail(`"rope_scaling.high_freq_factor" (${highFreqFactor}) must be greater than "rope_scaling.low_freq_factor" (${lowFreqFactor})`);
  return { type, theta, dim, factor, lowFreqFactor, highFreqFactor, originalMaxPositions };
}

/**
 * longrope (transformers' _compute_longrope_parameters): short_factor and long_factor of D/2
 * numbers each; original_max_position_embeddings from the config's top level (Phi-3 keeps it
 * there) or rope_scaling, the factor then max_position_embeddings / original_max (else
 * rope_scaling.factor), attention_factor from rope_scaling or √(1 + ln factor / ln original_max).
 */
function parseLongRope(r: ConfigReader, s: ConfigReader, theta: number, dim: number, maxPositions: number): RopeSpec {
  const factors = (k: string): number[] => {
    const v = s.json[k];
    s.known(k);
    if (!Array.isArray(v) || v.length !== dim / 2 || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)) {
      r.fail(`"rope_scaling.${k}" must be an array of ${dim / 2} positive numbers (rotated dimensions ${dim} / 2), got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
      return new Array<number>(dim / 2).fill(1);
    }
    return v as number[];
  };
  const shortFactor = factors('short_factor');
  const longFactor = factors('long_factor');
  let originalMaxPositions: number;
  let factor: number;
  if (r.has('original_max_position_embeddings')) {
    originalMaxPositions = r.int('original_max_position_embeddings');
    factor = maxPositions / originalMaxPositions;
    s.known('original_max_position_embeddings', 'factor');
  } else {
    r.known('original_max_position_embeddings');
    originalMaxPositions = s.int('original_max_position_embeddings', maxPositions);
    factor = s.number('factor', 1);
  }
  let attentionScaling: number;
  if (s.has('attention_factor')) attentionScaling = s.number('attention_factor');
  else attentionScaling = factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(originalMaxPositions));
  return { type: 'longrope', theta, dim, factor, originalMaxPositions, shortFactor, longFactor, attentionScaling };
}
