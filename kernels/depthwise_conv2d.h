// Depthwise 2-D convolution (groups == C_in == C_out), the LKA's 5x5 and
// dilated 7x7: the fast kernels behind conv2d_* (kernels/conv2d.h) when the
// geometry is depthwise; the plain loops are conv2d_*_ref.
//   x (N, C, H, W)  w (C, 1, KH, KW)  b (C) or null  y (N, C, OH, OW)
// Stride 1 (the networks' case): each (n, c) plane is copied once into a
// zero-padded per-thread buffer, so every tap is a shifted row with no bounds
// checks; an output row stays in L1 while all taps add into it, in the same
// tap order as the plain loops, and the inner loops vectorise. Other strides
// run direct loops over each tap's valid range.
#pragma once

#include <algorithm>

#include "kernels/common.h"
#include "kernels/params.h"

namespace lk::cpu {

// Valid output range [lo, hi) along one axis for kernel tap k: the outputs
// whose input coordinate o*stride - pad + k*dil lies in [0, size).
inline void tap_range(i64 k, i64 size, i64 out, i64 stride, i64 pad, i64 dil, i64& lo, i64& hi) {
  const i64 off = k * dil - pad;  // input = o*stride + off
  lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
  hi = size - off <= 0 ? 0 : (size - off - 1) / stride + 1;
  hi = std::min(hi, out);
  lo = std::min(lo, hi);
}

// y = conv(x) + b; accumulate: y += conv(x) + b
template <typename T>
void depthwise_conv2d_fwd(const ConvGeom& g, const T* x, const T* w, const T* b, T* y, bool accumulate);
// dx += ...
template <typename T>
void depthwise_conv2d_bwd_data(const ConvGeom& g, const T* dy, const T* w, T* dx);
// dw += ..., db += ... (db may be null)
template <typename T>
void depthwise_conv2d_bwd_weight(const ConvGeom& g, const T* dy, const T* x, T* dw, T* db);

}  // namespace lk::cpu
