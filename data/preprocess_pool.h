// Cases loaded and preprocessed on a pool of std::threads, handed to the
// caller in case order with bounded memory: the streaming build of the slice
// cache (ensure_slice_cache) runs on this.
//
// Workers claim case indices in increasing order; case i may be claimed only
// while i < (the next case the consumer will take) + window, so at most
// `window` cases are held at any time (being loaded/preprocessed, finished
// and waiting in the reordering queue, or being consumed), whatever the
// number of cases. The consumer (the calling thread) gets them in order
// 0, 1, 2, ..., so what it writes does not depend on the thread count.
//
// Parallelism is across cases only: each worker runs with one OpenMP thread
// (omp_set_num_threads(1) on the worker), so a step that uses OpenMP inside
// (none does today) cannot oversubscribe the cores.
//
// A failing case: with skip_bad its error message goes to on_skip (in
// order, like the cases); without it the pool stops claiming, and the error
// of the first failing case in order is rethrown on the calling thread once
// the cases before it were consumed. std::bad_alloc is never skipped. An
// exception from a callback stops the pool and propagates; the workers are
// always joined before returning or throwing.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "data/preprocess.h"

namespace lk::data {

struct PoolOptions {
  int threads = 0;  // workers; 0: std::thread::hardware_concurrency(); at most the number of cases
  int window = 0;   // cases held at once; 0: threads + 2 (every worker busy while one case is consumed)
  bool skip_bad = false;
};

struct PoolStats {
  int threads = 0, window = 0;
  int max_held = 0;  // the most cases held at once (<= window)
};

// The worker count `threads` (0 = all cores) resolves to.
int resolve_threads(int threads);

// The pool itself, over any producer: produce(i) runs on a worker.
PoolStats run_in_order(size_t n, const PoolOptions& opt, const std::function<PreprocessedCase(size_t)>& produce,
                       const std::function<void(size_t, PreprocessedCase&&)>& on_case,
                       const std::function<void(size_t, const std::string&)>& on_skip = {});

// load_brats_case + preprocess_case for every case.
PoolStats preprocess_in_order(const std::vector<BratsCase>& cases, const PreprocessOptions& o, const PoolOptions& opt,
                              const std::function<void(size_t, PreprocessedCase&&)>& on_case,
                              const std::function<void(size_t, const std::string&)>& on_skip = {});

}  // namespace lk::data
