// A hook on every kernel launch made through LK_LAUNCH (cuda_compat.cuh), for
// profilers: launch counts per op and one trace slice per kernel
// (bench/step_profile). Null (the default) costs one relaxed atomic load per
// launch. Launches made by libraries (cuDNN, cuBLAS) are not seen.
#pragma once

#include <atomic>

#include "kernels/cuda/runtime_api.h"

LK_CUDA_NAMESPACE_BEGIN

class LaunchObserver {
 public:
  virtual ~LaunchObserver() = default;
  // Around the launch of `kernel` (LK_LAUNCH's spelling of it) on `stream`,
  // on the launching host thread; `after` also gets the launch's result.
  virtual void before(const char* kernel, cudaStream_t stream) = 0;
  virtual void after(const char* kernel, cudaStream_t stream, cudaError_t result) = 0;
};

inline std::atomic<LaunchObserver*> g_launch_observer{nullptr};

// Installs `o` (null: none); the caller keeps it alive while installed.
inline void set_launch_observer(LaunchObserver* o) { g_launch_observer.store(o, std::memory_order_release); }

LK_CUDA_NAMESPACE_END
