// Internal interface between the GEMM driver (gemm.cc) and its instruction-set specific
// kernels (gemm_avx2.cc, and gemm_simd.cc on the SIMD layer).
//
// Letters: C[M,N] (+)= alpha · op(A)[M,K] · op(B)[K,N].
//   A is stored [M,K] (row i at A + i·lda) or, when transposed, [K,M] (row k at A + k·lda).
//   B is stored [K,N] (row k at B + k·ldb) or, when transposed, [N,K] (row j at B + j·ldb).
// Packed layouts (the driver sizes the buffers; both are zero-padded to whole panels):
//   packed A block of op(A)[i0:i0+mc, k0:k0+kc]: ceil(mc/MR) panels, each [kc][MR]
//     (panel p, element (i, k) at p·kc·MR + k·MR + i, i < MR).
//   packed B block of op(B)[k0:k0+kc, j0:j0+nc]: ceil(nc/NR) panels, each [kc][NR]
//     (panel q, element (k, j) at q·kc·NR + k·NR + j, j < NR).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace lk {
namespace gemm {

// One operand as stored: data, dtype code (0 f32, 1 f16, 2 bf16), row stride, layout.
// A scratch buffer that grows and never shrinks, 64-byte aligned; kept thread_local, one per use
// (the GEMM's packed panels, the AMX panels, quant::scratch).
struct AlignedBuf {
  void* p = nullptr;
  size_t bytes = 0;
  AlignedBuf() = default;
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
  ~AlignedBuf() { std::free(p); }
  // Room for at least n values of T; what it held before a growth is lost.
  template <class T>
  T* get(size_t n) {
    const size_t need = (n * sizeof(T) + 63) / 64 * 64;
    if (need > bytes) {
      std::free(p);
      bytes = need;
      p = std::aligned_alloc(64, need);
    }
    return static_cast<T*>(p);
  }
};

struct Operand {
  const void* p;
  int dt;
  int64_t ld;
  bool trans;
};

// Packs op(A)[i0:i0+mc, k0:k0+kc] into `dst` (ceil(mc/MR) panels of [kc][MR]).
using PackAFn = void (*)(float* dst, const Operand& a, int64_t i0, int64_t mc, int64_t k0, int64_t kc);
// Packs op(B)[k0:k0+kc, j0:j0+nc] into `dst` (ceil(nc/NR) panels of [kc][NR]).
using PackBFn = void (*)(float* dst, const Operand& b, int64_t k0, int64_t kc, int64_t j0, int64_t nc);
// One MR×NR tile on packed panels: a [kc][MR], b [kc][NR]; C tile at c (row stride ldc),
// only its first mr rows and nr columns are written:
//   C[0:mr, 0:nr] = (beta ? C : 0) + alpha · a^T·b.
using MicroFn = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int mr, int nr, float alpha,
                         bool beta);
// The unpacked-A ("direct") path for f32 A, used for small and thin products: computes
// C[i0:i1, j0:j1] for the whole K from A as stored and B either as stored (bpacked ==
// nullptr: f32 [K,N] not transposed, N a multiple of 8) or packed by the caller, all of
// op(B), in panels [K][NRd] (panel q holds columns q·NRd .. q·NRd + NRd − 1); j0 is a
// multiple of NRd.
using DirectFn = void (*)(const float* A, int64_t lda, bool transA, const float* B, int64_t ldb, const float* bpacked,
                          float* C, int64_t ldc, int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t K, float alpha,
                          bool beta);

struct Impl {
  const char* name;
  int MR, NR;    // packed micro-tile
  int NRd;       // panel width of the direct path's packed B (0: no direct path)
  PackAFn pack_a;
  PackBFn pack_b;
  MicroFn micro;
  DirectFn direct;     // nullptr when this instruction set has no direct path
  PackBFn pack_b_direct;  // packs B in panels of NRd for the direct path
};

// C[0:m, 0:n] += Σ_{k<kc} a[k·as + i]·b[k·bs + j]: Aᵀ·B for A stored [kc][as] and B [kc][bs],
// on the packed micro-kernel read in place (for small products such as attention's dk, dv).
// Each row of a must be readable to round_up(m, 6), each row of b to round_up(n, 16).
// Call only when the CPU has AVX2+FMA.
void acc_at_b_avx2(int64_t kc, const float* a, int64_t as, const float* b, int64_t bs, float* c, int64_t ldc, int64_t m,
                   int64_t n);

const Impl& simd_impl();  // gemm_simd.cc (NEON, SIMD128, SSE2 or scalar: the build target's)
const Impl& avx2_impl();  // gemm_avx2.cc, x86 only (call only when the CPU has AVX2+FMA+F16C)
bool use_avx2();          // the CPU has AVX2+FMA+F16C and LORAKIT_NO_AVX2 is not set
const Impl& avx512_impl();  // gemm_avx2.cc: the packed path on AVX-512F (call only when use_avx512())
bool use_avx512();          // use_avx2(), the CPU (and OS) has AVX-512F, and LORAKIT_NO_AVX512 is not set
const Impl& current_impl();  // the kernels run() uses

// C[M,N] (+)= alpha · op(A)[M,K] · op(B)[K,N] on the thread pool (gemm.cc; shapes valid).
void run(float* C, int64_t ldc, const Operand& A, const Operand& B, int64_t M, int64_t N, int64_t K, float alpha,
         bool acc);

// a / b rounded up, and a rounded up to a multiple of b (a ≥ 0, b > 0): block counts and padded sizes
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Few-row products against a weight stored [N,K] (gemv.cc, the decode path): whether
// gemv() takes C = alpha · A[M,K] · op(B) (f32 A as stored, B transposed, M ≤ kGemvMaxRows),
// and the product itself on the thread pool (each weight element read once for all M rows).
constexpr int64_t kGemvMaxRows = 16;
bool gemv_applies(const Operand& A, const Operand& B, int64_t M);
void gemv(float* C, int64_t ldc, const Operand& A, const Operand& B, int64_t M, int64_t N, int64_t K, float alpha,
          bool acc);

// Scalar widening of half values (exact; NaN payloads kept).
inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline float f16_to_f32(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) {
        mant <<= 1;
        exp--;
      }
      mant &= 0x3ff;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Element `idx` of a stored operand, widened to f32.
inline float load_elem(const void* p, int dt, int64_t idx) {
  if (dt == 0) return static_cast<const float*>(p)[idx];
  uint16_t h = static_cast<const uint16_t*>(p)[idx];
  return dt == 2 ? bf16_to_f32(h) : f16_to_f32(h);
}

// Portable packers (scalar), also the fallback of the AVX2 ones for rare layouts.
void pack_a_scalar(float* dst, const Operand& a, int64_t i0, int64_t mc, int64_t k0, int64_t kc, int MR);
void pack_b_scalar(float* dst, const Operand& b, int64_t k0, int64_t kc, int64_t j0, int64_t nc, int NR);

}  // namespace gemm
}  // namespace lk
