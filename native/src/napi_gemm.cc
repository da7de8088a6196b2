// N-API glue of the GEMM (gemm.cc): argument kinds checked, then gemm::run.
#include "gemm.h"
#include "napi_util.h"
#include "quant.h"

namespace lk {

namespace {

// gemm(c, a, b, M, N, K, transA, transB, accumulate, alpha, aDtype, bDtype, lda, ldb, ldc)
//   c: Float32Array holding C[M,N] with row stride ldc
//   a: Float32Array (aDtype 0) or Uint16Array (1 f16, 2 bf16): A [M,K] (or [K,M] when transA), row stride lda
//   b: likewise B [K,N] (or [N,K] when transB), row stride ldb; or a Uint8Array of GGML blocks
//      (bDtype 3 q8_0, 4 q4_0, 5 q4_k, 6 q6_k: quant.h), rows as stored whole blocks, ldb in values
// Shapes are checked at the op boundary (TypeScript); here only the array kinds.
napi_value Gemm(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float* c;
  size_t nc;
  View va, vb;
  if (!get_f32(a, 0, c, nc, "gemm", "c") || !get_view(a, 1, va, "gemm", "a") || !get_view(a, 2, vb, "gemm", "b"))
    return nullptr;
  const int64_t M = get_int(a, 3), N = get_int(a, 4), K = get_int(a, 5);
  const bool ta = get_bool(a, 6), tb = get_bool(a, 7), acc = get_bool(a, 8);
  const float alpha = static_cast<float>(get_num(a, 9, 1.0));
  const int adt = static_cast<int>(get_int(a, 10, 0)), bdt = static_cast<int>(get_int(a, 11, 0));
  const int64_t lda = get_int(a, 12, ta ? M : K), ldb = get_int(a, 13, tb ? K : N), ldc = get_int(a, 14, N);
  auto kind_ok = [](const View& v, int dt) {
    return dt == F32 ? v.type == napi_float32_array : (dt == F16 || dt == BF16) && v.type == napi_uint16_array;
  };
  if (!kind_ok(va, adt)) {
    throw_type(env, "gemm: argument a must be a Float32Array for dtype f32, a Uint16Array for f16/bf16 (a quantized A is not read)");
    return nullptr;
  }
  const bool bq = quant::is_quant(bdt);
  if (bq ? vb.type != napi_uint8_array || ldb % quant::block_values(bdt) != 0 : !kind_ok(vb, bdt)) {
    throw_type(env, "gemm: argument b must be a Float32Array for dtype f32, a Uint16Array for f16/bf16, a Uint8Array of whole-block rows for q8_0/q4_0/q4_k/q6_k");
    return nullptr;
  }
  gemm::Operand A{va.data, adt, lda, ta}, B{vb.data, bdt, ldb, tb};
  gemm::run(c, ldc, A, B, M, N, K, alpha, acc);
  return undefined(env);
}

// gemmImpl(): the name of the kernel set gemm uses on this CPU ("avx2", "neon", "sse2", …).
napi_value GemmImpl(napi_env env, napi_callback_info) {
  napi_value s;
  napi_create_string_utf8(env, gemm::current_impl().name, NAPI_AUTO_LENGTH, &s);
  return s;
}

// quantTypes(): the dtype codes of the quantized B operands gemm and embeddingForward read
// (quant.h), as a bit mask (bit c set: code c is read).
napi_value QuantTypes(napi_env env, napi_callback_info) {
  uint32_t mask = 0;
  for (int dt = quant::Q8_0; dt <= quant::Q6_K; ++dt) mask |= 1u << dt;
  napi_value v;
  napi_create_uint32(env, mask, &v);
  return v;
}

}  // namespace

void RegisterGemm(napi_env env, napi_value exports) {
  export_fn(env, exports, "gemm", Gemm);
  export_fn(env, exports, "gemmImpl", GemmImpl);
  export_fn(env, exports, "quantTypes", QuantTypes);
}

}  // namespace lk
