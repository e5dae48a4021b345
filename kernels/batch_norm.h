// Batch normalisation over (N, H, W) per channel, PyTorch conventions:
// training normalises with the biased batch variance and updates
//   running_mean = (1-momentum)*running_mean + momentum*mean
//   running_var  = (1-momentum)*running_var  + momentum*var*M/(M-1)   (unbiased)
// with M = N*H*W; evaluation normalises with the running statistics.
//   x, y (N, C, HW)  gamma, beta, running_*, save_mean, save_invstd (C)
#pragma once

#include "kernels/common.h"

namespace lk::cpu {

template <typename T>
void batch_norm_fwd(i64 n, i64 c, i64 hw, const T* x, const T* gamma, const T* beta,
                    T* running_mean, T* running_var, bool training, double momentum, double eps,
                    T* y, T* save_mean, T* save_invstd);

// One channel's statistics (training: from the batch, updating the running
// ones; evaluation: the running ones) into save_mean[ch], save_invstd[ch],
// returning the mean in double:
// the first half of batch_norm_fwd, shared with the fused ops (lka_gate).
template <typename T>
double batch_norm_channel_stats(i64 n, i64 c, i64 hw, i64 ch, const T* x, T* running_mean, T* running_var,
                              bool training, double momentum, double eps, T* save_mean, T* save_invstd);

// dx += ..., dgamma += ..., dbeta += ... (each may be null; acc_* false:
// overwrite). In training the batch statistics are functions of x; in
// evaluation they are constants.
template <typename T>
void batch_norm_bwd(i64 n, i64 c, i64 hw, const T* dy, const T* x, const T* gamma,
                    const T* save_mean, const T* save_invstd, bool training, T* dx, T* dgamma,
                    T* dbeta, bool acc_dx = true, bool acc_dgamma = true, bool acc_dbeta = true);

// Synchronised batch norm (statistics over several processes' batches,
// engine/ops/norm.cpp): the pieces of the training forward and backward
// around the sums the processes add up, in double (two passes: the sum, then
// the squares around the whole batch's mean); one process agrees with
// batch_norm_fwd/_bwd to rounding.
// batch_norm_sums, per channel in double: with dy null and mean null, sum x
// (c values); with mean (c doubles), sum (x - mean)^2 (c values); with dy,
// sum dy then sum dy * (x - save_mean) * save_invstd (2c values).
template <typename T>
void batch_norm_sums(i64 n, i64 c, i64 hw, const T* x, const double* mean, const T* dy, const T* save_mean,
                     const T* save_invstd, double* out);
// The training forward's normalisation from the whole batch's mean and
// biased variance (c doubles each); the running statistics are the caller's.
template <typename T>
void batch_norm_fwd_stats(i64 n, i64 c, i64 hw, const T* x, const T* gamma, const T* beta, const double* mean,
                          const double* var, double eps, T* y, T* save_mean, T* save_invstd);
// dx += gamma * invstd * (dy - mean_dy - xhat * mean_dyxhat), xhat = (x - mean)
// * invstd, with the means over the whole (all processes') batch: means (2c)
// = mean_dy per channel, then mean_dyxhat.
template <typename T>
void batch_norm_bwd_dx(i64 n, i64 c, i64 hw, const T* dy, const T* x, const T* gamma, const T* mean,
                       const T* invstd, const double* means, T* dx);

}  // namespace lk::cpu
