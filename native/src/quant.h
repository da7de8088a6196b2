// Quantized weights (GGML blocks) read by the GEMM's B packing and the embedding lookup:
// the native twin of src/tensor/quant.ts (docs/ARCHITECTURE.md §Quantized weights).
//
// dtype codes (after f32 0, f16 1, bf16 2): 3 q8_0, 4 q4_0, 5 q4_k, 6 q6_k.
// A quantized matrix is row-major; each row of `ld` values is ld / QK whole blocks, so the
// bytes of row r start at r · (ld / QK) · block_bytes. Each value is computed exactly and
// rounded once to f32, as ggml's dequantize_row_* and quant.ts's dequantizeBlocks give it,
// so a product on quantized B equals the same product on the dequantized f32 matrix.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "gemm.h"

namespace lk {
namespace quant {

enum : int { Q8_0 = 3, Q4_0 = 4, Q4_K = 5, Q6_K = 6 };

inline bool is_quant(int dt) { return dt >= Q8_0 && dt <= Q6_K; }
// values and bytes of one block
inline int block_values(int dt) { return dt == Q4_K || dt == Q6_K ? 256 : 32; }
inline int block_bytes(int dt) { return dt == Q8_0 ? 34 : dt == Q4_0 ? 18 : dt == Q4_K ? 144 : 210; }

inline float f16_at(const uint8_t* p) { return gemm::f16_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8))); }

// The 6-bit scale and min of sub-block j of a Q4_K block (ggml's get_scale_min_k4).
inline void scale_min_k4(int j, const uint8_t* q, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Dequantizes one block (block_values(dt) values) at b into y.
inline void dequant_block(int dt, const uint8_t* b, float* y) {
  switch (dt) {
    case Q8_0: {
      const float d = f16_at(b);
      const int8_t* q = reinterpret_cast<const int8_t*>(b + 2);
      for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(q[j]);
      return;
    }
    case Q4_0: {
      const float d = f16_at(b);
      const uint8_t* q = b + 2;
      for (int j = 0; j < 16; ++j) {
        y[j] = d * static_cast<float>((q[j] & 15) - 8);
        y[j + 16] = d * static_cast<float>((q[j] >> 4) - 8);
      }
      return;
    }
    case Q4_K: {
      const float d = f16_at(b), dmin = f16_at(b + 2);
      const uint8_t* sc = b + 4;
      const uint8_t* q = b + 16;
      for (int is = 0; is < 8; is += 2, q += 32, y += 64) {
        int s1, m1, s2, m2;
        scale_min_k4(is, sc, s1, m1);
        scale_min_k4(is + 1, sc, s2, m2);
        // d·s and dmin·m are exact in f32 (11-bit by 6-bit); d1·q is exact too, so each value
        // is rounded once, with or without a fused multiply-add
        const float d1 = d * s1, m1f = dmin * m1, d2 = d * s2, m2f = dmin * m2;
        for (int l = 0; l < 32; ++l) y[l] = d1 * static_cast<float>(q[l] & 15) - m1f;
        for (int l = 0; l < 32; ++l) y[32 + l] = d2 * static_cast<float>(q[l] >> 4) - m2f;
      }
      return;
    }
    case Q6_K: {
      const float d = f16_at(b + 208);
      const uint8_t* ql = b;
      const uint8_t* qh = b + 128;
      const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
      for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
        // two runs of 16 with one scale each (is = l / 16): the compiler vectorizes them
        for (int is = 0; is < 2; ++is)
        for (int l = 16 * is; l < 16 * is + 16; ++l) {
          const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
          const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
          const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
          const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
          y[l] = (d * static_cast<float>(sc[is])) * static_cast<float>(q1);
          y[l + 32] = (d * static_cast<float>(sc[is + 2])) * static_cast<float>(q2);
          y[l + 64] = (d * static_cast<float>(sc[is + 4])) * static_cast<float>(q3);
          y[l + 96] = (d * static_cast<float>(sc[is + 6])) * static_cast<float>(q4);
        }
      }
      return;
    }
    default:
      return;
  }
}

// Values [c0, c0 + n) of row `row` of a quantized matrix (row stride ld values) into out[0, n):
// whole blocks are dequantized straight into out, the partial first and last through tmp
// (block_values(dt) floats).
inline void dequant_row_range(int dt, const void* p, int64_t ld, int64_t row, int64_t c0, int64_t n, float* out,
                              float* tmp) {
  const int qk = block_values(dt), bb = block_bytes(dt);
  const uint8_t* r = static_cast<const uint8_t*>(p) + row * (ld / qk) * bb;
  int64_t c = c0;
  const int64_t c1 = c0 + n;
  while (c < c1) {
    const int64_t blk = c / qk, off = c - blk * qk;
    const int64_t take = qk - off < c1 - c ? qk - off : c1 - c;
    if (off == 0 && take == qk) {
      dequant_block(dt, r + blk * bb, out + (c - c0));
    } else {
      dequant_block(dt, r + blk * bb, tmp);
      std::memcpy(out + (c - c0), tmp + off, static_cast<size_t>(take) * sizeof(float));
    }
    c += take;
  }
}

// A per-thread scratch of at least n floats (grows, never shrinks).
inline float* scratch(size_t n) {
  static thread_local gemm::AlignedBuf buf;
  return buf.get<float>(n);
}

// Packs op(B)[k0:k0+kc, j0:j0+nc] of a quantized B into ceil(nc/P) panels [kc][P] (gemm.h's
// packed B layout, zero-padded), dequantizing its blocks: B stored [N, K] when b.trans (x·Wᵀ:
// each packed column is a range of one stored row), else [K, N] (dy·W: each packed row is).
inline void pack_b(float* dst, const gemm::Operand& b, int64_t k0, int64_t kc, int64_t j0, int64_t nc, int P) {
  const int qk = block_values(b.dt);
  float* row = scratch(static_cast<size_t>((kc > nc ? kc : nc) + qk));
  float* tmp = row + (kc > nc ? kc : nc);
  if (b.trans) {
    for (int64_t jp = 0; jp < nc; jp += P, dst += kc * P) {
      const int64_t nr = nc - jp < P ? nc - jp : P;
      for (int64_t j = 0; j < P; ++j) {
        if (j >= nr) {
          for (int64_t k = 0; k < kc; ++k) dst[k * P + j] = 0.f;
          continue;
        }
        dequant_row_range(b.dt, b.p, b.ld, j0 + jp + j, k0, kc, row, tmp);
        for (int64_t k = 0; k < kc; ++k) dst[k * P + j] = row[k];
      }
    }
    return;
  }
  for (int64_t k = 0; k < kc; ++k) {
    dequant_row_range(b.dt, b.p, b.ld, k0 + k, j0, nc, row, tmp);
    float* d = dst + k * P;
    for (int64_t jp = 0; jp < nc; jp += P, d += kc * P) {
      const int64_t nr = nc - jp < P ? nc - jp : P;
      std::memcpy(d, row + jp, static_cast<size_t>(nr) * sizeof(float));
      for (int64_t j = nr; j < P; ++j) d[j] = 0.f;
    }
  }
}

}  // namespace quant
}  // namespace lk
