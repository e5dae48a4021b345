// Batch normalisation on CUDA (float), the device twin of kernels/batch_norm.h
// (PyTorch conventions, per channel over N*HW; same arguments, device
// pointers): training normalises with the biased batch variance, saves the
// mean and 1/sqrt(var + eps), and updates the running statistics with the
// unbiased variance and `momentum`; evaluation normalises with the running
// statistics (and saves them the same way). The backward ADDS into dx, dgamma
// and dbeta (each may be null).
//
// Training forward and the backward: one block per channel, float partial sums
// per thread (a fixed set of elements each) combined by a fixed warp-shuffle +
// shared-memory tree, so results are deterministic. The forward is two-pass
// (mean, then centred squares; no E[x^2] - E[x]^2 cancellation); the per-
// channel scalars (1/sqrt, running statistics) are computed in double as on
// the CPU. Evaluation forward: a (chunks x channels) grid, elementwise.
//
// Launchers run asynchronously on `stream` and return the launch's
// cudaGetLastError(); cudaSuccess without a launch when n*c*hw == 0;
// cudaErrorInvalidValue (nothing launched) for negative sizes, hw > INT_MAX,
// or a training forward with n*hw < 2 (the unbiased variance needs 2 values).
#pragma once

#include <cstdint>

#include "kernels/cuda/runtime_api.h"

LK_CUDA_NAMESPACE_BEGIN

// x, y (n, c, hw); gamma, beta, running_*, save_* (c).
cudaError_t batch_norm_fwd(int64_t n, int64_t c, int64_t hw, const float* x, const float* gamma, const float* beta,
                           float* running_mean, float* running_var, bool training, double momentum, double eps,
                           float* y, float* save_mean, float* save_invstd, cudaStream_t stream = nullptr);

// dx += ..., dgamma += ..., dbeta += ... (each may be null; acc_* false:
// overwrite), from the mean and invstd saved by the forward. Training: the
// batch statistics depend on x; evaluation: they are constants (dx = gamma *
// invstd * dy).
cudaError_t batch_norm_bwd(int64_t n, int64_t c, int64_t hw, const float* dy, const float* x, const float* gamma,
                           const float* save_mean, const float* save_invstd, bool training, float* dx, float* dgamma,
                           float* dbeta, cudaStream_t stream = nullptr, bool acc_dx = true, bool acc_dgamma = true,
                           bool acc_dbeta = true);

// Synchronised batch norm (the device twins of kernels/batch_norm.h's
// batch_norm_sums and batch_norm_bwd_dx): out (device doubles) gets per
// channel sum x (c values), sum (x - mean)^2 (c values; mean: c device
// doubles) or, with dy, sum dy then sum dy*(x - save_mean)*save_invstd (2c),
// accumulated in double (one block per channel, fixed reduction order);
// dx += gamma*invstd*(dy - means[ch] - xhat*means[c + ch]), means (2c floats,
// device) the whole batch's mean dy and mean dy*xhat.
cudaError_t batch_norm_sums(int64_t n, int64_t c, int64_t hw, const float* x, const double* mean, const float* dy,
                            const float* save_mean, const float* save_invstd, double* out,
                            cudaStream_t stream = nullptr);
cudaError_t batch_norm_bwd_dx(int64_t n, int64_t c, int64_t hw, const float* dy, const float* x, const float* gamma,
                              const float* mean, const float* invstd, const float* means, float* dx,
                              cudaStream_t stream = nullptr);

// Block sizes: per-channel blocks get 128, 256 or 512 threads by channel
// length n*hw (below 2048, below 8192, from 8192 on); the evaluation
// forward uses kBatchNormThreads.
inline constexpr int kBatchNormThreads = 256;
inline constexpr int kBatchNormMaxThreads = 512;

LK_CUDA_NAMESPACE_END
