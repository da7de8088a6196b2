// The kernel module without Node (napi_shim.h): the same kernels as the N-API addon,
// registered by name and called by number with an array of arguments. The WebAssembly
// backend (src/backend/wasm) calls these exports; the qemu kernel test links them too.
//   lk_init()                      registers the kernels, returns how many
//   lk_fn_name(i)                  the name of kernel i
//   lk_call(i, argc, argv)         calls kernel i: 0 when it returned, 1 when it threw
//                                  (lk_error() has the message); lk_result() its number
//   lk_threads(n)                  resizes the pool when n > 0; returns the thread count
//   lk_impl()                      the GEMM kernel set ("simd128", "neon", …)
#include <cstdlib>

#include "gemm.h"
#include "napi_util.h"
#include "threadpool.h"

namespace lk {
void RegisterGemm(napi_env env, napi_value exports);  // napi_gemm.cc
void RegisterOps(napi_env env, napi_value exports);   // ops.cc
void RegisterConv(napi_env env, napi_value exports);  // conv.cc
}  // namespace lk

#if defined(__EMSCRIPTEN__)
#include <emscripten.h>
#define LK_EXPORT extern "C" EMSCRIPTEN_KEEPALIVE
#else
#define LK_EXPORT extern "C"
#endif

namespace {
std::vector<lk_shim_fn> g_fns;
lk_shim_env g_env;
double g_result = 0;
}  // namespace

LK_EXPORT int lk_init() {
  if (!g_fns.empty()) return static_cast<int>(g_fns.size());
  g_env.registry = &g_fns;
  g_env.results.reserve(512);
  lk_shim_value exports{napi_object, 0, nullptr, 0, 0};
  lk::RegisterGemm(&g_env, &exports);
  lk::RegisterOps(&g_env, &exports);
  lk::RegisterConv(&g_env, &exports);
  g_env.results.clear();
  return static_cast<int>(g_fns.size());
}

LK_EXPORT const char* lk_fn_name(int i) { return g_fns[static_cast<size_t>(i)].name.c_str(); }

LK_EXPORT int lk_call(int i, int argc, lk_shim_value* argv) {
  g_env.error.clear();
  g_env.results.clear();  // capacity kept: a call creates a few values, never 512
  lk_shim_info info{static_cast<size_t>(argc), argv};
  napi_value r = g_fns[static_cast<size_t>(i)].cb(&g_env, &info);
  if (!g_env.error.empty()) return 1;
  g_result = r && (r->kind == napi_number || r->kind == napi_boolean) ? r->num : 0;
  return 0;
}

LK_EXPORT const char* lk_error() { return g_env.error.c_str(); }
LK_EXPORT double lk_result() { return g_result; }
LK_EXPORT const char* lk_string() { return g_env.str.c_str(); }
LK_EXPORT int lk_threads(int n) {
  if (n > 0) lk::set_num_threads(n);
  return lk::num_threads();
}
LK_EXPORT const char* lk_impl() { return lk::gemm::current_impl().name; }
