// GGML tensor types and their block formats: sizes, dequantization and quantization.
// docs/ARCHITECTURE.md §GGUF.
//
// A GGML tensor row of n values is n/QK blocks; each block holds its own scale(s):
//   F32   4 bytes a value; F16, BF16 2 bytes a value
//   Q8_0, Q4_0, Q4_K, Q6_K: ggml's blocks, described (and dequantized) in tensor/quant.ts,
//   where the quantized weights a model holds in memory live.
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../tensor/half.js';
import { dequantizeBlocks, type QuantDType } from '../tensor/quant.js';

export const GGML_TYPE = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, Q4_K: 12, Q6_K: 14, BF16: 30 } as const;
export type GgmlTypeName = keyof typeof GGML_TYPE;

/** Names of all GGML types (for messages about the ones lorakit cannot read). */
const ALL_TYPE_NAMES: Record<number, string> = {
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0', 9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K', 12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K', 15: 'Q8_K',
  16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS', 24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 30: 'BF16',
};

export interface BlockSpec {
  readonly name: GgmlTypeName;
  readonly id: number;
  /** values in a block */
  readonly blockValues: number;
  /** bytes in a block */
  readonly blockBytes: number;
}

const SPECS: readonly BlockSpec[] = [
  { name: 'F32', id: 0, blockValues: 1, blockBytes: 4 },
  { name: 'F16', id: 1, blockValues: 1, blockBytes: 2 },
  { name: 'BF16', id: 30, blockValues: 1, blockBytes: 2 },
  { name: 'Q8_0', id: 8, blockValues: 32, blockBytes: 34 },
  { name: 'Q4_0', id: 2, blockValues: 32, blockBytes: 18 },
  { name: 'Q4_K', id: 12, blockValues: 256, blockBytes: 144 },
  { name: 'Q6_K', id: 14, blockValues: 256, blockBytes: 210 },
];
const BY_ID = new Map(SPECS.map((s) => [s.id, s]));
const BY_NAME = new Map(SPECS.map((s) => [s.name, s]));

/** The block spec of a GGML type id lorakit reads, or undefined. */
export function blockSpecOf(id: number): BlockSpec | undefined {
  return BY_ID.get(id);
}

export function blockSpec(name: GgmlTypeName): BlockSpec {
  return BY_NAME.get(name)!;
}

/** A GGML type id as a name ("Q5_K", or "type 99" for an unknown id). */
export function ggmlTypeName(id: number): string {
  return ALL_TYPE_NAMES[id] ?? `type ${id}`;
}

export const READABLE_TYPES: readonly GgmlTypeName[] = SPECS.map((s) => s.name);

/** Bytes that n values (a whole number of blocks) take in a type. */
export function typeBytes(spec: BlockSpec, n: number): number {
  return (n / spec.blockValues) * spec.blockBytes;
}

/** The quantized dtype (tensor/quant.ts) a GGML block type is held as in memory. */
export const QUANT_OF: Partial<Record<GgmlTypeName, QuantDType>> = { Q8_0: 'q8_0', Q4_0: 'q4_0', Q4_K: 'q4_k', Q6_K: 'q6_k' };

/**
 * Dequantizes n values (whole blocks) of a GGML type from `src` (starting at byte 0) into
 * out[outOffset…]. `src` must hold typeBytes(spec, n) bytes. The block formats are
 * tensor/quant.ts's (dequantizeBlocks).
 */
export function dequantizeInto(spec: BlockSpec, src: Uint8Array, n: number, out: Float32Array, outOffset = 0): void {
  switch (spec.name) {
    case 'F32': {
      const dv = new DataView(src.buffer, src.byteOffset, n * 4);
      for (let i = 0; i < n; i++) out[outOffset + i] = dv.getFloat32(i * 4, true);
      return;
    }
    case 'F16':
      for (let i = 0; i < n; i++) out[outOffset + i] = f16ToF32(src[2 * i]! | (src[2 * i + 1]! << 8));
      return;
    case 'BF16':
      for (let i = 0; i < n; i++) out[outOffset + i] = bf16ToF32(src[2 * i]! | (src[2 * i + 1]! << 8));
      return;
    default:
      dequantizeBlocks(QUANT_OF[spec.name]!, src, n, out, outOffset);
  }
}

export function dequantize(spec: BlockSpec, src: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  dequantizeInto(spec, src, n, out);
  return out;
}

/**
 * Quantizes n values (a whole number of blocks) into a GGML type. Q8_0 and Q4_0 follow ggml's
 * reference quantizers (quantize_row_q8_0_ref, quantize_row_q4_0_ref) bit for bit up to f16
 * rounding; Q4_K and Q6_K use a plain min/max (Q4_K) or absmax (Q6_K) per sub-block, which is a
 * valid file that any reader decodes the same way, not llama.cpp's search for the best scales.
 */
export function quantize(spec: BlockSpec, x: Float32Array): Uint8Array {
  const n = x.length;
  if (n % spec.blockValues !== 0) throw new RangeError(`quantize ${spec.name}: ${n} values is not a whole number of ${spec.blockValues}-value blocks`);
  const nb = n / spec.blockValues;
  const out = new Uint8Array(nb * spec.blockBytes);
  const dv = new DataView(out.buffer);
  switch (spec.name) {
    case 'F32':
      for (let i = 0; i < n; i++) dv.setFloat32(i * 4, x[i]!, true);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) dv.setUint16(i * 2, f32ToF16(x[i]!), true);
      break;
    case 'BF16':
      for (let i = 0; i < n; i++) dv.setUint16(i * 2, f32ToBf16(x[i]!), true);
      break;
    case 'Q8_0':
      for (let b = 0; b < nb; b++) {
        let amax = 0;
        for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]!));
        const d = Math.fround(amax / 127);
        const id = d ? Math.fround(1 / d) : 0;
        dv.setUint16(b * 34, f32ToF16(d), true);
        for (let j = 0; j < 32; j++) dv.setInt8(b * 34 + 2 + j, roundf(Math.fround(x[b * 32 + j]! * id)));
      }
      break;
    case 'Q4_0':
      for (let b = 0; b < nb; b++) {
        let amax = 0, max = 0;
        for (let j = 0; j < 32; j++) {
          const v = x[b * 32 + j]!;
          if (amax < Math.abs(v)) {
            amax = Math.abs(v);
            max = v;
          }
        }
        const d = Math.fround(max / -8);
        const id = d ? Math.fround(1 / d) : 0;
        dv.setUint16(b * 18, f32ToF16(d), true);
        for (let j = 0; j < 16; j++) {
          const q0 = Math.min(15, Math.trunc(Math.fround(Math.fround(x[b * 32 + j]! * id) + 8.5)));
          const q1 = Math.min(15, Math.trunc(Math.fround(Math.fround(x[b * 32 + 16 + j]! * id) + 8.5)));
          out[b * 18 + 2 + j] = q0 | (q1 << 4);
        }
      }
      break;
    case 'Q4_K':
      for (let b = 0; b < nb; b++) quantizeQ4KBlock(x, b * 256, out, b * 144);
      break;
    case 'Q6_K':
      for (let b = 0; b < nb; b++) quantizeQ6KBlock(x, b * 256, out, b * 210);
      break;
  }
  return out;
}

/** C's roundf: halves away from zero (Math.round takes them up). */
function roundf(v: number): number {
  return v < 0 ? -Math.round(-v) : Math.round(v);
}

function quantizeQ4KBlock(x: Float32Array, xo: number, out: Uint8Array, o: number): void {
  // Each 32-value sub-block: x ≈ scale·q − min with q in 0..15, min ≥ 0 (ggml's convention).
  const scales = new Float32Array(8), mins = new Float32Array(8);
  for (let s = 0; s < 8; s++) {
    let lo = Infinity, hi = -Infinity;
    for (let l = 0; l < 32; l++) {
      const v = x[xo + s * 32 + l]!;
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    lo = Math.min(lo, 0);
    mins[s] = -lo;
    scales[s] = (hi - lo) / 15;
  }
  const maxScale = Math.max(...scales), maxMin = Math.max(...mins);
  const d = maxScale / 63, dmin = maxMin / 63;
  const dh = f16ToF32(f32ToF16(d)), dminh = f16ToF32(f32ToF16(dmin));
  const ls = new Uint8Array(8), lm = new Uint8Array(8);
  for (let s = 0; s < 8; s++) {
    ls[s] = dh > 0 ? Math.min(63, Math.round(scales[s]! / dh)) : 0;
    lm[s] = dminh > 0 ? Math.min(63, Math.round(mins[s]! / dminh)) : 0;
  }
  out[o] = f32ToF16(d) & 255;
  out[o + 1] = f32ToF16(d) >> 8;
  out[o + 2] = f32ToF16(dmin) & 255;
  out[o + 3] = f32ToF16(dmin) >> 8;
  const sc = o + 4;
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      out[sc + j] = ls[j]!;
      out[sc + j + 4] = lm[j]!;
    } else {
      out[sc + j + 4] = (ls[j]! & 15) | ((lm[j]! & 15) << 4);
      out[sc + j - 4]! |= (ls[j]! >> 4) << 6;
      out[sc + j]! |= (lm[j]! >> 4) << 6;
    }
  }
  for (let j = 0; j < 4; j++) {
    for (let half = 0; half < 2; half++) {
      const s = 2 * j + half;
      const scale = dh * ls[s]!, min = dminh * lm[s]!;
      for (let l = 0; l < 32; l++) {
        const v = x[xo + s * 32 + l]!;
        const q = scale > 0 ? Math.max(0, Math.min(15, Math.round((v + min) / scale))) : 0;
        out[o + 16 + j * 32 + l]! |= half ? q << 4 : q;
      }
    }
  }
}

function quantizeQ6KBlock(x: Float32Array, xo: number, out: Uint8Array, o: number): void {
  // 16 sub-blocks of 16 values: x ≈ d·scale·(q − 32), q in 0..63, scale an int8.
  const sub = new Float32Array(16);
  for (let s = 0; s < 16; s++) {
    let amax = 0;
    for (let l = 0; l < 16; l++) amax = Math.max(amax, Math.abs(x[xo + s * 16 + l]!));
    sub[s] = amax / 31;
  }
  const maxSub = Math.max(...sub);
  const d = maxSub / 127;
  const dh = f16ToF32(f32ToF16(d));
  const isc = new Int8Array(16);
  for (let s = 0; s < 16; s++) isc[s] = dh > 0 ? Math.min(127, Math.round(sub[s]! / dh)) : 0;
  const q = new Uint8Array(256);
  for (let i = 0; i < 256; i++) {
    const scale = dh * isc[i >> 4]!;
    q[i] = scale > 0 ? Math.max(0, Math.min(63, Math.round(x[xo + i]! / scale) + 32)) : 32;
  }
  // Layout (inverse of the dequantizer): per 128-value half, l in 0..31 packs values l, l+32, l+64, l+96.
  for (let h = 0; h < 2; h++) {
    const ql = o + h * 64, qh = o + 128 + h * 32, base = h * 128;
    for (let l = 0; l < 32; l++) {
      const q1 = q[base + l]!, q2 = q[base + l + 32]!, q3 = q[base + l + 64]!, q4 = q[base + l + 96]!;
      out[ql + l] = (q1 & 15) | ((q3 & 15) << 4);
      out[ql + l + 32] = (q2 & 15) | ((q4 & 15) << 4);
      out[qh + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
    }
  }
  for (let s = 0; s < 16; s++) out[o + 192 + s] = isc[s]! & 255;
  const dbits = f32ToF16(d);
  out[o + 208] = dbits & 255;
  out[o + 209] = dbits >> 8;
}
