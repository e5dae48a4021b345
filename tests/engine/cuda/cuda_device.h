// The CUDA device of the backend tests (emulated under label emu, real under
// label gpu) and whether one is there: without one a test returns early with
// a warning, which the gpu label's SKIP_REGEX turns into "skipped".
#pragma once

#include <catch2/catch.hpp>

#include "engine/cuda/backend_cuda.h"
#include "engine/cuda/device_info.h"

namespace lk::test {

inline const Device kCuda{DeviceType::CUDA, 0};

inline bool have_device() {
  if (cuda::device_count() > 0) {
    cuda::cuda_backend(0);
    return true;
  }
  WARN("no CUDA device (" << cuda::why_none() << "): skipping");
  return false;
}

}  // namespace lk::test
