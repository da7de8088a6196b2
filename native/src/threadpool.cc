// The worker pool behind lk::parallel_for.
//
// One job at a time. Its description (fn, ntasks, next) is written by the submitting
// thread while no worker can read it, then published by a release store of `state`:
//   state = generation << 32 | CLOSED bit (1 << 16) | active (bits 0..15)
// A worker joins a job by a CAS that increments `active`, and only while the job's
// generation is the one it saw and the job is not CLOSED; it claims tasks from `next`
// and leaves with a release decrement of `active`. The submitter runs tasks too, then
// closes the job with a CAS that needs active == 0. After that no worker holds fn, every
// task's writes are visible to the submitter (acquire on the CAS), and a worker that
// wakes late sees CLOSED or a newer generation and stays out. This fixes the races of the
// first pool (a late worker running the next job's tasks through a stale fn, `ntasks`
// read without synchronisation).
//
// Waiting (the submitter for the workers to leave, a worker for the next job) spins with a
// pause, then with sched_yield (see backoff).
// Sleeping: after spinning for kSpinMicros a worker registers in `sleepers` and waits on
// the condition variable. Submit stores `state`, then reads `sleepers` (both seq_cst);
// the worker increments `sleepers`, then re-reads `state` (both seq_cst) under the mutex:
// one of the two sees the other, so no wake-up is lost.
#include "threadpool.h"

#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace lk {
namespace {

constexpr uint64_t kActiveMask = 0xffffu;
constexpr uint64_t kClosed = 1u << 16;
// How long an idle worker spins (pausing, then yielding its core) before it sleeps. Waking a
// sleeping worker took 0.3–0.7 ms on the 2-core VMs we measure on (a 0.7 ms product after a
// 2 ms pause ran as slowly as on one thread), and a training step leaves ~100 gaps of more
// than 0.2 ms between parallel kernels (JavaScript and small single-threaded work): a
// worker that spins through such gaps joins the next kernel at once. After 5 ms idle it
// sleeps, so a process that stops computing gives its core back.
constexpr int kSpinMicros = 5000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Waiting step i of a spin: a pause at first, then a yield of the core, so that a waiting
// thread gives its time slice to the thread it waits for (or to other work) when the
// machine is busier than the pool: a descheduled peer is not waited for by burning the
// core it needs.
inline void backoff(int i) {
  if (i < 256) cpu_relax();
  else sched_yield();
}

// Set on pool workers, and on the submitter while it runs tasks: a nested parallel_for
// from inside a task runs serially instead of deadlocking.
thread_local bool t_in_pool = false;

int usable_cores() {
#if defined(CPU_COUNT) && !defined(__EMSCRIPTEN__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? static_cast<int>(hc) : 1;
}

struct Pool {
  std::vector<std::thread> workers;
  int nthreads = 1;

  // the job (written only while no worker can join; see the top of the file)
  const std::function<void(int, int)>* fn = nullptr;
  int ntasks = 0;
  std::atomic<int> next{0};

  std::atomic<uint64_t> state{kClosed};
  uint64_t generation = 0;  // submitter's copy of the current generation

  std::mutex submit_mu;  // one submitter at a time (others run serially)
  std::mutex mu;         // for sleeping
  std::condition_variable cv;
  std::atomic<int> sleepers{0};
  std::atomic<bool> stop{false};

  ~Pool() { shutdown(); }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop.store(true);
    }
    cv.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
    stop.store(false);
  }

  void run_tasks(int tid) {
    const int n = ntasks;
    const auto& f = *fn;
    for (;;) {
      int t = next.fetch_add(1, std::memory_order_relaxed);
      if (t >= n) break;
      f(t, tid);
    }
  }

  void worker(int tid, uint64_t seen) {
    t_in_pool = true;
    for (;;) {
      uint64_t s = state.load(std::memory_order_acquire);
      if ((s >> 32) == seen && !stop.load(std::memory_order_relaxed)) {
        auto start = std::chrono::steady_clock::now();
        for (int i = 0;; ++i) {
          backoff(i);
          s = state.load(std::memory_order_acquire);
          if ((s >> 32) != seen || stop.load(std::memory_order_relaxed)) break;
          if ((i & 63) == 63 && std::chrono::steady_clock::now() - start > std::chrono::microseconds(kSpinMicros)) {
            std::unique_lock<std::mutex> lk(mu);
            sleepers.fetch_add(1);
            cv.wait(lk, [&] { return stop.load() || (state.load() >> 32) != seen; });
            sleepers.fetch_sub(1);
            s = state.load(std::memory_order_acquire);
            break;
          }
        }
      }
      if (stop.load()) return;
      seen = s >> 32;
      // join the job of generation `seen` if it is still open
      while ((s >> 32) == seen && !(s & kClosed)) {
        if (state.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
          run_tasks(tid);
          state.fetch_sub(1, std::memory_order_release);
          break;
        }
      }
    }
  }

  void resize(int n) {
    int cores = usable_cores();
    if (n > cores) n = cores;
    if (n < 1) n = 1;
    std::lock_guard<std::mutex> guard(submit_mu);
    if (n == nthreads && static_cast<int>(workers.size()) == n - 1) return;
    shutdown();
    nthreads = n;
    for (int i = 1; i < n; ++i) workers.emplace_back([this, i, g = generation] { worker(i, g); });
  }

  void parallel_for(int n, const std::function<void(int, int)>& f) {
    if (n <= 0) return;
    if (nthreads == 1 || n == 1 || t_in_pool || !submit_mu.try_lock()) {
      for (int i = 0; i < n; ++i) f(i, 0);
      return;
    }
    // no worker is inside a job here (the previous one is CLOSED with active == 0)
    fn = &f;
    ntasks = n;
    next.store(0, std::memory_order_relaxed);
    ++generation;
    state.store(generation << 32);  // open, active 0; seq_cst: see the top of the file
    if (sleepers.load() > 0) {
      { std::lock_guard<std::mutex> lk(mu); }
      cv.notify_all();
    }
    t_in_pool = true;
    run_tasks(0);
    t_in_pool = false;
    // close the job once no worker is inside it
    uint64_t s = state.load(std::memory_order_acquire);
    for (int i = 0;; ++i) {
      if ((s & kActiveMask) == 0) {
        if (state.compare_exchange_weak(s, s | kClosed, std::memory_order_acq_rel, std::memory_order_acquire)) break;
      } else {
        backoff(i);
        s = state.load(std::memory_order_acquire);
      }
    }
    fn = nullptr;
    submit_mu.unlock();
  }
};

int default_threads() {
  const char* env = std::getenv("LORAKIT_THREADS");
  if (env && *env) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  return usable_cores();
}

Pool& pool() {
  // never destroyed: workers must not be joined from a static destructor at exit
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
