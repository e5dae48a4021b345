// In-memory toy segmentation data: 4-channel images with a few blob
// "lesions" whose nested regions carry classes 1..3 with distinct contrasts
// per channel, plus noise. Used by the end-to-end tests and the quick demo
// (test-only: the demo and training read BraTS-layout cases).
#pragma once

#include <cstdint>

#include "data/batch.h"
#include "engine/tensor.h"

namespace lk::data {


// Deterministic for (seed, index): the same arguments give the same batch.
Batch make_toy_batch(int64_t n, int64_t size, uint64_t seed, uint64_t index, DType dtype = DType::F32);

}  // namespace lk::data
