// Non-GEMM kernels (norms, activations, attention, rope, embedding, loss, optimizer).
#include "napi_util.h"
#include "threadpool.h"

namespace lk {

void RegisterOps(napi_env env, napi_value exports) {
  (void)env;
  (void)exports;
}

}  // namespace lk
