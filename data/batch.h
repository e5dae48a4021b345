// A batch of training slices, the one type every producer of batches
// returns (the loader, the slice cache, the test-only toy generators).
#pragma once

#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace lk::data {

struct Batch {
  Tensor images;  // (n, 4, S, S) float32 (on the device when it comes from the loader)
  Tensor labels;  // (n, S, S) int32 training classes 0..3
  int64_t epoch = 0, index = 0;  // from the loader: the epoch and the batch's index within it
  std::vector<int64_t> slices;   // from the loader or the cache: the cache slices, in batch order
};

}  // namespace lk::data
