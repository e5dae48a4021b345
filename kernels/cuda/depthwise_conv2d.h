// Depthwise 2-D convolution on CUDA: the device twin of the depthwise case
// of kernels/conv2d.h (groups == C_in == C_out, NCHW, cross-correlation), for
// the LKA's shapes: stride 1, square kernel 5 or 7, any dilation and padding.
// Activations (x, y, dy, dx) are of a storage type T (float, bf16, f16:
// kernels/half.h); weights, bias and their gradients float; arithmetic in
// float.
//
// Forward and backward data (the same kernel on dy with the taps flipped
// and padding dil*(k-1) - pad): a block stages the input tile of its outputs
// with the halo in shared memory; each thread holds its channel's K*K taps in
// registers and computes R outputs of one column (R = 8 or 4 on planes of
// 64 / 32 rows and more, else 1 with several planes per block), a dilation
// apart, so the R + K - 1 input rows it reads feed all R*K*K multiply-adds
// (2.5-4 multiply-adds per shared load instead of one). Warps are 32 columns
// of one row where the plane is wide enough (any pitch is conflict-free);
// narrower tiles (16, 8 columns) get a pitch that puts the rows a warp reads
// on distinct banks.
//
// Weight gradient: a block stages the input tile the same way, each thread
// holds the dy of its outputs (up to 8 rows of one column) in registers and
// makes one pass per tap row with K accumulators (not K*K: the 7x7 needed
// 112-116 registers), reduced across the warp (reduce-scatter) and then the
// warps in a fixed order into per-block partials; a second pass adds, per
// channel, the partials of every image and tile in a fixed order (double)
// and ADDS the result to dw (and db), or writes it. Deterministic.
//
// Launchers take device pointers and a ConvGeom on which finish() has been
// called, run asynchronously on `stream`, and return the launch's
// cudaGetLastError(); cudaErrorInvalidValue (nothing launched) when
// depthwise_conv2d_supported(g) is false.
#pragma once

#include "kernels/conv2d.h"
#include "kernels/cuda/runtime_api.h"
#include "kernels/half.h"

LK_CUDA_NAMESPACE_BEGIN

// Depthwise, stride 1, kh == kw in {5, 7}, dil >= 1, pad >= 0, the halo tiles
// within 48 KiB of shared memory (7x7: dilation up to 15 at any width), sizes
// in int.
bool depthwise_conv2d_supported(const ConvGeom& g);

// y = conv(x, w) + b (b may be null); with accumulate y += conv(x, w) + b.
template <typename T>
cudaError_t depthwise_conv2d_fwd(const ConvGeom& g, const T* x, const float* w, const float* b, T* y,
                                 bool accumulate = false, cudaStream_t stream = nullptr);

// dx += conv2d_backward_data(dy, w) (= without accumulate)
template <typename T>
cudaError_t depthwise_conv2d_bwd_data(const ConvGeom& g, const T* dy, const float* w, T* dx,
                                      cudaStream_t stream = nullptr, bool accumulate = true);

// Bytes of workspace depthwise_conv2d_bwd_weight needs for g (0 when unsupported).
size_t depthwise_conv2d_bwd_weight_workspace_bytes(const ConvGeom& g);
// dw += dL/dw, db += dL/db (db may be null; acc_* false: overwrite);
// cudaErrorInvalidValue (nothing launched) when unsupported or the workspace
// is too small / misaligned (4 bytes).
template <typename T>
cudaError_t depthwise_conv2d_bwd_weight(const ConvGeom& g, const T* dy, const T* x, float* dw, float* db,
                                        void* workspace, size_t workspace_bytes, cudaStream_t stream = nullptr,
                                        bool acc_dw = true, bool acc_db = true);

LK_CUDA_NAMESPACE_END
