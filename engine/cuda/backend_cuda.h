// The CUDA backend: every op of engine/backend.h on an NVIDIA GPU, float32.
//
// Built twice from the same source (engine/CMakeLists.txt): against the real
// runtime with cuDNN (LKASEG_CUDA), and against the SIMT emulator, where it
// registers as cuda:0 and runs our kernels on the CPU - so CI runs whole
// networks through this backend (label emu) without a GPU.
//
// Kernel choice (Backend::set_variant):
//   Fast       our kernels (kernels/cuda) for everything we wrote: depthwise
//              convolutions, batch norm, activations, broadcasting, pooling,
//              resampling, concat, softmax + cross-entropy, Tversky, linear;
//              dense convolutions (3x3, 1x1, transposed) through cuDNN on a
//              GPU, through our direct kernel under emulation.
//   Cudnn      the cuDNN path where one exists: every convolution, depthwise
//              included (grouped convolution), training batch norm, relu and
//              sigmoid, the broadcast add/multiply, global average pooling,
//              softmax, and the LKA gate composed of those; under emulation
//              (no cuDNN) our direct convolution kernel for the convolutions
//              and our kernels for the rest.
// Dense cuDNN math is float32 FMA by default; set_tf32(true) allows TF32
// tensor-core math. cuDNN convolutions use deterministic algorithms only by
// default (bit-exact resumes); set_deterministic(false) - lkaseg
// --fast-nondeterministic - lets cuDNN's fastest pick add with atomics (see
// engine/cuda/cudnn_conv.h). Our own kernels are deterministic either way.
// All work runs on one stream per device; memory comes from a caching
// allocator (engine/cuda/caching_allocator.h). Float64 tensors are refused.
#pragma once

#include "engine/backend.h"
#include "kernels/cuda/runtime_api.h"

LK_CUDA_NAMESPACE_BEGIN

// The backend of cuda:`device`, created and registered on first use.
Backend& cuda_backend(int device = 0);
// TF32 tensor-core math for cuDNN convolutions (no effect under emulation).
void set_tf32(bool on);
// Deterministic cuDNN convolution algorithms only (the default), or any (no
// effect under emulation, where convolutions are our deterministic kernels).
void set_deterministic(bool on);
// The stream cuda:`device`'s backend computes on (profilers record events on
// it; other streams that read or write its tensors, NCCL's in
// engine/cuda/dist_nccl.cpp, order themselves against it with events).
cudaStream_t compute_stream(int device = 0);

LK_CUDA_NAMESPACE_END
