#include "threadpool.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace lk {
namespace {

struct Pool {
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable cv;
  const std::function<void(int, int)>* job = nullptr;
  std::atomic<int> next{0};
  std::atomic<int> done{0};
  int ntasks = 0;
  std::atomic<uint64_t> generation{0};
  std::atomic<int> active_workers{0};
  bool stop = false;
  int nthreads = 1;

  ~Pool() { shutdown(); }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
      generation.fetch_add(1);
    }
    cv.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
    stop = false;
  }

  void run_tasks(int tid) {
    for (;;) {
      int t = next.fetch_add(1, std::memory_order_relaxed);
      if (t >= ntasks) break;
      (*job)(t, tid);
      done.fetch_add(1, std::memory_order_release);
    }
  }

  void worker(int tid) {
    uint64_t seen = generation.load();
    for (;;) {
      // spin a little before sleeping: kernels come in quick succession
      int spins = 0;
      while (generation.load(std::memory_order_acquire) == seen && spins < 20000) {
        ++spins;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      }
      if (generation.load(std::memory_order_acquire) == seen) {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return generation.load() != seen; });
      }
      seen = generation.load();
      if (stop) return;
      active_workers.fetch_add(1, std::memory_order_acq_rel);
      if (job) run_tasks(tid);
      active_workers.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void resize(int n) {
    if (n < 1) n = 1;
    shutdown();
    nthreads = n;
    for (int i = 1; i < n; ++i) workers.emplace_back([this, i] { worker(i); });
  }

  void parallel_for(int n, const std::function<void(int, int)>& fn) {
    if (n <= 0) return;
    if (nthreads == 1 || n == 1) {
      for (int i = 0; i < n; ++i) fn(i, 0);
      return;
    }
    {
      std::lock_guard<std::mutex> lk(mu);
      job = &fn;
      ntasks = n;
      next.store(0);
      done.store(0);
      generation.fetch_add(1, std::memory_order_release);
    }
    cv.notify_all();
    run_tasks(0);
    while (done.load(std::memory_order_acquire) < n) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    // wait until no worker is still inside run_tasks for this job before releasing fn
    while (active_workers.load(std::memory_order_acquire) != 0) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    job = nullptr;
  }
};

int default_threads() {
  const char* env = std::getenv("LORAKIT_THREADS");
  if (env && *env) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? static_cast<int>(hc) : 1;
}

Pool& pool() {
  static Pool* p = [] {
    Pool* q = new Pool();
    q->resize(default_threads());
    return q;
  }();
  return *p;
}

}  // namespace

int num_threads() { return pool().nthreads; }
void set_num_threads(int n) { pool().resize(n); }
void parallel_for(int ntasks, const std::function<void(int, int)>& fn) { pool().parallel_for(ntasks, fn); }

}  // namespace lk
