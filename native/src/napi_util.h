// Small helpers for reading N-API arguments. Typed arrays cross without copies: we take
// the pointer into the JavaScript ArrayBuffer and work on it in place, synchronously.
// Without Node (LK_NAPI_SHIM: the WebAssembly module, the qemu kernel test) the same calls
// come from napi_shim.h, so the kernel sources compile unchanged for every target.
#pragma once
#if defined(LK_NAPI_SHIM)
#include "napi_shim.h"
#else
#include <node_api.h>
#endif
#include <cstddef>
#include <cstdint>
#include <string>

namespace lk {

struct Args {
  napi_env env;
  size_t argc = 16;
  napi_value argv[16];
  napi_value self;
  Args(napi_env e, napi_callback_info info) : env(e) {
    napi_get_cb_info(e, info, &argc, argv, &self, nullptr);
  }
};

inline void throw_type(napi_env env, const std::string& msg) { napi_throw_type_error(env, nullptr, msg.c_str()); }

// A typed array view: data pointer, element count, element type.
struct View {
  void* data = nullptr;
  size_t length = 0;
  napi_typedarray_type type = napi_float32_array;
  bool is_null = false;
};

// Reads argument i as a typed array (or null/undefined when allow_null). Returns false and
// throws a TypeError naming the function and argument when it is not one.
inline bool get_view(Args& a, size_t i, View& out, const char* fn, const char* name, bool allow_null = false) {
  if (i >= a.argc) {
    if (allow_null) { out.is_null = true; return true; }
    throw_type(a.env, std::string(fn) + ": missing argument " + name);
    return false;
  }
  napi_valuetype vt;
  napi_typeof(a.env, a.argv[i], &vt);
  if (allow_null && (vt == napi_null || vt == napi_undefined)) { out.is_null = true; return true; }
  bool is_ta = false;
  napi_is_typedarray(a.env, a.argv[i], &is_ta);
  if (!is_ta) {
    throw_type(a.env, std::string(fn) + ": argument " + name + " must be a typed array");
    return false;
  }
  napi_value ab;
  size_t byte_offset;
  napi_get_typedarray_info(a.env, a.argv[i], &out.type, &out.length, &out.data, &ab, &byte_offset);
  return true;
}

inline bool get_f32(Args& a, size_t i, float*& p, size_t& n, const char* fn, const char* name, bool allow_null = false) {
  View v;
  if (!get_view(a, i, v, fn, name, allow_null)) return false;
  if (v.is_null) { p = nullptr; n = 0; return true; }
  if (v.type != napi_float32_array) { throw_type(a.env, std::string(fn) + ": argument " + name + " must be a Float32Array"); return false; }
  p = static_cast<float*>(v.data);
  n = v.length;
  return true;
}

inline bool get_i32(Args& a, size_t i, int32_t*& p, size_t& n, const char* fn, const char* name, bool allow_null = false) {
  View v;
  if (!get_view(a, i, v, fn, name, allow_null)) return false;
  if (v.is_null) { p = nullptr; n = 0; return true; }
  if (v.type != napi_int32_array) { throw_type(a.env, std::string(fn) + ": argument " + name + " must be an Int32Array"); return false; }
  p = static_cast<int32_t*>(v.data);
  n = v.length;
  return true;
}

inline double get_num(Args& a, size_t i, double dflt = 0.0) {
  if (i >= a.argc) return dflt;
  double d;
  if (napi_get_value_double(a.env, a.argv[i], &d) != napi_ok) return dflt;
  return d;
}

inline int64_t get_int(Args& a, size_t i, int64_t dflt = 0) {
  if (i >= a.argc) return dflt;
  int64_t v;
  if (napi_get_value_int64(a.env, a.argv[i], &v) != napi_ok) return dflt;
  return v;
}

inline bool get_bool(Args& a, size_t i, bool dflt = false) {
  if (i >= a.argc) return dflt;
  bool b;
  if (napi_get_value_bool(a.env, a.argv[i], &b) != napi_ok) return dflt;
  return b;
}

inline napi_value undefined(napi_env env) { napi_value u; napi_get_undefined(env, &u); return u; }
inline napi_value number(napi_env env, double d) { napi_value v; napi_create_double(env, d, &v); return v; }

inline void export_fn(napi_env env, napi_value exports, const char* name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, nullptr, &fn);
  napi_set_named_property(env, exports, name, fn);
}

// dtype codes shared with src/backend/native: 0 = f32, 1 = f16, 2 = bf16
enum DType : int { F32 = 0, F16 = 1, BF16 = 2 };

}  // namespace lk
