// Runtime CPU detection. LORAKIT_NO_AVX2=1 forces the portable kernels, LORAKIT_NO_AVX512=1
// the AVX2 GEMM kernels on an AVX-512 CPU (for tests and A/B runs).
#include <cstdlib>

namespace lk {

bool cpu_has_avx2_fma() {
  static const bool has = [] {
    const char* off = std::getenv("LORAKIT_NO_AVX2");
    if (off && *off && *off != '0') return false;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
  }();
  return has;
}

// AVX-512F usable (the CPU has it and the OS saves the zmm state: libgcc checks XCR0), on
// top of AVX2+FMA, and LORAKIT_NO_AVX512 is not set. Only the GEMM's packed path uses it.
bool cpu_has_avx512f() {
  static const bool has = [] {
    const char* off = std::getenv("LORAKIT_NO_AVX512");
    if (off && *off && *off != '0') return false;
    if (!cpu_has_avx2_fma()) return false;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
#else
    return false;
#endif
  }();
  return has;
}

}  // namespace lk
