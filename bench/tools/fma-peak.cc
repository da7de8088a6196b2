// The machine's FMA throughput ceiling per vector width (128-bit: what WebAssembly SIMD128 can
// use at best; 256-bit: AVX2; 512-bit: AVX-512), 12 independent accumulators, on 1 and 2
// threads. Issue 19's bound on wasm/native (bench/RESULTS.md). Build and run:
//   g++ -O3 -mavx512f -mfma bench/tools/fma-peak.cc -o /tmp/fma-peak -lpthread && /tmp/fma-peak
#include <immintrin.h>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>
template <class V, V (*FMA)(V, V, V), V (*SET)(float)>
double run(long iters) {
  V acc[12]; for (int i = 0; i < 12; i++) acc[i] = SET(1.0f + i * 1e-3f);
  V a = SET(0.999999f), b = SET(1e-7f);
  for (long it = 0; it < iters; it++)
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) acc[i] = FMA(acc[i], a, b);
  float s = 0; for (int i = 0; i < 12; i++) s += ((float*)&acc[i])[0];
  return s;
}
static __m128 f128(__m128 x, __m128 a, __m128 b) { return _mm_fmadd_ps(x, a, b); }
static __m256 f256(__m256 x, __m256 a, __m256 b) { return _mm256_fmadd_ps(x, a, b); }
static __m512 f512(__m512 x, __m512 a, __m512 b) { return _mm512_fmadd_ps(x, a, b); }
static __m128 s128(float v) { return _mm_set1_ps(v); }
static __m256 s256(float v) { return _mm256_set1_ps(v); }
static __m512 s512(float v) { return _mm512_set1_ps(v); }
template <class F> double gflops(F f, int lanes, int threads, long iters) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> ts; volatile double sink = 0;
  for (int t = 0; t < threads; t++) ts.emplace_back([&] { sink = sink + f(iters); });
  for (auto& t : ts) t.join();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * lanes * 12 * iters * threads / s / 1e9;
}
int main() {
  long n = 200000000;
  for (int th = 1; th <= 2; th++) {
    std::printf("%d thread(s): 128-bit %.1f  256-bit %.1f  512-bit %.1f GFLOP/s\n", th,
      gflops(run<__m128, f128, s128>, 4, th, n), gflops(run<__m256, f256, s256>, 8, th, n),
      gflops(run<__m512, f512, s512>, 16, th, n / 2));
  }
}
