// The shape of an attention call, as the addon's attention kernels read it (ops_attention.cc's
// f32 kernels, attention_amx.cc's AMX-BF16 prompt kernel; backend/types.ts AttentionArgs).
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>

#include "napi_util.h"

namespace lk {
// internal linkage in each file that includes it, as the struct had in ops_attention.cc alone
// (the wasm module's code is the same as before the struct was shared)
namespace {

// q[B,T,Hq·D], k,v[B,S,Hkv·D], mask [B,S] or [B,T,S] (or none)
struct AttentionDims {
  int64_t B, T, S, Hq, Hkv, D;
  bool causal;
  float scale;
  const float* mask;
  bool mask_full;
  int64_t window;  // sliding window (0: none): query t sees no key more than window − 1 slots before it
  int64_t group() const { return Hq / Hkv; }
  // keys query t may see: lo(t) ≤ s < seen(t)
  int64_t seen(int64_t t) const { return causal ? t + S - T + 1 : S; }
  int64_t lo(int64_t t) const { return window > 0 ? std::max<int64_t>(0, t + S - T - window + 1) : 0; }
  const float* mask_row(int64_t b, int64_t t) const {
    if (!mask) return nullptr;
    return mask_full ? mask + (b * T + t) * S : mask + b * S;
  }
};

// Reads mask (argument i, may be null) and dims (argument i + 1: Float64Array
// [B, T, S, Hq, Hkv, D, causal, scale, window]).
bool get_dims(Args& a, size_t i, AttentionDims& d, const char* fn) {
  float* mask; size_t nm;
  View vd;
  if (!get_f32(a, i, mask, nm, fn, "mask", true) || !get_view(a, i + 1, vd, fn, "dims")) return false;
  if (vd.type != napi_float64_array || vd.length < 9) {
    throw_type(a.env, std::string(fn) + ": argument dims must be a Float64Array [B, T, S, Hq, Hkv, D, causal, scale, window]");
    return false;
  }
  const double* x = static_cast<const double*>(vd.data);
  d.B = static_cast<int64_t>(x[0]);
  d.T = static_cast<int64_t>(x[1]);
  d.S = static_cast<int64_t>(x[2]);
  d.Hq = static_cast<int64_t>(x[3]);
  d.Hkv = static_cast<int64_t>(x[4]);
  d.D = static_cast<int64_t>(x[5]);
  d.causal = x[6] != 0;
  d.scale = static_cast<float>(x[7]);
  d.window = static_cast<int64_t>(x[8]);
  d.mask = mask;
  d.mask_full = mask && static_cast<int64_t>(nm) != d.B * d.S;
  return true;
}

}  // namespace
}  // namespace lk
