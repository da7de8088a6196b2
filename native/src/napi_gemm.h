// The gemm call's arguments as the addon's gemm (napi_gemm.cc) and gemmInference (gemm_amx.cc)
// read them.
#pragma once
#include <cstdint>

#include "gemm.h"
#include "napi_util.h"

namespace lk {

struct GemmCall {
  float* c;
  gemm::Operand A, B;
  int64_t M, N, K, ldc;
  float alpha;
  bool acc;
};

// Reads (c, a, b, M, N, K, transA, transB, accumulate, alpha, aDtype, bDtype, lda, ldb, ldc)
// and checks the array kinds; false after throwing a TypeError that names `fn`.
bool read_gemm_args(Args& a, const char* fn, GemmCall& g);

}  // namespace lk
