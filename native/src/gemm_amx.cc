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
// Q8_0 and Q4_0 weights can instead take AMX-INT8 (product_int8; off by default, measured in
// bench/RESULTS.md issue 24): A quantized per 32-block as llama.cpp's q8_0 activations, the
// weight's int8 values exact in the tiles, int32 block sums scaled by d_a · d_w in f32.
// Only the addon calls this (addon.cc registers gemmInference); training, evaluation and the
// parity tests never do: the backend routes a gemm here only while generation's forward has
// turned inference products on (backend/addon.ts). LORAKIT_AMX=0 turns it off.
//
// Blocking: the columns are cut into blocks of NB (a multiple of 32), one task each on the
// thread pool. A task packs its block of W, all of K, into the tiles' VNNI pair layout (per
// 16-column panel and 32-deep k step, 16 rows of 16 pairs (w[k], w[k+1]): one B tile,
// 1 KiB; a split weight stores its lo tile after its hi tile), then runs every 32-row block
// of A against it, 32×32 of C at a time (2 A tiles × 2 B tiles → 4 C tiles). A is rounded to
// bf16 once per call, by row blocks on the pool, into [Mp][Kp] (zero-padded to 32 × 32).
// No copy of a weight outlives the call: the packed block is a per-thread scratch of
// Kp · NB · terms bf16 values.
#include <atomic>
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
inline int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

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

// Q8_0 and Q4_0 weights on AMX-INT8 (see int8_for): the CPU has AMX-INT8 too, and the mode
// is on: LORAKIT_AMX_Q8=int8 at start, or amxInt8(true) (tests, A/B runs). Off by default: on
// a 512-token prompt it measured no faster than the bf16 terms, at ~3× their logit error
// (bench/RESULTS.md issue 24).
bool int8_supported() {
  static const bool yes = [] {
#if defined(LK_AMX)
    if (!available()) return false;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    return (d & (1u << 25)) != 0;  // AMX-INT8
#else
    return false;
#endif
  }();
  return yes;
}

std::atomic<bool>& int8_mode() {
  static std::atomic<bool> on{[] {
    const char* s = std::getenv("LORAKIT_AMX_Q8");
    return s != nullptr && std::strcmp(s, "int8") == 0;
  }()};
  return on;
}

bool int8_available() { return int8_supported() && int8_mode().load(std::memory_order_relaxed); }

#if defined(LK_AMX)

thread_local gemm::AlignedBuf t_a, t_b, t_row, t_tmp;

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

// A[M,K] f32 → dst [Mp][Kp] bf16 rows i0..i1 (round to nearest even; zero padding).
__attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl"))) void round_a_rows(uint16_t* dst, const float* A, int64_t lda,
                                                                          int64_t M, int64_t K, int64_t Kp, int64_t i0,
                                                                          int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) {
    uint16_t* d = dst + i * Kp;
    if (i >= M) {
      std::memset(d, 0, static_cast<size_t>(Kp) * 2);
      continue;
    }
    const float* a = A + i * lda;
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
      const __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(a + k));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + k), reinterpret_cast<const __m256i&>(h));
    }
    if (k < K) {
      const __mmask16 m = static_cast<__mmask16>((1u << (K - k)) - 1);
      const __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, a + k));
      _mm256_mask_storeu_epi16(d + k, m, reinterpret_cast<const __m256i&>(h));
      k += 16;
    }
    if (k < Kp) std::memset(d + k, 0, static_cast<size_t>(Kp - k) * 2);
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
  const int64_t row_bytes = (B.ld / 32) * bb;
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
    for (int64_t s = 0; s < ks; ++s) {
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

// C block rows i0.., columns j.. (mr × nr valid) from the tile results t[32][32].
__attribute__((target("avx512f"))) void store_c(float* C, int64_t ldc, const float* t, int mr, int nr, float alpha,
                                                 bool acc) {
  const __m512 va = _mm512_set1_ps(alpha);
  for (int i = 0; i < mr; ++i) {
    float* c = C + i * ldc;
    for (int j = 0; j < nr; j += 16) {
      const int w = nr - j < 16 ? nr - j : 16;
      const __mmask16 m = static_cast<__mmask16>(w == 16 ? 0xffff : (1u << w) - 1);
      __m512 r = _mm512_mul_ps(va, _mm512_loadu_ps(t + i * 32 + j));
      if (acc) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, c + j));
      _mm512_mask_storeu_ps(c + j, m, r);
    }
  }
}

// 32 rows of A (bf16 [.][Kp] at a) × two 16-column panels (b0, b1) → t[32][32] f32.
template <int TERMS>
__attribute__((target("amx-tile,amx-bf16"))) void tile_32x32(const uint16_t* a, int64_t Kp, const uint32_t* b0,
                                                             const uint32_t* b1, float* t) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  const int64_t ks = Kp / 32, sa = Kp * 2;
  for (int64_t s = 0; s < ks; ++s) {
    _tile_loadd(4, a + s * 32, sa);
    _tile_loadd(5, a + 16 * Kp + s * 32, sa);
    for (int tt = 0; tt < TERMS; ++tt) {
      _tile_loadd(6, b0 + (s * TERMS + tt) * 256, 64);
      _tile_loadd(7, b1 + (s * TERMS + tt) * 256, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, t, 128);
  _tile_stored(1, t + 16, 128);
  _tile_stored(2, t + 16 * 32, 128);
  _tile_stored(3, t + 16 * 32 + 16, 128);
}

// ---- AMX-INT8: Q8_0 / Q4_0 weights against A quantized per 32-block (llama.cpp's q8_0
// activations): d_a = max|a| / 127, q_a = round-to-nearest-even(a · (127 / max|a|)) (0 for an
// all-zero block); C[m,n] = Σ_b d_a[m,b] · d_w[n,b] · Σ_{k in b} q_a[m,k] · q_w[n,k], the inner
// sums exact in int32 (_tile_dpbssd), the outer ones f32 in zmm registers' order (per block, in
// order of b). The weight's int8 values go into the tiles as stored (Q4_0: nibble − 8).

// tiles 0-3: C (16 × 16 int32), 4-5: A (16 rows × 32 int8), 6-7: B (8 quad rows × 16 columns)
__attribute__((target("amx-tile"))) void load_config_int8() {
  TileConfig c;
  std::memset(&c, 0, sizeof c);
  c.palette = 1;
  for (int t = 0; t < 8; ++t) {
    c.colsb[t] = t == 4 || t == 5 ? 32 : 64;
    c.rows[t] = t >= 6 ? 8 : 16;
  }
  __asm__ __volatile__("" : : "r"(&c) : "memory");
  _tile_loadconfig(&c);
}

// A rows i0..i1 → q [Mp][Kb·32] int8 and d [Mp][Kb] f32 (rows past M: zero).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) void quant_a_rows(int8_t* q, float* d, const float* A,
                                                                                 int64_t lda, int64_t M, int64_t Kb,
                                                                                 int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) {
    int8_t* qi = q + i * Kb * 32;
    float* di = d + i * Kb;
    if (i >= M) {
      std::memset(qi, 0, static_cast<size_t>(Kb) * 32);
      for (int64_t b = 0; b < Kb; ++b) di[b] = 0.f;
      continue;
    }
    const float* a = A + i * lda;
    for (int64_t b = 0; b < Kb; ++b) {
      const __m512 x0 = _mm512_loadu_ps(a + 32 * b), x1 = _mm512_loadu_ps(a + 32 * b + 16);
      const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
      di[b] = amax / 127.f;
      const __m512 id = _mm512_set1_ps(amax != 0.f ? 127.f / amax : 0.f);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qi + 32 * b), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x0, id))));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qi + 32 * b + 16),
                       _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x1, id))));
    }
  }
}

// Columns j0 .. j0 + nb of op(B) (Q8_0 or Q4_0 rows; rows past N zero) → per 16-column panel
// and block b: a B tile qt[(panel·Kb + b)·128 + p·16 + c] = w[n][32b + 4p .. 4p + 3] as 4 int8,
// and the block scales dt[(panel·Kb + b)·16 + c] = d_w[n,b], n = j0 + 16·panel + c. Each
// block's 16 columns of 8 dwords are transposed in registers.
__attribute__((target("avx512f,avx512bw,avx512vl,f16c"))) void pack_b_int8(uint32_t* qt, float* dt,
                                                                            const gemm::Operand& B, int64_t N,
                                                                            int64_t Kb, int64_t j0, int64_t nb) {
  const int bb = quant::block_bytes(B.dt);
  const bool q8 = B.dt == quant::Q8_0;
  const int64_t row_bytes = (B.ld / 32) * bb;
  const __m128i lo4 = _mm_set1_epi8(15);
  const __m256i eight = _mm256_set1_epi8(8);
  for (int64_t q = 0; q < nb / 16; ++q) {
    uint32_t* pq = qt + q * Kb * 128;
    float* pd = dt + q * Kb * 16;
    const int64_t n0 = j0 + 16 * q;
    const int valid = static_cast<int>(N - n0 >= 16 ? 16 : (N - n0 > 0 ? N - n0 : 0));
    const uint8_t* base = static_cast<const uint8_t*>(B.p) + n0 * row_bytes;
    // the panel's 16 rows, each read front to back (a weight is read once per call, often cold)
    int8_t* rows = t_row.get<int8_t>(static_cast<size_t>(16 * Kb) * 32);
    uint16_t* d16 = t_tmp.get<uint16_t>(static_cast<size_t>(Kb) * 16);
    for (int c = 0; c < 16; ++c) {
      int8_t* rc = rows + c * Kb * 32;
      if (c >= valid) {
        std::memset(rc, 0, static_cast<size_t>(Kb) * 32);
        for (int64_t b = 0; b < Kb; ++b) d16[b * 16 + c] = 0;
        continue;
      }
      const uint8_t* row = base + c * row_bytes;
      for (int64_t b = 0; b < Kb; ++b) {
        const uint8_t* blk = row + b * bb;
        d16[b * 16 + c] = static_cast<uint16_t>(blk[0] | (blk[1] << 8));
        __m256i v;
        if (q8) {
          v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
        } else {
          const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
          v = _mm256_sub_epi8(_mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), lo4), _mm_and_si128(x, lo4)), eight);
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(rc + b * 32), v);
      }
    }
    for (int64_t b = 0; b < Kb; ++b) {
      __m512i r[16];
      for (int c = 0; c < 16; ++c)
        r[c] = _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows + (c * Kb + b) * 32)));
      transpose16(r);
      uint32_t* o = pq + b * 128;
      for (int p = 0; p < 8; ++p) _mm512_store_si512(o + p * 16, r[p]);
      _mm512_store_ps(pd + b * 16, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(d16 + b * 16))));
    }
  }
}

// 32 rows of quantized A (q at a, [.][Kb·32]; scales da [.][Kb]) × two 16-column panels
// (tiles b0, b1; scales w0, w1) → acc[32][32] f32, 16 rows at a time. Per block: 2 int32
// tiles (16 × 32 of C), stored to one of two scratches; consecutive blocks use the other pair of
// C tiles and the other A tile (tiles are not renamed: a block's zeroing would otherwise wait
// for the previous block's stores), and the vector work (per row and 16 columns one
// vcvtdq2ps, one multiply of d_a by d_w, one fma) reads the previous block's scratch.
__attribute__((target("avx512f"))) inline void scale_add(__m512 c[16][2], const int32_t* t, const float* da,
                                                          int64_t Kb, int64_t b, const float* w0, const float* w1) {
  const __m512 v0 = _mm512_load_ps(w0 + b * 16), v1 = _mm512_load_ps(w1 + b * 16);
  for (int r = 0; r < 16; ++r) {
    const __m512 s = _mm512_set1_ps(da[r * Kb + b]);
    c[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(t + r * 32)), _mm512_mul_ps(s, v0), c[r][0]);
    c[r][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(t + r * 32 + 16)), _mm512_mul_ps(s, v1), c[r][1]);
  }
}

// one block of 16 rows × 32 columns into tiles C0, C1 with A tile TA (the tile intrinsics take
// literal tile numbers)
#define LK_INT8_BLOCK(C0, C1, TA)    \
  do {                               \
    _tile_zero(C0);                  \
    _tile_zero(C1);                  \
    _tile_loadd(TA, ab, sa);         \
    _tile_loadd(6, bb0, 64);         \
    _tile_loadd(7, bb1, 64);         \
    _tile_dpbssd(C0, TA, 6);         \
    _tile_dpbssd(C1, TA, 7);         \
    _tile_stored(C0, t, 128);        \
    _tile_stored(C1, t + 16, 128);   \
  } while (0)

__attribute__((target("amx-tile,amx-int8,avx512f"))) void int8_32x32(const int8_t* a, const float* da, int64_t Kb,
                                                                      const uint32_t* b0, const uint32_t* b1,
                                                                      const float* w0, const float* w1, float* acc,
                                                                      int32_t* scr) {
  const int64_t sa = Kb * 32;
  for (int h = 0; h < 2; ++h) {
    const int8_t* ah = a + h * 16 * sa;
    const float* dh = da + h * 16 * Kb;
    __m512 c[16][2];
    for (int r = 0; r < 16; ++r) c[r][0] = c[r][1] = _mm512_setzero_ps();
    for (int64_t b = 0; b < Kb; ++b) {
      int32_t* t = scr + (b & 1) * 512;
      const int8_t* ab = ah + b * 32;
      const uint32_t *bb0 = b0 + b * 128, *bb1 = b1 + b * 128;
      if (b & 1) LK_INT8_BLOCK(2, 3, 5);
      else LK_INT8_BLOCK(0, 1, 4);
      if (b > 0) scale_add(c, scr + ((b - 1) & 1) * 512, dh, Kb, b - 1, w0, w1);
    }
    scale_add(c, scr + ((Kb - 1) & 1) * 512, dh, Kb, Kb - 1, w0, w1);
    for (int r = 0; r < 16; ++r) {
      _mm512_store_ps(acc + (h * 16 + r) * 32, c[r][0]);
      _mm512_store_ps(acc + (h * 16 + r) * 32 + 16, c[r][1]);
    }
  }
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

// Q8_0 and Q4_0 weights (whole blocks) take AMX-INT8 with A quantized per 32-block, as
// llama.cpp's products on these formats do, when int8_available() (off by default).
bool int8_for(const gemm::Operand& B, int64_t K) {
  return (B.dt == quant::Q8_0 || B.dt == quant::Q4_0) && K % 32 == 0 && B.ld % 32 == 0 && int8_available();
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

#if defined(LK_AMX)
// The AMX-INT8 product (int8_for): as product() below, A quantized instead of rounded.
void product_int8(float* C, int64_t ldc, const gemm::Operand& A, const gemm::Operand& B, int64_t M, int64_t N,
                  int64_t K, float alpha, bool acc) {
  const int64_t Kb = K / 32, Mp = round_up(M, 32);
  const int nt = num_threads();
  int8_t* Aq = t_a.get<int8_t>(static_cast<size_t>(Mp * Kb) * 36);
  float* Ad = reinterpret_cast<float*>(Aq + Mp * Kb * 32);
  const float* Af = static_cast<const float*>(A.p);
  over_row_blocks(Mp, nt, [&](int64_t i0, int64_t i1) { quant_a_rows(Aq, Ad, Af, A.ld, M, Kb, i0, i1); });
  const int64_t NB = column_block(N, nt), n_blocks = (N + NB - 1) / NB;
  parallel_for(static_cast<int>(n_blocks), [&](int task, int) {
    const int64_t j0 = task * NB, nb = N - j0 < NB ? round_up(N - j0, 32) : NB;
    const int64_t panels = nb / 16;
    uint32_t* Bq = t_b.get<uint32_t>(static_cast<size_t>(panels * Kb) * (128 + 16));
    float* Bd = reinterpret_cast<float*>(Bq + panels * Kb * 128);
    pack_b_int8(Bq, Bd, B, N, Kb, j0, nb);
    alignas(64) float t[32 * 32];
    alignas(64) int32_t scr[2 * 32 * 32];
    load_config_int8();
    for (int64_t i0 = 0; i0 < M; i0 += 32) {
      const int mr = static_cast<int>(M - i0 < 32 ? M - i0 : 32);
      for (int64_t jj = 0; jj < nb; jj += 32) {
        if (j0 + jj >= N) break;
        const int64_t q = jj / 16;
        int8_32x32(Aq + i0 * Kb * 32, Ad + i0 * Kb, Kb, Bq + q * Kb * 128, Bq + (q + 1) * Kb * 128, Bd + q * Kb * 16,
                   Bd + (q + 1) * Kb * 16, t, scr);
        const int nr = static_cast<int>(N - j0 - jj < 32 ? N - j0 - jj : 32);
        store_c(C + i0 * ldc + j0 + jj, ldc, t, mr, nr, alpha, acc);
      }
    }
    release();
  });
}
#endif

// C = alpha · A · op(B) (+ C when acc); call only when applies().
void product(float* C, int64_t ldc, const gemm::Operand& A, const gemm::Operand& B, int64_t M, int64_t N, int64_t K,
         float alpha, bool acc) {
#if defined(LK_AMX)
  if (int8_for(B, K)) {
    product_int8(C, ldc, A, B, M, N, K, alpha, acc);
    return;
  }
  const int terms = terms_for(B.dt);
  const int64_t Kp = round_up(K, 32), Mp = round_up(M, 32);
  const int nt = num_threads();
  uint16_t* Ab = t_a.get<uint16_t>(static_cast<size_t>(Mp * Kp));
  const float* Af = static_cast<const float*>(A.p);
  over_row_blocks(Mp, nt, [&](int64_t i0, int64_t i1) { round_a_rows(Ab, Af, A.ld, M, K, Kp, i0, i1); });
  const int64_t NB = column_block(N, nt), n_blocks = (N + NB - 1) / NB;
  parallel_for(static_cast<int>(n_blocks), [&](int task, int) {
    const int64_t j0 = task * NB, nb = N - j0 < NB ? round_up(N - j0, 32) : NB;
    const int64_t panel = (Kp / 32) * terms * 256;
    uint32_t* Bp = t_b.get<uint32_t>(static_cast<size_t>(nb / 16 * panel));
    pack_b(Bp, B, N, K, Kp, j0, nb, terms);
    alignas(64) float t[32 * 32];
    load_config();
    for (int64_t i0 = 0; i0 < M; i0 += 32) {
      const int mr = static_cast<int>(M - i0 < 32 ? M - i0 : 32);
      for (int64_t jj = 0; jj < nb; jj += 32) {
        if (j0 + jj >= N) break;
        const uint32_t* b0 = Bp + (jj / 16) * panel;
        if (terms == 1) tile_32x32<1>(Ab + i0 * Kp, Kp, b0, b0 + panel, t);
        else tile_32x32<2>(Ab + i0 * Kp, Kp, b0, b0 + panel, t);
        const int nr = static_cast<int>(N - j0 - jj < 32 ? N - j0 - jj : 32);
        store_c(C + i0 * ldc + j0 + jj, ldc, t, mr, nr, alpha, acc);
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

// amxInt8([on]): whether gemmInference takes Q8_0 and Q4_0 weights on AMX-INT8 (A quantized
// per 32-block) instead of the bf16 terms; a boolean sets it (no effect without AMX-INT8,
// AMX or with LORAKIT_AMX=0). Starts as LORAKIT_AMX_Q8=int8 says.
napi_value AmxInt8(napi_env env, napi_callback_info info) {
  Args a(env, info);
  if (a.argc >= 1) {
    bool on = false;
    if (napi_get_value_bool(env, a.argv[0], &on) != napi_ok) {
      napi_throw_type_error(env, nullptr, "amxInt8: expected a boolean");
      return nullptr;
    }
    int8_mode().store(on, std::memory_order_relaxed);
  }
  napi_value v;
  napi_get_boolean(env, int8_available(), &v);
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
  export_fn(env, exports, "amxInt8", amx::AmxInt8);
}

}  // namespace lk
