// Quantized weights: GGML's block formats held as they are stored (docs/ARCHITECTURE.md
// §Quantized weights). A quantized tensor is a row-major matrix whose rows are whole blocks:
// the bytes of row r start at r · (cols / QK) · blockBytes. Only frozen weights are quantized;
// the kernels that read them (the GEMM's B operand, the embedding lookup) dequantize blocks
// as they read, and the values they see are exactly dequantizeBlocks' (f32, one rounding).
//
//   q8_0  32 values: f16 d, int8 q[32]                          x = d·q                  (34 bytes)
//   q4_0  32 values: f16 d, u8 qs[16]                           x[j] = d·((qs[j]&15) − 8), x[j+16] = d·((qs[j]>>4) − 8)   (18 bytes)
//   q4_k  256 values: f16 d, f16 dmin, u8 scales[12], u8 qs[128]: 8 sub-blocks of 32, each with a
//         6-bit scale sc and min m: x = d·sc·q − dmin·m, q a 4-bit quant   (144 bytes)
//   q6_k  256 values: u8 ql[128], u8 qh[64], i8 scales[16], f16 d: 16 sub-blocks of 16,
//         x = d·scale·(q − 32), q a 6-bit quant (low 4 bits in ql, high 2 in qh)   (210 bytes)
// The layouts are ggml's block_q8_0 / block_q4_0 / block_q4_K / block_q6_K; the native twin of
// dequantizeBlocks is native/src/quant.h.
import { f16ToF32 } from './half.js';

export type QuantDType = 'q8_0' | 'q4_0' | 'q4_k' | 'q6_k';
export const QUANT_DTYPES: readonly QuantDType[] = ['q8_0', 'q4_0', 'q4_k', 'q6_k'];

/** Values and bytes of one block of each quantized type. */
export const QUANT_BLOCK: Readonly<Record<QuantDType, { readonly values: number; readonly bytes: number }>> = {
  q8_0: { values: 32, bytes: 34 },
  q4_0: { values: 32, bytes: 18 },
  q4_k: { values: 256, bytes: 144 },
  q6_k: { values: 256, bytes: 210 },
};

export function isQuantDType(d: string): d is QuantDType {
  return d === 'q8_0' || d === 'q4_0' || d === 'q4_k' || d === 'q6_k';
}

/** Bytes that n values (a whole number of blocks) take in a quantized type. */
export function quantBytes(dtype: QuantDType, n: number): number {
  const b = QUANT_BLOCK[dtype];
  return (n / b.values) * b.bytes;
}

/** Values held by `bytes` bytes of whole blocks. */
export function quantValues(dtype: QuantDType, bytes: number): number {
  const b = QUANT_BLOCK[dtype];
  return (bytes / b.bytes) * b.values;
}

function f16At(b: Uint8Array, o: number): number {
  return f16ToF32(b[o]! | (b[o + 1]! << 8));
}

/** The 6-bit scale and min of sub-block j of a Q4_K block (ggml's get_scale_min_k4). */
function scaleMinK4(j: number, b: Uint8Array, o: number): [number, number] {
  if (j < 4) return [b[o + j]! & 63, b[o + j + 4]! & 63];
  return [(b[o + j + 4]! & 15) | ((b[o + j - 4]! >> 6) << 4), (b[o + j + 4]! >> 4) | ((b[o + j]! >> 6) << 4)];
}

/**
 * Dequantizes n values (whole blocks) from `src` starting at byte `srcOffset` into
 * out[outOffset…]. Each value is computed exactly and rounded once to f32, as ggml's
 * dequantizers (and native/src/quant.h) give it.
 */
export function dequantizeBlocks(dtype: QuantDType, src: Uint8Array, n: number, out: Float32Array, outOffset = 0, srcOffset = 0): void {
  const nb = n / QUANT_BLOCK[dtype].values;
  switch (dtype) {
    case 'q8_0':
      for (let b = 0; b < nb; b++) {
        const o = srcOffset + b * 34;
        const d = f16At(src, o);
        const y = outOffset + b * 32;
        for (let j = 0; j < 32; j++) out[y + j] = d * ((src[o + 2 + j]! << 24) >> 24);
      }
      return;
    case 'q4_0':
      for (let b = 0; b < nb; b++) {
        const o = srcOffset + b * 18;
        const d = f16At(src, o);
        const y = outOffset + b * 32;
        for (let j = 0; j < 16; j++) {
          const q = src[o + 2 + j]!;
          out[y + j] = d * ((q & 15) - 8);
          out[y + j + 16] = d * ((q >> 4) - 8);
        }
      }
      return;
    case 'q4_k':
      for (let b = 0; b < nb; b++) {
        const o = srcOffset + b * 144;
        const d = f16At(src, o);
        const dmin = f16At(src, o + 2);
        const sc = o + 4;
        let q = o + 16;
        let y = outOffset + b * 256;
        for (let is = 0; is < 8; is += 2) {
          const [s1, m1] = scaleMinK4(is, src, sc);
          const [s2, m2] = scaleMinK4(is + 1, src, sc);
          const d1 = d * s1, mm1 = dmin * m1, d2 = d * s2, mm2 = dmin * m2;
          for (let l = 0; l < 32; l++) out[y + l] = d1 * (src[q + l]! & 15) - mm1;
          for (let l = 0; l < 32; l++) out[y + 32 + l] = d2 * (src[q + l]! >> 4) - mm2;
          q += 32;
          y += 64;
        }
      }
      return;
    case 'q6_k':
      for (let b = 0; b < nb; b++) {
        const o = srcOffset + b * 210;
        const d = f16At(src, o + 208);
        let ql = o, qh = o + 128, sc = o + 192;
        let y = outOffset + b * 256;
        for (let n128 = 0; n128 < 256; n128 += 128) {
          for (let l = 0; l < 32; l++) {
            const is = l >> 4;
            const h = src[qh + l]!;
            const q1 = ((src[ql + l]! & 15) | ((h & 3) << 4)) - 32;
            const q2 = ((src[ql + l + 32]! & 15) | (((h >> 2) & 3) << 4)) - 32;
            const q3 = ((src[ql + l]! >> 4) | (((h >> 4) & 3) << 4)) - 32;
            const q4 = ((src[ql + l + 32]! >> 4) | (((h >> 6) & 3) << 4)) - 32;
            out[y + l] = Math.fround(d * ((src[sc + is]! << 24) >> 24)) * q1;
            out[y + l + 32] = Math.fround(d * ((src[sc + is + 2]! << 24) >> 24)) * q2;
            out[y + l + 64] = Math.fround(d * ((src[sc + is + 4]! << 24) >> 24)) * q3;
            out[y + l + 96] = Math.fround(d * ((src[sc + is + 6]! << 24) >> 24)) * q4;
          }
          y += 128;
          ql += 64;
          qh += 32;
          sc += 8;
        }
      }
      return;
  }
}

/**
 * How many values of whole-block buffer `src` are NaN or ±Inf, from the blocks' f16 scales
 * alone (the quants are integers: a value is finite exactly when its block's scales are, and a
 * non-finite scale makes every value of the block non-finite, Inf·0 being NaN). Nothing is
 * dequantized, so checking a loaded weight costs no f32 copy.
 */
export function quantNonFinite(dtype: QuantDType, src: Uint8Array): number {
  const { values, bytes } = QUANT_BLOCK[dtype];
  // byte offsets of the block's f16 scales
  const scales = dtype === 'q4_k' ? [0, 2] : dtype === 'q6_k' ? [208] : [0];
  let bad = 0;
  for (let o = 0; o < src.length; o += bytes) {
    for (const s of scales) {
      if (((src[o + s]! | (src[o + s + 1]! << 8)) & 0x7c00) === 0x7c00) {
        bad += values;
        break;
      }
    }
  }
  return bad;
}

/** The values of a whole quantized buffer (n = quantValues(dtype, src.length)), as f32. */
export function dequantizeAll(dtype: QuantDType, src: Uint8Array): Float32Array {
  const out = new Float32Array(quantValues(dtype, src.length));
  dequantizeBlocks(dtype, src, out.length, out);
  return out;
}
