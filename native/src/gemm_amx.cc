// Inference-only prompt products on AMX-BF16 (issue 24; docs/ARCHITECTURE.md §Decoding,
// "Prompt products on AMX").
//
// C[M,N] (+)= alpha · A[M,K] · Wᵀ for f32 A (as stored) and a weight W stored [N,K] in bf16,
// f16 or GGML blocks, with M > kGemvMaxRows (a prompt's rows; fewer rows stay on gemv.cc).
// Numerics differ from gemm.cc's f32 product on purpose, as llama.cpp's do: A is rounded to
// bf16 (round to nearest even) and the sums are f32 in the tiles. The weight is split into
// bf16 terms exactly where it can be: a bf16 weight is one term (its exact value); an f16 one
// two (hi = its top 8 significant bits, lo = the rest: hi + lo is the f16 value exactly), so
// the product is a_bf16 · w exactly summed in f32; a quantized one (dequantized d·q in f32)
// two as well (hi = truncation, lo = round(w − hi): 16 of its ≤ 19 significant bits).
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
#include <cstdint>
#include <cstdlib>
#include <cstring>

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

#if defined(LK_AMX)

struct Buf {  // grows, 64-byte aligned
  void* p = nullptr;
  size_t n = 0;
  ~Buf() { std::free(p); }
  void* get(size_t bytes) {
    if (bytes > n) {
      std::free(p);
      n = (bytes + 63) / 64 * 64;
      p = std::aligned_alloc(64, n);
    }
    return p;
  }
};
thread_local Buf t_a, t_b, t_row, t_tmp;

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

// 16×16 transpose of 32-bit elements: r[i] holds row i; on return r[j] holds column j.
__attribute__((target("avx512f"))) inline void transpose16(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_i32x4(u[i], u[4 + i], 0x88);
    t[4 + i] = _mm512_shuffle_i32x4(u[i], u[4 + i], 0xdd);
    t[8 + i] = _mm512_shuffle_i32x4(u[8 + i], u[12 + i], 0x88);
    t[12 + i] = _mm512_shuffle_i32x4(u[8 + i], u[12 + i], 0xdd);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[8 + i], 0x88);
    r[4 + i] = _mm512_shuffle_i32x4(t[4 + i], t[12 + i], 0x88);
    r[8 + i] = _mm512_shuffle_i32x4(t[i], t[8 + i], 0xdd);
    r[12 + i] = _mm512_shuffle_i32x4(t[4 + i], t[12 + i], 0xdd);
  }
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
  float* rows = in_place ? nullptr : static_cast<float*>(t_row.get(static_cast<size_t>(16 * Kp) * 4));
  float* tmp = static_cast<float*>(t_tmp.get(256 * 4));
  const __m512i himask = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  for (int64_t q = 0; q < nb / 16; ++q) {
    const int64_t n0 = j0 + 16 * q;
    const int valid = static_cast<int>(N - n0 >= 16 ? 16 : (N - n0 > 0 ? N - n0 : 0));
    uint32_t* pd = dst + q * panel;
    if (!in_place)
      for (int c = 0; c < valid; ++c) weight_row(rows + c * Kp, B, n0 + c, K, Kp, tmp);
    for (int64_t s = 0; s < ks; ++s) {
      for (int t = 0; t < terms; ++t) {
        __m512i r[16];
        for (int c = 0; c < 16; ++c) {
          if (c >= valid) {
            r[c] = _mm512_setzero_si512();
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

#endif  // LK_AMX

}  // namespace

// The weight's terms on this path (0: not taken): bf16 1, f16 2, quantized 2;
// LORAKIT_AMX_TERMS=1 rounds f16 and quantized weights to one bf16 term (A/B runs only).
int terms_for(int dt) {
  static const int split = [] {
    const char* s = std::getenv("LORAKIT_AMX_TERMS");
    return s && *s == '1' ? 1 : 2;
  }();
  if (dt == 2) return 1;
  if (dt == 1 || quant::is_quant(dt)) return split;
  return 0;
}

bool applies(const gemm::Operand& A, const gemm::Operand& B, int64_t M, int64_t K) {
  return available() && A.dt == 0 && !A.trans && B.trans && terms_for(B.dt) > 0 && M > gemm::kGemvMaxRows && K > 0;
}

// C = alpha · A · op(B) (+ C when acc); call only when applies().
void product(float* C, int64_t ldc, const gemm::Operand& A, const gemm::Operand& B, int64_t M, int64_t N, int64_t K,
         float alpha, bool acc) {
#if defined(LK_AMX)
  const int terms = terms_for(B.dt);
  const int64_t Kp = round_up(K, 32), Mp = round_up(M, 32);
  const int nt = num_threads();
  uint16_t* Ab = static_cast<uint16_t*>(t_a.get(static_cast<size_t>(Mp * Kp) * 2));
  const float* Af = static_cast<const float*>(A.p);
  const int64_t row_blocks = Mp / 32;
  const int n_ra = static_cast<int>(row_blocks < 4 * nt ? row_blocks : 4 * nt);
  parallel_for(n_ra, [&](int t, int) {
    const int64_t b0 = row_blocks * t / n_ra, b1 = row_blocks * (t + 1) / n_ra;
    round_a_rows(Ab, Af, A.ld, M, K, Kp, b0 * 32, b1 * 32);
  });
  // column blocks: 128 columns, fewer when that leaves under 4 tasks per thread
  int64_t NB = 128;
  while (NB > 32 && (N + NB - 1) / NB < 4 * nt) NB /= 2;
  const int64_t n_blocks = (N + NB - 1) / NB;
  parallel_for(static_cast<int>(n_blocks), [&](int task, int) {
    const int64_t j0 = task * NB, nb = N - j0 < NB ? round_up(N - j0, 32) : NB;
    const int64_t panel = (Kp / 32) * terms * 256;
    uint32_t* Bp = static_cast<uint32_t*>(t_b.get(static_cast<size_t>(nb / 16 * panel) * 4));
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

}  // namespace

}  // namespace amx

void RegisterAmx(napi_env env, napi_value exports) {
  export_fn(env, exports, "gemmInference", amx::GemmInference);
  export_fn(env, exports, "amxAvailable", amx::AmxInfo);
}

}  // namespace lk
