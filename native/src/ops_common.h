// Shared pieces of the non-GEMM kernels: task splitting, run-time AVX2 dispatch, half
// widening and narrowing, and AVX2 vector math (exp, erfc, horizontal sums).
// Functions with the "avx2,fma" target are only called after avx2() said yes; they exist on
// x86 only (LK_X86). Elsewhere avx2() is constant false and the portable bodies run,
// vectorised by the compiler for the build target (NEON on ARM64, SIMD128 in WebAssembly).
#pragma once
#if defined(__x86_64__) || defined(__i386__)
#define LK_X86 1
#include <immintrin.h>
#else
#define LK_X86 0
#endif

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

#include "napi_util.h"
#include "threadpool.h"

namespace lk {

bool cpu_has_avx2_fma();  // cpu.cc

#if LK_X86
#define LK_AVX2 __attribute__((target("avx2,fma")))
#define LK_F16C __attribute__((target("avx2,fma,f16c")))

// AVX2 + FMA kernels may run (LORAKIT_NO_AVX2=1 says no).
inline bool avx2() {
  static const bool yes = cpu_has_avx2_fma();
  return yes;
}
#else
#define LK_AVX2
#define LK_F16C
constexpr bool avx2() { return false; }
#endif
// F16C as well, for the f16 conversions (every AVX2 CPU we know of has it; checked anyway).
inline bool f16c() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool yes = avx2() && __builtin_cpu_supports("f16c");
  return yes;
#else
  return false;
#endif
}

// Runs fn(task, thread) for task in [0, ntasks): inline when there is one task, else on the pool.
inline void run_tasks(int64_t ntasks, const std::function<void(int, int)>& fn) {
  if (ntasks <= 0) return;
  if (ntasks == 1 || num_threads() <= 1) {
    for (int t = 0; t < ntasks; ++t) fn(t, 0);
    return;
  }
  parallel_for(static_cast<int>(ntasks), fn);
}

// Splits [0, n) into chunks of at least `grain` items, a few per thread, and runs
// fn(begin, end, thread) on each.
inline void run_chunks(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  int64_t nt = num_threads();
  int64_t chunks = n / (grain > 0 ? grain : 1);
  if (chunks > 4 * nt) chunks = 4 * nt;
  if (chunks < 1) chunks = 1;
  const int64_t per = (n + chunks - 1) / chunks;
  chunks = (n + per - 1) / per;
  run_tasks(chunks, [&](int task, int thread) {
    const int64_t b = task * per;
    const int64_t e = b + per < n ? b + per : n;
    fn(b, e, thread);
  });
}

// ---- half precision (dtype codes: F32, F16, BF16) ----

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline float f16_to_f32(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while (!(mant & 0x400u)) { mant <<= 1; exp--; }
      bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// round to nearest even; NaN stays a quiet NaN (as src/tensor/half.ts)
inline uint16_t f32_to_bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1)) >> 16);
}

inline uint16_t f32_to_f16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  const uint32_t sign = (bits >> 16) & 0x8000u;
  const int32_t exp8 = static_cast<int32_t>((bits >> 23) & 0xff);
  uint32_t mant = bits & 0x7fffffu;
  if (exp8 == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0));
  int32_t e = exp8 - 127 + 15;
  if (e >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {  // subnormal half (or zero)
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t m = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (m & 1))) m++;
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t m = mant >> 13;
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (m & 1))) {
    m++;
    if (m == 0x400u) {
      m = 0;
      if (++e >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00u);
    }
  }
  return static_cast<uint16_t>(sign | (static_cast<uint32_t>(e) << 10) | m);
}

#if LK_X86
LK_F16C inline void widen_f16_f16c(float* dst, const uint16_t* src, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

LK_AVX2 inline void widen_bf16_avx2(float* dst, const uint16_t* src, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
  }
  for (; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
}
#endif

// dst[n] = widen(src[off .. off+n)) for src of dtype dt (F32 copies).
inline void widen_into(float* dst, const void* src, int dt, int64_t off, int64_t n) {
  if (dt == F32) {
    std::memcpy(dst, static_cast<const float*>(src) + off, static_cast<size_t>(n) * 4);
    return;
  }
  const uint16_t* s = static_cast<const uint16_t*>(src) + off;
  if (dt == BF16) {
#if LK_X86
    if (avx2()) { widen_bf16_avx2(dst, s, n); return; }
#endif
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
  } else {
#if LK_X86
    if (f16c()) { widen_f16_f16c(dst, s, n); return; }
#endif
    for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
  }
}

// Reads a Storage argument (Float32Array for F32, Uint16Array for F16/BF16). Throws a
// TypeError naming the function when the array type does not fit the dtype code.
inline bool get_storage(Args& a, size_t i, int dt, const void*& p, size_t& n, const char* fn, const char* name, bool allow_null = false) {
  View v;
  if (!get_view(a, i, v, fn, name, allow_null)) return false;
  if (v.is_null) { p = nullptr; n = 0; return true; }
  const bool ok = dt == F32 ? v.type == napi_float32_array : (dt == F16 || dt == BF16) && v.type == napi_uint16_array;
  if (!ok) {
    throw_type(a.env, std::string(fn) + ": argument " + name + (dt == F32 ? " must be a Float32Array" : " must be a Uint16Array (f16/bf16 bits)"));
    return false;
  }
  p = v.data;
  n = v.length;
  return true;
}

// ---- AVX2 vector math ----
#if LK_X86

LK_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

LK_AVX2 inline double hsum_pd(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

LK_AVX2 inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// acc += the 8 floats of v, widened to f64
LK_AVX2 inline __m256d add_wide(__m256d acc, __m256 v) {
  acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  return _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

// e^x to ~2 ulp: x = n·ln2 + r with |r| ≤ ln2/2, e^r by its degree-7 Taylor polynomial
// (truncation < 6e-9), times 2^n built in the exponent field. e^x = 0 below -87.3
// (including -inf), +inf above 88.7; NaN propagates.
LK_AVX2 inline __m256 exp256(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.0f), lo = _mm256_set1_ps(-87.3f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  const __m256 over = _mm256_cmp_ps(x, _mm256_set1_ps(88.72f), _CMP_GT_OQ);
  __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);  // NaN -> lo; restored below
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  y = _mm256_andnot_ps(under, y);
  y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), over);
  return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

// erfc(z) for z ≥ 0 as t·exp(−z² + h(t)), t = 1/(1 + z/2), h a degree-11 polynomial
// least-squares fitted (by us, in f64) to log(erfc(z)·e^{z²}/t) over t in (0, 1]:
// relative error ≈ 2e-7 in f32. z² is split with an FMA so large z lose nothing to it.
LK_AVX2 inline __m256 erfc_pos256(__m256 z) {
  static const float c[12] = {-1.265512124e+00f, 9.999999273e-01f, 3.750201912e-01f, 8.259257686e-02f,
                              -7.473537223e-02f, -2.337024815e-01f, 3.355249458e-01f, -1.225397545e+00f,
                              2.398701644e+00f, -2.205084323e+00f, 9.913481161e-01f, -1.787555653e-01f};
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(z, _mm256_set1_ps(0.5f), one));
  __m256 h = _mm256_set1_ps(c[11]);
  for (int k = 10; k >= 0; --k) h = _mm256_fmadd_ps(h, t, _mm256_set1_ps(c[k]));
  const __m256 z2 = _mm256_mul_ps(z, z);
  const __m256 z2err = _mm256_fmsub_ps(z, z, z2);  // z·z − z2, exactly
  const __m256 e = exp256(_mm256_sub_ps(h, z2));
  return _mm256_mul_ps(_mm256_mul_ps(t, e), _mm256_sub_ps(one, z2err));
}
#endif  // LK_X86

}  // namespace lk
