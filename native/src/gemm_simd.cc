// The GEMM micro-kernel and packers written once against the SIMD layer (simd.h), for
// every target that is not x86 with AVX2: NEON on ARM64, SIMD128 in WebAssembly, SSE2 as
// x86's portable path, scalar elsewhere. The driver (gemm.cc) runs them through the same
// blocked loops as the AVX2 kernels. Letters and packed layouts: see gemm.h.
//
// Tile: kMR rows × kNV vectors of 4 columns, accumulated in kMR·kNV registers. In V8 small
// tiles win (2×16 beat 4×16 and 6×16 for SIMD128, issue 19); NEON has 32 registers (4×16);
// SSE2 has 16 (4×8).
#include <cstdint>
#include <cstring>

#include "gemm.h"
#include "simd.h"

namespace lk {
namespace gemm {
namespace {

using simd::V;

#if LK_SIMD_IMPL_WASM
constexpr int kMR = 2, kNV = 4;
#elif LK_SIMD_IMPL_NEON
constexpr int kMR = 4, kNV = 4;
#else
constexpr int kMR = 4, kNV = 2;
#endif
constexpr int kNR = kNV * simd::W;

// a [kc][kMR], b [kc][kNR] -> C[0:mr, 0:nr] = (beta ? C : 0) + alpha · aᵀ·b
void micro_simd(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc, int mr, int nr,
                float alpha, bool beta) {
  V acc[kMR][kNV];
  for (int i = 0; i < kMR; ++i)
    for (int v = 0; v < kNV; ++v) acc[i][v] = simd::zero();
  for (int64_t k = 0; k < kc; ++k, a += kMR, b += kNR) {
    V bv[kNV];
    for (int v = 0; v < kNV; ++v) bv[v] = simd::load(b + v * simd::W);
    for (int i = 0; i < kMR; ++i) {
      const V ai = simd::set1(a[i]);
      for (int v = 0; v < kNV; ++v) acc[i][v] = simd::fma(ai, bv[v], acc[i][v]);
    }
  }
  const V al = simd::set1(alpha);
  if (mr == kMR && nr == kNR) {
    for (int i = 0; i < kMR; ++i)
      for (int v = 0; v < kNV; ++v) {
        float* p = c + i * ldc + v * simd::W;
        const V r = simd::mul(al, acc[i][v]);
        simd::store(p, beta ? simd::add(simd::load(p), r) : r);
      }
    return;
  }
  float t[kMR][kNR];
  for (int i = 0; i < kMR; ++i)
    for (int v = 0; v < kNV; ++v) simd::store(t[i] + v * simd::W, simd::mul(al, acc[i][v]));
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < nr; ++j) c[i * ldc + j] = (beta ? c[i * ldc + j] : 0.f) + t[i][j];
}

// Packers: f32 operands copied row by row (the common layouts), the rest through the
// scalar packers, which widen f16/bf16 element by element.
void pack_a_simd(float* dst, const Operand& a, int64_t i0, int64_t mc, int64_t k0, int64_t kc) {
  if (a.dt != 0) return pack_a_scalar(dst, a, i0, mc, k0, kc, kMR);
  const float* A = static_cast<const float*>(a.p);
  for (int64_t ip = 0; ip < mc; ip += kMR, dst += kc * kMR) {
    const int64_t mr = mc - ip < kMR ? mc - ip : kMR;
    if (a.trans) {  // A stored [K,M]: a panel row k is kMR contiguous floats
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = A + (k0 + k) * a.ld + i0 + ip;
        for (int64_t i = 0; i < kMR; ++i) dst[k * kMR + i] = i < mr ? src[i] : 0.f;
      }
    } else {
      for (int64_t i = 0; i < kMR; ++i) {
        const float* src = A + (i0 + ip + i) * a.ld + k0;
        if (i < mr)
          for (int64_t k = 0; k < kc; ++k) dst[k * kMR + i] = src[k];
        else
          for (int64_t k = 0; k < kc; ++k) dst[k * kMR + i] = 0.f;
      }
    }
  }
}

void pack_b_simd(float* dst, const Operand& b, int64_t k0, int64_t kc, int64_t j0, int64_t nc) {
  if (b.dt != 0) return pack_b_scalar(dst, b, k0, kc, j0, nc, kNR);
  const float* B = static_cast<const float*>(b.p);
  for (int64_t jp = 0; jp < nc; jp += kNR, dst += kc * kNR) {
    const int64_t nr = nc - jp < kNR ? nc - jp : kNR;
    if (!b.trans) {  // B stored [K,N]: a panel row k is nr contiguous floats
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = B + (k0 + k) * b.ld + j0 + jp;
        float* d = dst + k * kNR;
        if (nr == kNR) {
          for (int v = 0; v < kNV; ++v) simd::store(d + v * simd::W, simd::load(src + v * simd::W));
        } else {
          for (int64_t j = 0; j < kNR; ++j) d[j] = j < nr ? src[j] : 0.f;
        }
      }
    } else {  // B stored [N,K]: column j of the panel is row j0 + jp + j
      for (int64_t j = 0; j < kNR; ++j) {
        const float* src = B + (j0 + jp + j) * b.ld + k0;
        if (j < nr)
          for (int64_t k = 0; k < kc; ++k) dst[k * kNR + j] = src[k];
        else
          for (int64_t k = 0; k < kc; ++k) dst[k * kNR + j] = 0.f;
      }
    }
  }
}

}  // namespace

const Impl& simd_impl() {
  static const Impl impl = {simd::kName, kMR, kNR, 0, pack_a_simd, pack_b_simd, micro_simd, nullptr, nullptr};
  return impl;
}

}  // namespace gemm
}  // namespace lk
