// Direct (im2col-free) 2-D convolution on CUDA, float, any kernel size,
// stride, padding, dilation and groups: the device twin of kernels/conv2d.h.
//
// This is our hand-written path for dense convolutions: what the emulated
// backend runs in CI (cuDNN cannot run there), and the variant the GPU
// backend compares cuDNN against. It is simple rather than fast: one thread
// per output element (forward) or per input element (backward data, a gather
// over the outputs that read it, so no atomics), and one thread per weight
// element summing over the batch and the output plane in order (backward
// weight: deterministic, and no barriers, which the emulator would pay for).
// The transposed convolution reuses these passes on the adjoint geometry
// (kernels/conv_transpose2d.h). Backward passes add into their outputs, or
// overwrite them (accumulate false: beta = 0).
//
// Launchers take device pointers and a finished ConvGeom, run asynchronously
// on `stream`, and return the launch's cudaGetLastError().
#pragma once

#include "kernels/conv2d.h"
#include "kernels/cuda/runtime_api.h"
#include "kernels/half.h"

LK_CUDA_NAMESPACE_BEGIN

// y = conv(x, w) + b (b may be null); with accumulate, y += conv(x, w) + b.
cudaError_t conv2d_direct_fwd(const ConvGeom& g, const float* x, const float* w, const float* b, float* y,
                              bool accumulate = false, cudaStream_t stream = nullptr);
// dx += conv2d_backward_data(dy, w)
cudaError_t conv2d_direct_bwd_data(const ConvGeom& g, const float* dy, const float* w, float* dx,
                                   cudaStream_t stream = nullptr, bool accumulate = true);
// dw += dL/dw; db += dL/db when db is not null
cudaError_t conv2d_direct_bwd_weight(const ConvGeom& g, const float* dy, const float* x, float* dw, float* db,
                                     cudaStream_t stream = nullptr, bool acc_dw = true, bool acc_db = true);
// db[c] += sum over n and the plane of dy[n, c] (the transposed conv's bias;
// dy float, bf16 or f16, db float; = without accumulate)
template <typename T>
cudaError_t channel_sum_acc(int64_t n, int64_t c, int64_t hw, const T* dy, float* db, cudaStream_t stream = nullptr,
                            bool accumulate = true);

LK_CUDA_NAMESPACE_END
