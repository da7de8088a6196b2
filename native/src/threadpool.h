// A persistent worker pool. parallel_for(n, fn) runs fn(i) for i in [0, n) on all
// workers plus the calling thread and returns when every task is done. Workers spin
// briefly after a job (cheap back-to-back kernel calls), then sleep on a condition variable.
#pragma once
#include <functional>

namespace lk {

// Number of threads (including the caller). LORAKIT_THREADS overrides; default: all cores.
int num_threads();
void set_num_threads(int n);

// Runs fn(task) for task in [0, ntasks). fn(task, thread_index): thread_index < num_threads().
void parallel_for(int ntasks, const std::function<void(int task, int thread)>& fn);

}  // namespace lk
