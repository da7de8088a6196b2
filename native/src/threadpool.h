// A persistent worker pool. parallel_for(n, fn) runs fn(task, thread) for task in [0, n)
// on the workers plus the calling thread and returns when every task is done and no
// worker still holds fn. Workers spin briefly after a job (cheap back-to-back kernel
// calls), then sleep on a condition variable.
//
// Size: all usable cores by default; LORAKIT_THREADS=n asks for n. Never more threads
// than cores (no oversubscription). A parallel_for issued from inside a task, or from a
// second thread while the pool is busy, runs serially on the caller.
#pragma once
#include <functional>

namespace lk {

// Number of threads (including the caller).
int num_threads();
// Resizes the pool to n threads, clamped to [1, cores].
void set_num_threads(int n);

// Runs fn(task, thread_index) for task in [0, ntasks); thread_index < num_threads().
void parallel_for(int ntasks, const std::function<void(int task, int thread)>& fn);

}  // namespace lk
