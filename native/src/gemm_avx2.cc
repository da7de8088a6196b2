// AVX2 + FMA (+ F16C) GEMM kernels: the 6×16 micro-kernel on packed panels, the
// unpacked-A ("direct") kernels for small and thin products, and vector packers that
// widen f16/bf16 to f32 while packing. Only the code between the target pragmas below is
// compiled for AVX2; the driver (gemm.cc) calls it only when the CPU has AVX2+FMA+F16C,
// so the addon still loads and runs on older CPUs. Everything inside the region has
// internal linkage and uses no standard-library templates, so no AVX2 instantiation of a
// shared inline function can leak into the rest of the addon.
//
// Letters and packed layouts: see gemm.h.
#if defined(__x86_64__) || defined(__i386__)  // the whole file: x86 only
#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "gemm.h"

namespace lk {
namespace gemm {
namespace {
thread_local AlignedBuf t_edge;  // direct path: packed edge rows of a transposed A
}  // namespace
}  // namespace gemm
}  // namespace lk

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace lk {
namespace gemm {
namespace {

constexpr int MR = 6;   // packed micro-tile rows
constexpr int NR = 16;  // packed micro-tile columns (two ymm)

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

// A mode of the micro-kernels:
//   A_COLS: element (i, k) at a[k·as + i]  (packed panels: as = MR; f32 A stored [K,M]: as = lda)
//   A_ROWS: element (i, k) at a[i·as + k]  (f32 A stored [M,K]: as = lda)
enum AMode { A_COLS = 0, A_ROWS = 1 };

inline __m256 tail_mask_ps(int n) {  // lanes [0, n) set, n in [0, 8]
  return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
}

// C[0:mr, 0:nr] = (beta ? C : 0) + alpha · acc, for a tile of R rows × NV·8 columns.
template <int R, int NV>
inline __attribute__((always_inline)) void store_tile(__m256 (&acc)[R][NV], float* c, int64_t ldc, int mr, int nr,
                                                      float alpha, bool beta) {
  const __m256 va = _mm256_set1_ps(alpha);
  if (mr == R && nr == NV * 8) {
    if (beta) {
#pragma GCC unroll 16
      for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v)
          _mm256_storeu_ps(c + i * ldc + v * 8, _mm256_fmadd_ps(acc[i][v], va, _mm256_loadu_ps(c + i * ldc + v * 8)));
    } else {
#pragma GCC unroll 16
      for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) _mm256_storeu_ps(c + i * ldc + v * 8, _mm256_mul_ps(acc[i][v], va));
    }
    return;
  }
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    if (i >= mr) break;
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      const int rem = nr - v * 8;
      if (rem <= 0) break;
      float* cp = c + i * ldc + v * 8;
      __m256 r = _mm256_mul_ps(acc[i][v], va);
      if (rem >= 8) {
        if (beta) r = _mm256_add_ps(r, _mm256_loadu_ps(cp));
        _mm256_storeu_ps(cp, r);
      } else {
        const __m256i m = _mm256_castps_si256(tail_mask_ps(rem));
        if (beta) r = _mm256_add_ps(r, _mm256_maskload_ps(cp, m));
        _mm256_maskstore_ps(cp, m, r);
      }
    }
  }
}

// The micro-kernel: an R × (NV·8) tile of C over kc steps of k.
//   a: see AMode (for A_ROWS only rows < mr are read);  b: element (k, j) at b[k·bs + j],
//   j < NV·8 all readable (packed panel: bs = NR; f32 B stored [K,N]: bs = ldb).
template <int R, int NV, int AM>
void kernel(int64_t kc, const float* __restrict a, int64_t as, const float* __restrict b, int64_t bs,
            float* __restrict c, int64_t ldc, int mr, int nr, float alpha, bool beta) {
  __m256 acc[R][NV];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();
  // the C tile is read or written only at the end: start fetching it now
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    if (i < mr) {
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NV * 8 - 1), _MM_HINT_T0);
    }
  }
  if (AM == A_COLS) {
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; ++k) {
      __m256 bv[NV];
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) bv[v] = _mm256_loadu_ps(b + v * 8);
#pragma GCC unroll 16
      for (int i = 0; i < R; ++i) {
        const __m256 ai = _mm256_broadcast_ss(a + i);
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
      }
      a += as;
      b += bs;
    }
  } else {
    const float* row[R];
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) row[i] = a + (i < mr ? i : 0) * as;  // rows past mr: computed, not stored
    for (int64_t k = 0; k < kc; ++k) {
      __m256 bv[NV];
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) bv[v] = _mm256_loadu_ps(b + v * 8);
#pragma GCC unroll 16
      for (int i = 0; i < R; ++i) {
        const __m256 ai = _mm256_broadcast_ss(row[i] + k);
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
      }
      b += bs;
    }
  }
  store_tile<R, NV>(acc, c, ldc, mr, nr, alpha, beta);
}

void micro_6x16(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int mr, int nr, float alpha,
                bool beta) {
  kernel<MR, 2, A_COLS>(kc, a, MR, b, NR, c, ldc, mr, nr, alpha, beta);
}

// 8 consecutive stored elements of dtype dt at p (element offset), widened to f32.
inline __m256 load8(const void* p, int dt, int64_t off) {
  if (dt == 0) return _mm256_loadu_ps(static_cast<const float*>(p) + off);
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + off));
  if (dt == 2) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  return _mm256_cvtph_ps(h);
}

// In-place transpose of 8 rows of 8 floats.
inline void transpose8(__m256 (&r)[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// Packs op(A)[i0:i0+mc, k0:k0+kc] into panels [kc][P] (layout in gemm.h; P = MR for the
// AVX2 micro-kernel, 12 for the AVX-512 one). The buffer must have 4 floats of slack past
// its last panel (the 8-wide stores of an A stored [M,K] overlap).
template <int P>
void pack_a_p(float* dst, const Operand& A, int64_t i0, int64_t mc, int64_t k0, int64_t kc) {
  static_assert(P == 6 || P == 12, "pack_a_p: panels of 6 or 12 rows");
  if (A.trans) {
    // stored [K,M]: row k holds the block's mc values side by side, so k runs outside and
    // each row is read once, in order, into the panels (a panel at a time read kc rows lda
    // apart per panel: a new page every k, which made the LoRA gradient s·GLᵀ·h 10× slower
    // than the big products, issue 18)
    for (int64_t k = 0; k < kc; ++k) {
      const int64_t base = (k0 + k) * A.ld + i0;
      float* d = dst + k * P;
      for (int64_t ip = 0; ip < mc; ip += P, d += kc * P) {
        const int mr = static_cast<int>(imin(P, mc - ip));
        if (A.dt == 0 && mr == P) {
          const float* src = static_cast<const float*>(A.p) + base + ip;
          if (P == 12) {
            _mm256_storeu_ps(d, _mm256_loadu_ps(src));
            _mm_storeu_ps(d + 8, _mm_loadu_ps(src + 8));
          } else {
            _mm_storeu_ps(d, _mm_loadu_ps(src));
            d[4] = src[4];
            d[5] = src[5];
          }
          continue;
        }
        for (int i = 0; i < mr; ++i) d[i] = load_elem(A.p, A.dt, base + ip + i);
        for (int i = mr; i < P; ++i) d[i] = 0.f;
      }
    }
    return;
  }
  for (int64_t ip = 0; ip < mc; ip += P, dst += kc * P) {
    const int mr = static_cast<int>(imin(P, mc - ip));
    // stored [M,K]: load 8 k's of each of 8 rows, transpose, store 8 rows of 8 (a group of
    // rows at a time; P = 12: rows 8..11 first, whose stores spill 4 zeros into the next k,
    // then rows 0..7 over them)
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
      for (int g = (P - 1) / 8; g >= 0; --g) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) {
          const int row = g * 8 + i;
          r[i] = row < mr ? load8(A.p, A.dt, (i0 + ip + row) * A.ld + k0 + k) : _mm256_setzero_ps();
        }
        transpose8(r);
        for (int t = 0; t < 8; ++t) _mm256_storeu_ps(dst + (k + t) * P + g * 8, r[t]);  // spills into the next k
      }
    }
    for (; k < kc; ++k) {
      float* d = dst + k * P;
      for (int i = 0; i < P; ++i) d[i] = i < mr ? load_elem(A.p, A.dt, (i0 + ip + i) * A.ld + k0 + k) : 0.f;
    }
  }
}

void pack_a_avx2(float* dst, const Operand& A, int64_t i0, int64_t mc, int64_t k0, int64_t kc) {
  pack_a_p<MR>(dst, A, i0, mc, k0, kc);
}

// Full panels of B stored [K,N] (not transposed), dtype DT: op(B)[k0:k0+kc, j0:j0+np·W]
// into np panels [kc][W]. Eight rows of k at a time across all the panels, so B is read
// as eight streams in address order and each panel receives 8·W contiguous floats. (A
// panel at a time reads kc rows ld apart, a new page every row or two: on Zen 3 that
// packed a 3072×768 or 768×3072 B 2.5–4× slower, ~5% of the multiply at M = 512.)
template <int W, int DT>
void pack_b_rows(float* __restrict dst, const void* p, int64_t ld, int64_t k0, int64_t kc, int64_t j0, int64_t np) {
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    float* d = dst + k * W;
    const int64_t base = (k0 + k) * ld + j0;
    for (int64_t q = 0; q < np; ++q, d += kc * W) {
#pragma GCC unroll 8
      for (int t = 0; t < 8; ++t)
#pragma GCC unroll 2
        for (int v = 0; v < W / 8; ++v) _mm256_storeu_ps(d + t * W + v * 8, load8(p, DT, base + t * ld + q * W + v * 8));
    }
  }
  for (; k < kc; ++k) {
    float* d = dst + k * W;
    const int64_t base = (k0 + k) * ld + j0;
    for (int64_t q = 0; q < np; ++q, d += kc * W)
#pragma GCC unroll 2
      for (int v = 0; v < W / 8; ++v) _mm256_storeu_ps(d + v * 8, load8(p, DT, base + q * W + v * 8));
  }
}

// Packs op(B)[k0:k0+kc, j0:j0+nc] into panels [kc][W] (W = 8 or 16).
template <int W>
void pack_b_w(float* dst, const Operand& B, int64_t k0, int64_t kc, int64_t j0, int64_t nc) {
  int64_t jp = 0;
  if (!B.trans) {  // the full panels, rows of k at a time (see pack_b_rows)
    const int64_t np = nc / W;
    if (B.dt == 0) pack_b_rows<W, 0>(dst, B.p, B.ld, k0, kc, j0, np);
    else if (B.dt == 2) pack_b_rows<W, 2>(dst, B.p, B.ld, k0, kc, j0, np);
    else pack_b_rows<W, 1>(dst, B.p, B.ld, k0, kc, j0, np);
    jp = np * W;
    dst += np * kc * W;
  }
  for (; jp < nc; jp += W, dst += kc * W) {
    const int nr = static_cast<int>(imin(W, nc - jp));
    const int64_t j = j0 + jp;
    if (!B.trans) {
      // the last, partial panel: row k of the panel is nr adjacent values, zero-padded
      for (int64_t k = 0; k < kc; ++k)
        for (int jj = 0; jj < W; ++jj) dst[k * W + jj] = jj < nr ? load_elem(B.p, B.dt, (k0 + k) * B.ld + j + jj) : 0.f;
      continue;
    }
    // stored [N,K]: load 8 k's of each of the W columns, transpose in 8×8 blocks
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
      for (int v = 0; v < W / 8; ++v) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) {
          const int jj = v * 8 + i;
          r[i] = jj < nr ? load8(B.p, B.dt, (j + jj) * B.ld + k0 + k) : _mm256_setzero_ps();
        }
        transpose8(r);
        for (int t = 0; t < 8; ++t) _mm256_storeu_ps(dst + (k + t) * W + v * 8, r[t]);
      }
    }
    for (; k < kc; ++k)
      for (int jj = 0; jj < W; ++jj) dst[k * W + jj] = jj < nr ? load_elem(B.p, B.dt, (j + jj) * B.ld + k0 + k) : 0.f;
  }
}

void pack_b_avx2(float* dst, const Operand& B, int64_t k0, int64_t kc, int64_t j0, int64_t nc) {
  pack_b_w<NR>(dst, B, k0, kc, j0, nc);
}

// The AVX-512 micro-kernel's panels (12 rows of A, 32 columns of B), packed by the AVX2
// code above: packing is not where the time goes, and one packer per layout keeps the
// dtypes in one place.
void pack_a_12(float* dst, const Operand& A, int64_t i0, int64_t mc, int64_t k0, int64_t kc) {
  pack_a_p<12>(dst, A, i0, mc, k0, kc);
}
void pack_b_32(float* dst, const Operand& B, int64_t k0, int64_t kc, int64_t j0, int64_t nc) {
  pack_b_w<32>(dst, B, k0, kc, j0, nc);
}

// The direct path (see gemm.h): C[i0:i1, j0:j1] over the whole K, A f32 as stored.
// Column panels of 16 use the 6×16 kernel; a last panel of at most 8 columns uses 8×8.
// B: in place (bpacked == nullptr: f32 [K,N], every panel of this call 16 wide or a last
// one exactly 8 wide) or packed in panels [K][16] numbered from column 0.
// Loop order: when this call's B (K × (j1 − j0) floats) fits in L2, row blocks outside and
// column panels inside, so C is written row block by row block and A is read once;
// otherwise column panels outside, so each B panel stays in cache over all rows.
// A transposed f32 A is read in place, R adjacent values per k; the last rows of the
// range, where R values would pass its end, come from `edge`: rows [e0, i1) packed once
// per call as [K][8] (zero-padded, plus slack), so no read passes the end of A.
struct Edge {
  const float* p = nullptr;
  int64_t e0 = 0;
};

// One block: rows [i, i + mr) (i + mr <= i1), one column panel of nr columns at j.
void direct_block(const float* A, int64_t lda, bool transA, const Edge& edge, const float* bp, int64_t bs, float* C,
                  int64_t ldc, int64_t i, int64_t mr_all, int64_t i1, int64_t j, int nr, int64_t K, float alpha,
                  bool beta) {
  const bool narrow = nr <= 8;
  const int R = narrow ? 8 : MR;
  const int mr = static_cast<int>(mr_all);
  float* c = C + i * ldc + j;
  if (!transA) {
    const float* a = A + i * lda;
    if (narrow) kernel<8, 1, A_ROWS>(K, a, lda, bp, bs, c, ldc, mr, nr, alpha, beta);
    else kernel<MR, 2, A_ROWS>(K, a, lda, bp, bs, c, ldc, mr, nr, alpha, beta);
    return;
  }
  const bool in_place = i + R <= i1;
  const float* a = in_place ? A + i : edge.p + (i - edge.e0);  // element (i', k) at a[k·as + i']
  const int64_t as = in_place ? lda : 8;
  if (narrow) kernel<8, 1, A_COLS>(K, a, as, bp, bs, c, ldc, mr, nr, alpha, beta);
  else kernel<MR, 2, A_COLS>(K, a, as, bp, bs, c, ldc, mr, nr, alpha, beta);
}

// The direct path (see gemm.h): C[i0:i1, j0:j1] over the whole K, A f32 as stored.
// Column panels of 16 use the 6×16 kernel; a last panel of at most 8 columns uses 8×8.
// B: in place (bpacked == nullptr: f32 [K,N], every panel of this call 16 wide or a last
// one exactly 8 wide) or packed in panels [K][16] numbered from column 0.
// Loop order: when this call's B (K × (j1 − j0) floats) fits in L2, row blocks outside and
// column panels inside, so C is written row block by row block and A is read once;
// otherwise column panels outside, so each B panel stays in cache over all rows.
void direct_avx2(const float* A, int64_t lda, bool transA, const float* B, int64_t ldb, const float* bpacked, float* C,
                 int64_t ldc, int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t K, float alpha, bool beta) {
  const int64_t bs = bpacked ? NR : ldb;
  auto panel = [&](int64_t j) { return bpacked ? bpacked + (j / NR) * K * NR : B + j; };
  Edge edge;
  if (transA) {  // pack the last rows (see Edge)
    edge.e0 = i1 - 8 > i0 ? i1 - 8 : i0;
    const int rows = static_cast<int>(i1 - edge.e0);
    float* e = t_edge.get<float>(static_cast<size_t>(K) * 8 + 16);
    for (int64_t k = 0; k < K; ++k)
      for (int r = 0; r < 8; ++r) e[k * 8 + r] = r < rows ? A[k * lda + edge.e0 + r] : 0.f;
    for (int r = 0; r < 16; ++r) e[K * 8 + r] = 0.f;
    edge.p = e;
  }
  // rows per block: 8 when the whole range is one narrow panel, else 6 (the 6×16 kernel)
  const int64_t R = j1 - j0 <= 8 ? 8 : MR;
  if (K * (j1 - j0) * 4 <= (256 << 10)) {
    for (int64_t i = i0; i < i1; i += R) {
      const int64_t mr = imin(R, i1 - i);
      for (int64_t j = j0; j < j1; j += NR)  // a narrow last panel under 6-row blocks: 6 rows of the 8×8 kernel
        direct_block(A, lda, transA, edge, panel(j), bs, C, ldc, i, mr, i1, j, static_cast<int>(imin(NR, j1 - j)), K,
                     alpha, beta);
    }
  } else {
    for (int64_t j = j0; j < j1; j += NR) {
      const int nr = static_cast<int>(imin(NR, j1 - j));
      const int64_t Rj = nr <= 8 ? 8 : MR;
      for (int64_t i = i0; i < i1; i += Rj)
        direct_block(A, lda, transA, edge, panel(j), bs, C, ldc, i, imin(Rj, i1 - i), i1, j, nr, K, alpha, beta);
    }
  }
}

}  // namespace

void acc_at_b_avx2(int64_t kc, const float* a, int64_t as, const float* b, int64_t bs, float* c, int64_t ldc, int64_t m,
                   int64_t n) {
  for (int64_t j = 0; j < n; j += NR)
    for (int64_t i = 0; i < m; i += MR)
      kernel<MR, 2, A_COLS>(kc, a + i, as, b + j, bs, c + i * ldc + j, ldc, static_cast<int>(imin(MR, m - i)),
                            static_cast<int>(imin(NR, n - j)), 1.f, true);
}

}  // namespace gemm
}  // namespace lk

#pragma GCC pop_options

// ---------- AVX-512 ----------
// The 12×32 micro-kernel for CPUs with AVX-512F (issue 18): 24 zmm accumulators, two B
// vectors and one broadcast per k, so each k is 24 FMAs on 14 loads (twice the AVX2
// kernel's work per instruction). Each C element is the same FMA chain over k as in the
// AVX2 kernel; only the tile edges differ. Same rules as the AVX2 region above.
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma,f16c")

namespace lk {
namespace gemm {
namespace {

constexpr int MR5 = 12;  // rows of the AVX-512 micro-tile
constexpr int NR5 = 32;  // columns (two zmm)

void micro_12x32(int64_t kc, const float* __restrict a, const float* __restrict b, float* __restrict c, int64_t ldc,
                 int mr, int nr, float alpha, bool beta) {
  __m512 acc[MR5][2];
#pragma GCC unroll 12
  for (int i = 0; i < MR5; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
#pragma GCC unroll 12
  for (int i = 0; i < MR5; ++i) {
    if (i < mr) {
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR5 - 1), _MM_HINT_T0);
    }
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 12
    for (int i = 0; i < MR5; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += MR5;
    b += NR5;
  }
  const __m512 va = _mm512_set1_ps(alpha);
  // C = alpha·acc (+ C): full rows of 32 and masked tails alike
  const __mmask16 m0 = nr >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << nr) - 1);
  const __mmask16 m1 = nr >= 32 ? static_cast<__mmask16>(0xffff)
                                : nr <= 16 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << (nr - 16)) - 1);
#pragma GCC unroll 12
  for (int i = 0; i < MR5; ++i) {
    if (i >= mr) break;
    float* cp = c + i * ldc;
    if (beta) {
      _mm512_mask_storeu_ps(cp, m0, _mm512_fmadd_ps(acc[i][0], va, _mm512_maskz_loadu_ps(m0, cp)));
      _mm512_mask_storeu_ps(cp + 16, m1, _mm512_fmadd_ps(acc[i][1], va, _mm512_maskz_loadu_ps(m1, cp + 16)));
    } else {
      _mm512_mask_storeu_ps(cp, m0, _mm512_mul_ps(acc[i][0], va));
      _mm512_mask_storeu_ps(cp + 16, m1, _mm512_mul_ps(acc[i][1], va));
    }
  }
}

}  // namespace
}  // namespace gemm
}  // namespace lk

#pragma GCC pop_options

namespace lk {
namespace gemm {

const Impl& avx2_impl() {
  static const Impl impl = {"avx2", MR, NR, NR, pack_a_avx2, pack_b_avx2, micro_6x16, direct_avx2, pack_b_avx2};
  return impl;
}

// The packed path on the 12×32 AVX-512 tile; small and thin products keep the AVX2 direct path.
const Impl& avx512_impl() {
  static const Impl impl = {"avx512", MR5, NR5, NR, pack_a_12, pack_b_32, micro_12x32, direct_avx2, pack_b_avx2};
  return impl;
}

}  // namespace gemm
}  // namespace lk

#endif  // x86
