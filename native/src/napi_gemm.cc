// N-API glue of the GEMM (gemm.cc): argument kinds checked, then gemm::run.
#include "napi_gemm.h"
#include "quant.h"

namespace lk {

bool read_gemm_args(Args& a, const char* fn, GemmCall& g) {
  size_t nc;
  View va, vb;
  if (!get_f32(a, 0, g.c, nc, fn, "c") || !get_view(a, 1, va, fn, "a") || !get_view(a, 2, vb, fn, "b")) return false;
  g.M = get_int(a, 3);
  g.N = get_int(a, 4);
  g.K = get_int(a, 5);
  const bool ta = get_bool(a, 6), tb = get_bool(a, 7);
  g.acc = get_bool(a, 8);
  g.alpha = static_cast<float>(get_num(a, 9, 1.0));
  const int adt = static_cast<int>(get_int(a, 10, 0)), bdt = static_cast<int>(get_int(a, 11, 0));
  const int64_t lda = get_int(a, 12, ta ? g.M : g.K), ldb = get_int(a, 13, tb ? g.K : g.N);
  g.ldc = get_int(a, 14, g.N);
  auto kind_ok = [](const View& v, int dt) {
    return dt == F32 ? v.type == napi_float32_array : (dt == F16 || dt == BF16) && v.type == napi_uint16_array;
  };
  if (!kind_ok(va, adt)) {
    throw_type(a.env, std::string(fn) + ": argument a must be a Float32Array for dtype f32, a Uint16Array for f16/bf16 (a quantized A is not read)");
    return false;
  }
  const bool bq = quant::is_quant(bdt);
  if (bq ? vb.type != napi_uint8_array || ldb % quant::block_values(bdt) != 0 : !kind_ok(vb, bdt)) {
    throw_type(a.env, std::string(fn) + ": argument b must be a Float32Array for dtype f32, a Uint16Array for f16/bf16, a Uint8Array of whole-block rows for q8_0/q4_0/q4_k/q6_k");
    return false;
  }
  g.A = {va.data, adt, lda, ta};
  g.B = {vb.data, bdt, ldb, tb};
  return true;
}

namespace {

// gemm(c, a, b, M, N, K, transA, transB, accumulate, alpha, aDtype, bDtype, lda, ldb, ldc)
//   c: Float32Array holding C[M,N] with row stride ldc
//   a: Float32Array (aDtype 0) or Uint16Array (1 f16, 2 bf16): A [M,K] (or [K,M] when transA), row stride lda
//   b: likewise B [K,N] (or [N,K] when transB), row stride ldb; or a Uint8Array of GGML blocks
//      (bDtype 3 q8_0, 4 q4_0, 5 q4_k, 6 q6_k: quant.h), rows as stored whole blocks, ldb in values
// Shapes are checked at the op boundary (TypeScript); here only the array kinds.
napi_value Gemm(napi_env env, napi_callback_info info) {
  Args a(env, info);
  GemmCall g;
  if (!read_gemm_args(a, "gemm", g)) return nullptr;
  gemm::run(g.c, g.ldc, g.A, g.B, g.M, g.N, g.K, g.alpha, g.acc);
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
