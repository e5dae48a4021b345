// Dense and grouped 2-D convolutions through oneDNN (Debian libdnnl-dev), the
// library PyTorch itself runs on CPUs: the CPU backend's Fast path for
// float32 convolutions (and, through their adjoint geometry, transposed
// convolutions). Same contract as kernels/conv2d.h: NCHW tensors, OIHW
// weights, backward passes ADD into their outputs.
//
// Our tensors stay NCHW; oneDNN picks its own (blocked) layouts for the
// convolution and each call reorders the operands in and the result out, the
// accumulation folded into that last reorder (a "sum" post-op), so an added-to
// gradient costs no extra pass. The training pair below (fwd_keep + bwd)
// leaves out the reorders a step would repeat. The CPU backend sends only
// onednn_takes() geometries here (kernels/conv2d.h: not 1x1). Primitives are built once per geometry and
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

// y = conv(x) + b (b may be null); accumulate: y += conv(x) + b. Always the
// forward_training primitive: forward_inference's Winograd wants its weights
// transformed by a reorder, which cost more per call than it saved (16-slice
// inference passes, measured).
bool onednn_conv2d_fwd(const ConvGeom& g, const float* x, const float* w, const float* b, float* y,
                       bool accumulate);
// dx += conv2d_backward_data(dy, w)
bool onednn_conv2d_bwd_data(const ConvGeom& g, const float* dy, const float* w, float* dx);
// dw += dL/dw, db += dL/db (db may be null)
bool onednn_conv2d_bwd_weight(const ConvGeom& g, const float* dy, const float* x, float* dw, float* db);

// A training step without the redundant reorders. The forward can leave its
// input and weights in the primitive's layouts in caller-owned buffers
// ("kept"), so the backward needs no second reorder of x (weight gradient)
// or w (data gradient, when its primitive wants the forward's weight layout);
// the backward reorders dy once for both gradients and overwrites a first
// write (no zero fill, no accumulate pass).
//
// Floats of the two kept buffers for geometry g (0 where our NCHW / OIHW
// layout is already the primitive's, so nothing need be kept); false when
// oneDNN is not built in or refuses the geometry.
bool onednn_conv2d_kept_floats(const ConvGeom& g, bool bias, int64_t* src_floats, int64_t* wei_floats);
// onednn_conv2d_fwd that also leaves x and w in kept_src / kept_wei (each
// null or of onednn_conv2d_kept_floats' size).
bool onednn_conv2d_fwd_keep(const ConvGeom& g, const float* x, const float* w, const float* b, float* y,
                            float* kept_src, float* kept_wei);
// Both gradients of one convolution: dx (null: not wanted), dw and db (both
// null: not wanted; db alone may be null). Each is overwritten when its
// *_first flag is set, else added into. kept_src / kept_wei: what
// onednn_conv2d_fwd_keep left for the same g, x and w, or null (then x and w
// are read again). False, with nothing written, where oneDNN refuses.
// bias: whether the forward had one (its plan holds the kept layouts).
bool onednn_conv2d_bwd(const ConvGeom& g, const float* dy, const float* x, const float* w, bool bias, float* dx,
                       bool dx_first, float* dw, bool dw_first, float* db, bool db_first, const float* kept_src,
                       const float* kept_wei);

}  // namespace lk::cpu
