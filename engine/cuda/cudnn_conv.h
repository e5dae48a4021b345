// Dense convolutions through cuDNN (real GPU builds only; the emulator has no
// cuDNN). Forward, backward data and backward filter with the same
// accumulate-into-gradients contract as our kernels (beta = 1), for any
// geometry kernels/conv2d.h describes (groups included, so depthwise
// convolutions can run here too: the cuDNN reference path of our depthwise
// kernels).
//
// Math mode, stated because it changes results: FP32_FMA (the default) asks
// cuDNN for true float32 FMA math (CUDNN_FMA_MATH, no tensor cores); TF32
// (CUDNN_DEFAULT_MATH) lets Ampere+ tensor cores round inputs to TF32 (10-bit
// mantissa) - faster, ~1e-3 relative error. Switch with set_math() or the
// backend option (engine/cuda/backend_cuda.h).
//
// Algorithms come from cuDNN's heuristics (cudnnGet*Algorithm_v7), the first
// one that succeeds within the workspace limit, cached per geometry; the
// workspace is taken from the backend's caching allocator.
#pragma once

#include <cudnn.h>

#include <map>
#include <tuple>

#include "engine/cuda/workspace.h"
#include "engine/tensor.h"
#include "kernels/conv2d.h"
#include "kernels/cuda/runtime_api.h"

LK_CUDA_NAMESPACE_BEGIN

enum class MathMode { FP32_FMA, TF32 };

void cudnn_check(cudnnStatus_t s, const char* expr, const char* file, int line);
#define LK_CUDNN_CHECK(expr) ::lk::cuda::cudnn_check((expr), #expr, __FILE__, __LINE__)

class CudnnConv {
 public:
  CudnnConv(cudaStream_t stream, Allocator& workspace);
  ~CudnnConv();
  CudnnConv(const CudnnConv&) = delete;
  CudnnConv& operator=(const CudnnConv&) = delete;

  cudnnHandle_t handle() const { return handle_; }
  void set_math(MathMode m) { math_ = m; }
  MathMode math() const { return math_; }

  // y = conv(x, w) + b (b may be null); accumulate: y += conv(x, w) + b
  void fwd(const ConvGeom& g, const float* x, const float* w, const float* b, float* y, bool accumulate);
  void bwd_data(const ConvGeom& g, const float* dy, const float* w, float* dx);                // dx += ...
  void bwd_filter(const ConvGeom& g, const float* dy, const float* x, float* dw, float* db);  // dw, db += ...

 private:
  struct Descs;
  Descs describe(const ConvGeom& g) const;
  void* workspace(size_t bytes);

  cudnnHandle_t handle_ = nullptr;
  Workspace ws_;
  MathMode math_ = MathMode::FP32_FMA;
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int>;
  std::map<Key, cudnnConvolutionFwdAlgo_t> fwd_algo_;
  std::map<Key, cudnnConvolutionBwdDataAlgo_t> bwd_data_algo_;
  std::map<Key, cudnnConvolutionBwdFilterAlgo_t> bwd_filter_algo_;
  Key key(const ConvGeom& g) const;
};

LK_CUDA_NAMESPACE_END
