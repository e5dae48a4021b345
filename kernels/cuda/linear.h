// Fully connected layer on CUDA, float, the device twin of kernels/linear.h:
// y = x @ w^T + b with x (N, IN), w (OUT, IN). The SE block's two tiny
// layers (N = batch, IN/OUT <= 512): one thread per output element with a
// sequential dot product (deterministic). Large shapes would want a GEMM
// library; none is linked (the backend uses cuDNN only).
#pragma once

#include <cstdint>

#include "kernels/cuda/runtime_api.h"

LK_CUDA_NAMESPACE_BEGIN

cudaError_t linear_fwd(int64_t n, int64_t in, int64_t out, const float* x, const float* w, const float* b, float* y,
                       cudaStream_t stream = nullptr);
// dx += dy @ w, dw += dy^T @ x, db += sum_n dy (each may be null; acc_*
// false: overwrite), in one launch.
cudaError_t linear_bwd(int64_t n, int64_t in, int64_t out, const float* dy, const float* x, const float* w, float* dx,
                       float* dw, float* db, cudaStream_t stream = nullptr, bool acc_dx = true, bool acc_dw = true,
                       bool acc_db = true);

LK_CUDA_NAMESPACE_END
