// AMX pieces shared by the inference-only kernels (issue 24; docs/ARCHITECTURE.md §Decoding,
// "Prompt products on AMX"): gemm_amx.cc's detection and tile state, used by attention_amx.cc.
// The addon only (not the wasm or shim builds); LK_AMX is defined where AMX code is compiled
// (x86-64 Linux), elsewhere bf16_ready() is false and nothing else exists.
#pragma once
#include <cstdint>

#if defined(__x86_64__) && !defined(__EMSCRIPTEN__) && defined(__linux__)
#define LK_AMX 1
#include <immintrin.h>
#endif

namespace lk {
namespace amx {

// AMX-BF16 may run: the CPU has AMX-TILE, AMX-BF16, AVX512-BF16 and AVX-512F is in use, the
// kernel granted the tile state, and LORAKIT_AMX is not 0 (gemm_amx.cc: available()).
bool bf16_ready();

#if defined(LK_AMX)
// This thread's tile configuration: tiles 0-7 each 16 rows × 64 bytes (16 × 16 f32 for C,
// 16 rows × 32 bf16 for A, 16 pair rows × 16 columns for B); tiles_release() gives it back.
void tiles_bf16();
void tiles_release();

// 16×16 transpose of 32-bit elements: r[i] holds row i; on return r[j] holds column j.
__attribute__((target("avx512f"))) inline void transpose16(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_i32x4(u[i], u[4 + i], 0x88);
    t[4 + i] = _mm512_shuffle_i32x4(u[i], u[4 + i], 0xdd);
    t[8 + i] = _mm512_shuffle_i32x4(u[8 + i], u[12 + i], 0x88);
    t[12 + i] = _mm512_shuffle_i32x4(u[8 + i], u[12 + i], 0xdd);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[8 + i], 0x88);
    r[4 + i] = _mm512_shuffle_i32x4(t[4 + i], t[12 + i], 0x88);
    r[8 + i] = _mm512_shuffle_i32x4(t[i], t[8 + i], 0xdd);
    r[12 + i] = _mm512_shuffle_i32x4(t[4 + i], t[12 + i], 0xdd);
  }
}
#endif  // LK_AMX

}  // namespace amx
}  // namespace lk
