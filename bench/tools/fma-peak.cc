// The machine's measured f32 FMA peak: each thread runs 12 independent chains of 8-wide
// fused multiply-adds (enough to hide the FMA latency on two pipes), so nothing but the
// FMA units limits it. Used to read GEMM and training-step rates as a share of what the
// cores really do (a VM's nominal clock can be far from its boost clock).
//
//   g++ -O2 -pthread bench/tools/fma-peak.cc -o /tmp/fma-peak && /tmp/fma-peak 2
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

constexpr int kChains = 12;

__attribute__((target("avx2,fma"))) float run_chains(long iters) {
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(0.001f * static_cast<float>(i));
  const __m256 mul = _mm256_set1_ps(0.999f), add = _mm256_set1_ps(0.0001f);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], mul, add);
  }
  __m256 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm256_add_ps(s, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];  // returned so the loop is not optimised away
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  const long iters = 200000000;
  std::vector<float> sink(threads);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back([&, t] { sink[t] = run_chains(iters); });
  for (auto& th : pool) th.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double flops = static_cast<double>(threads) * iters * kChains * 16;  // 8 lanes × 2 flops
  std::printf("%d thread(s): %.1f GFLOP/s f32 FMA peak (%.2f GHz at 2 FMA per cycle per core; check %g)\n", threads,
              flops / s / 1e9, static_cast<double>(iters) * kChains / 2 / s / 1e9, static_cast<double>(sink[0]));
  return 0;
}
