// Few-row products against a weight stored [N,K] (the decode path, docs/ARCHITECTURE.md
// §Decoding): C[0:M, 0:N] (+)= alpha · A[M,K] · Wᵀ with W f32, f16 or bf16 and M small
// (one row per sequence being decoded). Each output column j is a dot product of weight
// row j with the rows of A, so the weight is streamed once, in place, at memory speed:
// no packing (the packed GEMM would copy and widen all of W for one row of A), half
// weights widened in registers. The weight rows are split among the threads, so a
// 1-row product keeps every core busy.
//
// Blocking: J weight rows at a time (their J·K elements stay in L1/L2) against every row
// of A in groups of R, so W comes from memory once for all M rows (batched decoding reads
// the weights once per step for the whole batch) and A (M·K floats, ≤ 128 KiB) stays in
// cache. Sums run in 8 lanes (AVX2) or simd::W lanes (the SIMD layer: NEON, SIMD128,
// SSE2, scalar), then across the lanes, then the K tail.
// Quantized weights (GGML blocks, quant.h): each block of J weight rows is dequantized into
// a per-thread f32 scratch (J·K floats, in L1/L2) and multiplied by the f32 kernels, so the
// blocks are read once per step for all M rows and the product equals the f32 one on the
// dequantized matrix (each value is exact in f32: quant.h); Q8_0 rows are widened with AVX2,
// or, on AVX-512, multiplied straight from the blocks by a fused kernel (16-lane sums).
// Prefetch: the x86 kernels ask for the weight bytes a few rows ahead (pf bytes past the row
// being read, ~6 KiB: prefetch_ahead) while they multiply. The weights (94–352 MB for the bench
// model) come from L3 or DRAM, and the hardware prefetcher alone left a 1-row product waiting
// on its loads: Q8_0 streamed 5.4 GB/s per core without, 9–11 with; bf16 7.4 against 21 (issue 24).
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "gemm.h"
#include "quant.h"
#include "simd.h"
#include "threadpool.h"

namespace lk {
namespace gemm {

namespace {

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

// C row block: C[i, j] = (acc ? C[i, j] : 0) + alpha · s
inline void put(float* c, float s, float alpha, bool acc) { *c = (acc ? *c : 0.f) + alpha * s; }

// ---------- portable kernel (SIMD layer) ----------

using simd::V;
constexpr int kW = simd::W;

// kW stored weight elements at w + k, widened
inline V load_w(const void* w, int dt, int64_t k) {
  if (dt == 0) return simd::load(static_cast<const float*>(w) + k);
  const uint16_t* h = static_cast<const uint16_t*>(w) + k;
  float t[kW];
  if (dt == 2)
    for (int l = 0; l < kW; ++l) t[l] = bf16_to_f32(h[l]);
  else
    for (int l = 0; l < kW; ++l) t[l] = f16_to_f32(h[l]);
  return simd::load(t);
}

// R rows of A (from a, stride lda) × J weight rows (from w, stride ldw elements)
template <int R, int J>
void block_simd(const float* a, int64_t lda, const void* w, int dt, int64_t ldw, int64_t K, float* c, int64_t ldc,
                float alpha, bool acc, int64_t /*pf: the x86 kernels' prefetch distance*/) {
  V s[R][J];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < J; ++j) s[r][j] = simd::zero();
  const int esz = dt == 0 ? 4 : 2;
  const char* wb = static_cast<const char*>(w);
  const int64_t K4 = K - K % kW;
  for (int64_t k = 0; k < K4; k += kW) {
    V wv[J];
    for (int j = 0; j < J; ++j) wv[j] = load_w(wb + j * ldw * esz, dt, k);
    for (int r = 0; r < R; ++r) {
      const V av = simd::load(a + r * lda + k);
      for (int j = 0; j < J; ++j) s[r][j] = simd::fma(av, wv[j], s[r][j]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < J; ++j) {
      float t = simd::hsum(s[r][j]);
      for (int64_t k = K4; k < K; ++k) t += a[r * lda + k] * load_elem(wb + j * ldw * esz, dt, k);
      put(c + r * ldc + j, t, alpha, acc);
    }
}

// ---------- AVX2 kernel (x86, chosen at run time) ----------
}  // namespace
}  // namespace gemm
}  // namespace lk

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace lk {
namespace gemm {
namespace {

inline __m256 load8w(const void* p, int dt, int64_t off) {
  if (dt == 0) return _mm256_loadu_ps(static_cast<const float*>(p) + off);
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + off));
  if (dt == 2) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  return _mm256_cvtph_ps(h);
}

inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int R, int J, int DT>
void block_avx2_t(const float* a, int64_t lda, const void* w, int64_t ldw, int64_t K, float* c, int64_t ldc,
                  float alpha, bool acc, int64_t pf) {
  __m256 s[R][J];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < J; ++j) s[r][j] = _mm256_setzero_ps();
  constexpr int esz = DT == 0 ? 4 : 2;
  const char* wb = static_cast<const char*>(w);
  const int64_t K8 = K - K % 8;
  for (int64_t k = 0; k < K8; k += 8) {
    __m256 wv[J];
#pragma GCC unroll 4
    for (int j = 0; j < J; ++j) {
      // one prefetch per 64-byte line of each row (8 f32 are half a line, 8 halves a quarter)
      if (pf && (k * esz) % 64 == 0) _mm_prefetch(wb + j * ldw * esz + k * esz + pf, _MM_HINT_T0);
      wv[j] = load8w(wb + j * ldw * esz, DT, k);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_loadu_ps(a + r * lda + k);
#pragma GCC unroll 4
      for (int j = 0; j < J; ++j) s[r][j] = _mm256_fmadd_ps(av, wv[j], s[r][j]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < J; ++j) {
      float t = hsum8(s[r][j]);
      for (int64_t k = K8; k < K; ++k) t += a[r * lda + k] * load_elem(wb + j * ldw * esz, DT, k);
      put(c + r * ldc + j, t, alpha, acc);
    }
}

// One row of Q8_0 blocks (nb blocks of 34 bytes: an f16 scale, 32 int8) into out[0, 32·nb):
// d·q is exact in f32 (11 by 8 bits), as quant.h's dequant_block gives it.
void dequant_q8_0_avx2(const uint8_t* r, int64_t nb, float* out, int64_t pf) {
  for (int64_t b = 0; b < nb; ++b, r += 34, out += 32) {
    _mm_prefetch(reinterpret_cast<const char*>(r + pf), _MM_HINT_T0);
    const __m256 d = _mm256_set1_ps(quant::f16_at(r));
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) {
      const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(r + 2 + 8 * g));
      _mm256_storeu_ps(out + 8 * g, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d));
    }
  }
}

template <int R, int J>
void block_avx2(const float* a, int64_t lda, const void* w, int dt, int64_t ldw, int64_t K, float* c, int64_t ldc,
                float alpha, bool acc, int64_t pf) {
  if (dt == 0) block_avx2_t<R, J, 0>(a, lda, w, ldw, K, c, ldc, alpha, acc, pf);
  else if (dt == 1) block_avx2_t<R, J, 1>(a, lda, w, ldw, K, c, ldc, alpha, acc, pf);
  else block_avx2_t<R, J, 2>(a, lda, w, ldw, K, c, ldc, alpha, acc, pf);
}

}  // namespace
}  // namespace gemm
}  // namespace lk
#pragma GCC pop_options

// ---------- Q8_0 on AVX-512 (x86, chosen at run time) ----------
// R rows of A × J weight rows of Q8_0 blocks, fused: each block's 32 int8 widened in two zmm
// and scaled by its f16 scale (d·q exact in f32, as quant.h dequantizes), then multiplied
// into 16-lane sums; no scratch round trip. K a multiple of 32.
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma,f16c")
// GCC 12's AVX-512 headers start some intrinsics from a self-initialised "undefined" vector
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace lk {
namespace gemm {
namespace {

template <int R, int J>
void q8_0_avx512(const float* a, int64_t lda, const uint8_t* w, int64_t row_bytes, int64_t nb, float* c, int64_t ldc,
                 float alpha, bool acc, int64_t pf) {
  // one row of A: two sums per weight row (the block's halves), so 2·J chains of FMAs are in
  // flight, not J chains of two dependent FMAs (16.8 against 13.8 G weights/s in L2)
  constexpr int U = R == 1 ? 2 : 1;
  __m512 s[R][J][U];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < J; ++j)
#pragma GCC unroll 2
      for (int u = 0; u < U; ++u) s[r][j][u] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m512 w0[J], w1[J];
#pragma GCC unroll 4
    for (int j = 0; j < J; ++j) {
      const uint8_t* blk = w + j * row_bytes + b * 34;
      _mm_prefetch(reinterpret_cast<const char*>(blk + pf), _MM_HINT_T0);  // 34 bytes a block: every line
      int16_t h;
      std::memcpy(&h, blk, 2);
      const __m512 d = _mm512_cvtph_ps(_mm256_set1_epi16(h));  // the f16 scale in every lane
      w0[j] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2)))), d);
      w1[j] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 18)))), d);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512 a0 = _mm512_loadu_ps(a + r * lda + b * 32), a1 = _mm512_loadu_ps(a + r * lda + b * 32 + 16);
#pragma GCC unroll 4
      for (int j = 0; j < J; ++j) {
        s[r][j][0] = _mm512_fmadd_ps(a0, w0[j], s[r][j][0]);
        s[r][j][U - 1] = _mm512_fmadd_ps(a1, w1[j], s[r][j][U - 1]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < J; ++j)
      put(c + r * ldc + j, _mm512_reduce_add_ps(U == 2 ? _mm512_add_ps(s[r][j][0], s[r][j][U - 1]) : s[r][j][0]), alpha, acc);
}

using Q8Fn = void (*)(const float*, int64_t, const uint8_t*, int64_t, int64_t, float*, int64_t, float, bool, int64_t);
// [R - 1]: 4 weight rows, and 1 (the last rows)
const Q8Fn kQ8J4[4] = {q8_0_avx512<1, 4>, q8_0_avx512<2, 4>, q8_0_avx512<3, 4>, q8_0_avx512<4, 4>};
const Q8Fn kQ8J1[4] = {q8_0_avx512<1, 1>, q8_0_avx512<2, 1>, q8_0_avx512<3, 1>, q8_0_avx512<4, 1>};

}  // namespace
}  // namespace gemm
}  // namespace lk
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

namespace lk {
namespace gemm {
namespace {

using BlockFn = void (*)(const float*, int64_t, const void*, int, int64_t, int64_t, float*, int64_t, float, bool, int64_t);

// Prefetch distance for weight rows of row_bytes read J at a time: whole rows, at least J
// (the next block of rows) and ~6 KiB ahead (measured: 4–8 rows of 768 Q8_0 or bf16 values).
inline int64_t prefetch_ahead(int64_t row_bytes, int J) {
  const int64_t rows = (6144 + row_bytes - 1) / row_bytes;
  return (rows > J ? rows : J) * row_bytes;
}

// The kernels by (rows of A, weight rows): R·J ≤ 8 accumulators (AVX2 has 16 registers;
// the rest hold the weight vectors and a row of A).
struct Kernels {
  BlockFn j4[3];  // R = 1, 2 with J = 4; [0] unused
  BlockFn j2[5];  // R = 1..4 with J = 2; [0] unused
  BlockFn j1[5];  // R = 1..4 with J = 1 (the last weight rows)
};

// One family's table: F<R, J>::fn is its kernel for R rows of A × J weight rows.
template <template <int, int> class F>
Kernels table() {
  return {{nullptr, F<1, 4>::fn, F<2, 4>::fn},
          {nullptr, F<1, 2>::fn, F<2, 2>::fn, F<3, 2>::fn, F<4, 2>::fn},
          {nullptr, F<1, 1>::fn, F<2, 1>::fn, F<3, 1>::fn, F<4, 1>::fn}};
}

template <int R, int J>
struct SimdBlock {
  static constexpr BlockFn fn = block_simd<R, J>;
};

#if defined(__x86_64__) || defined(__i386__)
template <int R, int J>
struct Avx2Block {
  static constexpr BlockFn fn = block_avx2<R, J>;
};
#endif

const Kernels& kernels() {
#if defined(__x86_64__) || defined(__i386__)
  static const Kernels k = use_avx2() ? table<Avx2Block>() : table<SimdBlock>();
#else
  static const Kernels k = table<SimdBlock>();
#endif
  return k;
}

// Weight row j's values [0, K) of a quantized W (row stride ldw values, whole blocks) into out.
void dequant_row(const void* W, int dt, int64_t ldw, int64_t j, int64_t K, float* out, float* tmp, int64_t pf) {
#if defined(__x86_64__) || defined(__i386__)
  if (dt == quant::Q8_0 && K % 32 == 0 && use_avx2()) {
    dequant_q8_0_avx2(static_cast<const uint8_t*>(W) + j * (ldw / 32) * 34, K / 32, out, pf);
    return;
  }
#endif
  quant::dequant_row_range(dt, W, ldw, j, 0, K, out, tmp);
}

// Weight rows [j0, j1) of a quantized W against every row of A: J rows at a time
// dequantized into the scratch ([J][K] f32), then the f32 kernels on it.
void rows_quant(const Kernels& kn, float* C, int64_t ldc, const float* A, int64_t lda, const void* W, int dt,
                int64_t ldw, int64_t M, int64_t j0, int64_t j1, int64_t K, float alpha, bool acc) {
#if defined(__x86_64__) || defined(__i386__)
  if (dt == quant::Q8_0 && K % 32 == 0 && use_avx512()) {  // fused, no scratch
    const int64_t rb = ldw / 32 * 34, pf = prefetch_ahead(rb, 4);
    const uint8_t* wb = static_cast<const uint8_t*>(W);
    for (int64_t j = j0; j < j1;) {
      const bool four = j + 4 <= j1;
      for (int64_t i = 0; i < M;) {
        const int R = static_cast<int>(imin(4, M - i));
        (four ? kQ8J4 : kQ8J1)[R - 1](A + i * lda, lda, wb + j * rb, rb, K / 32, C + i * ldc + j, ldc, alpha, acc, pf);
        i += R;
      }
      j += four ? 4 : 1;
    }
    return;
  }
#endif
  const int J = M <= 2 ? 4 : 2;
  const int64_t pf = prefetch_ahead(ldw / quant::block_values(dt) * quant::block_bytes(dt), J);
  float* buf = quant::scratch(static_cast<size_t>(J * K + quant::block_values(dt)));  // quant.h's per-thread scratch
  float* tmp = buf + J * K;
  int64_t j = j0;
  for (; j + J <= j1; j += J) {
    for (int jj = 0; jj < J; ++jj) dequant_row(W, dt, ldw, j + jj, K, buf + jj * K, tmp, pf);
    for (int64_t i = 0; i < M;) {
      const int R = static_cast<int>(J == 4 ? M : imin(4, M - i));
      (J == 4 ? kn.j4[R] : kn.j2[R])(A + i * lda, lda, buf, 0, K, K, C + i * ldc + j, ldc, alpha, acc, 0);
      i += R;
    }
  }
  for (; j < j1; ++j) {
    dequant_row(W, dt, ldw, j, K, buf, tmp, pf);
    for (int64_t i = 0; i < M;) {
      const int R = static_cast<int>(imin(4, M - i));
      kn.j1[R](A + i * lda, lda, buf, 0, K, K, C + i * ldc + j, ldc, alpha, acc, 0);
      i += R;
    }
  }
}

// Weight rows [j0, j1) against every row of A.
void rows(const Kernels& kn, float* C, int64_t ldc, const float* A, int64_t lda, const void* W, int dt, int64_t ldw,
          int64_t M, int64_t j0, int64_t j1, int64_t K, float alpha, bool acc) {
  if (quant::is_quant(dt)) {
    rows_quant(kn, C, ldc, A, lda, W, dt, ldw, M, j0, j1, K, alpha, acc);
    return;
  }
  const int esz = dt == 0 ? 4 : 2;
  const char* wb = static_cast<const char*>(W);
  int64_t j = j0;
  // one row of A or two: 4 weight rows per block; more rows: 2 weight rows, A in groups of 4
  const int J = M <= 2 ? 4 : 2;
  const int64_t pf = prefetch_ahead(ldw * esz, J);
  for (; j + J <= j1; j += J) {
    const void* w = wb + j * ldw * esz;
    for (int64_t i = 0; i < M;) {
      const int R = static_cast<int>(J == 4 ? M : imin(4, M - i));
      (J == 4 ? kn.j4[R] : kn.j2[R])(A + i * lda, lda, w, dt, ldw, K, C + i * ldc + j, ldc, alpha, acc, pf);
      i += R;
    }
  }
  for (; j < j1; ++j) {
    const void* w = wb + j * ldw * esz;
    for (int64_t i = 0; i < M;) {
      const int R = static_cast<int>(imin(4, M - i));
      kn.j1[R](A + i * lda, lda, w, dt, ldw, K, C + i * ldc + j, ldc, alpha, acc, pf);
      i += R;
    }
  }
}

// Weight bytes below which one thread does it all (a pool round trip costs more).
constexpr int64_t kMinParallelBytes = 64 * 1024;

}  // namespace

bool gemv_applies(const Operand& A, const Operand& B, int64_t M) {
  static const bool off = [] {  // LORAKIT_GEMV=0: the packed GEMM instead (for A/B runs only)
    const char* s = std::getenv("LORAKIT_GEMV");
    return s && s[0] == '0';
  }();
  // f32, f16, bf16 or quantized B (each stored row whole blocks: quant.h)
  return !off && M >= 1 && M <= kGemvMaxRows && A.dt == 0 && !A.trans && B.trans &&
         (B.dt <= 2 || (quant::is_quant(B.dt) && B.ld % quant::block_values(B.dt) == 0));
}

void gemv(float* C, int64_t ldc, const Operand& A, const Operand& B, int64_t M, int64_t N, int64_t K, float alpha,
          bool acc) {
  const Kernels& kn = kernels();
  const float* Af = static_cast<const float*>(A.p);
  const int64_t bytes = quant::is_quant(B.dt) ? N * (B.ld / quant::block_values(B.dt)) * quant::block_bytes(B.dt)
                                              : N * K * (B.dt == 0 ? 4 : 2);
  const int nt = bytes < kMinParallelBytes ? 1 : num_threads();
  if (nt <= 1) {
    rows(kn, C, ldc, Af, A.ld, B.p, B.dt, B.ld, M, 0, N, K, alpha, acc);
    return;
  }
  // 4 chunks per thread (in multiples of 4 weight rows): a thread slowed by another process
  // leaves its share to the others
  const int64_t tasks = imin(4 * nt, (N + 3) / 4);
  const int64_t per = ((N + tasks - 1) / tasks + 3) / 4 * 4;
  parallel_for(static_cast<int>((N + per - 1) / per), [&](int t, int) {
    const int64_t j0 = t * per, j1 = imin(N, j0 + per);
    if (j0 < j1) rows(kn, C, ldc, Af, A.ld, B.p, B.dt, B.ld, M, j0, j1, K, alpha, acc);
  });
}

}  // namespace gemm
}  // namespace lk
