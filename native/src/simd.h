// The SIMD layer (docs/ARCHITECTURE.md §Platforms and entry points, "One kernel source"):
// one small vector type per instruction set, so a kernel is written once against
// simd::V and compiled for each target:
//   - NEON      (AArch64; every ARM64 CPU has it: chosen at build time)
//   - SIMD128   (WebAssembly; with -mrelaxed-simd its fma is the relaxed multiply-add,
//                one rounding or two as the engine likes)
//   - SSE2      (x86-64 baseline, the portable path of the x86 addon)
//   - scalar    (four floats in an array; anything else, and the reference the NEON
//                kernels are tested against under qemu: LK_SIMD_SCALAR forces it)
// AVX2+FMA code on x86 stays in its hand-tuned files (gemm_avx2.cc, the Avx2Ops of
// ops_attention.cc, the LK_AVX2 functions of ops.cc), chosen at run time by cpu.cc.
//
// Every V here has W = 4 lanes of float and these operations (all lane-wise unless said):
//   zero(), set1(x), load(p), store(p, v) (unaligned), add, sub, mul,
//   fma(a, b, c) = a·b + c, max, hsum(v) (the sum of the lanes).
#pragma once

#if defined(LK_SIMD_SCALAR)
#define LK_SIMD_IMPL_SCALAR 1
#elif defined(__wasm_simd128__)
#include <wasm_simd128.h>
#define LK_SIMD_IMPL_WASM 1
#elif defined(__aarch64__) || defined(__ARM_NEON)
#include <arm_neon.h>
#define LK_SIMD_IMPL_NEON 1
#elif defined(__SSE2__)
#include <emmintrin.h>
#define LK_SIMD_IMPL_SSE2 1
#else
#define LK_SIMD_IMPL_SCALAR 1
#endif

namespace lk {
namespace simd {

#define LK_SIMD_INLINE inline __attribute__((always_inline))

#if LK_SIMD_IMPL_WASM
// (the two names have one length, and neither ends in another string of the module (the
// linker would store that one inside it, in one build only: "simd128-mul-add" held the
// kernel name "add"): the two builds must lay out their data alike, since they share one
// JavaScript glue, which holds a data address)
#if defined(__wasm_relaxed_simd__)
constexpr const char* kName = "simd128-relaxed";
#else
constexpr const char* kName = "simd128-unfused";
#endif
struct V {
  v128_t v;
};
LK_SIMD_INLINE V zero() { return {wasm_f32x4_splat(0.f)}; }
LK_SIMD_INLINE V set1(float x) { return {wasm_f32x4_splat(x)}; }
LK_SIMD_INLINE V load(const float* p) { return {wasm_v128_load(p)}; }
LK_SIMD_INLINE void store(float* p, V a) { wasm_v128_store(p, a.v); }
LK_SIMD_INLINE V add(V a, V b) { return {wasm_f32x4_add(a.v, b.v)}; }
LK_SIMD_INLINE V sub(V a, V b) { return {wasm_f32x4_sub(a.v, b.v)}; }
LK_SIMD_INLINE V mul(V a, V b) { return {wasm_f32x4_mul(a.v, b.v)}; }
LK_SIMD_INLINE V fma(V a, V b, V c) {
#if defined(__wasm_relaxed_simd__)
  // clang 14 emits this builtin with the pre-standard opcode 0xaf; scripts/build-wasm.mjs
  // rewrites it to the standard f32x4.relaxed_madd (0x105), whose operands (p, q, r) mean
  // p·q + r (checked by the kernel tests, which run on the relaxed build where it loads).
  return {__builtin_wasm_fma_f32x4(a.v, b.v, c.v)};
#else
  return {wasm_f32x4_add(wasm_f32x4_mul(a.v, b.v), c.v)};
#endif
}
// pmax (b < a ? a : b) is one instruction in V8; max (NaN-propagating) is several
LK_SIMD_INLINE V max(V a, V b) { return {wasm_f32x4_pmax(a.v, b.v)}; }
LK_SIMD_INLINE float hsum(V a) {
  return (wasm_f32x4_extract_lane(a.v, 0) + wasm_f32x4_extract_lane(a.v, 1)) +
         (wasm_f32x4_extract_lane(a.v, 2) + wasm_f32x4_extract_lane(a.v, 3));
}

#elif LK_SIMD_IMPL_NEON
constexpr const char* kName = "neon";
struct V {
  float32x4_t v;
};
LK_SIMD_INLINE V zero() { return {vdupq_n_f32(0.f)}; }
LK_SIMD_INLINE V set1(float x) { return {vdupq_n_f32(x)}; }
LK_SIMD_INLINE V load(const float* p) { return {vld1q_f32(p)}; }
LK_SIMD_INLINE void store(float* p, V a) { vst1q_f32(p, a.v); }
LK_SIMD_INLINE V add(V a, V b) { return {vaddq_f32(a.v, b.v)}; }
LK_SIMD_INLINE V sub(V a, V b) { return {vsubq_f32(a.v, b.v)}; }
LK_SIMD_INLINE V mul(V a, V b) { return {vmulq_f32(a.v, b.v)}; }
LK_SIMD_INLINE V fma(V a, V b, V c) { return {vfmaq_f32(c.v, a.v, b.v)}; }
LK_SIMD_INLINE V max(V a, V b) { return {vmaxq_f32(a.v, b.v)}; }
LK_SIMD_INLINE float hsum(V a) {
  const float32x2_t s = vadd_f32(vget_low_f32(a.v), vget_high_f32(a.v));
  return vget_lane_f32(s, 0) + vget_lane_f32(s, 1);
}

#elif LK_SIMD_IMPL_SSE2
constexpr const char* kName = "sse2";
struct V {
  __m128 v;
};
LK_SIMD_INLINE V zero() { return {_mm_setzero_ps()}; }
LK_SIMD_INLINE V set1(float x) { return {_mm_set1_ps(x)}; }
LK_SIMD_INLINE V load(const float* p) { return {_mm_loadu_ps(p)}; }
LK_SIMD_INLINE void store(float* p, V a) { _mm_storeu_ps(p, a.v); }
LK_SIMD_INLINE V add(V a, V b) { return {_mm_add_ps(a.v, b.v)}; }
LK_SIMD_INLINE V sub(V a, V b) { return {_mm_sub_ps(a.v, b.v)}; }
LK_SIMD_INLINE V mul(V a, V b) { return {_mm_mul_ps(a.v, b.v)}; }
LK_SIMD_INLINE V fma(V a, V b, V c) { return {_mm_add_ps(_mm_mul_ps(a.v, b.v), c.v)}; }
LK_SIMD_INLINE V max(V a, V b) { return {_mm_max_ps(a.v, b.v)}; }
LK_SIMD_INLINE float hsum(V a) {
  alignas(16) float t[4];
  _mm_store_ps(t, a.v);
  return (t[0] + t[1]) + (t[2] + t[3]);
}

#else
constexpr const char* kName = "scalar";
struct V {
  float v[4];
};
LK_SIMD_INLINE V zero() { return {{0.f, 0.f, 0.f, 0.f}}; }
LK_SIMD_INLINE V set1(float x) { return {{x, x, x, x}}; }
LK_SIMD_INLINE V load(const float* p) { return {{p[0], p[1], p[2], p[3]}}; }
LK_SIMD_INLINE void store(float* p, V a) {
  for (int i = 0; i < 4; ++i) p[i] = a.v[i];
}
LK_SIMD_INLINE V add(V a, V b) { return {{a.v[0] + b.v[0], a.v[1] + b.v[1], a.v[2] + b.v[2], a.v[3] + b.v[3]}}; }
LK_SIMD_INLINE V sub(V a, V b) { return {{a.v[0] - b.v[0], a.v[1] - b.v[1], a.v[2] - b.v[2], a.v[3] - b.v[3]}}; }
LK_SIMD_INLINE V mul(V a, V b) { return {{a.v[0] * b.v[0], a.v[1] * b.v[1], a.v[2] * b.v[2], a.v[3] * b.v[3]}}; }
LK_SIMD_INLINE V fma(V a, V b, V c) { return add(mul(a, b), c); }
LK_SIMD_INLINE V max(V a, V b) {
  V r;
  for (int i = 0; i < 4; ++i) r.v[i] = b.v[i] < a.v[i] ? a.v[i] : b.v[i];
  return r;
}
LK_SIMD_INLINE float hsum(V a) { return (a.v[0] + a.v[1]) + (a.v[2] + a.v[3]); }
#endif

constexpr int W = 4;  // lanes of V

}  // namespace simd
}  // namespace lk
