// GEMM: C[M,N] (+)= alpha · op(A)[M,K] · op(B)[K,N], A and B in f32, f16 or bf16.
// Placeholder scalar kernel; the packed AVX2 kernel replaces it.
#include <cstring>
#include <string>

#include "napi_util.h"
#include "threadpool.h"

namespace lk {
namespace {

inline float load(const void* p, int dt, size_t i) {
  if (dt == F32) return static_cast<const float*>(p)[i];
  uint16_t h = static_cast<const uint16_t*>(p)[i];
  uint32_t bits;
  if (dt == BF16) {
    bits = static_cast<uint32_t>(h) << 16;
  } else {
    uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0) {
      if (mant == 0) bits = sign;
      else {
        exp = 127 - 15 + 1;
        while (!(mant & 0x400)) { mant <<= 1; exp--; }
        mant &= 0x3ff;
        bits = sign | (exp << 23) | (mant << 13);
      }
    } else if (exp == 31) bits = sign | 0x7f800000u | (mant << 13);
    else bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

napi_value Gemm(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float* c; size_t nc;
  View va, vb;
  if (!get_f32(a, 0, c, nc, "gemm", "c") || !get_view(a, 1, va, "gemm", "a") || !get_view(a, 2, vb, "gemm", "b")) return nullptr;
  const int64_t M = get_int(a, 3), N = get_int(a, 4), K = get_int(a, 5);
  const bool ta = get_bool(a, 6), tb = get_bool(a, 7), acc = get_bool(a, 8);
  const float alpha = static_cast<float>(get_num(a, 9, 1.0));
  const int adt = static_cast<int>(get_int(a, 10, 0)), bdt = static_cast<int>(get_int(a, 11, 0));
  const int64_t lda = get_int(a, 12, ta ? M : K), ldb = get_int(a, 13, tb ? K : N), ldc = get_int(a, 14, N);
  const void* A = va.data;
  const void* B = vb.data;
  parallel_for(static_cast<int>(M), [&](int i, int) {
    for (int64_t j = 0; j < N; ++j) {
      float s = 0.f;
      for (int64_t k = 0; k < K; ++k) {
        float x = load(A, adt, ta ? k * lda + i : i * lda + k);
        float y = load(B, bdt, tb ? j * ldb + k : k * ldb + j);
        s += x * y;
      }
      float& dst = c[i * ldc + j];
      dst = acc ? dst + alpha * s : alpha * s;
    }
  });
  return undefined(env);
}

}  // namespace

void RegisterGemm(napi_env env, napi_value exports) { export_fn(env, exports, "gemm", Gemm); }

}  // namespace lk
