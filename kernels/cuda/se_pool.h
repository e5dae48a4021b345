// The squeeze-and-excitation plumbing on CUDA (float): the squeeze (global
// average pooling of each (n, c) plane, the device twin of
// kernels/global_avg_pool.h) and the excitation's scale-apply y = x * s[n, c]
// (binary_fwd Mul with s broadcast over H, W). The excitation's two small
// fully-connected layers stay GEMMs in the engine.
//   x, y, dy, dx (planes = N*C, HW)   z, dz, s, ds (planes)
//
// Every plane is reduced by one warp (hw <= kSePoolWarpMaxHw: eight planes
// per block) or one block (larger planes): a fixed per-thread order and a
// fixed shuffle / warp tree, so results are bitwise reproducible and no
// workspace or atomics are needed.
//
// Fusion: the squeeze reads F, which the scale-apply reads again once s is
// known (the excitation depends on all of F), so the forward stays two passes.
// In the backward, F feeds both the squeeze and the scale, dF = dY * s +
// dz / HW; se_scale_bwd adds both terms in one pass when dz is already known,
// or, during the usual backward order (ds first, then dz through the FC
// layers), runs as the reduction (ds) + dY*s pass and se_squeeze_bwd adds
// dz / HW afterwards.
//
// Launchers return the launch's cudaGetLastError(), cudaErrorInvalidValue
// (nothing launched) for negative sizes, cudaSuccess with nothing launched
// when there is no element. Backward outputs are ADDED to.
#pragma once

#include <cstdint>

#include "kernels/cuda/runtime_api.h"

LK_CUDA_NAMESPACE_BEGIN

// z[p] = mean of plane p of x
cudaError_t se_squeeze_fwd(int64_t planes, int64_t hw, const float* x, float* z, cudaStream_t stream = nullptr);
// dx += dz[p] / hw over plane p
cudaError_t se_squeeze_bwd(int64_t planes, int64_t hw, const float* dz, float* dx, cudaStream_t stream = nullptr);

// y = x * s[p] over plane p
cudaError_t se_scale_fwd(int64_t planes, int64_t hw, const float* x, const float* s, float* y,
                         cudaStream_t stream = nullptr);
// dx += dy * s[p] (+ dz[p] / hw when dz is not null: the squeeze's backward
// fused in); ds[p] += sum over plane p of dy * x (ds may be null; dx may be
// null, then only ds is computed).
cudaError_t se_scale_bwd(int64_t planes, int64_t hw, const float* dy, const float* x, const float* s,
                         const float* dz, float* dx, float* ds, cudaStream_t stream = nullptr);

// Planes up to this size get one warp each, larger ones one block.
inline constexpr int64_t kSePoolWarpMaxHw = 1024;
inline constexpr int kSePoolThreads = 256;

LK_CUDA_NAMESPACE_END
