// Fused attention, flash style. Forward: blocks of kR query rows walk the visible keys in
// tiles of kTile with an online softmax (running max m, running sum l, rescaled
// accumulator), so no more than one tile of scores exists per row. Backward recomputes each
// tile of scores from q, k and the saved lse, for blocks of kBr query rows: their p and ds
// for a key tile, then dv += pᵀ·dout and dk += dsᵀ·q as one product over the block's rows
// (the GEMM micro-kernel when D is a multiple of 16). A task packs the keys (and, in
// backward, the values) it reads in panels of 16 keys once, so the q·k and dout·v dots of a
// tile run as a small matrix product (scores4) with no horizontal sums; the value rows (the
// key rows for dq) are copied contiguous. A lone query row (decoding) reads keys in place.
// Tasks: forward (b, h, block of queries: as many rows as leaves each thread four tasks);
// backward (b, kv head) when those pairs share out evenly over the threads, else a dk/dv
// pass over (b, kv head, key tile) and a dq pass over (b, h, kQBlock queries). The code is
// written once over a small vector-ops policy, instantiated for AVX2+FMA and portable.
#include <algorithm>
#include <vector>

#include "attention.h"
#include "gemm.h"
#include "ops_common.h"
#include "simd.h"

namespace lk {
namespace {

constexpr int64_t kTile = 64;   // keys per score tile
constexpr int64_t kQBlock = 16;  // query rows per task of the backward dq pass (and the fewest per forward task)

using Dims = AttentionDims;  // attention.h

// ---- vector-ops policies: dot, y += a·x, y *= a, exp over a tile, sum, max ----

#if LK_X86
struct Avx2Ops {
  // lane mask for the last D % 8 elements
  LK_AVX2 static inline __m256i tail_mask(int64_t r) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(r)), idx);
  }
  LK_AVX2 static inline float dot(const float* a, const float* b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
      s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    if (i < n) {
      const __m256i m = tail_mask(n - i);
      s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
    }
    return hsum(_mm256_add_ps(s0, s1));
  }
  // out[i] = a[i]·b over n, for kR rows a[i]
  LK_AVX2 static inline void dot4(const float* const a[4], const float* b, int64_t n, float out[4]) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m256 x = _mm256_loadu_ps(b + i);
      s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a[0] + i), x, s0);
      s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a[1] + i), x, s1);
      s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a[2] + i), x, s2);
      s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a[3] + i), x, s3);
    }
    if (i < n) {
      const __m256i m = tail_mask(n - i);
      const __m256 x = _mm256_maskload_ps(b + i, m);
      s0 = _mm256_fmadd_ps(_mm256_maskload_ps(a[0] + i, m), x, s0);
      s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a[1] + i, m), x, s1);
      s2 = _mm256_fmadd_ps(_mm256_maskload_ps(a[2] + i, m), x, s2);
      s3 = _mm256_fmadd_ps(_mm256_maskload_ps(a[3] + i, m), x, s3);
    }
    // four horizontal sums at once
    const __m256 h01 = _mm256_hadd_ps(s0, s1), h23 = _mm256_hadd_ps(s2, s3);
    const __m256 h = _mm256_hadd_ps(h01, h23);  // lanes: s0 s1 s2 s3 (low half), same (high half)
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
  }
  // out[i·ld + j] = Σ_d a[i][d]·x_j[d] for kR rows a[i] and keys j < round_up(n, 16): the dots
  // of a tile against keys packed by pack_keys_t (xt at the tile's first key, readable to
  // round_up(n, 16) keys), a 4-row × 16-key block of accumulators in registers across d
  LK_AVX2 static inline void scores4(float* out, int64_t ld, const float* const a[4], const float* xt, int64_t n, int64_t D) {
    for (int64_t c = 0; c < n; c += 16) {
      __m256 a00 = _mm256_setzero_ps(), a01 = _mm256_setzero_ps(), a10 = _mm256_setzero_ps(), a11 = _mm256_setzero_ps();
      __m256 a20 = _mm256_setzero_ps(), a21 = _mm256_setzero_ps(), a30 = _mm256_setzero_ps(), a31 = _mm256_setzero_ps();
      const float* x = xt + c * D;  // the panel of keys c .. c + 15
      for (int64_t d = 0; d < D; ++d, x += 16) {
        const __m256 x0 = _mm256_loadu_ps(x), x1 = _mm256_loadu_ps(x + 8);
        __m256 b = _mm256_broadcast_ss(a[0] + d);
        a00 = _mm256_fmadd_ps(b, x0, a00);
        a01 = _mm256_fmadd_ps(b, x1, a01);
        b = _mm256_broadcast_ss(a[1] + d);
        a10 = _mm256_fmadd_ps(b, x0, a10);
        a11 = _mm256_fmadd_ps(b, x1, a11);
        b = _mm256_broadcast_ss(a[2] + d);
        a20 = _mm256_fmadd_ps(b, x0, a20);
        a21 = _mm256_fmadd_ps(b, x1, a21);
        b = _mm256_broadcast_ss(a[3] + d);
        a30 = _mm256_fmadd_ps(b, x0, a30);
        a31 = _mm256_fmadd_ps(b, x1, a31);
      }
      _mm256_storeu_ps(out + c, a00); _mm256_storeu_ps(out + c + 8, a01);
      _mm256_storeu_ps(out + ld + c, a10); _mm256_storeu_ps(out + ld + c + 8, a11);
      _mm256_storeu_ps(out + 2 * ld + c, a20); _mm256_storeu_ps(out + 2 * ld + c + 8, a21);
      _mm256_storeu_ps(out + 3 * ld + c, a30); _mm256_storeu_ps(out + 3 * ld + c + 8, a31);
    }
  }
  // acc[i][0, D) += Σ_{j<n} p[i·ld + j]·x[j·xs + (0, D)] for kR rows: the p·V product of a
  // tile, with a 4-row × 16-column block of accumulators held in registers across the keys
  LK_AVX2 static inline void pv4(float* const acc[4], const float* p, int64_t ld, const float* x, int64_t xs, int64_t n, int64_t D) {
    const float* p0 = p;
    const float* p1 = p + ld;
    const float* p2 = p + 2 * ld;
    const float* p3 = p + 3 * ld;
    int64_t c = 0;
    for (; c + 16 <= D; c += 16) {
      __m256 a00 = _mm256_loadu_ps(acc[0] + c), a01 = _mm256_loadu_ps(acc[0] + c + 8);
      __m256 a10 = _mm256_loadu_ps(acc[1] + c), a11 = _mm256_loadu_ps(acc[1] + c + 8);
      __m256 a20 = _mm256_loadu_ps(acc[2] + c), a21 = _mm256_loadu_ps(acc[2] + c + 8);
      __m256 a30 = _mm256_loadu_ps(acc[3] + c), a31 = _mm256_loadu_ps(acc[3] + c + 8);
      for (int64_t j = 0; j < n; ++j) {
        const float* xr = x + j * xs + c;
        const __m256 x0 = _mm256_loadu_ps(xr), x1 = _mm256_loadu_ps(xr + 8);
        __m256 b = _mm256_broadcast_ss(p0 + j);
        a00 = _mm256_fmadd_ps(b, x0, a00);
        a01 = _mm256_fmadd_ps(b, x1, a01);
        b = _mm256_broadcast_ss(p1 + j);
        a10 = _mm256_fmadd_ps(b, x0, a10);
        a11 = _mm256_fmadd_ps(b, x1, a11);
        b = _mm256_broadcast_ss(p2 + j);
        a20 = _mm256_fmadd_ps(b, x0, a20);
        a21 = _mm256_fmadd_ps(b, x1, a21);
        b = _mm256_broadcast_ss(p3 + j);
        a30 = _mm256_fmadd_ps(b, x0, a30);
        a31 = _mm256_fmadd_ps(b, x1, a31);
      }
      _mm256_storeu_ps(acc[0] + c, a00); _mm256_storeu_ps(acc[0] + c + 8, a01);
      _mm256_storeu_ps(acc[1] + c, a10); _mm256_storeu_ps(acc[1] + c + 8, a11);
      _mm256_storeu_ps(acc[2] + c, a20); _mm256_storeu_ps(acc[2] + c + 8, a21);
      _mm256_storeu_ps(acc[3] + c, a30); _mm256_storeu_ps(acc[3] + c + 8, a31);
    }
    for (; c < D; c += 8) {  // 8 columns, the last group masked
      const __m256i m = tail_mask(D - c < 8 ? D - c : 8);
      __m256 a0 = _mm256_maskload_ps(acc[0] + c, m), a1 = _mm256_maskload_ps(acc[1] + c, m);
      __m256 a2 = _mm256_maskload_ps(acc[2] + c, m), a3 = _mm256_maskload_ps(acc[3] + c, m);
      for (int64_t j = 0; j < n; ++j) {
        const __m256 x0 = _mm256_maskload_ps(x + j * xs + c, m);
        a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(p0 + j), x0, a0);
        a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(p1 + j), x0, a1);
        a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(p2 + j), x0, a2);
        a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(p3 + j), x0, a3);
      }
      _mm256_maskstore_ps(acc[0] + c, m, a0);
      _mm256_maskstore_ps(acc[1] + c, m, a1);
      _mm256_maskstore_ps(acc[2] + c, m, a2);
      _mm256_maskstore_ps(acc[3] + c, m, a3);
    }
  }
  // y[j·ys + (0, D)] += Σ_i a[i·ld + j]·x[i][(0, D)] for keys j < n: dv and dk of a tile,
  // with the four rows x[i] (16 columns at a time) held in registers across the keys
  LK_AVX2 static inline void tp4(float* y, int64_t ys, const float* a, int64_t ld, const float* const x[4], int64_t n, int64_t D) {
    int64_t c = 0;
    for (; c + 16 <= D; c += 16) {
      const __m256 x00 = _mm256_loadu_ps(x[0] + c), x01 = _mm256_loadu_ps(x[0] + c + 8);
      const __m256 x10 = _mm256_loadu_ps(x[1] + c), x11 = _mm256_loadu_ps(x[1] + c + 8);
      const __m256 x20 = _mm256_loadu_ps(x[2] + c), x21 = _mm256_loadu_ps(x[2] + c + 8);
      const __m256 x30 = _mm256_loadu_ps(x[3] + c), x31 = _mm256_loadu_ps(x[3] + c + 8);
      for (int64_t j = 0; j < n; ++j) {
        float* yr = y + j * ys + c;
        __m256 y0 = _mm256_loadu_ps(yr), y1 = _mm256_loadu_ps(yr + 8);
        __m256 b = _mm256_broadcast_ss(a + j);
        y0 = _mm256_fmadd_ps(b, x00, y0);
        y1 = _mm256_fmadd_ps(b, x01, y1);
        b = _mm256_broadcast_ss(a + ld + j);
        y0 = _mm256_fmadd_ps(b, x10, y0);
        y1 = _mm256_fmadd_ps(b, x11, y1);
        b = _mm256_broadcast_ss(a + 2 * ld + j);
        y0 = _mm256_fmadd_ps(b, x20, y0);
        y1 = _mm256_fmadd_ps(b, x21, y1);
        b = _mm256_broadcast_ss(a + 3 * ld + j);
        y0 = _mm256_fmadd_ps(b, x30, y0);
        y1 = _mm256_fmadd_ps(b, x31, y1);
        _mm256_storeu_ps(yr, y0);
        _mm256_storeu_ps(yr + 8, y1);
      }
    }
    for (; c < D; c += 8) {  // 8 columns, the last group masked
      const __m256i m = tail_mask(D - c < 8 ? D - c : 8);
      const __m256 x0 = _mm256_maskload_ps(x[0] + c, m), x1 = _mm256_maskload_ps(x[1] + c, m);
      const __m256 x2 = _mm256_maskload_ps(x[2] + c, m), x3 = _mm256_maskload_ps(x[3] + c, m);
      for (int64_t j = 0; j < n; ++j) {
        float* yr = y + j * ys + c;
        __m256 y0 = _mm256_maskload_ps(yr, m);
        y0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + j), x0, y0);
        y0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + ld + j), x1, y0);
        y0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2 * ld + j), x2, y0);
        y0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3 * ld + j), x3, y0);
        _mm256_maskstore_ps(yr, m, y0);
      }
    }
  }
  // y[j·ys + c] += Σ_{i<R} a[i·ld + j]·x[i·xs + c] for keys j < n, c < D: dv += pᵀ·dout and
  // dk += dsᵀ·q of a tile over a block's rows (a readable to round_up(n, 8) in each row)
  LK_AVX2 static inline void acc_tn(float* y, int64_t ys, const float* a, int64_t ld, const float* x, int64_t xs, int64_t R, int64_t n, int64_t D) {
    if (D % 16 == 0) {  // the GEMM micro-kernel: x rows are read 16 columns at a time
      gemm::acc_at_b_avx2(R, a, ld, x, xs, y, ys, n, D);
      return;
    }
    int64_t i = 0;
    for (; i + 4 <= R; i += 4) {
      const float* const xr[4] = {x + i * xs, x + (i + 1) * xs, x + (i + 2) * xs, x + (i + 3) * xs};
      tp4(y, ys, a + i * ld, ld, xr, n, D);
    }
    for (; i < R; ++i)
      for (int64_t j = 0; j < n; ++j) axpy(y + j * ys, a[i * ld + j], x + i * xs, D);
  }
  // dst[j·ld + i] = src[i][c + j] for i, j < 8: an 8×8 block transposed in registers
  // (pack_keys_t: eight keys into their panel, eight elements at a time)
  LK_AVX2 static inline void transpose8(float* dst, int64_t ld, const float* const src[8], int64_t c) {
    const __m256 r0 = _mm256_loadu_ps(src[0] + c), r1 = _mm256_loadu_ps(src[1] + c);
    const __m256 r2 = _mm256_loadu_ps(src[2] + c), r3 = _mm256_loadu_ps(src[3] + c);
    const __m256 r4 = _mm256_loadu_ps(src[4] + c), r5 = _mm256_loadu_ps(src[5] + c);
    const __m256 r6 = _mm256_loadu_ps(src[6] + c), r7 = _mm256_loadu_ps(src[7] + c);
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    // u0: elements 0 | 4 of rows 0–3, u1: 1 | 5, u2: 2 | 6, u3: 3 | 7; u4–u7 the same for rows 4–7
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + ld, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ld, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ld, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ld, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ld, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ld, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ld, _mm256_permute2f128_ps(u3, u7, 0x31));
  }
  LK_AVX2 static inline void axpy(float* y, float a, const float* x, int64_t n) {
    const __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    if (i < n) {
      const __m256i m = tail_mask(n - i);
      _mm256_maskstore_ps(y + i, m, _mm256_fmadd_ps(av, _mm256_maskload_ps(x + i, m), _mm256_maskload_ps(y + i, m)));
    }
  }
  LK_AVX2 static inline void scal(float* y, float a, int64_t n) {
    const __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(av, _mm256_loadu_ps(y + i)));
    for (; i < n; ++i) y[i] *= a;
  }
  // p[n] = exp(p[n] − m) (p holds at least round_up(n, 8) floats); returns Σ p
  LK_AVX2 static inline float exp_tile(float* p, float m, int64_t n) {
    const __m256 mv = _mm256_set1_ps(m);
    __m256 s = _mm256_setzero_ps();
    for (int64_t i = n; i % 8; ++i) p[i] = -INFINITY;
    for (int64_t i = 0; i < n; i += 8) {
      const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(p + i), mv));
      _mm256_storeu_ps(p + i, e);
      s = _mm256_add_ps(s, e);
    }
    return hsum(s);
  }
  // row[j] = lo ≤ j < vis ? scale·row[j] + mask[j] : −∞ for j < round_up(n, 8) (row writable
  // that far, mask null or readable to n, 0 ≤ lo, vis ≤ n); returns the max over the row
  LK_AVX2 static inline float fix_row(float* row, int64_t n, float scale, const float* mask, int64_t lo, int64_t vis) {
    const __m256 sv = _mm256_set1_ps(scale), ninf = _mm256_set1_ps(-INFINITY);
    __m256 mx = ninf;
    for (int64_t j = 0; j < n; j += 8) {
      __m256 x = _mm256_mul_ps(sv, _mm256_loadu_ps(row + j));
      if (mask) x = _mm256_add_ps(x, j + 8 <= n ? _mm256_loadu_ps(mask + j) : _mm256_maskload_ps(mask + j, tail_mask(n - j)));
      const int64_t r = vis - j;
      if (r < 8) x = _mm256_blendv_ps(ninf, x, _mm256_castsi256_ps(tail_mask(r < 0 ? 0 : r)));
      const int64_t l = lo - j;  // lanes before lo lie outside the window
      if (l > 0) x = _mm256_blendv_ps(x, ninf, _mm256_castsi256_ps(tail_mask(l > 8 ? 8 : l)));
      _mm256_storeu_ps(row + j, x);
      mx = _mm256_max_ps(mx, x);
    }
    return hmax(mx);
  }
  // ds[j] = p[j]·(ds[j] − dt)·scale for j < round_up(n, 8) (both readable and ds writable that far)
  LK_AVX2 static inline void ds_row(float* ds, const float* p, float dt, float scale, int64_t n) {
    const __m256 dv = _mm256_set1_ps(dt), sv = _mm256_set1_ps(scale);
    for (int64_t j = 0; j < n; j += 8)
      _mm256_storeu_ps(ds + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(p + j), sv), _mm256_sub_ps(_mm256_loadu_ps(ds + j), dv)));
  }
  LK_AVX2 static inline float max(const float* p, int64_t n) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(p + i));
    float r = hmax(m);
    for (; i < n; ++i) r = p[i] > r ? p[i] : r;
    return r;
  }
  LK_AVX2 static inline float exp1(float x) {
    alignas(32) float b[8];
    _mm256_store_ps(b, exp256(_mm256_set1_ps(x)));
    return b[0];
  }
};

#endif  // LK_X86

// The same operations over the SIMD layer (simd.h: NEON, WebAssembly SIMD128, SSE2 or
// scalar), 4 lanes: the register tiles of scores4, pv4 and tp4 are 4 rows × 16 columns, as in
// Avx2Ops, in sixteen 4-lane vectors. Sums over D keep four lanes and add them at the end
// (hsum), so they round differently from a plain loop; the kernel tests allow for that.
struct PortableOps {
  using V = simd::V;
  static constexpr int W = simd::W;
  static inline float dot(const float* a, const float* b, int64_t n) {
    V s0 = simd::zero(), s1 = simd::zero();
    int64_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
      s0 = simd::fma(simd::load(a + i), simd::load(b + i), s0);
      s1 = simd::fma(simd::load(a + i + W), simd::load(b + i + W), s1);
    }
    for (; i + W <= n; i += W) s0 = simd::fma(simd::load(a + i), simd::load(b + i), s0);
    float s = simd::hsum(simd::add(s0, s1));
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
  }
  static inline void dot4(const float* const a[4], const float* b, int64_t n, float out[4]) {
    V s0 = simd::zero(), s1 = simd::zero(), s2 = simd::zero(), s3 = simd::zero();
    int64_t i = 0;
    for (; i + W <= n; i += W) {
      const V x = simd::load(b + i);
      s0 = simd::fma(simd::load(a[0] + i), x, s0);
      s1 = simd::fma(simd::load(a[1] + i), x, s1);
      s2 = simd::fma(simd::load(a[2] + i), x, s2);
      s3 = simd::fma(simd::load(a[3] + i), x, s3);
    }
    out[0] = simd::hsum(s0), out[1] = simd::hsum(s1), out[2] = simd::hsum(s2), out[3] = simd::hsum(s3);
    for (; i < n; ++i)
      for (int r = 0; r < 4; ++r) out[r] += a[r][i] * b[i];
  }
  // out[i·ld + j] for keys j < round_up(n, 16), keys packed by pack_keys_t (as Avx2Ops::scores4)
  static inline void scores4(float* out, int64_t ld, const float* const a[4], const float* xt, int64_t n, int64_t D) {
    for (int64_t c = 0; c < n; c += 16) {
      V acc[4][4];
      for (int r = 0; r < 4; ++r)
        for (int v = 0; v < 4; ++v) acc[r][v] = simd::zero();
      const float* x = xt + c * D;  // the panel of keys c .. c + 15
      for (int64_t d = 0; d < D; ++d, x += 16) {
        const V x0 = simd::load(x), x1 = simd::load(x + 4), x2 = simd::load(x + 8), x3 = simd::load(x + 12);
        for (int r = 0; r < 4; ++r) {
          const V b = simd::set1(a[r][d]);
          acc[r][0] = simd::fma(b, x0, acc[r][0]);
          acc[r][1] = simd::fma(b, x1, acc[r][1]);
          acc[r][2] = simd::fma(b, x2, acc[r][2]);
          acc[r][3] = simd::fma(b, x3, acc[r][3]);
        }
      }
      for (int r = 0; r < 4; ++r)
        for (int v = 0; v < 4; ++v) simd::store(out + r * ld + c + v * W, acc[r][v]);
    }
  }
  // acc[i][0, D) += Σ_{j<n} p[i·ld + j]·x[j·xs + (0, D)] for 4 rows (as Avx2Ops::pv4)
  static inline void pv4(float* const acc[4], const float* p, int64_t ld, const float* x, int64_t xs, int64_t n, int64_t D) {
    int64_t c = 0;
    for (; c + 16 <= D; c += 16) {
      V a[4][4];
      for (int r = 0; r < 4; ++r)
        for (int v = 0; v < 4; ++v) a[r][v] = simd::load(acc[r] + c + v * W);
      for (int64_t j = 0; j < n; ++j) {
        const float* xr = x + j * xs + c;
        const V x0 = simd::load(xr), x1 = simd::load(xr + 4), x2 = simd::load(xr + 8), x3 = simd::load(xr + 12);
        for (int r = 0; r < 4; ++r) {
          const V b = simd::set1(p[r * ld + j]);
          a[r][0] = simd::fma(b, x0, a[r][0]);
          a[r][1] = simd::fma(b, x1, a[r][1]);
          a[r][2] = simd::fma(b, x2, a[r][2]);
          a[r][3] = simd::fma(b, x3, a[r][3]);
        }
      }
      for (int r = 0; r < 4; ++r)
        for (int v = 0; v < 4; ++v) simd::store(acc[r] + c + v * W, a[r][v]);
    }
    for (; c + W <= D; c += W) {
      V a0 = simd::load(acc[0] + c), a1 = simd::load(acc[1] + c), a2 = simd::load(acc[2] + c), a3 = simd::load(acc[3] + c);
      for (int64_t j = 0; j < n; ++j) {
        const V x0 = simd::load(x + j * xs + c);
        a0 = simd::fma(simd::set1(p[j]), x0, a0);
        a1 = simd::fma(simd::set1(p[ld + j]), x0, a1);
        a2 = simd::fma(simd::set1(p[2 * ld + j]), x0, a2);
        a3 = simd::fma(simd::set1(p[3 * ld + j]), x0, a3);
      }
      simd::store(acc[0] + c, a0), simd::store(acc[1] + c, a1), simd::store(acc[2] + c, a2), simd::store(acc[3] + c, a3);
    }
    for (; c < D; ++c)
      for (int r = 0; r < 4; ++r)
        for (int64_t j = 0; j < n; ++j) acc[r][c] += p[r * ld + j] * x[j * xs + c];
  }
  // y[j·ys + (0, D)] += Σ_i a[i·ld + j]·x[i][(0, D)] for keys j < n, 4 rows x[i] (as Avx2Ops::tp4)
  static inline void tp4(float* y, int64_t ys, const float* a, int64_t ld, const float* const x[4], int64_t n, int64_t D) {
    int64_t c = 0;
    for (; c + 8 <= D; c += 8) {
      V xv[4][2];
      for (int r = 0; r < 4; ++r) xv[r][0] = simd::load(x[r] + c), xv[r][1] = simd::load(x[r] + c + 4);
      for (int64_t j = 0; j < n; ++j) {
        float* yr = y + j * ys + c;
        V y0 = simd::load(yr), y1 = simd::load(yr + 4);
        for (int r = 0; r < 4; ++r) {
          const V b = simd::set1(a[r * ld + j]);
          y0 = simd::fma(b, xv[r][0], y0);
          y1 = simd::fma(b, xv[r][1], y1);
        }
        simd::store(yr, y0), simd::store(yr + 4, y1);
      }
    }
    for (; c < D; ++c)
      for (int64_t j = 0; j < n; ++j) y[j * ys + c] += a[j] * x[0][c] + a[ld + j] * x[1][c] + a[2 * ld + j] * x[2][c] + a[3 * ld + j] * x[3][c];
  }
  static inline void acc_tn(float* y, int64_t ys, const float* a, int64_t ld, const float* x, int64_t xs, int64_t R, int64_t n, int64_t D) {
    int64_t i = 0;
    for (; i + 4 <= R; i += 4) {
      const float* const xr[4] = {x + i * xs, x + (i + 1) * xs, x + (i + 2) * xs, x + (i + 3) * xs};
      tp4(y, ys, a + i * ld, ld, xr, n, D);
    }
    for (; i < R; ++i)
      for (int64_t j = 0; j < n; ++j) axpy(y + j * ys, a[i * ld + j], x + i * xs, D);
  }
  static inline void transpose8(float* dst, int64_t ld, const float* const src[8], int64_t c) {
    for (int64_t j = 0; j < 8; ++j)
      for (int i = 0; i < 8; ++i) dst[j * ld + i] = src[i][c + j];
  }
  static inline void axpy(float* y, float a, const float* x, int64_t n) {
    const V av = simd::set1(a);
    int64_t i = 0;
    for (; i + W <= n; i += W) simd::store(y + i, simd::fma(av, simd::load(x + i), simd::load(y + i)));
    for (; i < n; ++i) y[i] += a * x[i];
  }
  static inline void scal(float* y, float a, int64_t n) {
    const V av = simd::set1(a);
    int64_t i = 0;
    for (; i + W <= n; i += W) simd::store(y + i, simd::mul(av, simd::load(y + i)));
    for (; i < n; ++i) y[i] *= a;
  }
  // p[n] = exp(p[n] − m) (p holds at least round_up(n, 8) floats); returns Σ p
  static inline float exp_tile(float* p, float m, int64_t n) {
    const V mv = simd::set1(m);
    V s = simd::zero();
    for (int64_t i = n; i % W; ++i) p[i] = -INFINITY;
    for (int64_t i = 0; i < n; i += W) {
      const V e = simd::exp(simd::sub(simd::load(p + i), mv));
      simd::store(p + i, e);
      s = simd::add(s, e);
    }
    return simd::hsum(s);
  }
  // row[j] = lo ≤ j < vis ? scale·row[j] + mask[j] : −∞ for j < round_up(n, 8) (as Avx2Ops::fix_row)
  static inline float fix_row(float* row, int64_t n, float scale, const float* mask, int64_t lo, int64_t vis) {
    const V sv = simd::set1(scale), ninf = simd::set1(-INFINITY);
    const V flo = simd::set1(static_cast<float>(lo)), fvis = simd::set1(static_cast<float>(vis));
    alignas(16) static const float kLane[4] = {0.f, 1.f, 2.f, 3.f};  // j + lane, compared as floats (n < 2^24)
    V mx = ninf;
    int64_t j = 0;
    for (; j + W <= n; j += W) {
      V x = simd::mul(sv, simd::load(row + j));
      if (mask) x = simd::add(x, simd::load(mask + j));
      const V idx = simd::add(simd::set1(static_cast<float>(j)), simd::load(kLane));
      x = simd::lt_select(idx, flo, ninf, simd::lt_select(idx, fvis, x, ninf));
      simd::store(row + j, x);
      mx = simd::max(mx, x);
    }
    float r = simd::hmax(mx);
    for (; j < n; ++j) {
      const float x = j >= lo && j < vis ? scale * row[j] + (mask ? mask[j] : 0.f) : -INFINITY;
      row[j] = x;
      r = x > r ? x : r;
    }
    for (int64_t k = n; k % 8; ++k) row[k] = -INFINITY;
    return r;
  }
  static inline void ds_row(float* ds, const float* p, float dt, float scale, int64_t n) {
    const V dv = simd::set1(dt), sv = simd::set1(scale);
    for (int64_t j = 0; j < n; j += W) simd::store(ds + j, simd::mul(simd::mul(simd::load(p + j), sv), simd::sub(simd::load(ds + j), dv)));
  }
  static inline float max(const float* p, int64_t n) {
    V m = simd::set1(-INFINITY);
    int64_t i = 0;
    for (; i + W <= n; i += W) m = simd::max(m, simd::load(p + i));
    float r = simd::hmax(m);
    for (; i < n; ++i) r = p[i] > r ? p[i] : r;
    return r;
  }
  static inline float exp1(float x) {
    alignas(16) float b[4];
    simd::store(b, simd::exp(simd::set1(x)));
    return b[0];
  }
};

// Query rows are processed kR at a time, so each key and value row loaded serves kR
// queries. A block's unused rows point at dummy rows and get p = 0.
constexpr int kR = 4;

// One block of up to kR query rows (same batch b, query head h): pointers and per-row data.
struct Rows {
  int n;                   // rows in use
  int64_t t[kR];           // query index
  int64_t seen[kR];        // keys visible to the row: lo ≤ s < seen
  int64_t lo[kR];
  const float* mask[kR];   // mask row or null
  int64_t smax;            // max over rows of seen
  int64_t smin;            // min over rows in use of lo (the first row's: lo grows with t)
};

inline Rows make_rows(const Dims& d, int64_t b, int64_t t0, int64_t t1) {
  Rows r;
  r.n = static_cast<int>(t1 - t0);
  r.smax = 0;
  for (int i = 0; i < kR; ++i) {
    const int64_t t = i < r.n ? t0 + i : t0;
    r.t[i] = t;
    r.seen[i] = i < r.n ? d.seen(t) : 0;
    r.lo[i] = d.lo(t);
    r.mask[i] = d.mask_row(b, t);
    r.smax = std::max(r.smax, r.seen[i]);
  }
  r.smin = d.lo(t0);
  return r;
}

// Keys [k0, k1) of kv head hk in batch b, packed in panels of 16 keys, each panel [D][16]:
// key s, element j at xt[((s − k0) / 16)·16·D + j·16 + (s − k0) % 16], so scores4 streams
// through a panel. The last panel's padding is left as is: scores4 reads it, nobody uses it.
// Eight keys at a time go through 8×8 transposes when D is a multiple of 8.
template <class O>
inline __attribute__((always_inline)) void pack_keys_t(float* xt, const Dims& d, const float* x, int64_t b, int64_t hk, int64_t k0, int64_t k1) {
  const int64_t kvs = d.Hkv * d.D, D = d.D;
  int64_t s = k0;
  if (D % 8 == 0) {
    for (; s + 8 <= k1; s += 8) {  // s − k0 is a multiple of 8: the keys fill half a panel
      const float* rows[8];
      for (int i = 0; i < 8; ++i) rows[i] = x + (b * d.S + s + i) * kvs + hk * D;
      float* panel = xt + ((s - k0) / 16) * 16 * D + (s - k0) % 16;
      for (int64_t j = 0; j < D; j += 8) O::transpose8(panel + j * 16, 16, rows, j);
    }
  }
  for (; s < k1; ++s) {
    const float* xs = x + (b * d.S + s) * kvs + hk * D;
    float* panel = xt + ((s - k0) / 16) * 16 * D + (s - k0) % 16;
    for (int64_t j = 0; j < D; ++j) panel[j * 16] = xs[j];
  }
}

// Rows [k0, k1) of kv head hk in batch b, copied contiguous (row s at xr + (s − k0)·D): a
// tile's rows then sit in distinct cache sets, where rows kvs apart would collide.
inline void pack_rows(float* xr, const Dims& d, const float* x, int64_t b, int64_t hk, int64_t k0, int64_t k1) {
  const int64_t kvs = d.Hkv * d.D, D = d.D;
  for (int64_t s = k0; s < k1; ++s) std::memcpy(xr + (s - k0) * D, x + (b * d.S + s) * kvs + hk * D, static_cast<size_t>(D) * sizeof(float));
}

// A lone query row (decoding) reads its head's key and value rows in place, Hkv·D floats
// apart (3 KiB for the bench's llama: a stride the hardware prefetcher does not follow well,
// and a KV cache of several MB comes from L3): it asks for the row kAhead keys ahead.
constexpr int64_t kAhead = 8;
inline void prefetch_row(const float* p, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i);
}

// n keys rounded up to whole panels: pack_keys_t's buffer holds D·packed_ld(n) floats.
inline int64_t packed_ld(int64_t n) { return (n + 15) / 16 * 16; }

// sc[i][s − s0] = scale·q_i·k_s + mask_i[s] (−∞ where row i may not see s) for keys s in
// [s0, s1) of kv head hk; sc rows are kTile + 8 apart. With kt (keys from kt0 packed by
// pack_keys_t; s0 − kt0 a multiple of 16) the dots come from scores4, else one key at a time. Row i's
// max goes to mx[i] when mx is not null.
template <class O>
inline __attribute__((always_inline)) void score_tile(float* sc, const Dims& d, const Rows& rw, const float* const qr[kR], const float* k,
                                                      const float* kt, int64_t kt0, int64_t b, int64_t hk, int64_t s0, int64_t s1, float* mx) {
  const int64_t kvs = d.Hkv * d.D;
  constexpr int64_t ld = kTile + 8;
  const int64_t n = s1 - s0;
  if (kt) {
    O::scores4(sc, ld, qr, kt + (s0 - kt0) * d.D, n, d.D);
    for (int i = 0; i < kR; ++i) {
      const int64_t vis = std::min(std::max<int64_t>(rw.seen[i] - s0, 0), n);
      const int64_t lo = std::min(std::max<int64_t>(rw.lo[i] - s0, 0), n);
      const float m = O::fix_row(sc + i * ld, n, d.scale, rw.mask[i] ? rw.mask[i] + s0 : nullptr, lo, vis);
      if (mx) mx[i] = m;
    }
    return;
  }
  for (int64_t s = s0; s < s1; ++s) {
    float dots[kR] = {0.f, 0.f, 0.f, 0.f};
    const float* ks = k + (b * d.S + s) * kvs + hk * d.D;
    prefetch_row(ks + kAhead * kvs, d.D);
    if (rw.n == 1) dots[0] = O::dot(qr[0], ks, d.D);  // a lone row (decoding): no wasted dots
    else O::dot4(qr, ks, d.D, dots);
    for (int i = 0; i < kR; ++i) {
      float x = -INFINITY;
      if (s < rw.seen[i] && s >= rw.lo[i]) {
        x = d.scale * dots[i];
        if (rw.mask[i]) x += rw.mask[i][s];
      }
      sc[i * ld + (s - s0)] = x;
    }
  }
  if (mx)
    for (int i = 0; i < kR; ++i) mx[i] = O::max(sc + i * ld, n);
}

// Forward for query rows [t0, t1) of head h in batch b: online softmax over key tiles.
// scratch: kR·(kTile + 8) + kR·D + 2·D·packed_ld(S) floats.
template <class O>
inline __attribute__((always_inline)) void forward_rows(const Dims& d, float* out, float* lse, const float* q, const float* k, const float* v,
                                                        int64_t b, int64_t h, int64_t t0, int64_t t1, float* scratch) {
  const int64_t D = d.D, hk = h / d.group(), qs = d.Hq * D, kvs = d.Hkv * D;
  constexpr int64_t ld = kTile + 8;
  float* sc = scratch;
  float* acc = scratch + kR * ld;
  // the keys and values these rows see, packed once when enough rows share them
  float* kt = nullptr;
  const float* vrows = v + b * d.S * kvs + hk * D;  // value rows from key kt0, vstride apart
  int64_t vstride = kvs;
  const int64_t kmax = d.seen(t1 - 1);
  // the first key these rows see (a sliding window hides the earlier ones), down to a whole
  // panel: packed tiles then start a multiple of 16 keys from kt0
  int64_t kt0 = 0;
  if (t1 - t0 >= 2 * kR) {
    kt0 = std::min(d.lo(t0), kmax) / 16 * 16;
    kt = acc + kR * D;
    pack_keys_t<O>(kt, d, k, b, hk, kt0, kmax);
    float* vp = kt + D * packed_ld(d.S);
    pack_rows(vp, d, v, b, hk, kt0, kmax);
    vrows = vp;
    vstride = D;
  }
  for (int64_t tb = t0; tb < t1; tb += kR) {
    const Rows rw = make_rows(d, b, tb, std::min<int64_t>(tb + kR, t1));
    const float* qr[kR];
    float* ar[kR];
    float m[kR];
    double l[kR];
    for (int i = 0; i < kR; ++i) {
      qr[i] = q + (b * d.T + rw.t[i]) * qs + h * D;
      ar[i] = acc + i * D;
      m[i] = -INFINITY;
      l[i] = 0;
    }
    std::fill(acc, acc + kR * D, 0.f);
    // tiles from the first key any row sees (kt0 plus whole panels when packed)
    const int64_t sfirst = kt ? kt0 + (std::max(rw.smin, kt0) - kt0) / 16 * 16 : rw.smin;
    for (int64_t s0 = sfirst; s0 < rw.smax; s0 += kTile) {
      const int64_t s1 = std::min(s0 + kTile, rw.smax), n = s1 - s0;
      float mts[kR];
      score_tile<O>(sc, d, rw, qr, k, kt, kt0, b, hk, s0, s1, mts);
      bool any = false;
      for (int i = 0; i < kR; ++i) {
        float* row = sc + i * ld;
        const float mt = mts[i];
        if (mt == -INFINITY) {  // this row sees no key of the tile
          std::fill(row, row + n, 0.f);
          continue;
        }
        any = true;
        if (mt > m[i]) {
          if (m[i] != -INFINITY) {
            const float alpha = O::exp1(m[i] - mt);
            O::scal(ar[i], alpha, D);
            l[i] *= alpha;
          }
          m[i] = mt;
        }
        l[i] += O::exp_tile(row, m[i], n);
      }
      if (!any) continue;
      const float* vt = vrows + (s0 - kt0) * vstride;  // value rows of the tile
      if (rw.n > 1) {
        O::pv4(ar, sc, ld, vt, vstride, n, D);
      } else {  // a lone row (decoding)
        for (int64_t j = 0; j < n; ++j) {
          prefetch_row(vt + (j + kAhead) * vstride, D);
          if (sc[j] != 0.f) O::axpy(ar[0], sc[j], vt + j * vstride, D);
        }
      }
    }
    for (int i = 0; i < rw.n; ++i) {
      float* orow = out + (b * d.T + rw.t[i]) * qs + h * D;
      float* L = lse + (b * d.Hq + h) * d.T + rw.t[i];
      if (l[i] == 0) {  // every key hidden
        std::fill(orow, orow + D, 0.f);
        *L = -INFINITY;
        continue;
      }
      const float inv = static_cast<float>(1.0 / l[i]);
      for (int64_t j = 0; j < D; ++j) orow[j] = ar[i][j] * inv;
      *L = static_cast<float>(static_cast<double>(m[i]) + std::log(l[i]));
    }
  }
}

// Query rows per backward block: a key tile's dk, dv take one rank-kBr update per block.
constexpr int kBr = 16;
constexpr int kSub = kBr / kR;  // blocks of kR rows per backward block

// Backward over query rows [t0, t1) of head h and keys [k0, k1) of batch b, in blocks of kBr
// rows: dkl, dvl += … when want_kv (the caller's contiguous rows of keys k0 .. k1 − 1, D
// apart), dq = … (written) when want_q. For each key tile, p = exp(score − lse)
// and ds are computed for the block's rows kR at a time, then dv += pᵀ·dout and dk += dsᵀ·q
// run as one product over the block's rows (acc_tn), and dq += ds·k kR rows at a time.
// The block's q and dout rows are copied contiguous first (a hidden row's dout as zeros), so
// the products read rows in distinct cache sets, where rows Hq·D apart would collide.
// scratch: 2·kBr·(kTile + 8) + 3·kBr·D + D + 3·D·packed_ld(S) floats.
template <class O>
inline __attribute__((always_inline)) void backward_block(const Dims& d, float* dq, float* dkl, float* dvl, const float* dout, const float* q,
                                                          const float* k, const float* v, const float* out, const float* lse,
                                                          int64_t b, int64_t h, int64_t t0, int64_t t1, int64_t k0, int64_t k1,
                                                          bool want_q, bool want_kv, float* scratch) {
  const int64_t D = d.D, qs = d.Hq * D, hk = h / d.group();
  constexpr int64_t ld = kTile + 8;
  float* P = scratch;          // p of the tile, kBr rows
  float* dS = P + kBr * ld;    // ds of the tile, kBr rows
  float* dqa = dS + kBr * ld;  // dq of the block, kBr rows of D
  float* qloc = dqa + kBr * D;   // the block's q rows, contiguous
  float* dloc = qloc + kBr * D;  // and its dout rows
  float* zero = dloc + kBr * D;  // a row of zeros standing in for unused rows' dout
  std::fill(zero, zero + D, 0.f);
  // keys and values of [kb0, kend0) packed transposed, for the score and dout·v dots: the
  // keys of [k0, k1) the rows see, from a whole panel after k0 (a sliding window hides earlier ones)
  const int64_t kend0 = t1 > t0 ? std::min(k1, d.seen(t1 - 1)) : k0;
  const int64_t kb0 = kend0 > k0 ? k0 + (std::min(std::max(k0, d.lo(t0)), kend0) - k0) / 16 * 16 : k0;
  const int64_t ldk = packed_ld(kend0 - kb0);
  float* kt = zero + D;
  float* vt = kt + D * ldk;
  float* kp = vt + D * ldk;  // the keys again as rows, for dq += ds·k
  if (kend0 > kb0) {
    pack_keys_t<O>(kt, d, k, b, hk, kb0, kend0);
    pack_keys_t<O>(vt, d, v, b, hk, kb0, kend0);
    if (want_q) pack_rows(kp, d, k, b, hk, kb0, kend0);
  }
  for (int64_t tb = t0; tb < t1; tb += kBr) {
    const int64_t te = std::min<int64_t>(tb + kBr, t1), rows = te - tb;
    const int nsub = static_cast<int>((rows + kR - 1) / kR);
    Rows rw[kSub];
    const float* qr[kSub][kR];
    const float* dor[kSub][kR];
    float* dqr[kSub][kR];
    float L[kSub][kR], Dt[kSub][kR];
    bool live[kSub];
    bool any = false;
    int64_t smax = 0;
    for (int u = 0; u < nsub; ++u) {
      rw[u] = make_rows(d, b, tb + u * kR, std::min<int64_t>(tb + (u + 1) * kR, te));
      live[u] = false;
      for (int i = 0; i < kR; ++i) {
        const int64_t qo = (b * d.T + rw[u].t[i]) * qs + h * D, r = u * kR + i;
        const bool used = i < rw[u].n;
        L[u][i] = used ? lse[(b * d.Hq + h) * d.T + rw[u].t[i]] : -INFINITY;
        const bool on = L[u][i] != -INFINITY;  // a fully hidden row had a constant output
        live[u] |= on;
        if (used) {
          std::copy_n(q + qo, D, qloc + r * D);
          if (on) std::copy_n(dout + qo, D, dloc + r * D);
          else std::fill_n(dloc + r * D, D, 0.f);
        }
        qr[u][i] = used ? qloc + r * D : qloc + u * kR * D;
        dor[u][i] = used ? dloc + r * D : zero;
        dqr[u][i] = dqa + r * D;
        Dt[u][i] = on ? O::dot(dout + qo, out + qo, D) : 0.f;
      }
      if (live[u]) smax = std::max(smax, rw[u].smax);
      any |= live[u];
    }
    if (!any) {  // every row hidden: their dq is 0
      if (want_q)
        for (int64_t t = tb; t < te; ++t) std::fill_n(dq + (b * d.T + t) * qs + h * D, D, 0.f);
      continue;
    }
    if (want_q) std::fill(dqa, dqa + kBr * D, 0.f);
    const int64_t kend = std::min(k1, smax);
    const int64_t sfirst = kb0 + (std::max(kb0, std::min(d.lo(tb), kend)) - kb0) / 16 * 16;
    for (int64_t s0 = sfirst; s0 < kend; s0 += kTile) {
      const int64_t s1 = std::min(s0 + kTile, kend), n = s1 - s0;
      for (int u = 0; u < kSub; ++u) {
        float* pu = P + u * kR * ld;
        float* du = dS + u * kR * ld;
        if (u >= nsub || !live[u] || rw[u].smax <= s0 || rw[u].smin >= s1) {  // sees no key of the tile
          for (int i = 0; i < kR; ++i) {
            std::fill(pu + i * ld, pu + i * ld + n, 0.f);
            std::fill(du + i * ld, du + i * ld + n, 0.f);
          }
          continue;
        }
        score_tile<O>(pu, d, rw[u], qr[u], k, kt, kb0, b, hk, s0, s1, nullptr);
        for (int i = 0; i < kR; ++i) {
          float* row = pu + i * ld;
          if (L[u][i] == -INFINITY) std::fill(row, row + n, 0.f);
          else O::exp_tile(row, L[u][i], n);  // p = exp(score − lse)
        }
        // ds = p·(dout·v_s − Dt)·scale
        O::scores4(du, ld, dor[u], vt + (s0 - kb0) * D, n, D);
        for (int i = 0; i < kR; ++i) O::ds_row(du + i * ld, pu + i * ld, Dt[u][i], d.scale, n);
      }
      if (want_kv) {
        const int64_t kr = (s0 - k0) * D;  // the tile's rows of dkl, dvl
        O::acc_tn(dvl + kr, D, P, ld, dloc, D, rows, n, D);  // dv_s += Σ_i p_i,s·dout_i
        O::acc_tn(dkl + kr, D, dS, ld, qloc, D, rows, n, D);  // dk_s += Σ_i ds_i,s·q_i
      }
      if (want_q)
        for (int u = 0; u < nsub; ++u)
          if (live[u] && rw[u].smax > s0 && rw[u].smin < s1) O::pv4(dqr[u], dS + u * kR * ld, ld, kp + (s0 - kb0) * D, D, n, D);  // dq_i += Σ_s ds_i,s·k_s
    }
    if (!want_q) continue;
    for (int u = 0; u < nsub; ++u)
      for (int i = 0; i < rw[u].n; ++i) {
        std::copy_n(dqr[u][i], D, dq + (b * d.T + rw[u].t[i]) * qs + h * D);
      }
  }
}

#if LK_X86
LK_AVX2 void forward_rows_avx2(const Dims& d, float* out, float* lse, const float* q, const float* k, const float* v, int64_t b, int64_t h, int64_t t0, int64_t t1, float* scratch) {
  forward_rows<Avx2Ops>(d, out, lse, q, k, v, b, h, t0, t1, scratch);
}
#endif
void forward_rows_portable(const Dims& d, float* out, float* lse, const float* q, const float* k, const float* v, int64_t b, int64_t h, int64_t t0, int64_t t1, float* scratch) {
  forward_rows<PortableOps>(d, out, lse, q, k, v, b, h, t0, t1, scratch);
}
#if LK_X86
LK_AVX2 void backward_block_avx2(const Dims& d, float* dq, float* dkl, float* dvl, const float* dout, const float* q, const float* k, const float* v, const float* out, const float* lse,
                                 int64_t b, int64_t h, int64_t t0, int64_t t1, int64_t k0, int64_t k1, bool want_q, bool want_kv, float* scratch) {
  backward_block<Avx2Ops>(d, dq, dkl, dvl, dout, q, k, v, out, lse, b, h, t0, t1, k0, k1, want_q, want_kv, scratch);
}
#endif
void backward_block_portable(const Dims& d, float* dq, float* dkl, float* dvl, const float* dout, const float* q, const float* k, const float* v, const float* out, const float* lse,
                             int64_t b, int64_t h, int64_t t0, int64_t t1, int64_t k0, int64_t k1, bool want_q, bool want_kv, float* scratch) {
  backward_block<PortableOps>(d, dq, dkl, dvl, dout, q, k, v, out, lse, b, h, t0, t1, k0, k1, want_q, want_kv, scratch);
}

// The tasks' scratch, kept between calls (it only grows), so a training step that calls
// attention every layer allocates nothing here once the shapes are settled. Every task
// writes what it reads of its share, so the old contents do not matter.
// It starts on a 64-byte cache line (the packed key panels are rows of 16 floats: one line
// each when aligned, two when not); callers keep each thread's share a multiple of 16 floats.
float* task_scratch(size_t floats) {
  static thread_local std::vector<float> buf;
  if (buf.size() < floats + 16) buf.resize(floats + 16);
  const uintptr_t p = reinterpret_cast<uintptr_t>(buf.data());
  return reinterpret_cast<float*>((p + 63) & ~static_cast<uintptr_t>(63));
}

// A thread's share of the scratch, in floats: need rounded up to whole cache lines.
inline int64_t share(int64_t need) { return (need + 15) / 16 * 16; }

// out[B,T,Hq·D], lse[B,Hq,T] from q[B,T,Hq·D], k,v[B,S,Hkv·D]; tasks: (b, h, block of queries)
napi_value AttentionForward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *out, *lse, *q, *k, *v; size_t n0, n1, n2, n3, n4;
  Dims d;
  if (!get_f32(a, 0, out, n0, "attentionForward", "out") || !get_f32(a, 1, lse, n1, "attentionForward", "lse") ||
      !get_f32(a, 2, q, n2, "attentionForward", "q") || !get_f32(a, 3, k, n3, "attentionForward", "k") ||
      !get_f32(a, 4, v, n4, "attentionForward", "v") || !get_dims(a, 5, d, "attentionForward"))
    return nullptr;
  // as many query rows per task as still gives each thread four tasks: the rows of a task
  // share one packing of their keys
  const int64_t pairs = d.B * d.Hq, want = 4 * num_threads();
  const int64_t chunks = std::min((d.T + kQBlock - 1) / kQBlock, (want + pairs - 1) / pairs);
  const int64_t rows = ((d.T + chunks - 1) / chunks + kR - 1) / kR * kR;
  const int64_t nqb = (d.T + rows - 1) / rows;
  const int64_t per = share(kR * (kTile + 8) + kR * d.D + 2 * d.D * packed_ld(d.S));
  float* scratch = task_scratch(static_cast<size_t>(num_threads() * per));
  run_tasks(pairs * nqb, [&](int task, int thread) {
    const int64_t qb = task % nqb, bh = task / nqb, h = bh % d.Hq, b = bh / d.Hq;
    const int64_t t0 = qb * rows, t1 = std::min(t0 + rows, d.T);
    float* s = scratch + thread * per;
#if LK_X86
    if (avx2()) forward_rows_avx2(d, out, lse, q, k, v, b, h, t0, t1, s);
    else
#endif
      forward_rows_portable(d, out, lse, q, k, v, b, h, t0, t1, s);
  });
  return undefined(env);
}

// dq[B,T,Hq·D], dk,dv[B,S,Hkv·D] = … (written) from dout[B,T,Hq·D], q, k, v, out, lse[B,Hq,T].
// A task sums the dk, dv rows it owns in contiguous zeroed rows of its scratch (rows Hkv·D
// apart would collide in the cache) and writes them out at its end; each dq row is written
// once. So no caller has to clear the outputs in a pass of its own.
napi_value AttentionBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *dq, *dk, *dv, *dout, *q, *k, *v, *out, *lse; size_t n[9];
  Dims d;
  if (!get_f32(a, 0, dq, n[0], "attentionBackward", "dq") || !get_f32(a, 1, dk, n[1], "attentionBackward", "dk") ||
      !get_f32(a, 2, dv, n[2], "attentionBackward", "dv") || !get_f32(a, 3, dout, n[3], "attentionBackward", "dout") ||
      !get_f32(a, 4, q, n[4], "attentionBackward", "q") || !get_f32(a, 5, k, n[5], "attentionBackward", "k") ||
      !get_f32(a, 6, v, n[6], "attentionBackward", "v") || !get_f32(a, 7, out, n[7], "attentionBackward", "out") ||
      !get_f32(a, 8, lse, n[8], "attentionBackward", "lse") || !get_dims(a, 9, d, "attentionBackward"))
    return nullptr;
  // a thread's share: its dk, dv sums (S rows of D each), then backward_block's scratch
  const int64_t sums = share(2 * d.S * d.D);
  const int64_t per = sums + share(2 * kBr * (kTile + 8) + 3 * kBr * d.D + d.D + 3 * d.D * packed_ld(d.S));
  float* scratch = task_scratch(static_cast<size_t>(num_threads() * per));
  const int64_t groups = d.B * d.Hkv, nt = num_threads(), G = d.group(), kvs = d.Hkv * d.D;
  // query heads [h0, h1) of batch b (one kv head's), rows [t0, t1), keys [k0, k1): dk, dv of
  // those keys when want_kv, dq of those rows when want_q
  auto work = [&](int64_t b, int64_t h0, int64_t h1, int64_t t0, int64_t t1, int64_t k0, int64_t k1, bool want_q, bool want_kv, int thread) {
    const int64_t hk = h0 / G;
    float* dkl = scratch + thread * per;
    float* dvl = dkl + d.S * d.D;
    float* s = dkl + sums;
    const int64_t nk = want_kv ? k1 - k0 : 0;
    std::fill_n(dkl, nk * d.D, 0.f);
    std::fill_n(dvl, nk * d.D, 0.f);
    for (int64_t h = h0; h < h1; ++h) {
#if LK_X86
      if (avx2()) backward_block_avx2(d, dq, dkl, dvl, dout, q, k, v, out, lse, b, h, t0, t1, k0, k1, want_q, want_kv, s);
      else
#endif
        backward_block_portable(d, dq, dkl, dvl, dout, q, k, v, out, lse, b, h, t0, t1, k0, k1, want_q, want_kv, s);
    }
    for (int64_t r = 0; r < nk; ++r) {
      std::copy_n(dkl + r * d.D, d.D, dk + (b * d.S + k0 + r) * kvs + hk * d.D);
      std::copy_n(dvl + r * d.D, d.D, dv + (b * d.S + k0 + r) * kvs + hk * d.D);
    }
  };
  if (nt == 1 || groups % nt == 0 || groups >= 4 * nt) {
    // fused: one task per (b, kv head) owns its dk, dv rows and its query heads' dq rows
    run_tasks(groups, [&](int task, int thread) {
      const int64_t hk = task % d.Hkv, b = task / d.Hkv;
      work(b, hk * G, (hk + 1) * G, 0, d.T, 0, d.S, true, true, thread);
    });
  } else {
    // too few (b, kv head) pairs to share out evenly: dk, dv by (b, kv head, key tile), then
    // dq by (b, head, query block); scores are recomputed in both passes
    const int64_t nkb = (d.S + kTile - 1) / kTile;
    run_tasks(groups * nkb, [&](int task, int thread) {
      const int64_t kb = task % nkb, g = task / nkb, hk = g % d.Hkv, b = g / d.Hkv;
      const int64_t k0 = kb * kTile, k1 = std::min(k0 + kTile, d.S);
      // causal: only queries t with t + S − T ≥ k0 see this tile; a window: only those with
      // lo(t) < k1, t + S − T − window + 1 < k1
      const int64_t tmin = d.causal ? std::max<int64_t>(0, k0 - (d.S - d.T)) : 0;
      const int64_t tend = d.window > 0 ? std::min<int64_t>(d.T, k1 - 1 + d.window - (d.S - d.T)) : d.T;
      work(b, hk * G, (hk + 1) * G, tmin, std::max(tmin, tend), k0, k1, false, true, thread);
    });
    const int64_t nqb = (d.T + kQBlock - 1) / kQBlock;
    run_tasks(d.B * d.Hq * nqb, [&](int task, int thread) {
      const int64_t qb = task % nqb, bh = task / nqb, h = bh % d.Hq, b = bh / d.Hq;
      const int64_t t0 = qb * kQBlock, t1 = std::min(t0 + kQBlock, d.T);
      work(b, h, h + 1, t0, t1, 0, d.S, true, false, thread);
    });
  }
  return undefined(env);
}

}  // namespace

void RegisterAttention(napi_env env, napi_value exports) {
  export_fn(env, exports, "attentionForward", AttentionForward);
  export_fn(env, exports, "attentionBackward", AttentionBackward);
}

}  // namespace lk
