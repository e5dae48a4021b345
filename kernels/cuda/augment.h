// The training augmentation of kernels/augment.h on the GPU: one fused kernel per
// batch (crop + reflect + affine warp with bilinear / nearest sampling,
// brightness, gamma with retained statistics, per-pixel Philox noise). Same
// AugmentDraw, same helpers, same result as lk::data::augment_cpu (images to
// float rounding of the gamma statistics, labels exactly).
#pragma once

#include <cstdint>

#include "kernels/augment.h"
#include "kernels/cuda/runtime_api.h"

LK_CUDA_NAMESPACE_BEGIN

// draws: device array of `batch` AugmentDraw; img (B, 4, S, S), lab (B, S, S)
// -> out_img (B, 4, O, O), out_lab (B, O, O), O = out_side; lab and out_lab
// may both be null (no labels). Needs out_side <= S + 2 pad. Asynchronous on
// `stream`; returns the launch's error (cudaSuccess for batch == 0).
cudaError_t augment_batch(const data::AugmentDraw* draws, int64_t batch, const float* img, const int32_t* lab,
                          int64_t S_in, float* out_img, int32_t* out_lab, int64_t out_side = data::kAugOut,
                          int64_t pad = data::kAugPad, cudaStream_t stream = nullptr);

// Launch shape: grid (4 channels + 1 label plane, B), kAugmentThreads per block.
inline constexpr int kAugmentThreads = 256;

LK_CUDA_NAMESPACE_END
