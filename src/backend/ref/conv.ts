// Convolution as GEMM: patch extraction (im2col) and its scatter-add backward (col2im).
// Letters: B batch, C channels, H, W image size, KH, KW kernel, SH, SW strides,
// OH = ⌊(H − KH)/SH⌋ + 1, OW = ⌊(W − KW)/SW⌋ + 1.
import type { PatchArgs } from '../types.js';

/** OH, OW of a patch extraction */
export function patchGrid(a: PatchArgs): { OH: number; OW: number } {
  return { OH: Math.floor((a.H - a.KH) / a.SH) + 1, OW: Math.floor((a.W - a.KW) / a.SW) + 1 };
}

/** cols[B·OH·OW, C·KH·KW] = patches of img[B, C, H, W], columns ordered (c, kh, kw); writes */
export function im2col(cols: Float32Array, img: Float32Array, a: PatchArgs): void {
  const { B, C, H, W, KH, KW, SH, SW } = a;
  const { OH, OW } = patchGrid(a);
  const K = C * KH * KW;
  for (let b = 0; b < B; b++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const row = ((b * OH + oh) * OW + ow) * K;
        for (let c = 0; c < C; c++) {
          for (let kh = 0; kh < KH; kh++) {
            const src = ((b * C + c) * H + oh * SH + kh) * W + ow * SW;
            const dst = row + (c * KH + kh) * KW;
            for (let kw = 0; kw < KW; kw++) cols[dst + kw] = img[src + kw]!;
          }
        }
      }
    }
  }
}

/** dimg[B, C, H, W] += dcols[B·OH·OW, C·KH·KW] scattered back to its pixels (overlapping patches add up) */
export function col2im(dimg: Float32Array, dcols: Float32Array, a: PatchArgs): void {
  const { B, C, H, W, KH, KW, SH, SW } = a;
  const { OH, OW } = patchGrid(a);
  const K = C * KH * KW;
  for (let b = 0; b < B; b++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const row = ((b * OH + oh) * OW + ow) * K;
        for (let c = 0; c < C; c++) {
          for (let kh = 0; kh < KH; kh++) {
            const dst = ((b * C + c) * H + oh * SH + kh) * W + ow * SW;
            const src = row + (c * KH + kh) * KW;
            for (let kw = 0; kw < KW; kw++) dimg[dst + kw]! += dcols[src + kw]!;
          }
        }
      }
    }
  }
}

/** The kernels this file adds to the ref backend. */
export const convKernels = { im2col, col2im };
