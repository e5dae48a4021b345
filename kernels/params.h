// The parameter types every implementation of an op shares: the CPU kernels
// (kernels/, lk::cpu), the CUDA kernels (kernels/cuda/, lk::cuda), the cuDNN
// glue and the Backend interface (engine/backend.h). They live in namespace
// lk, beside none of the implementations, so no backend borrows another's.
#pragma once

#include <array>
#include <cstdint>

namespace lk {

// The geometry of a 2-D convolution (kernels/conv2d.h), NCHW, square stride,
// padding and dilation; groups == C_in == C_out is a depthwise convolution.
struct ConvGeom {
  int64_t n, c_in, h, w;      // input
  int64_t c_out, kh, kw;      // weight
  int64_t stride = 1, pad = 0, dil = 1, groups = 1;
  int64_t oh, ow;             // output, filled by finish()
  // Computes oh/ow; returns false when the output would be empty.
  bool finish() {
    oh = (h + 2 * pad - dil * (kh - 1) - 1) / stride + 1;
    ow = (w + 2 * pad - dil * (kw - 1) - 1) / stride + 1;
    return h + 2 * pad - dil * (kh - 1) - 1 >= 0 && w + 2 * pad - dil * (kw - 1) - 1 >= 0;
  }
  bool depthwise() const { return groups == c_in && groups == c_out; }
};

// A transposed convolution (kernels/conv_transpose2d.h), x (N, C_in, H, W),
// w (C_in, C_out, K, K), is the adjoint of a convolution: this returns that
// convolution, whose input is the transposed convolution's output
// (N, C_out, OH, OW), OH = (H-1)*stride - 2*pad + dil*(K-1) + 1, and whose
// output is x's shape.
inline ConvGeom conv_transpose2d_geom(int64_t n, int64_t c_in, int64_t h, int64_t w, int64_t c_out, int64_t k,
                                      int64_t stride, int64_t pad, int64_t dil) {
  ConvGeom g;
  g.n = n;
  g.c_in = c_out;  // the adjoint convolution reads y ...
  g.h = (h - 1) * stride - 2 * pad + dil * (k - 1) + 1;
  g.w = (w - 1) * stride - 2 * pad + dil * (k - 1) + 1;
  g.c_out = c_in;  // ... and writes x
  g.kh = g.kw = k;
  g.stride = stride;
  g.pad = pad;
  g.dil = dil;
  g.groups = 1;
  g.oh = h;
  g.ow = w;
  return g;
}

// Shapes of rank <= 4 padded to 4 dims (the broadcasting ops, kernels/binary.h).
using Dims4 = std::array<int64_t, 4>;
enum class BinaryOp { Add, Mul };

// Pointwise activations (kernels/activation.h).
enum class Activation { Relu, Sigmoid };

// Batch norm fused with ReLU and a residual (kernels/batch_norm_relu.h):
//   None        y = relu(BN(x))
//   AfterRelu   y = relu(BN(x)) + r   (ResSE: F = skip + R(x))
//   BeforeRelu  y = relu(BN(x) + r)   (the attention gate, ResNet's tail)
enum class BnResidual { None, AfterRelu, BeforeRelu };

// Upsampling modes (kernels/upsample.h).
enum class UpsampleMode { Nearest, Bilinear };

// The adaptive Tversky loss (kernels/tversky.h, SPEC.md).
struct TverskyParams {
  double alpha_min = 0.2, alpha_max = 0.8, eps = 1e-5;
  // SPEC.md's reading: no gradient through alpha/beta. false differentiates
  // through the (unclamped) alpha as well.
  bool detach_alpha = true;
};

// AdamW's hyper-parameters (kernels/adamw.h).
struct AdamWParams {
  double lr = 1e-4, beta1 = 0.9, beta2 = 0.999, eps = 1e-5, weight_decay = 0.01;
};

}  // namespace lk
