// Depthwise 2-D convolution on CUDA (float): the device twin of the
// depthwise case of kernels/conv2d.h (groups == C_in == C_out, NCHW,
// cross-correlation), for the LKA's shapes: stride 1, square kernel 5 or 7,
// any dilation and padding.
//
// One block computes a 16x16 output tile of one (n, c) plane from a tile of
// the input plane with its halo, staged in dynamic shared memory, and the
// channel's taps in static shared memory. The backward-data pass is the same
// kernel on dy with the taps flipped and padding dil*(k-1) - pad. The
// weight-gradient pass stages the input tile the same way (see below).
//
// Launchers take device pointers and a ConvGeom on which finish() has been
// called, run asynchronously on `stream`, and return the launch's
// cudaGetLastError(); cudaErrorInvalidValue (nothing launched) when
// depthwise_conv2d_supported(g) is false.
#pragma once

#include "kernels/conv2d.h"
#include "kernels/cuda/runtime_api.h"

LK_CUDA_NAMESPACE_BEGIN

inline constexpr int kDepthwiseTile = 16;

// Depthwise, stride 1, kh == kw in {5, 7}, dil >= 1, pad >= 0, the halo tile
// within 48 KiB of shared memory (dilation up to 15 for 7x7), sizes in int.
bool depthwise_conv2d_supported(const ConvGeom& g);

// y = conv(x, w) + b (b may be null); with accumulate y += conv(x, w) + b.
cudaError_t depthwise_conv2d_fwd(const ConvGeom& g, const float* x, const float* w, const float* b, float* y,
                                 bool accumulate = false, cudaStream_t stream = nullptr);

// dx += conv2d_backward_data(dy, w) (= without accumulate)
cudaError_t depthwise_conv2d_bwd_data(const ConvGeom& g, const float* dy, const float* w, float* dx,
                                      cudaStream_t stream = nullptr, bool accumulate = true);

// Weight (and bias) gradient, deterministic: one block per output tile of
// kDepthwiseTile columns by kDepthwiseTile * R rows (R <= 4, as the shared
// memory allows) of one (n, c) plane accumulates its K*K taps and the dy sum
// in registers, reduces them across the block in a fixed order (warp
// reduce-scatter, then the warps in order) into the workspace; a second pass
// adds, per channel, the partials of every image and tile in a fixed order
// (double) and ADDS the result to dw (and db), or writes it (acc_* false).
// Bytes of workspace depthwise_conv2d_bwd_weight needs for g (0 when unsupported).
size_t depthwise_conv2d_bwd_weight_workspace_bytes(const ConvGeom& g);
// dw += dL/dw, db += dL/db (db may be null); cudaErrorInvalidValue (nothing
// launched) when unsupported or the workspace is too small / misaligned (4 bytes).
cudaError_t depthwise_conv2d_bwd_weight(const ConvGeom& g, const float* dy, const float* x, float* dw, float* db,
                                        void* workspace, size_t workspace_bytes, cudaStream_t stream = nullptr,
                                        bool acc_dw = true, bool acc_db = true);

LK_CUDA_NAMESPACE_END
