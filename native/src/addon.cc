// The lorakit N-API addon: registers the kernels of each source file.
#include <node_api.h>

#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "napi_util.h"
#include "threadpool.h"

namespace lk {
void RegisterGemm(napi_env env, napi_value exports);  // gemm.cc
void RegisterOps(napi_env env, napi_value exports);   // ops.cc
void RegisterConv(napi_env env, napi_value exports);  // conv.cc
void RegisterRows(napi_env env, napi_value exports);  // ops_rows.cc
void RegisterAmx(napi_env env, napi_value exports);   // gemm_amx.cc (the addon only: not the wasm or shim builds)
void RegisterAttentionAmx(napi_env env, napi_value exports);  // attention_amx.cc (the addon only, as gemm_amx.cc)
bool cpu_has_avx2_fma();                              // cpu.cc
bool cpu_has_avx512f();                              // cpu.cc
}  // namespace lk

namespace {

napi_value Threads(napi_env env, napi_callback_info info) {
  lk::Args a(env, info);
  if (a.argc >= 1) {
    napi_valuetype vt;
    napi_typeof(env, a.argv[0], &vt);
    if (vt == napi_number) lk::set_num_threads(static_cast<int>(lk::get_int(a, 0, 1)));
  }
  return lk::number(env, lk::num_threads());
}

napi_value CpuInfo(napi_env env, napi_callback_info) {
  napi_value o, s;
  napi_create_object(env, &o);
  napi_get_boolean(env, lk::cpu_has_avx2_fma(), &s);
  napi_set_named_property(env, o, "avx2fma", s);
  napi_get_boolean(env, lk::cpu_has_avx512f(), &s);
  napi_set_named_property(env, o, "avx512f", s);
  return o;
}

// Large blocks straight from mmap, given back to the system when freed. glibc raises its
// mmap threshold to the size of each large block freed (up to 32 MiB), after which
// activation-sized arrays come from the brk heap, where freed memory stays resident and the
// process's peak memory creeps up. A fixed threshold turns that off (LORAKIT_KEEP_MALLOC=1
// leaves glibc's default alone).
void TuneMalloc() {
#if defined(__GLIBC__)
  const char* keep = std::getenv("LORAKIT_KEEP_MALLOC");
  if (keep && keep[0] == '1') return;
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif
}

// byteAlignment(a): the address of a typed array's first element, mod 64 (where it sits in a
// cache line), so that JavaScript can place large arrays on a line boundary.
napi_value ByteAlignment(napi_env env, napi_callback_info info) {
  lk::Args a(env, info);
  lk::View v;
  if (!lk::get_view(a, 0, v, "byteAlignment", "a")) return nullptr;
  napi_value r;
  napi_create_uint32(env, static_cast<uint32_t>(reinterpret_cast<uintptr_t>(v.data) % 64), &r);
  return r;
}

napi_value Init(napi_env env, napi_value exports) {
  TuneMalloc();
  lk::export_fn(env, exports, "threads", Threads);
  lk::export_fn(env, exports, "cpuInfo", CpuInfo);
  lk::export_fn(env, exports, "byteAlignment", ByteAlignment);
  lk::RegisterGemm(env, exports);
  lk::RegisterOps(env, exports);
  lk::RegisterConv(env, exports);
  lk::RegisterRows(env, exports);
  lk::RegisterAmx(env, exports);
  lk::RegisterAttentionAmx(env, exports);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
