// The few N-API calls the kernel glue uses (napi_util.h), implemented over a plain array of
// arguments, for builds without Node: the WebAssembly module (native/wasm) and the kernel
// test program run under qemu (native/test). With it the kernel sources compile unchanged
// for every target; shim_module.cc registers their functions and calls them by number.
// docs/ARCHITECTURE.md §Adding a backend (the wasm backend).
//
// An argument is an lk_shim_value: a kind (napi_valuetype), and for a typed array its
// element type, data pointer and length, for a number or boolean its value.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

typedef enum { napi_ok, napi_invalid_arg, napi_number_expected, napi_boolean_expected, napi_generic_failure } napi_status;
typedef enum {
  napi_undefined,
  napi_null,
  napi_boolean,
  napi_number,
  napi_string,
  napi_symbol,
  napi_object,
  napi_function,
  napi_external,
  napi_bigint,
} napi_valuetype;
typedef enum {
  napi_int8_array,
  napi_uint8_array,
  napi_uint8_clamped_array,
  napi_int16_array,
  napi_uint16_array,
  napi_int32_array,
  napi_uint32_array,
  napi_float32_array,
  napi_float64_array,
  napi_bigint64_array,
  napi_biguint64_array,
} napi_typedarray_type;

// Layout shared with src/backend/wasm/module.ts (wasm32: 24 bytes, num at offset 16).
struct lk_shim_value {
  int32_t kind;     // napi_valuetype
  int32_t ta_type;  // napi_typedarray_type, for kind napi_object (a typed array)
  void* data;
  size_t length;    // elements
  double num;       // napi_number, napi_boolean (0 / 1)
};
struct lk_shim_fn;
struct lk_shim_env {
  std::string error;                        // the TypeError thrown by the last call
  std::vector<lk_shim_value> results;       // values created during a call (a few)
  std::vector<lk_shim_fn>* registry = nullptr;
  std::string str;                          // the last string created
};
struct lk_shim_info {
  size_t argc;
  lk_shim_value* argv;
};
typedef lk_shim_env* napi_env;
typedef lk_shim_value* napi_value;
typedef lk_shim_info* napi_callback_info;
typedef napi_value (*napi_callback)(napi_env, napi_callback_info);
struct lk_shim_fn {
  std::string name;
  napi_callback cb;
};

#define NAPI_AUTO_LENGTH SIZE_MAX

inline napi_value lk_shim_new(napi_env env, int32_t kind, double num = 0) {
  env->results.push_back({kind, 0, nullptr, 0, num});
  return &env->results.back();
}

inline napi_status napi_get_cb_info(napi_env, napi_callback_info info, size_t* argc, napi_value* argv, napi_value* self, void**) {
  const size_t n = *argc < info->argc ? *argc : info->argc;
  for (size_t i = 0; i < n; ++i) argv[i] = info->argv + i;
  *argc = info->argc;
  if (self) *self = nullptr;
  return napi_ok;
}
inline napi_status napi_typeof(napi_env, napi_value v, napi_valuetype* t) {
  *t = static_cast<napi_valuetype>(v->kind);
  return napi_ok;
}
inline napi_status napi_is_typedarray(napi_env, napi_value v, bool* r) {
  *r = v->kind == napi_object && v->data != nullptr;
  return napi_ok;
}
inline napi_status napi_get_typedarray_info(napi_env, napi_value v, napi_typedarray_type* type, size_t* length, void** data,
                                            napi_value* ab, size_t* byte_offset) {
  if (type) *type = static_cast<napi_typedarray_type>(v->ta_type);
  if (length) *length = v->length;
  if (data) *data = v->data;
  if (ab) *ab = nullptr;
  if (byte_offset) *byte_offset = 0;
  return napi_ok;
}
inline napi_status napi_get_value_double(napi_env, napi_value v, double* r) {
  if (v->kind != napi_number) return napi_number_expected;
  *r = v->num;
  return napi_ok;
}
inline napi_status napi_get_value_int64(napi_env, napi_value v, int64_t* r) {
  if (v->kind != napi_number) return napi_number_expected;
  *r = static_cast<int64_t>(v->num);
  return napi_ok;
}
inline napi_status napi_get_value_bool(napi_env, napi_value v, bool* r) {
  if (v->kind != napi_boolean) return napi_boolean_expected;
  *r = v->num != 0;
  return napi_ok;
}
inline napi_status napi_throw_type_error(napi_env env, const char*, const char* msg) {
  env->error = msg;
  return napi_ok;
}
inline napi_status napi_get_undefined(napi_env env, napi_value* r) {
  *r = lk_shim_new(env, napi_undefined);
  return napi_ok;
}
inline napi_status napi_get_boolean(napi_env env, bool b, napi_value* r) {
  *r = lk_shim_new(env, napi_boolean, b ? 1 : 0);
  return napi_ok;
}
inline napi_status napi_create_double(napi_env env, double d, napi_value* r) {
  *r = lk_shim_new(env, napi_number, d);
  return napi_ok;
}
inline napi_status napi_create_uint32(napi_env env, uint32_t d, napi_value* r) {
  *r = lk_shim_new(env, napi_number, d);
  return napi_ok;
}
inline napi_status napi_create_string_utf8(napi_env env, const char* s, size_t, napi_value* r) {
  env->str = s;
  *r = lk_shim_new(env, napi_string);
  return napi_ok;
}
inline napi_status napi_create_object(napi_env env, napi_value* r) {
  *r = lk_shim_new(env, napi_object);
  return napi_ok;
}
// Functions are registered, not created: napi_create_function records the name and the
// callback, napi_set_named_property on the exports adds them to the registry.
inline napi_status napi_create_function(napi_env env, const char* name, size_t, napi_callback cb, void*, napi_value* r) {
  env->registry->push_back({name, cb});
  *r = lk_shim_new(env, napi_function);
  return napi_ok;
}
inline napi_status napi_set_named_property(napi_env, napi_value, const char*, napi_value) { return napi_ok; }
