// 2-D transposed convolution (PyTorch's ConvTranspose2d, groups 1,
// output_padding 0), the decoder's 2x2 stride-2 upsampling.
//   x (N, C_in, H, W)  w (C_in, C_out, K, K)  b (C_out) or null
//   y (N, C_out, OH, OW), OH = (H-1)*stride - 2*pad + dil*(K-1) + 1
// It is the adjoint of a convolution from y's shape to x's shape, so every
// pass is a conv2d pass on the swapped geometry (conv_transpose2d_geom); its
// implementations (ConvImpl) are those of conv2d.
#pragma once

#include "kernels/conv2d.h"

namespace lk::cpu {

// cg: the convolution whose backward-data pass is this transposed
// convolution (conv_transpose2d_geom, kernels/params.h).
template <typename T>
void conv_transpose2d_fwd(const ConvGeom& cg, const T* x, const T* w, const T* b, T* y, ConvImpl impl = ConvImpl::Im2colBlas);
// dx += ...
template <typename T>
void conv_transpose2d_bwd_data(const ConvGeom& cg, const T* dy, const T* w, T* dx, ConvImpl impl = ConvImpl::Im2colBlas);
// dw += ..., db += ... (db may be null)
template <typename T>
void conv_transpose2d_bwd_weight(const ConvGeom& cg, const T* dy, const T* x, T* dw, T* db, ConvImpl impl = ConvImpl::Im2colBlas);

}  // namespace lk::cpu
