// Batch normalisation on CUDA, the device twin of kernels/batch_norm.h
// (PyTorch conventions, per channel over N*HW; same arguments, device
// pointers), and of kernels/batch_norm_relu.h (fused with ReLU and a residual
// add): training normalises with the biased batch variance, saves the mean
// and 1/sqrt(var + eps), and updates the running statistics with the
// unbiased variance and `momentum`; evaluation normalises with the running
// statistics (and saves them the same way). Activations x, y, r, dy, dx, dr
// are of a storage type T (float, bf16, f16: kernels/half.h); parameters,
// statistics and their gradients float; arithmetic in float, sums in double.
//
// Launch shape (kernels/cuda/plane_chunks.cuh): a grid of N*C planes x chunks
// of up to 2048 elements, so the top levels' 32-64 channels still give
// thousands of blocks. Training forward: one statistics pass over x (the
// sums of x - x[0, c, 0] and of its square, single pass; the shift keeps the
// variance free of cancellation), then one pass that normalises: 1 read for
// the statistics, 1 read + 1 write for y. Backward: one reduction pass over
// dy and x, one pass writing dx: 2 + 2 reads, 1 write (+1 read to add); the
// fused forms add the residual's read (forward) and its gradient's write
// (backward, in the first pass) and nothing else.
// Per-thread sums are float, block and channel sums double, in a fixed order
// (no atomics): results are deterministic. The per-channel scalars are
// computed in double from the float statistics the forward saves, so the
// backward sees the forward's normalisation exactly.
//
// Launchers run asynchronously on `stream` and return the launch's
// cudaGetLastError(); cudaSuccess without a launch when n*c*hw == 0;
// cudaErrorInvalidValue (nothing launched) for negative sizes, hw > INT_MAX,
// n*c > INT_MAX, a training forward with n*hw < 2 (the unbiased variance needs
// 2 values), or a missing / too small / misaligned (8 bytes) workspace where
// one is needed (the training forward; the backward when it reduces).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/runtime_api.h"
#include "kernels/half.h"
#include "kernels/params.h"

LK_CUDA_NAMESPACE_BEGIN

// Channels of at most this many values (n * hw; the deep levels) run as one
// block per channel, statistics (or the backward's sums) and apply in one
// launch instead of two: there the launch costs more than the pass.
inline constexpr int64_t kBatchNormWholeChannel = 4096;

// Bytes of workspace the training forwards and the backwards need.
size_t batch_norm_workspace_bytes(int64_t n, int64_t c, int64_t hw);

// x, y (n, c, hw); gamma, beta, running_*, save_* (c). The evaluation
// forward needs no workspace (may be null).
template <typename T>
cudaError_t batch_norm_fwd(int64_t n, int64_t c, int64_t hw, const T* x, const float* gamma, const float* beta,
                           float* running_mean, float* running_var, bool training, double momentum, double eps, T* y,
                           float* save_mean, float* save_invstd, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream = nullptr);

// Synchronised batch norm, float only (kernels/cuda/batch_norm_sync.cu; the
// CUDA backend converts 16-bit activations; the device twins of kernels/batch_norm.h's
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

// dx += ..., dgamma += ..., dbeta += ... (each may be null; acc_* false:
// overwrite, the old contents not read), from the mean and invstd saved by
// the forward. Training: the batch statistics depend on x; evaluation: they
// are constants (dx = gamma * invstd * dy).
template <typename T>
cudaError_t batch_norm_bwd(int64_t n, int64_t c, int64_t hw, const T* dy, const T* x, const float* gamma,
                           const float* save_mean, const float* save_invstd, bool training, T* dx, float* dgamma,
                           float* dbeta, void* workspace, size_t workspace_bytes, cudaStream_t stream = nullptr,
                           bool acc_dx = true, bool acc_dgamma = true, bool acc_dbeta = true);

// The fused forms (kernels/batch_norm_relu.h): y = relu(z), relu(z) + r or
// relu(z + r) by `mode` (r may be null for None), in the same two passes as
// batch_norm_fwd; the backward recomputes the ReLU's mask from x (from y for
// BeforeRelu), writes dr during its reduction pass and dx in its second,
// dr (+)= dy (AfterRelu) or dy * mask (BeforeRelu). beta is read by the
// backward (the mask), y only for BeforeRelu.
template <typename T>
cudaError_t batch_norm_relu_fwd(int64_t n, int64_t c, int64_t hw, const T* x, const float* gamma, const float* beta,
                                float* running_mean, float* running_var, bool training, double momentum, double eps,
                                const T* r, BnResidual mode, T* y, float* save_mean, float* save_invstd,
                                void* workspace, size_t workspace_bytes, cudaStream_t stream = nullptr);
template <typename T>
cudaError_t batch_norm_relu_bwd(int64_t n, int64_t c, int64_t hw, BnResidual mode, const T* dy, const T* x,
                                const T* y, const float* gamma, const float* beta, const float* save_mean,
                                const float* save_invstd, bool training, T* dx, T* dr, float* dgamma, float* dbeta,
                                void* workspace, size_t workspace_bytes, cudaStream_t stream = nullptr,
                                bool acc_dx = true, bool acc_dr = true, bool acc_dgamma = true, bool acc_dbeta = true);

LK_CUDA_NAMESPACE_END
