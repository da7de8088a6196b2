// Non-GEMM kernels: elementwise, bias, norms, softmax, activations, embedding, rope,
// cross-entropy and AdamW (attention is in ops_attention.cc). Each kernel has a portable
// body and, where it pays, an AVX2+FMA one chosen at run time; rows or chunks of elements
// are spread over the thread pool. Reductions (norms, softmax, cross-entropy, sumSquares)
// accumulate in f64 so they match the f64 reference to ~1e-6.
#include <algorithm>
#include <vector>

#include "gemm.h"
#include "ops_common.h"
#include "quant.h"
#include "simd.h"

namespace lk {
void RegisterAttention(napi_env env, napi_value exports);  // ops_attention.cc

namespace {

#define LK_INLINE __attribute__((always_inline))

constexpr int64_t kGrain = 1 << 14;  // elements per task, at least, for elementwise work

// Simple loops are written once as always-inline bodies and compiled twice: plain (SSE2)
// and inside an "avx2,fma" wrapper, where GCC vectorises them with AVX2.
template <typename Body>
LK_AVX2 void run_avx2(const Body& body) { body(); }

template <typename Body>
void dispatch(const Body& body) {
  if (avx2()) run_avx2(body);
  else body();
}

// avx2_call when the CPU has AVX2+FMA, else portable_call; off x86 the AVX2 functions do
// not exist and only portable_call is compiled.
#if LK_X86
#define LK_AVX2_OR(avx2_call, portable_call) (avx2() ? (avx2_call) : (portable_call))
#else
#define LK_AVX2_OR(avx2_call, portable_call) (portable_call)
#endif

// ============================== elementwise ==============================

// out[n] = a[n] + b[n] (out may alias a or b)
napi_value Add(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *out, *x, *y; size_t n, n1, n2;
  if (!get_f32(a, 0, out, n, "add", "out") || !get_f32(a, 1, x, n1, "add", "a") || !get_f32(a, 2, y, n2, "add", "b")) return nullptr;
  run_chunks(static_cast<int64_t>(n), kGrain, [&](int64_t b, int64_t e, int) {
    dispatch([&]() LK_INLINE { for (int64_t i = b; i < e; ++i) out[i] = x[i] + y[i]; });
  });
  return undefined(env);
}

// y[n] += alpha · x[n]
napi_value Axpy(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *y, *x; size_t n, n1;
  if (!get_f32(a, 0, y, n, "axpy", "y") || !get_f32(a, 1, x, n1, "axpy", "x")) return nullptr;
  const float alpha = static_cast<float>(get_num(a, 2));
  run_chunks(static_cast<int64_t>(n), kGrain, [&](int64_t b, int64_t e, int) {
    dispatch([&]() LK_INLINE { for (int64_t i = b; i < e; ++i) y[i] += alpha * x[i]; });
  });
  return undefined(env);
}

// out[n] = a[n] · s (out may alias a)
napi_value Scale(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *out, *x; size_t n, n1;
  if (!get_f32(a, 0, out, n, "scale", "out") || !get_f32(a, 1, x, n1, "scale", "a")) return nullptr;
  const float s = static_cast<float>(get_num(a, 2));
  run_chunks(static_cast<int64_t>(n), kGrain, [&](int64_t b, int64_t e, int) {
    dispatch([&]() LK_INLINE { for (int64_t i = b; i < e; ++i) out[i] = x[i] * s; });
  });
  return undefined(env);
}

#if LK_X86
LK_AVX2 double sum_squares_avx2(const float* x, int64_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    a0 = _mm256_fmadd_pd(lo, lo, a0);
    a1 = _mm256_fmadd_pd(hi, hi, a1);
  }
  double s = hsum_pd(_mm256_add_pd(a0, a1));
  for (; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return s;
}

#endif
double sum_squares_portable(const float* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return s;
}

// Σ x[n]² in f64
napi_value SumSquares(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float* x; size_t n;
  if (!get_f32(a, 0, x, n, "sumSquares", "x")) return nullptr;
  const int64_t nt = num_threads();
  std::vector<double> part(static_cast<size_t>(4 * nt + 1), 0.0);
  // one slot per chunk; run_chunks makes at most 4·threads chunks
  const int64_t per = std::max<int64_t>(kGrain, (static_cast<int64_t>(n) + 4 * nt - 1) / (4 * nt));
  const int64_t chunks = (static_cast<int64_t>(n) + per - 1) / per;
  run_tasks(chunks, [&](int task, int) {
    const int64_t b = task * per, e = std::min<int64_t>(b + per, static_cast<int64_t>(n));
    part[static_cast<size_t>(task)] = LK_AVX2_OR(sum_squares_avx2(x + b, e - b), sum_squares_portable(x + b, e - b));
  });
  double s = 0;
  for (int64_t t = 0; t < chunks; ++t) s += part[static_cast<size_t>(t)];
  return number(env, s);
}

// out[n] f32 = widen(src[n] f16/bf16)
napi_value Widen(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float* out; size_t n;
  const void* src; size_t ns;
  const int dt = static_cast<int>(get_int(a, 2, BF16));
  if (!get_f32(a, 0, out, n, "widen", "out") || !get_storage(a, 1, dt == F16 ? F16 : BF16, src, ns, "widen", "src")) return nullptr;
  run_chunks(static_cast<int64_t>(n), kGrain, [&](int64_t b, int64_t e, int) { widen_into(out + b, src, dt, b, e - b); });
  return undefined(env);
}

#if LK_X86
LK_F16C void narrow_f16_f16c(uint16_t* dst, const float* src, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(src + i);
    // F16C keeps NaN payload bits; the reference writes a canonical quiet NaN: do those by hand
    if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))) {
      for (int64_t j = i; j < i + 8; ++j) dst[j] = f32_to_f16(src[j]);
      continue;
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  for (; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

#endif
// out[n] f16/bf16 = round-to-nearest-even(src[n])
napi_value Narrow(napi_env env, napi_callback_info info) {
  Args a(env, info);
  View vo;
  float* src; size_t ns;
  const int dt = static_cast<int>(get_int(a, 2, BF16));
  if (!get_view(a, 0, vo, "narrow", "out") || !get_f32(a, 1, src, ns, "narrow", "src")) return nullptr;
  if (vo.type != napi_uint16_array) { throw_type(env, "narrow: argument out must be a Uint16Array"); return nullptr; }
  uint16_t* out = static_cast<uint16_t*>(vo.data);
  run_chunks(static_cast<int64_t>(vo.length), kGrain, [&](int64_t b, int64_t e, int) {
    if (dt == F16) {
#if LK_X86
      if (f16c()) narrow_f16_f16c(out + b, src + b, e - b);
      else
#endif
      for (int64_t i = b; i < e; ++i) out[i] = f32_to_f16(src[i]);
    } else {
      dispatch([&]() LK_INLINE { for (int64_t i = b; i < e; ++i) out[i] = f32_to_bf16(src[i]); });
    }
  });
  return undefined(env);
}

// ============================== bias ==============================

// Holds a [n] parameter as f32: the array itself when it is f32, else a widened copy.
struct F32Param {
  std::vector<float> buf;
  const float* p = nullptr;
  void load(const void* src, int dt, int64_t n) {
    if (!src) { p = nullptr; return; }
    if (dt == F32) { p = static_cast<const float*>(src); return; }
    buf.resize(static_cast<size_t>(n));
    widen_into(buf.data(), src, dt, 0, n);
    p = buf.data();
  }
};

// out[M,N] += bias[N]
napi_value BiasAdd(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float* out; size_t no;
  const void* bias; size_t nb;
  const int dt = static_cast<int>(get_int(a, 4, F32));
  if (!get_f32(a, 0, out, no, "biasAdd", "out") || !get_storage(a, 1, dt, bias, nb, "biasAdd", "bias")) return nullptr;
  const int64_t M = get_int(a, 2), N = get_int(a, 3);
  F32Param b;
  b.load(bias, dt, N);
  const float* bp = b.p;
  run_chunks(M, std::max<int64_t>(1, kGrain / std::max<int64_t>(N, 1)), [&](int64_t r0, int64_t r1, int) {
    dispatch([&]() LK_INLINE {
      for (int64_t r = r0; r < r1; ++r) {
        float* o = out + r * N;
        for (int64_t j = 0; j < N; ++j) o[j] += bp[j];
      }
    });
  });
  return undefined(env);
}

// dbias[N] += Σ_rows dout[M,N] (tasks own column ranges: no races)
napi_value BiasBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *db, *dout; size_t n1, n2;
  if (!get_f32(a, 0, db, n1, "biasBackward", "dbias") || !get_f32(a, 1, dout, n2, "biasBackward", "dout")) return nullptr;
  const int64_t M = get_int(a, 2), N = get_int(a, 3);
  const int64_t grain = std::max<int64_t>(64, kGrain / std::max<int64_t>(M, 1));
  run_chunks(N, grain, [&](int64_t c0, int64_t c1, int) {
    std::vector<float> acc(static_cast<size_t>(c1 - c0), 0.f);
    float* s = acc.data();
    dispatch([&]() LK_INLINE {
      for (int64_t r = 0; r < M; ++r) {
        const float* d = dout + r * N + c0;
        for (int64_t j = 0; j < c1 - c0; ++j) s[j] += d[j];
      }
      for (int64_t j = 0; j < c1 - c0; ++j) db[c0 + j] += s[j];
    });
  });
  return undefined(env);
}

// ============================== normalisation ==============================

// Σ x[i]·y[i] and Σ x[i] over n, in f64
#if LK_X86
LK_AVX2 double dot_avx2(const float* x, const float* y, int64_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 u = _mm256_loadu_ps(x + i), v = _mm256_loadu_ps(y + i);
    a0 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(u)), _mm256_cvtps_pd(_mm256_castps256_ps128(v)), a0);
    a1 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(u, 1)), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), a1);
  }
  double s = hsum_pd(_mm256_add_pd(a0, a1));
  for (; i < n; ++i) s += static_cast<double>(x[i]) * y[i];
  return s;
}

LK_AVX2 double sum_avx2(const float* x, int64_t n) {
  __m256d a0 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) a0 = add_wide(a0, _mm256_loadu_ps(x + i));
  double s = hsum_pd(a0);
  for (; i < n; ++i) s += x[i];
  return s;
}

// Σ (x[i] − m)²
LK_AVX2 double sq_dev_avx2(const float* x, float m, int64_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  const __m256d mv = _mm256_set1_pd(m);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 u = _mm256_loadu_ps(x + i);
    const __m256d lo = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(u)), mv);
    const __m256d hi = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(u, 1)), mv);
    a0 = _mm256_fmadd_pd(lo, lo, a0);
    a1 = _mm256_fmadd_pd(hi, hi, a1);
  }
  double s = hsum_pd(_mm256_add_pd(a0, a1));
  for (; i < n; ++i) s += (static_cast<double>(x[i]) - m) * (static_cast<double>(x[i]) - m);
  return s;
}

#endif
double dot_portable(const float* x, const float* y, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * y[i];
  return s;
}
double sum_portable(const float* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i];
  return s;
}
double sq_dev_portable(const float* x, double m, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += (x[i] - m) * (x[i] - m);
  return s;
}

double dot_any(const float* x, const float* y, int64_t n) { return LK_AVX2_OR(dot_avx2(x, y, n), dot_portable(x, y, n)); }
double sum_any(const float* x, int64_t n) { return LK_AVX2_OR(sum_avx2(x, n), sum_portable(x, n)); }

// Per-thread [threads, C] float partial sums for parameter gradients, added into the
// gradient buffer at the end.
struct Partials {
  int64_t C;
  std::vector<float> buf;
  Partials(int64_t c, bool need) : C(c) {
    if (need) buf.assign(static_cast<size_t>(num_threads() * c), 0.f);
  }
  float* row(int thread) { return buf.data() + thread * C; }
  void add_into(float* dst) {
    if (!dst) return;
    const int64_t nt = static_cast<int64_t>(buf.size()) / std::max<int64_t>(C, 1);
    for (int64_t t = 0; t < nt; ++t) {
      const float* p = buf.data() + t * C;
      for (int64_t c = 0; c < C; ++c) dst[c] += p[c];
    }
  }
};

int64_t row_grain(int64_t C) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(C, 1)); }

// out[N,C] = inp·rstd·w, rstd[N] = 1/√(mean(inp²) + eps)
napi_value RmsnormForward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *out, *rstd, *inp; size_t n0, n1, n2;
  const void* weight; size_t nw;
  const int dt = static_cast<int>(get_int(a, 7, F32));
  if (!get_f32(a, 0, out, n0, "rmsnormForward", "out") || !get_f32(a, 1, rstd, n1, "rmsnormForward", "rstd") ||
      !get_f32(a, 2, inp, n2, "rmsnormForward", "inp") || !get_storage(a, 3, dt, weight, nw, "rmsnormForward", "weight"))
    return nullptr;
  const int64_t N = get_int(a, 4), C = get_int(a, 5);
  const double eps = get_num(a, 6, 1e-6);
  F32Param w;
  w.load(weight, dt, C);
  const float* wp = w.p;
  run_chunks(N, row_grain(C), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = inp + r * C;
      float* o = out + r * C;
      const double ss = LK_AVX2_OR(sum_squares_avx2(x, C), sum_squares_portable(x, C));
      const float rs = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(C) + eps));
      dispatch([&]() LK_INLINE { for (int64_t c = 0; c < C; ++c) o[c] = x[c] * rs * wp[c]; });
      rstd[r] = rs;
    }
  });
  return undefined(env);
}

// dinp[N,C] += r·w·dout − inp·r³/C·Σ(dout·w·inp), dweight[C] += Σ_rows dout·inp·r
napi_value RmsnormBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *dinp, *dw, *dout, *inp, *rstd; size_t n0, n1, n2, n3, n5;
  const void* weight; size_t nw;
  const int dt = static_cast<int>(get_int(a, 8, F32));
  if (!get_f32(a, 0, dinp, n0, "rmsnormBackward", "dinp", true) || !get_f32(a, 1, dw, n1, "rmsnormBackward", "dweight", true) ||
      !get_f32(a, 2, dout, n2, "rmsnormBackward", "dout") || !get_f32(a, 3, inp, n3, "rmsnormBackward", "inp") ||
      !get_storage(a, 4, dt, weight, nw, "rmsnormBackward", "weight") || !get_f32(a, 5, rstd, n5, "rmsnormBackward", "rstd"))
    return nullptr;
  const int64_t N = get_int(a, 6), C = get_int(a, 7);
  F32Param w;
  w.load(weight, dt, C);
  const float* wp = w.p;
  Partials pw(C, dw != nullptr);
  run_chunks(N, row_grain(C), [&](int64_t r0, int64_t r1, int thread) {
    std::vector<float> gw(dinp ? static_cast<size_t>(C) : 0);
    float* dwp = dw ? pw.row(thread) : nullptr;
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = inp + r * C;
      const float* dy = dout + r * C;
      const float rs = rstd[r];
      if (dinp) {
        float* g = gw.data();
        float* dx = dinp + r * C;
        dispatch([&]() LK_INLINE { for (int64_t c = 0; c < C; ++c) g[c] = dy[c] * wp[c]; });
        const float k = static_cast<float>(dot_any(g, x, C) * rs * rs * rs / static_cast<double>(C));
        dispatch([&]() LK_INLINE { for (int64_t c = 0; c < C; ++c) dx[c] += rs * g[c] - x[c] * k; });
      }
      if (dwp) dispatch([&]() LK_INLINE { for (int64_t c = 0; c < C; ++c) dwp[c] += dy[c] * x[c] * rs; });
    }
  });
  pw.add_into(dw);
  return undefined(env);
}

// out[N,C] = (inp − mean)·rstd·w + b; mean[N], rstd[N] (biased variance)
napi_value LayernormForward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *out, *mean, *rstd, *inp; size_t n0, n1, n2, n3;
  const void *weight, *bias; size_t nw, nb;
  const int dt = static_cast<int>(get_int(a, 9, F32));
  if (!get_f32(a, 0, out, n0, "layernormForward", "out") || !get_f32(a, 1, mean, n1, "layernormForward", "mean") ||
      !get_f32(a, 2, rstd, n2, "layernormForward", "rstd") || !get_f32(a, 3, inp, n3, "layernormForward", "inp") ||
      !get_storage(a, 4, dt, weight, nw, "layernormForward", "weight") || !get_storage(a, 5, dt, bias, nb, "layernormForward", "bias", true))
    return nullptr;
  const int64_t N = get_int(a, 6), C = get_int(a, 7);
  const double eps = get_num(a, 8, 1e-5);
  F32Param w, b;
  w.load(weight, dt, C);
  b.load(bias, dt, C);
  const float* wp = w.p;
  const float* bp = b.p;
  run_chunks(N, row_grain(C), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = inp + r * C;
      float* o = out + r * C;
      const double md = sum_any(x, C) / static_cast<double>(C);
      const double var = LK_AVX2_OR(sq_dev_avx2(x, static_cast<float>(md), C), sq_dev_portable(x, md, C)) / static_cast<double>(C);
      const float m = static_cast<float>(md), rs = static_cast<float>(1.0 / std::sqrt(var + eps));
      if (bp) dispatch([&]() LK_INLINE { for (int64_t c = 0; c < C; ++c) o[c] = (x[c] - m) * rs * wp[c] + bp[c]; });
      else dispatch([&]() LK_INLINE { for (int64_t c = 0; c < C; ++c) o[c] = (x[c] - m) * rs * wp[c]; });
      mean[r] = m;
      rstd[r] = rs;
    }
  });
  return undefined(env);
}

// x̂ = (inp − mean)·r, g = dout·w: dinp += r·(g − mean(g) − x̂·mean(g·x̂)); dweight += dout·x̂; dbias += dout
napi_value LayernormBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *dinp, *dw, *db, *dout, *inp, *mean, *rstd; size_t n0, n1, n2, n3, n4, n6, n7;
  const void* weight; size_t nw;
  const int dt = static_cast<int>(get_int(a, 10, F32));
  if (!get_f32(a, 0, dinp, n0, "layernormBackward", "dinp", true) || !get_f32(a, 1, dw, n1, "layernormBackward", "dweight", true) ||
      !get_f32(a, 2, db, n2, "layernormBackward", "dbias", true) || !get_f32(a, 3, dout, n3, "layernormBackward", "dout") ||
      !get_f32(a, 4, inp, n4, "layernormBackward", "inp") || !get_storage(a, 5, dt, weight, nw, "layernormBackward", "weight") ||
      !get_f32(a, 6, mean, n6, "layernormBackward", "mean") || !get_f32(a, 7, rstd, n7, "layernormBackward", "rstd"))
    return nullptr;
  const int64_t N = get_int(a, 8), C = get_int(a, 9);
  F32Param w;
  w.load(weight, dt, C);
  const float* wp = w.p;
  Partials pw(C, dw != nullptr), pb(C, db != nullptr);
  run_chunks(N, row_grain(C), [&](int64_t r0, int64_t r1, int thread) {
    std::vector<float> xh(static_cast<size_t>(C)), gv(dinp ? static_cast<size_t>(C) : 0);
    float* dwp = dw ? pw.row(thread) : nullptr;
    float* dbp = db ? pb.row(thread) : nullptr;
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = inp + r * C;
      const float* dy = dout + r * C;
      const float m = mean[r], rs = rstd[r];
      float* xhat = xh.data();
      dispatch([&]() LK_INLINE { for (int64_t c = 0; c < C; ++c) xhat[c] = (x[c] - m) * rs; });
      if (dinp) {
        float* g = gv.data();
        float* dx = dinp + r * C;
        dispatch([&]() LK_INLINE { for (int64_t c = 0; c < C; ++c) g[c] = dy[c] * wp[c]; });
        const float gs = static_cast<float>(sum_any(g, C) / static_cast<double>(C));
        const float gx = static_cast<float>(dot_any(g, xhat, C) / static_cast<double>(C));
        dispatch([&]() LK_INLINE { for (int64_t c = 0; c < C; ++c) dx[c] += rs * (g[c] - gs - xhat[c] * gx); });
      }
      if (dwp) dispatch([&]() LK_INLINE { for (int64_t c = 0; c < C; ++c) dwp[c] += dy[c] * xhat[c]; });
      if (dbp) dispatch([&]() LK_INLINE { for (int64_t c = 0; c < C; ++c) dbp[c] += dy[c]; });
    }
  });
  pw.add_into(dw);
  pb.add_into(db);
  return undefined(env);
}

// ============================== softmax / cross-entropy rows ==============================

#if LK_X86
LK_AVX2 float row_max_avx2(const float* x, int64_t n) {
  __m256 m = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
  float r = hmax(m);
  for (; i < n; ++i) r = x[i] > r ? x[i] : r;
  return r;
}

// Σ exp(x − max), in f64; writes the exps to out when out is not null
LK_AVX2 double sum_exp_avx2(float* out, const float* x, float max, int64_t n) {
  const __m256 mv = _mm256_set1_ps(max);
  __m256d a = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
    if (out) _mm256_storeu_ps(out + i, e);
    a = add_wide(a, e);
  }
  double s = hsum_pd(a);
  if (i < n) {  // the tail through one masked vector, so it gets the same exp
    alignas(32) float buf[8];
    for (int j = 0; j < 8; ++j) buf[j] = i + j < n ? x[i + j] - max : -INFINITY;
    _mm256_store_ps(buf, exp256(_mm256_load_ps(buf)));
    for (int64_t j = 0; i + j < n; ++j) {
      if (out) out[i + j] = buf[j];
      s += buf[j];
    }
  }
  return s;
}

#endif
float row_max_portable(const float* x, int64_t n) {
  float r = -INFINITY;
  for (int64_t i = 0; i < n; ++i) r = x[i] > r ? x[i] : r;
  return r;
}

// (four exps at a time over the SIMD layer, simd.h; the sum in f64 in the same order)
double sum_exp_portable(float* out, const float* x, float max, int64_t n) {
  double s = 0;
  int64_t i = 0;
  const simd::V mv = simd::set1(max);
  for (; i + simd::W <= n; i += simd::W) {
    alignas(16) float e[simd::W];
    simd::store(e, simd::exp(simd::sub(simd::load(x + i), mv)));
    if (out) std::memcpy(out + i, e, sizeof e);
    s += e[0], s += e[1], s += e[2], s += e[3];
  }
  for (; i < n; ++i) {
    const float e = std::exp(x[i] - max);
    if (out) out[i] = e;
    s += e;
  }
  return s;
}

float row_max(const float* x, int64_t n) { return LK_AVX2_OR(row_max_avx2(x, n), row_max_portable(x, n)); }
double sum_exp(float* out, const float* x, float max, int64_t n) { return LK_AVX2_OR(sum_exp_avx2(out, x, max, n), sum_exp_portable(out, x, max, n)); }

// out[N,C] = softmax(inp) per row (out may alias inp; a row of all -inf gives zeros)
napi_value Softmax(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *out, *inp; size_t n0, n1;
  if (!get_f32(a, 0, out, n0, "softmax", "out") || !get_f32(a, 1, inp, n1, "softmax", "inp")) return nullptr;
  const int64_t N = get_int(a, 2), C = get_int(a, 3);
  run_chunks(N, row_grain(C), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = inp + r * C;
      float* o = out + r * C;
      const float m = row_max(x, C);
      if (m == -INFINITY) {
        std::memset(o, 0, static_cast<size_t>(C) * 4);
        continue;
      }
      const float inv = static_cast<float>(1.0 / sum_exp(o, x, m, C));
      dispatch([&]() LK_INLINE { for (int64_t c = 0; c < C; ++c) o[c] *= inv; });
    }
  });
  return undefined(env);
}

// losses[N] = logsumexp(logits[n]) − logits[n, t]; 0 where t == ignoreIndex
napi_value CrossEntropyForward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *losses, *logits; int32_t* targets; size_t n0, n1, n2;
  if (!get_f32(a, 0, losses, n0, "crossEntropyForward", "losses") || !get_f32(a, 1, logits, n1, "crossEntropyForward", "logits") ||
      !get_i32(a, 2, targets, n2, "crossEntropyForward", "targets"))
    return nullptr;
  const int64_t N = get_int(a, 3), V = get_int(a, 4);
  const int64_t ignore = get_int(a, 5, -100);
  run_chunks(N, row_grain(V), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const int32_t t = targets[r];
      if (t == ignore) { losses[r] = 0.f; continue; }
      const float* x = logits + r * V;
      const float m = row_max(x, V);
      losses[r] = static_cast<float>(static_cast<double>(m) + std::log(sum_exp(nullptr, x, m, V)) - x[t]);
    }
  });
  return undefined(env);
}

// One row of the gradient: d = (softmax(x) − onehot(t))·gs (d may alias x). Returns the row's
// loss, logsumexp(x) − x[t], as crossEntropyForward computes it.
float ce_grad_row(float* d, const float* x, int32_t t, int64_t V, double gs) {
  const float m = row_max(x, V), xt = x[t];  // x[t] before d (maybe x) is overwritten
  const double s = sum_exp(d, x, m, V);      // d holds exp(x − max) now
  const float k = static_cast<float>(gs / s);
  dispatch([&]() LK_INLINE { for (int64_t c = 0; c < V; ++c) d[c] *= k; });
  d[t] -= static_cast<float>(gs);
  return static_cast<float>(static_cast<double>(m) + std::log(s) - xt);
}

// Every row, on the pool: dlogits as crossEntropyBackward, and the losses too when losses is
// not null (0 for an ignored row, whose gradient row is zeroed).
void ce_grad_rows(float* losses, float* dl, const float* logits, const int32_t* targets, int64_t N, int64_t V, double gs,
                  int64_t ignore) {
  run_chunks(N, row_grain(V), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const int32_t t = targets[r];
      float* d = dl + r * V;
      float loss = 0.f;
      if (t == ignore) std::memset(d, 0, static_cast<size_t>(V) * 4);
      else loss = ce_grad_row(d, logits + r * V, t, V, gs);
      if (losses) losses[r] = loss;
    }
  });
}

// dlogits[N,V] = (softmax − onehot)·gradScale, zero rows where ignored (dlogits may alias logits)
napi_value CrossEntropyBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *dl, *logits; int32_t* targets; size_t n0, n1, n2;
  if (!get_f32(a, 0, dl, n0, "crossEntropyBackward", "dlogits") || !get_f32(a, 1, logits, n1, "crossEntropyBackward", "logits") ||
      !get_i32(a, 2, targets, n2, "crossEntropyBackward", "targets"))
    return nullptr;
  const int64_t N = get_int(a, 3), V = get_int(a, 4);
  const double gs = get_num(a, 5, 1.0);
  const int64_t ignore = get_int(a, 6, -100);
  ce_grad_rows(nullptr, dl, logits, targets, N, V, gs, ignore);
  return undefined(env);
}

// losses[N] as crossEntropyForward and dlogits[N,V] as crossEntropyBackward, in one call: a
// row's max and its exps are computed once (the separate pair computes them twice and
// reads each row from memory twice). dlogits may alias logits.
napi_value CrossEntropyLossGrad(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *losses, *dl, *logits; int32_t* targets; size_t n0, n1, n2, n3;
  if (!get_f32(a, 0, losses, n0, "crossEntropyLossGrad", "losses") || !get_f32(a, 1, dl, n1, "crossEntropyLossGrad", "dlogits") ||
      !get_f32(a, 2, logits, n2, "crossEntropyLossGrad", "logits") || !get_i32(a, 3, targets, n3, "crossEntropyLossGrad", "targets"))
    return nullptr;
  const int64_t N = get_int(a, 4), V = get_int(a, 5);
  const double gs = get_num(a, 6, 1.0);
  const int64_t ignore = get_int(a, 7, -100);
  ce_grad_rows(losses, dl, logits, targets, N, V, gs, ignore);
  return undefined(env);
}

// ============================== activations ==============================

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluC = 0.044715f;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;
// e = exp(−x) is capped at e^88 (finite), so 1 − σ = e·σ never becomes ∞·0
constexpr float kExpMax = 88.0f;

#if LK_X86
// mode: 0 forward (out = f(x)), 1 backward (out += f'(x)·dy)
LK_AVX2 void gelu_avx2(float* out, const float* x, const float* dy, int64_t n, bool tanh_approx, bool backward) {
  const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  auto body = [&](__m256 v, __m256 g, __m256 o) LK_AVX2 -> __m256 {
    if (tanh_approx) {
      // ½(1 + tanh u) = σ(2u): gelu = x·σ(2u), gelu' = σ + 2x·σ(1 − σ)·u'. With e = exp(−2u),
      // σ = 1/(1 + e) and 1 − σ = e·σ, both accurate where σ is near 0 or 1.
      const __m256 v2 = _mm256_mul_ps(v, v);
      const __m256 inner = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(kGeluC), v2), v, v);
      const __m256 e = exp256(_mm256_min_ps(_mm256_mul_ps(_mm256_set1_ps(-2.0f * kSqrt2OverPi), inner), _mm256_set1_ps(kExpMax)));
      const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, e));
      if (!backward) return _mm256_mul_ps(v, s);
      const __m256 du = _mm256_mul_ps(_mm256_set1_ps(kSqrt2OverPi), _mm256_fmadd_ps(_mm256_set1_ps(3.0f * kGeluC), v2, one));
      const __m256 ds = _mm256_mul_ps(_mm256_mul_ps(s, _mm256_mul_ps(e, s)), _mm256_mul_ps(_mm256_set1_ps(2.0f), v));
      return _mm256_fmadd_ps(_mm256_fmadd_ps(ds, du, s), g, o);
    }
    // Φ(x) = ½·erfc(−x/√2): from erfc(|x|/√2), mirrored for x > 0
    const __m256 e = erfc_pos256(_mm256_mul_ps(_mm256_andnot_ps(sign, v), _mm256_set1_ps(kInvSqrt2)));
    const __m256 he = _mm256_mul_ps(half, e);
    const __m256 cdf = _mm256_blendv_ps(he, _mm256_sub_ps(one, he), _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ));
    if (!backward) return _mm256_mul_ps(v, cdf);
    const __m256 pdf = _mm256_mul_ps(_mm256_set1_ps(kInvSqrt2Pi), exp256(_mm256_mul_ps(_mm256_set1_ps(-0.5f), _mm256_mul_ps(v, v))));
    return _mm256_fmadd_ps(_mm256_fmadd_ps(v, pdf, cdf), g, o);
  };
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    if (backward) _mm256_storeu_ps(out + i, body(v, _mm256_loadu_ps(dy + i), _mm256_loadu_ps(out + i)));
    else _mm256_storeu_ps(out + i, body(v, one, one));
  }
  if (i < n) {
    alignas(32) float bx[8] = {0}, bg[8] = {0}, bo[8] = {0};
    for (int64_t j = 0; i + j < n; ++j) {
      bx[j] = x[i + j];
      if (backward) { bg[j] = dy[i + j]; bo[j] = out[i + j]; }
    }
    _mm256_store_ps(bo, body(_mm256_load_ps(bx), _mm256_load_ps(bg), _mm256_load_ps(bo)));
    for (int64_t j = 0; i + j < n; ++j) out[i + j] = bo[j];
  }
}

#endif
void gelu_portable(float* out, const float* x, const float* dy, int64_t n, bool tanh_approx, bool backward) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    float f, d;
    if (tanh_approx) {
      // as the AVX2 path: ½(1 + tanh u) = σ(2u), 1 − σ = e·σ with e = exp(−2u)
      const float e = std::exp(std::min(-2.0f * kSqrt2OverPi * (v + kGeluC * v * v * v), kExpMax));
      const float sg = 1.0f / (1.0f + e);
      f = v * sg;
      d = sg + 2.0f * v * sg * (e * sg) * kSqrt2OverPi * (1.0f + 3.0f * kGeluC * v * v);
    } else {
      const float cdf = 0.5f * std::erfc(-v * kInvSqrt2);
      f = v * cdf;
      d = cdf + v * kInvSqrt2Pi * std::exp(-0.5f * v * v);
    }
    if (backward) out[i] += d * dy[i];
    else out[i] = f;
  }
}

// forward: out[n] = gelu(inp[n]) (out may alias inp); backward: dinp[n] += gelu'(inp)·dout
napi_value GeluImpl(napi_env env, napi_callback_info info, bool backward) {
  Args a(env, info);
  const char* fn = backward ? "geluBackward" : "geluForward";
  float *out, *x, *dy = nullptr; size_t n, n1, n2;
  if (!get_f32(a, 0, out, n, fn, backward ? "dinp" : "out") || !get_f32(a, 1, x, n1, fn, "inp")) return nullptr;
  if (backward && !get_f32(a, 2, dy, n2, fn, "dout")) return nullptr;
  const bool tanh_approx = get_int(a, backward ? 3 : 2, 0) == 1;
  run_chunks(static_cast<int64_t>(n), kGrain / 4, [&](int64_t b, int64_t e, int) {
    LK_AVX2_OR(gelu_avx2(out + b, x + b, dy ? dy + b : nullptr, e - b, tanh_approx, backward),
               gelu_portable(out + b, x + b, dy ? dy + b : nullptr, e - b, tanh_approx, backward));
  });
  return undefined(env);
}
napi_value GeluForward(napi_env env, napi_callback_info info) { return GeluImpl(env, info, false); }
napi_value GeluBackward(napi_env env, napi_callback_info info) { return GeluImpl(env, info, true); }

// The silu family on n elements. kind: 0 silu forward (out = x·σ(x)), 1 silu backward
// (out += dy·σ(1 + x(1 − σ))), 2 swiglu forward (out = x·σ(x)·u), 3 swiglu backward
// (out += dy·u·silu'(x), out2 += dy·silu(x)), 4 the same written instead of added.
#if LK_X86
LK_AVX2 void silu_avx2(int kind, float* out, float* out2, const float* x, const float* u, const float* dy, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  auto step = [&](int64_t i0, int64_t cnt) LK_AVX2 {
    alignas(32) float bx[8] = {0}, bu[8] = {0}, bd[8] = {0}, bo[8] = {0}, bo2[8] = {0};
    const bool full = cnt == 8;
    auto ld = [&](const float* p, float* buf) LK_AVX2 -> __m256 {
      if (full) return _mm256_loadu_ps(p + i0);
      for (int64_t j = 0; j < cnt; ++j) buf[j] = p[i0 + j];
      return _mm256_load_ps(buf);
    };
    auto st = [&](float* p, float* buf, __m256 v) LK_AVX2 {
      if (full) { _mm256_storeu_ps(p + i0, v); return; }
      _mm256_store_ps(buf, v);
      for (int64_t j = 0; j < cnt; ++j) p[i0 + j] = buf[j];
    };
    const __m256 v = ld(x, bx);
    const __m256 e = exp256(_mm256_min_ps(_mm256_sub_ps(_mm256_setzero_ps(), v), _mm256_set1_ps(kExpMax)));  // σ = 1/(1 + e), 1 − σ = e·σ
    const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, e));
    const __m256 silu = _mm256_mul_ps(v, s);
    if (kind == 0) { st(out, bo, silu); return; }
    if (kind == 2) { st(out, bo, _mm256_mul_ps(silu, ld(u, bu))); return; }
    const __m256 d = ld(dy, bd);
    const __m256 grad = _mm256_mul_ps(s, _mm256_fmadd_ps(v, _mm256_mul_ps(e, s), one));
    if (kind == 1) { st(out, bo, _mm256_fmadd_ps(grad, d, ld(out, bo))); return; }
    const __m256 uv = ld(u, bu);
    if (kind == 4) {
      st(out, bo, _mm256_mul_ps(_mm256_mul_ps(d, uv), grad));
      st(out2, bo2, _mm256_mul_ps(d, silu));
      return;
    }
    st(out, bo, _mm256_fmadd_ps(_mm256_mul_ps(d, uv), grad, ld(out, bo)));
    st(out2, bo2, _mm256_fmadd_ps(d, silu, ld(out2, bo2)));
  };
  for (; i + 8 <= n; i += 8) step(i, 8);
  if (i < n) step(i, n - i);
}

// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized on their own undefined pass-through
// operand when inlined under a target attribute (a false positive; as gemm_amx.cc)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// e^x as exp256 (ops_common.h) on 16 lanes: the same operations lane for lane (round to
// nearest, the same polynomial and FMAs, the same clamps and NaN rule), so the same bits.
#define LK_AVX512 __attribute__((target("avx2,fma,avx512f")))
LK_AVX512 inline __m512 exp512(__m512 x) {
  const __m512 hi = _mm512_set1_ps(88.0f), lo = _mm512_set1_ps(-87.3f);
  const __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
  const __mmask16 over = _mm512_cmp_ps_mask(x, _mm512_set1_ps(88.72f), _CMP_GT_OQ);
  const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, lo), hi);  // NaN -> lo; restored below
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  __m512 y = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
  y = _mm512_maskz_mov_ps(static_cast<__mmask16>(~under), y);
  y = _mm512_mask_mov_ps(y, over, _mm512_set1_ps(INFINITY));
  return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

// silu_avx2's forward kinds (0 silu, 2 swiglu) 16 at a time, the same operations per element
// (so the same bits: training's forward and generation's agree with the AVX2 kernel's);
// tails through masked loads and stores. Half the instructions of AVX2 for the exp and the
// division that bound it (a 512-token prompt's 12 SwiGLUs of 1M elements each; issue 24).
LK_AVX512 void silu_fwd_avx512(int kind, float* out, const float* x, const float* u, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 e = exp512(_mm512_min_ps(_mm512_sub_ps(_mm512_setzero_ps(), v), _mm512_set1_ps(kExpMax)));
    const __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, e));
    __m512 y = _mm512_mul_ps(v, s);
    if (kind == 2) y = _mm512_mul_ps(y, _mm512_maskz_loadu_ps(m, u + i));
    _mm512_mask_storeu_ps(out + i, m, y);
  }
}
#pragma GCC diagnostic pop
#endif
void silu_portable(int kind, float* out, float* out2, const float* x, const float* u, const float* dy, int64_t n) {
  // e = exp(−x) four at a time over the SIMD layer (simd.h), the rest as below
  alignas(16) float eb[simd::W];
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (i % simd::W == 0) {
      if (i + simd::W <= n) simd::store(eb, simd::exp(simd::min(simd::sub(simd::zero(), simd::load(x + i)), simd::set1(kExpMax))));
      else
        for (int64_t j = i; j < n; ++j) eb[j - i] = std::exp(std::min(-x[j], kExpMax));
    }
    const float e = eb[i % simd::W];
    const float s = 1.0f / (1.0f + e);  // 1 − σ = e·σ
    switch (kind) {
      case 0: out[i] = v * s; break;
      case 1: out[i] += dy[i] * s * (1.0f + v * (e * s)); break;
      case 2: out[i] = v * s * u[i]; break;
      case 4:
        out[i] = dy[i] * u[i] * s * (1.0f + v * (e * s));
        out2[i] = dy[i] * v * s;
        break;
      default:
        out[i] += dy[i] * u[i] * s * (1.0f + v * (e * s));
        out2[i] += dy[i] * v * s;
    }
  }
}

void silu_run(int kind, float* out, float* out2, const float* x, const float* u, const float* dy, int64_t n) {
  run_chunks(n, kGrain / 2, [&](int64_t b, int64_t e, int) {
    float* o2 = out2 ? out2 + b : nullptr;
    const float* up = u ? u + b : nullptr;
    const float* d = dy ? dy + b : nullptr;
#if LK_X86
    if ((kind == 0 || kind == 2) && gemm::use_avx512()) {
      silu_fwd_avx512(kind, out + b, x + b, up, e - b);
      return;
    }
#endif
    LK_AVX2_OR(silu_avx2(kind, out + b, o2, x + b, up, d, e - b), silu_portable(kind, out + b, o2, x + b, up, d, e - b));
  });
}

// out[n] = inp·σ(inp)
napi_value SiluForward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *out, *x; size_t n, n1;
  if (!get_f32(a, 0, out, n, "siluForward", "out") || !get_f32(a, 1, x, n1, "siluForward", "inp")) return nullptr;
  silu_run(0, out, nullptr, x, nullptr, nullptr, static_cast<int64_t>(n));
  return undefined(env);
}

// dinp[n] += silu'(inp)·dout
napi_value SiluBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *dx, *x, *dy; size_t n, n1, n2;
  if (!get_f32(a, 0, dx, n, "siluBackward", "dinp") || !get_f32(a, 1, x, n1, "siluBackward", "inp") || !get_f32(a, 2, dy, n2, "siluBackward", "dout")) return nullptr;
  silu_run(1, dx, nullptr, x, nullptr, dy, static_cast<int64_t>(n));
  return undefined(env);
}

// out[n] = silu(gate)·up
napi_value SwigluForward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *out, *g, *u; size_t n, n1, n2;
  if (!get_f32(a, 0, out, n, "swigluForward", "out") || !get_f32(a, 1, g, n1, "swigluForward", "gate") || !get_f32(a, 2, u, n2, "swigluForward", "up")) return nullptr;
  silu_run(2, out, nullptr, g, u, nullptr, static_cast<int64_t>(n));
  return undefined(env);
}

// dgate[n] += dout·up·silu'(gate), dup[n] += dout·silu(gate); written instead when argument
// 5 (accumulate) is false
napi_value SwigluBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *dg, *du, *dy, *g, *u; size_t n0, n1, n, n3, n4;
  if (!get_f32(a, 0, dg, n0, "swigluBackward", "dgate") || !get_f32(a, 1, du, n1, "swigluBackward", "dup") ||
      !get_f32(a, 2, dy, n, "swigluBackward", "dout") || !get_f32(a, 3, g, n3, "swigluBackward", "gate") || !get_f32(a, 4, u, n4, "swigluBackward", "up"))
    return nullptr;
  silu_run(get_bool(a, 5, true) ? 3 : 4, dg, du, g, u, dy, static_cast<int64_t>(n));
  return undefined(env);
}

// ============================== embedding ==============================

// out[N,C] = table[ids[n], :], table [V,C] in f32/f16/bf16, or GGML blocks (quant.h: each row
// dequantized, C a whole number of blocks)
napi_value EmbeddingForward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float* out; int32_t* ids; size_t n0, n1, nt;
  const void* table;
  const int dt = static_cast<int>(get_int(a, 5, F32));
  if (!get_f32(a, 0, out, n0, "embeddingForward", "out") || !get_i32(a, 1, ids, n1, "embeddingForward", "ids"))
    return nullptr;
  const int64_t N = get_int(a, 3), C = get_int(a, 4);
  if (quant::is_quant(dt)) {
    View v;
    if (!get_view(a, 2, v, "embeddingForward", "table")) return nullptr;
    if (v.type != napi_uint8_array || C % quant::block_values(dt) != 0) {
      throw_type(env, "embeddingForward: argument table must be a Uint8Array of whole-block rows for a quantized dtype");
      return nullptr;
    }
    run_chunks(N, row_grain(C), [&](int64_t r0, int64_t r1, int) {
      float* tmp = quant::scratch(256);
      for (int64_t r = r0; r < r1; ++r) quant::dequant_row_range(dt, v.data, C, ids[r], 0, C, out + r * C, tmp);
    });
    return undefined(env);
  }
  if (!get_storage(a, 2, dt, table, nt, "embeddingForward", "table")) return nullptr;
  run_chunks(N, row_grain(C), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) widen_into(out + r * C, table, dt, static_cast<int64_t>(ids[r]) * C, C);
  });
  return undefined(env);
}

// dtable[ids[n], :] += dout[n, :] (tasks own column ranges, so repeated ids never race)
napi_value EmbeddingBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *dt, *dout; int32_t* ids; size_t n0, n1, n2;
  if (!get_f32(a, 0, dt, n0, "embeddingBackward", "dtable") || !get_f32(a, 1, dout, n1, "embeddingBackward", "dout") ||
      !get_i32(a, 2, ids, n2, "embeddingBackward", "ids"))
    return nullptr;
  const int64_t N = get_int(a, 3), C = get_int(a, 4);
  run_chunks(C, std::max<int64_t>(64, kGrain / std::max<int64_t>(N, 1)), [&](int64_t c0, int64_t c1, int) {
    dispatch([&]() LK_INLINE {
      for (int64_t r = 0; r < N; ++r) {
        float* d = dt + static_cast<int64_t>(ids[r]) * C;
        const float* s = dout + r * C;
        for (int64_t c = c0; c < c1; ++c) d[c] += s[c];
      }
    });
  });
  return undefined(env);
}

// ============================== rope ==============================

// x[B,T,H,D] in place, or from src (argument 10, may be null: same shape); cos, sin
// [P, D/2]; positions[B·T]. Pairs (i, i + D/2) or (2i, 2i+1) become (a·c − b·s, a·s + b·c),
// s negated when inverse.
napi_value Rope(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *x, *cs, *sn, *src; int32_t* pos; size_t n0, n1, n2, n3, n4;
  if (!get_f32(a, 0, x, n0, "rope", "x") || !get_f32(a, 1, cs, n1, "rope", "cos") || !get_f32(a, 2, sn, n2, "rope", "sin") ||
      !get_i32(a, 3, pos, n3, "rope", "positions") || !get_f32(a, 10, src, n4, "rope", "src", true))
    return nullptr;
  if (!src) src = x;
  const int64_t B = get_int(a, 4), T = get_int(a, 5), H = get_int(a, 6), D = get_int(a, 7);
  const bool interleaved = get_bool(a, 8), inverse = get_bool(a, 9);
  const int64_t half = D / 2;
  const float sgn = inverse ? -1.0f : 1.0f;
  run_chunks(B * T, row_grain(H * D), [&](int64_t r0, int64_t r1, int) {
    dispatch([&]() LK_INLINE {
      for (int64_t bt = r0; bt < r1; ++bt) {
        const float* c = cs + static_cast<int64_t>(pos[bt]) * half;
        const float* s = sn + static_cast<int64_t>(pos[bt]) * half;
        for (int64_t h = 0; h < H; ++h) {
          float* v = x + (bt * H + h) * D;
          const float* u = src + (bt * H + h) * D;
          if (interleaved) {
            for (int64_t i = 0; i < half; ++i) {
              const float p = u[2 * i], q = u[2 * i + 1], si = sgn * s[i];
              v[2 * i] = p * c[i] - q * si;
              v[2 * i + 1] = p * si + q * c[i];
            }
          } else {
            float* w = v + half;
            const float* z = u + half;
            for (int64_t i = 0; i < half; ++i) {
              const float p = u[i], q = z[i], si = sgn * s[i];
              v[i] = p * c[i] - q * si;
              w[i] = p * si + q * c[i];
            }
          }
        }
      }
    });
  });
  return undefined(env);
}

// ============================== AdamW ==============================

// param[n], grad[n], m[n], v[n] (PyTorch AdamW)
napi_value AdamW(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *p, *g, *m, *v; size_t n, n1, n2, n3;
  if (!get_f32(a, 0, p, n, "adamw", "param") || !get_f32(a, 1, g, n1, "adamw", "grad") || !get_f32(a, 2, m, n2, "adamw", "m") ||
      !get_f32(a, 3, v, n3, "adamw", "v"))
    return nullptr;
  const double lr = get_num(a, 4), b1 = get_num(a, 5), b2 = get_num(a, 6), eps = get_num(a, 7), wd = get_num(a, 8), step = get_num(a, 9, 1);
  const double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
  const float fb1 = static_cast<float>(b1), fb2 = static_cast<float>(b2), ob1 = static_cast<float>(1 - b1), ob2 = static_cast<float>(1 - b2);
  const float decay = static_cast<float>(1 - lr * wd), step_size = static_cast<float>(lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1 / std::sqrt(bc2)), feps = static_cast<float>(eps);
  run_chunks(static_cast<int64_t>(n), kGrain, [&](int64_t b, int64_t e, int) {
    dispatch([&]() LK_INLINE {
      for (int64_t i = b; i < e; ++i) {
        const float gi = g[i];
        const float mi = fb1 * m[i] + ob1 * gi;
        const float vi = fb2 * v[i] + ob2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + feps);
      }
    });
  });
  return undefined(env);
}

}  // namespace

void RegisterOps(napi_env env, napi_value exports) {
  export_fn(env, exports, "add", Add);
  export_fn(env, exports, "axpy", Axpy);
  export_fn(env, exports, "scale", Scale);
  export_fn(env, exports, "sumSquares", SumSquares);
  export_fn(env, exports, "widen", Widen);
  export_fn(env, exports, "narrow", Narrow);
  export_fn(env, exports, "biasAdd", BiasAdd);
  export_fn(env, exports, "biasBackward", BiasBackward);
  export_fn(env, exports, "rmsnormForward", RmsnormForward);
  export_fn(env, exports, "rmsnormBackward", RmsnormBackward);
  export_fn(env, exports, "layernormForward", LayernormForward);
  export_fn(env, exports, "layernormBackward", LayernormBackward);
  export_fn(env, exports, "softmax", Softmax);
  export_fn(env, exports, "geluForward", GeluForward);
  export_fn(env, exports, "geluBackward", GeluBackward);
  export_fn(env, exports, "siluForward", SiluForward);
  export_fn(env, exports, "siluBackward", SiluBackward);
  export_fn(env, exports, "swigluForward", SwigluForward);
  export_fn(env, exports, "swigluBackward", SwigluBackward);
  export_fn(env, exports, "embeddingForward", EmbeddingForward);
  export_fn(env, exports, "embeddingBackward", EmbeddingBackward);
  export_fn(env, exports, "rope", Rope);
  export_fn(env, exports, "crossEntropyForward", CrossEntropyForward);
  export_fn(env, exports, "crossEntropyBackward", CrossEntropyBackward);
  export_fn(env, exports, "crossEntropyLossGrad", CrossEntropyLossGrad);
  export_fn(env, exports, "adamw", AdamW);
  RegisterAttention(env, exports);
}

}  // namespace lk
