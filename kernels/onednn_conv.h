// Dense and grouped 2-D convolutions through oneDNN (Debian libdnnl-dev), the
// library PyTorch itself runs on CPUs: the CPU backend's Fast path for
// float32 convolutions (and, through their adjoint geometry, transposed
// convolutions). Same contract as kernels/conv2d.h: NCHW tensors, OIHW
// weights, backward passes ADD into their outputs.
//
// Our tensors stay NCHW; oneDNN picks its own (blocked) layouts for the
// convolution and each call reorders the operands in and the result out, the
// accumulation folded into that last reorder (a "sum" post-op), so an added-to
// gradient costs no extra pass. Primitives are built once per geometry and
// kept; the blocked operands and oneDNN's scratchpad live in grow-only
// per-thread buffers (no allocation per call after warm-up). oneDNN runs on
// the same OpenMP pool as our kernels and OpenBLAS (Debian builds it with
// the GNU OpenMP runtime), with omp_get_max_threads() threads.
//
// Each function returns false when oneDNN is not built in or refuses the
// geometry (the caller then runs the im2col + BLAS kernels); it throws only on
// a oneDNN failure after the primitive was accepted.
#pragma once

#include "kernels/params.h"

namespace lk::cpu {

// Whether this build has oneDNN.
bool onednn_available();
// The oneDNN version, e.g. "2.6.3", or "" without it.
const char* onednn_version();

// y = conv(x) + b (b may be null); accumulate: y += conv(x) + b.
bool onednn_conv2d_fwd(const ConvGeom& g, const float* x, const float* w, const float* b, float* y,
                       bool accumulate);
// dx += conv2d_backward_data(dy, w)
bool onednn_conv2d_bwd_data(const ConvGeom& g, const float* dy, const float* w, float* dx);
// dw += dL/dw, db += dL/db (db may be null)
bool onednn_conv2d_bwd_weight(const ConvGeom& g, const float* dy, const float* x, float* dw, float* db);

}  // namespace lk::cpu
