// Runtime CPU detection. LORAKIT_NO_AVX2=1 forces the portable kernels (for tests).
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

}  // namespace lk
