// In-memory toy segmentation data: 4-channel images with a few blob
// "lesions" whose nested regions carry classes 1..3 with distinct contrasts
// per channel, plus noise. Used by the end-to-end tests and the quick demo
// until the BraTS-like NIfTI generator (data issue) lands.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace lk::data {

struct ToyBatch {
  Tensor images;  // (N, 4, S, S) float32
  Tensor labels;  // (N, S, S) int32 in 0..3
};

// Deterministic for (seed, index): the same arguments give the same batch.
ToyBatch make_toy_batch(int64_t n, int64_t size, uint64_t seed, uint64_t index, DType dtype = DType::F32);

}  // namespace lk::data
