// The LKA block's tail fused on CUDA, for every storage type T of the
// activations x, f3, y, a_out and their gradients (float, bf16, f16:
// kernels/half.h; parameters and statistics float, arithmetic in float):
// given F3 = pw(dw7(dw5(X))),
//   Z = BN(F3)   A = sigmoid(Z)   Y = X * A
// with BN in PyTorch's conventions exactly as kernels/batch_norm.h (training:
// biased batch variance for normalising, running stats updated with the
// unbiased one; evaluation: the running stats). Equivalent to composing
// batch_norm_fwd, activation_fwd(Sigmoid) and binary_fwd(Mul); the engine may
// run that unfused path instead (save_mean / save_invstd and the running
// stats come out identical in meaning, and a_out can materialise A).
//   x, f3, y, dy, dx, df3, a_out (N, C, HW)   gamma, beta, running_*, save_* (C)
//
// Launch shape as batch norm's (kernels/cuda/plane_chunks.cuh: N*C planes x
// chunks). Forward: a statistics pass (training: per (image, channel, chunk)
// partial sums of F3 - shift and its square, shift = F3[0, c, 0], double),
// then one elementwise pass whose blocks finalise their channel's statistics
// themselves (fixed-order sums; running stats; the BN scale/shift).
// Backward: a reduction pass that also writes dX and yields sum dZ and
// sum dZ * (F3 - mean) per block, then an elementwise pass for dF3 with the
// batch-statistics terms (dgamma, dbeta by one block per channel). All
// reductions deterministic (no float atomics).
//
// Launchers return the (first failing) launch's cudaGetLastError(),
// cudaErrorInvalidValue (nothing launched) for bad sizes, a missing pointer or
// a too small / misaligned (8 bytes) workspace; cudaSuccess with nothing
// launched when there is no element. Backward outputs are ADDED to.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/runtime_api.h"
#include "kernels/half.h"

LK_CUDA_NAMESPACE_BEGIN

// Bytes of workspace lka_gate_fwd / lka_gate_bwd need.
size_t lka_gate_workspace_bytes(int64_t n, int64_t c, int64_t hw);

// y = x * sigmoid(BN(f3)); save_mean / save_invstd as batch_norm_fwd writes
// them; running_mean / running_var updated in training (read in evaluation).
// a_out (may be null) receives A = sigmoid(BN(f3)).
template <typename T>
cudaError_t lka_gate_fwd(int64_t n, int64_t c, int64_t hw, const T* x, const T* f3, const float* gamma,
                         const float* beta, float* running_mean, float* running_var, bool training, double momentum,
                         double eps, T* y, float* save_mean, float* save_invstd, T* a_out, void* workspace,
                         size_t workspace_bytes, cudaStream_t stream = nullptr);

// With A recomputed from f3 and the saved statistics, dZ = dy * x * A (1 - A):
//   dx += dy * A
//   df3 += gamma*invstd * (dZ - mean(dZ) - xhat * mean(dZ * xhat))   (training)
//          gamma*invstd * dZ                                         (evaluation)
//   dgamma += sum dZ * xhat, dbeta += sum dZ
// Each of dx, df3, dgamma, dbeta may be null (skipped); acc_* false:
// overwrite (the old contents not read).
template <typename T>
cudaError_t lka_gate_bwd(int64_t n, int64_t c, int64_t hw, const T* dy, const T* x, const T* f3, const float* gamma,
                         const float* beta, const float* save_mean, const float* save_invstd, bool training, T* dx,
                         T* df3, float* dgamma, float* dbeta, void* workspace,
                         size_t workspace_bytes, cudaStream_t stream = nullptr, bool acc_dx = true,
                         bool acc_df3 = true, bool acc_dgamma = true, bool acc_dbeta = true);

LK_CUDA_NAMESPACE_END
