// Inference-only prompt products on AMX-BF16 (issue 24; docs/ARCHITECTURE.md §Decoding,
// "Prompt products on AMX").
//
// C[M,N] (+)= alpha · A[M,K] · Wᵀ for f32 A (as stored) and a weight W stored [N,K] in bf16,
// f16 or GGML blocks, with M > kGemvMaxRows (a prompt's rows; fewer rows stay on gemv.cc).
// Numerics differ from gemm.cc's f32 product on purpose, as llama.cpp's do: A is rounded to
// bf16 (round to nearest even) and the sums are f32 in the tiles. The weight is split into
// bf16 terms: a bf16 weight is one term (its exact value); an f16 one two (hi = its top 8
// significant bits, lo = the rest: hi + lo is the f16 value exactly), so the product is
// a_bf16 · w exactly summed in f32; a quantized one (d·q in f32) one, rounded to bf16 like A
// (LORAKIT_AMX_TERMS=2: two, hi = truncation, lo = round(w − hi), 16 of its ≤ 19 bits).
// Only the addon calls this (addon.cc registers gemmInference); training, evaluation and the
// parity tests never do: the backend routes a gemm here only while generation's forward has
// turned inference products on (backend/addon.ts). LORAKIT_AMX=0 turns it off.
//
// Blocking: the columns are cut into blocks of NB (a multiple of 32), one task each on the
// thread pool. A task packs its block of W, all of K, into the tiles' VNNI pair layout (per
// 16-column panel and 32-deep k step, 16 rows of 16 pairs (w[k], w[k+1]): one B tile,
// 1 KiB; a split weight stores its lo tile after its hi tile), then runs every 32-row block
// of A against it, 32×32 of C at a time (2 A tiles × 2 B tiles → 4 C tiles), in k chunks of
// kChunk steps: the row block's 32 × 256 of A (16 KiB) stays in L1 while the block's column
// pairs stream their panels' chunks from L2, the sums wait between chunks in a 32 × NB f32
// scratch, and the last chunk stores a whole 32 × 32 block straight into C (alpha 1, no
// accumulate; else through the scratch with alpha and accumulate). A is rounded to bf16 once
// per call, by row blocks on the pool, laid out as the A tiles (each a contiguous KiB;
// zero-padded to 32 × 32). No copy of a weight outlives the call: the packed block is a
// per-thread scratch of Kp · NB · terms bf16 values.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "amx.h"
#include "gemm.h"
#include "napi_gemm.h"
#include "quant.h"
#include "threadpool.h"

#if defined(__x86_64__) && !defined(__EMSCRIPTEN__) && defined(__linux__)
#define LK_AMX 1
#include <cpuid.h>
// GCC 12's AVX-512 conversion intrinsics trip -Wmaybe-uninitialized on their own undefined
// pass-through operand when inlined under a target attribute (a false positive)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace lk {
bool cpu_has_avx512f();  // cpu.cc

namespace amx {

namespace {

#if defined(LK_AMX)
bool env_off() {
  const char* s = std::getenv("LORAKIT_AMX");
  return s && *s == '0';
}
#endif

// The CPU has AMX-TILE, AMX-BF16 and AVX512-BF16 (the packers round with it), AVX-512F is
// in use (cpu.cc), and the kernel grants this process the tile data state.
bool available() {
  static const bool yes = [] {
#if defined(LK_AMX)
    if (env_off() || !cpu_has_avx512f()) return false;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    if (!(d & (1u << 24)) || !(d & (1u << 22))) return false;  // AMX-TILE, AMX-BF16
    if (a < 1 || !__get_cpuid_count(7, 1, &a, &b, &c, &d) || !(a & (1u << 5))) return false;  // AVX512-BF16
    constexpr long kReqXcompPerm = 0x1023, kXtiledata = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXtiledata) == 0;
#else
    return false;
#endif
  }();
  return yes;
}

#if defined(LK_AMX)

thread_local gemm::AlignedBuf t_a, t_b, t_row, t_tmp;

// k steps (32 deep) per chunk of the bf16 product's loop (see product)
constexpr int64_t kChunk = 8;

struct TileConfig {
  uint8_t palette, start;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// tiles 0-3: C (16 × 16 f32), 4-5: A (16 rows × 32 bf16), 6-7: B (16 pair rows × 16 columns)
__attribute__((target("amx-tile"))) void load_config() {
  TileConfig c;
  std::memset(&c, 0, sizeof c);
  c.palette = 1;
  for (int t = 0; t < 8; ++t) {
    c.colsb[t] = 64;
    c.rows[t] = 16;
  }
  // GCC 12 does not treat ldtilecfg as reading the struct (it dropped the stores): a barrier
  __asm__ __volatile__("" : : "r"(&c) : "memory");
  _tile_loadconfig(&c);
}

__attribute__((target("amx-tile"))) void release() { _tile_release(); }

// A[M,K] f32 → dst rows i0..i1 in bf16 (round to nearest even; zero padding), laid out as the
// A tiles: per 16-row group g and 32-deep k step s a 16 × 32 tile, 1 KiB, at (g·Kp/32 + s)·512
// (so each tile load reads one contiguous KiB).
__attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl"))) void round_a_rows(uint16_t* dst, const float* A, int64_t lda,
                                                                          int64_t M, int64_t K, int64_t Kp, int64_t i0,
                                                                          int64_t i1) {
  const int64_t ks = Kp / 32;
  for (int64_t i = i0; i < i1; ++i) {
    uint16_t* d = dst + (i / 16) * ks * 512 + (i % 16) * 32;
    if (i >= M) {
      for (int64_t s = 0; s < ks; ++s) _mm512_store_si512(d + s * 512, _mm512_setzero_si512());
      continue;
    }
    const float* a = A + i * lda;
    for (int64_t s = 0; s < ks; ++s) {
      const int64_t k = 32 * s, left = K - k;
      __m512 x0, x1;
      if (left >= 32) {
        x0 = _mm512_loadu_ps(a + k);
        x1 = _mm512_loadu_ps(a + k + 16);
      } else {
        const auto mask = [](int64_t n) { return static_cast<__mmask16>(n >= 16 ? 0xffff : n <= 0 ? 0 : (1u << n) - 1); };
        x0 = _mm512_maskz_loadu_ps(mask(left), a + k);
        x1 = _mm512_maskz_loadu_ps(mask(left - 16), a + k + 16);
      }
      const __m512bh h = _mm512_cvtne2ps_pbh(x1, x0);
      _mm512_store_si512(d + s * 512, reinterpret_cast<const __m512i&>(h));
    }
  }
}

// Weight row n (all K values, widened or dequantized exactly to f32) into row[0, Kp).
__attribute__((target("avx512f,avx512bw,f16c"))) void weight_row(float* row, const gemm::Operand& B, int64_t n,
                                                                  int64_t K, int64_t Kp, float* tmp) {
  if (quant::is_quant(B.dt)) {
    quant::dequant_row_range(B.dt, B.p, B.ld, n, 0, K, row, tmp);
  } else {
    const uint16_t* w = static_cast<const uint16_t*>(B.p) + n * B.ld;
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k));
      const __m512 f = B.dt == 2 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
                                 : _mm512_cvtph_ps(h);
      _mm512_storeu_ps(row + k, f);
    }
    for (; k < K; ++k) row[k] = gemm::load_elem(B.p, B.dt, n * B.ld + k);
  }
  for (int64_t k = K; k < Kp; ++k) row[k] = 0.f;
}

// Q8_0 / Q4_0 rows read block by block in pack_b (one bf16 term, K whole blocks)
bool block_direct(const gemm::Operand& B, int64_t K) {
  return (B.dt == quant::Q8_0 || B.dt == quant::Q4_0) && K % 32 == 0 && B.ld % 32 == 0;
}

// One Q8_0 or Q4_0 block (32 values d · q) rounded to bf16 (nearest even) in k order: d · q is
// the f32 value dequant_block gives, then rounded once more.
__attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl,f16c"))) inline __m512bh block_bf16(int dt,
                                                                                              const uint8_t* blk) {
  const __m512 d = _mm512_set1_ps(_cvtsh_ss(static_cast<unsigned short>(blk[0] | (blk[1] << 8))));
  __m512i lo, hi;
  if (dt == quant::Q8_0) {
    lo = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2)));
    hi = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 18)));
  } else {
    const __m512i x = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2)));
    const __m512i m = _mm512_set1_epi32(15), eight = _mm512_set1_epi32(8);
    lo = _mm512_sub_epi32(_mm512_and_si512(x, m), eight);
    hi = _mm512_sub_epi32(_mm512_srli_epi32(x, 4), eight);
  }
  return _mm512_cvtne2ps_pbh(_mm512_mul_ps(d, _mm512_cvtepi32_ps(hi)), _mm512_mul_ps(d, _mm512_cvtepi32_ps(lo)));
}

// Packs columns j0 .. j0 + nb of op(B) (weight rows j0.. of W; rows past N are zero) into
// dst: per 16-column panel q, per k step s (32 deep), `terms` B tiles of 16 pair rows × 16
// columns: uint32 (s·terms + t)·256 + p·16 + c of panel q holds (w[n][32s+2p], w[n][32s+2p+1])
// of term t, n = j0 + 16q + c. Terms: 1 → round(w) (exact for a bf16 weight); 2 → hi =
// truncation of w to bf16, lo = round(w − hi). Each k step of a panel is 16 rows of 16 pairs
// (read from a bf16 row in place, else built from the rows widened to f32), transposed in
// registers.
__attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl,f16c"))) void pack_b(uint32_t* dst, const gemm::Operand& B,
                                                                                 int64_t N, int64_t K, int64_t Kp,
                                                                                 int64_t j0, int64_t nb, int terms) {
  const int64_t ks = Kp / 32, panel = ks * terms * 256;
  const bool in_place = B.dt == 2;  // bf16: the pairs are the stored values
  // Q8_0 / Q4_0 rows of whole blocks, one term: each 32-deep k step is one block, rounded
  // straight from its bytes
  const bool blocks = terms == 1 && block_direct(B, K);
  const int bb = blocks ? quant::block_bytes(B.dt) : 0;
  const int64_t row_bytes = (B.ld / 32) * bb, row_stride = blocks ? row_bytes : B.ld * 2;
  const uint8_t* base = static_cast<const uint8_t*>(B.p);
  float* rows = in_place || blocks ? nullptr : t_row.get<float>(static_cast<size_t>(16 * Kp));
  float* tmp = t_tmp.get<float>(256);
  const __m512i himask = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  for (int64_t q = 0; q < nb / 16; ++q) {
    const int64_t n0 = j0 + 16 * q;
    const int valid = static_cast<int>(N - n0 >= 16 ? 16 : (N - n0 > 0 ? N - n0 : 0));
    uint32_t* pd = dst + q * panel;
    if (!in_place && !blocks)
      for (int c = 0; c < valid; ++c) weight_row(rows + c * Kp, B, n0 + c, K, Kp, tmp);
    // the next panel's rows (one contiguous range of a bf16 or block weight, usually cold:
    // read across its 16 rows at once, which the hardware prefetchers do not follow) are
    // prefetched a slice per k step
    const int64_t next_rows = N - n0 - 16 < 16 ? N - n0 - 16 : 16;
    const char* pf = next_rows > 0 && q + 1 < nb / 16 && (blocks || in_place)
                         ? reinterpret_cast<const char*>(base) + (n0 + 16) * row_stride : nullptr;
    const int64_t pf_step = pf ? ((next_rows * row_stride + ks - 1) / ks + 63) / 64 * 64 : 0;
    for (int64_t s = 0; s < ks; ++s) {
      if (pf)
        for (int64_t o = s * pf_step; o < (s + 1) * pf_step && o < next_rows * row_stride; o += 64)
          _mm_prefetch(pf + o, _MM_HINT_T0);
      for (int t = 0; t < terms; ++t) {
        __m512i r[16];
        for (int c = 0; c < 16; ++c) {
          if (c >= valid) {
            r[c] = _mm512_setzero_si512();
          } else if (blocks) {
            const __m512bh v = block_bf16(B.dt, base + (n0 + c) * row_bytes + s * bb);
            r[c] = reinterpret_cast<const __m512i&>(v);
          } else if (in_place) {
            const uint16_t* w = static_cast<const uint16_t*>(B.p) + (n0 + c) * B.ld + 32 * s;
            const int64_t left = K - 32 * s;
            r[c] = left >= 32 ? _mm512_loadu_si512(w)
                              : _mm512_maskz_loadu_epi16(static_cast<__mmask32>((1ull << left) - 1), w);
          } else {
            const float* f = rows + c * Kp + 32 * s;
            const __m512 x0 = _mm512_loadu_ps(f), x1 = _mm512_loadu_ps(f + 16);
            __m512bh v;
            if (terms == 1) {
              v = _mm512_cvtne2ps_pbh(x1, x0);
            } else {
              const __m512 h0 = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x0), himask));
              const __m512 h1 = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x1), himask));
              v = t == 0 ? _mm512_cvtne2ps_pbh(h1, h0) : _mm512_cvtne2ps_pbh(_mm512_sub_ps(x1, h1), _mm512_sub_ps(x0, h0));
            }
            r[c] = reinterpret_cast<const __m512i&>(v);
          }
        }
        transpose16(r);
        uint32_t* o = pd + (s * terms + t) * 256;
        for (int p = 0; p < 16; ++p) _mm512_store_si512(o + p * 16, r[p]);
      }
    }
  }
}

// C block rows i0.., columns j.. (mr × nr valid) from the tile results t (row stride ldt).
__attribute__((target("avx512f"))) void store_c(float* C, int64_t ldc, const float* t, int64_t ldt, int mr, int nr,
                                                 float alpha, bool acc) {
  const __m512 va = _mm512_set1_ps(alpha);
  for (int i = 0; i < mr; ++i) {
    float* c = C + i * ldc;
    for (int j = 0; j < nr; j += 16) {
      const int w = nr - j < 16 ? nr - j : 16;
      const __mmask16 m = static_cast<__mmask16>(w == 16 ? 0xffff : (1u << w) - 1);
      __m512 r = _mm512_mul_ps(va, _mm512_loadu_ps(t + i * ldt + j));
      if (acc) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, c + j));
      _mm512_mask_storeu_ps(c + j, m, r);
    }
  }
}

// 32 rows of A (tiles a0, a1: two 16-row groups, `steps` k steps of 1 KiB each) × two 16-column
// panels (b0, b1) → the 32 × 32 f32 block at c (row stride ldc floats), added to the sums of
// the earlier k steps at p (row stride ldp) or to zero (p null).
template <int TERMS>
__attribute__((target("amx-tile,amx-bf16"))) void tile_32x32(const uint16_t* a0, const uint16_t* a1, int64_t steps,
                                                             const uint32_t* b0, const uint32_t* b1, float* c,
                                                             int64_t ldc, const float* p, int64_t ldp) {
  const int64_t sc = ldc * 4;
  if (p) {
    _tile_loadd(0, p, ldp * 4);
    _tile_loadd(1, p + 16, ldp * 4);
    _tile_loadd(2, p + 16 * ldp, ldp * 4);
    _tile_loadd(3, p + 16 * ldp + 16, ldp * 4);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  for (int64_t s = 0; s < steps; ++s) {
    _tile_loadd(4, a0 + s * 512, 64);
    _tile_loadd(5, a1 + s * 512, 64);
    for (int tt = 0; tt < TERMS; ++tt) {
      _tile_loadd(6, b0 + (s * TERMS + tt) * 256, 64);
      _tile_loadd(7, b1 + (s * TERMS + tt) * 256, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, c, sc);
  _tile_stored(1, c + 16, sc);
  _tile_stored(2, c + 16 * ldc, sc);
  _tile_stored(3, c + 16 * ldc + 16, sc);
}

#endif  // LK_AMX

}  // namespace

// The weight's terms on this path (0: not taken): bf16 1, f16 2 (exact), quantized 1 (d·q
// rounded to bf16: as A's rounding, ≤ 2⁻⁹ relative; docs/ARCHITECTURE.md). LORAKIT_AMX_TERMS=1
// rounds f16 weights to one term too, =2 splits quantized ones into two (A/B runs).
int terms_for(int dt) {
  static const int env = [] {
    const char* s = std::getenv("LORAKIT_AMX_TERMS");
    return s && (*s == '1' || *s == '2') ? *s - '0' : 0;
  }();
  if (dt == 2) return 1;
  if (dt == 1) return env == 1 ? 1 : 2;
  if (quant::is_quant(dt)) return env == 2 ? 2 : 1;
  return 0;
}

bool applies(const gemm::Operand& A, const gemm::Operand& B, int64_t M, int64_t K) {
  return available() && A.dt == 0 && !A.trans && B.trans && terms_for(B.dt) > 0 && M > gemm::kGemvMaxRows && K > 0;
}

#if defined(LK_AMX)
// Calls f(i0, i1) on the pool for A's rows [0, Mp) in whole 32-row blocks, at most 4 tasks per thread.
template <class F>
void over_row_blocks(int64_t Mp, int nt, const F& f) {
  const int64_t row_blocks = Mp / 32;
  const int n = static_cast<int>(row_blocks < 4 * nt ? row_blocks : 4 * nt);
  parallel_for(n, [&](int t, int) { f(row_blocks * t / n * 32, row_blocks * (t + 1) / n * 32); });
}

// The columns per task: 128, fewer (down to 32) when that leaves under 4 tasks per thread.
int64_t column_block(int64_t N, int nt) {
  int64_t NB = 128;
  while (NB > 32 && (N + NB - 1) / NB < 4 * nt) NB /= 2;
  return NB;
}
#endif

// C = alpha · A · op(B) (+ C when acc); call only when applies().
void product(float* C, int64_t ldc, const gemm::Operand& A, const gemm::Operand& B, int64_t M, int64_t N, int64_t K,
         float alpha, bool acc) {
#if defined(LK_AMX)
  const int terms = terms_for(B.dt);
  const int64_t Kp = gemm::round_up(K, 32), Mp = gemm::round_up(M, 32);
  const int nt = num_threads();
  uint16_t* Ab = t_a.get<uint16_t>(static_cast<size_t>(Mp * Kp));
  const float* Af = static_cast<const float*>(A.p);
  over_row_blocks(Mp, nt, [&](int64_t i0, int64_t i1) { round_a_rows(Ab, Af, A.ld, M, K, Kp, i0, i1); });
  const int64_t NB = column_block(N, nt), n_blocks = (N + NB - 1) / NB;
  const int64_t row_stride = quant::is_quant(B.dt) ? B.ld / quant::block_values(B.dt) * quant::block_bytes(B.dt) : B.ld * 2;
  parallel_for(static_cast<int>(n_blocks), [&](int task, int) {
    const int64_t j0 = task * NB, nb = N - j0 < NB ? gemm::round_up(N - j0, 32) : NB;
    const int64_t panel = (Kp / 32) * terms * 256;
    uint32_t* Bp = t_b.get<uint32_t>(static_cast<size_t>(nb / 16 * panel));
    pack_b(Bp, B, N, K, Kp, j0, nb, terms);
    // per 32-row block of A, k chunks of kChunk steps (see the top of this file)
    alignas(64) float cs[32 * 128];
    const int64_t ks = Kp / 32, ldt = nb;
    // the weight rows of the task this thread likely takes next (task + nt: the pool hands out
    // tasks in order), prefetched into L2 a slice per row block, so its packing finds them there
    const int64_t nj0 = (task + nt) * NB;
    const char* pf = nj0 < N ? static_cast<const char*>(B.p) + nj0 * row_stride : nullptr;
    const int64_t pf_len = pf ? (N - nj0 < NB ? N - nj0 : NB) * row_stride : 0, row_blocks = Mp / 32;
    load_config();
    for (int64_t i0 = 0; i0 < M; i0 += 32) {
      const int mr = static_cast<int>(M - i0 < 32 ? M - i0 : 32);
      if (pf)
        for (int64_t o = pf_len * (i0 / 32) / row_blocks / 64 * 64; o < pf_len * (i0 / 32 + 1) / row_blocks; o += 64)
          _mm_prefetch(pf + o, _MM_HINT_T1);
      const uint16_t* a0 = Ab + (i0 / 16) * ks * 512;
      const uint16_t* a1 = a0 + ks * 512;
      for (int64_t k0 = 0; k0 < ks; k0 += kChunk) {
        const int64_t steps = ks - k0 < kChunk ? ks - k0 : kChunk;
        const bool last = k0 + steps == ks;
        for (int64_t jj = 0; jj < nb && j0 + jj < N; jj += 32) {
          const int nr = static_cast<int>(N - j0 - jj < 32 ? N - j0 - jj : 32);
          const bool direct = last && mr == 32 && nr == 32 && alpha == 1.f && !acc;
          float* c = direct ? C + i0 * ldc + j0 + jj : cs + jj;
          const uint32_t* b0 = Bp + (jj / 16) * panel + k0 * terms * 256;
          const float* p = k0 > 0 ? cs + jj : nullptr;
          if (terms == 1) tile_32x32<1>(a0 + k0 * 512, a1 + k0 * 512, steps, b0, b0 + panel, c, direct ? ldc : ldt, p, ldt);
          else tile_32x32<2>(a0 + k0 * 512, a1 + k0 * 512, steps, b0, b0 + panel, c, direct ? ldc : ldt, p, ldt);
          if (last && !direct) store_c(C + i0 * ldc + j0 + jj, ldc, cs + jj, ldt, mr, nr, alpha, acc);
        }
      }
    }
    release();
  });
#else
  (void)C, (void)ldc, (void)A, (void)B, (void)M, (void)N, (void)K, (void)alpha, (void)acc;
#endif
}

namespace {

// gemmInference(...gemm's arguments): gemm's product, on AMX where applies() (a prompt's rows
// against a half or quantized weight stored [N,K]), else gemm's own path. Shapes are checked
// at the op boundary (TypeScript), the array kinds as gemm checks them (read_gemm_args).
napi_value GemmInference(napi_env env, napi_callback_info info) {
  Args a(env, info);
  GemmCall g;
  if (!read_gemm_args(a, "gemmInference", g)) return nullptr;
  if (g.N > 0 && applies(g.A, g.B, g.M, g.K)) product(g.c, g.ldc, g.A, g.B, g.M, g.N, g.K, g.alpha, g.acc);
  else gemm::run(g.c, g.ldc, g.A, g.B, g.M, g.N, g.K, g.alpha, g.acc);
  return undefined(env);
}

// amxInfo(): whether gemmInference runs on AMX on this machine (CPU, kernel, LORAKIT_AMX).
napi_value AmxInfo(napi_env env, napi_callback_info) {
  napi_value v;
  napi_get_boolean(env, available(), &v);
  return v;
}

}  // namespace

// The helpers amx.h declares for attention_amx.cc (the tile state as product() uses it).
bool bf16_ready() { return available(); }
#if defined(LK_AMX)
void tiles_bf16() { load_config(); }
void tiles_release() { release(); }
#endif

}  // namespace amx

void RegisterAmx(napi_env env, napi_value exports) {
  export_fn(env, exports, "gemmInference", amx::GemmInference);
  export_fn(env, exports, "amxAvailable", amx::AmxInfo);
}

}  // namespace lk
