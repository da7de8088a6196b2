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
import { ropeInvFreq as defaultInvFreq } from '../nn/attention.js';
import { ConfigReader } from './config.js';

const f = Math.fround;

export type RopeType = 'default' | 'linear' | 'dynamic' | 'llama3';
export const ROPE_TYPES: readonly RopeType[] = ['default', 'linear', 'dynamic', 'llama3'];

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
  /** llama3: original_max_position_embeddings; dynamic: max_position_embeddings */
  originalMaxPositions?: number;
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
  }
}

/**
 * Reads rope_theta, partial_rotary_factor and rope_scaling from a config (problems are
 * recorded on the reader). `headDim` is the attention head size.
 */
export function parseRope(r: ConfigReader, headDim: number, maxPositions: number, thetaDefault = 10000): RopeSpec {
  const theta = r.number('rope_theta', thetaDefault);
  const partial = r.number('partial_rotary_factor', 1);
  const dim = Math.floor(headDim * partial);
  if (dim % 2 !== 0 || dim <= 0) r.fail(`"partial_rotary_factor" × head_dim = ${headDim} × ${partial} must give a positive even number of rotated dimensions, got ${dim}`);
  if (dim !== headDim) r.fail(`"partial_rotary_factor" = ${partial} (partial rotary embeddings) is not supported; expected 1`);
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
