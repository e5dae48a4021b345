// 2-D convolution (cross-correlation, as PyTorch), NCHW, square stride,
// padding and dilation, grouped (groups == C_in == C_out is depthwise).
//   x (N, C_in, H, W)  w (C_out, C_in/groups, KH, KW)  b (C_out) or null
//   y (N, C_out, OH, OW), OH = (H + 2*pad - dil*(KH-1) - 1) / stride + 1
//   (the geometry, ConvGeom, is in kernels/params.h)
// Three implementations of each pass (ConvImpl, the CPU backend's variants):
//   *_ref   plain nested loops: the reference every other variant is tested on
//   (none)  im2col + OpenBLAS sgemm for dense convolutions, direct OpenMP
//           loops for depthwise ones
//   oneDNN  float32 dense convolutions but the 1x1 ones through oneDNN
//           (kernels/onednn_conv.h), everything else as above; the
//           conv2d_*(ConvImpl, ...) entry points below choose
#pragma once

#include "kernels/common.h"
#include "kernels/params.h"

namespace lk::cpu {

// Forward. With accumulate, y += conv(x) (the bias is still added once).
template <typename T>
void conv2d_fwd_ref(const ConvGeom& g, const T* x, const T* w, const T* b, T* y, bool accumulate = false);
template <typename T>
void conv2d_fwd(const ConvGeom& g, const T* x, const T* w, const T* b, T* y, bool accumulate = false);

// dx += conv2d_backward_data(dy, w)
template <typename T>
void conv2d_bwd_data_ref(const ConvGeom& g, const T* dy, const T* w, T* dx);
template <typename T>
void conv2d_bwd_data(const ConvGeom& g, const T* dy, const T* w, T* dx);

// dw += dL/dw, db += dL/db (db may be null)
template <typename T>
void conv2d_bwd_weight_ref(const ConvGeom& g, const T* dy, const T* x, T* dw, T* db);
template <typename T>
void conv2d_bwd_weight(const ConvGeom& g, const T* dy, const T* x, T* dw, T* db);

// Which implementation the conv2d_*(ConvImpl, ...) entry points run.
enum class ConvImpl { PlainLoops, Im2colBlas, OneDnn };

// Whether ConvImpl::OneDnn sends g to oneDNN: not depthwise convolutions (our
// direct loops) nor pointwise ones (1x1, stride 1, no padding): in NCHW those
// are plain GEMMs per image, while oneDNN would reorder every operand into
// and out of its blocked layout around the same GEMM.
bool onednn_takes(const ConvGeom& g);

template <typename T>
void conv2d_fwd(ConvImpl impl, const ConvGeom& g, const T* x, const T* w, const T* b, T* y, bool accumulate = false);
template <typename T>
void conv2d_bwd_data(ConvImpl impl, const ConvGeom& g, const T* dy, const T* w, T* dx);
template <typename T>
void conv2d_bwd_weight(ConvImpl impl, const ConvGeom& g, const T* dy, const T* x, T* dw, T* db);

// db[c] += sum over n, h, w of dy[n, c, h, w]
template <typename T>
void channel_sum_acc(i64 n, i64 c, i64 hw, const T* dy, T* db);

}  // namespace lk::cpu
