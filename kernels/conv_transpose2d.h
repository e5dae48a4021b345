// 2-D transposed convolution (PyTorch's ConvTranspose2d, groups 1,
// output_padding 0), the decoder's 2x2 stride-2 upsampling.
//   x (N, C_in, H, W)  w (C_in, C_out, K, K)  b (C_out) or null
//   y (N, C_out, OH, OW), OH = (H-1)*stride - 2*pad + dil*(K-1) + 1
// It is the adjoint of a convolution from y's shape to x's shape, so every
// pass is a conv2d pass on the swapped geometry (conv_t_geom); the reference
// and fast variants inherit those of conv2d.
#pragma once

#include "kernels/conv2d.h"

namespace lk::cpu {

// The convolution whose backward-data pass is this transposed convolution:
// its input is (N, C_out, OH, OW), its output (N, C_in, H, W).
ConvGeom conv_t_geom(i64 n, i64 c_in, i64 h, i64 w, i64 c_out, i64 k, i64 stride, i64 pad, i64 dil);

template <typename T>
void conv_t2d_fwd(const ConvGeom& cg, const T* x, const T* w, const T* b, T* y, bool reference = false);
// dx += ...
template <typename T>
void conv_t2d_bwd_data(const ConvGeom& cg, const T* dy, const T* w, T* dx, bool reference = false);
// dw += ..., db += ... (db may be null)
template <typename T>
void conv_t2d_bwd_weight(const ConvGeom& cg, const T* dy, const T* x, T* dw, T* db, bool reference = false);

}  // namespace lk::cpu
