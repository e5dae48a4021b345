// Dense convolutions through cuDNN (real GPU builds only; the emulator has no
// cuDNN). Forward, backward data and backward filter with the same
// gradient contract as our kernels (add into them, beta = 1, or overwrite
// them, beta = 0), for any
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
// Determinism, stated because the trainer promises bit-exact resumes: by
// default only algorithms cuDNN reports deterministic are used (cuDNN's
// "Reproducibility" section: backward filter ALGO_0 and ALGO_3 and backward
// data ALGO_0 add with atomics, in an order that changes from run to run),
// and the choice itself is a heuristic (cudnnGet*Algorithm_v7), never a
// timing, so a resumed run picks what the first run picked. With
// set_deterministic(false) (lkaseg --fast-nondeterministic) the fastest
// heuristic choice is taken whatever its determinism: two runs of the same
// step may then differ in the last bits.
//
// Reduced precision: the same passes on bfloat16 or float16 tensors (x, w,
// y, dy, dx, dw all of that type; cuDNN wants one data type per
// convolution), NCHW as our tensors, accumulation in float32
// (PSEUDO_BFLOAT16 / PSEUDO_HALF configurations) and tensor-core math
// allowed whatever the math mode (it is the point of 16-bit data); the
// determinism rule still holds. The bias stays the caller's (a float32 bias
// gradient is not cuDNN's to sum in 16 bits).
//
// Per geometry (and data type, math mode and determinism) a Plan holds the descriptors,
// the three algorithms and their workspace sizes: made once, on the first
// call of that shape, and reused; the workspace comes from the backend's
// caching allocator.
#pragma once

#include <cudnn.h>

#include <map>
#include <memory>
#include <tuple>

#include "engine/cuda/workspace.h"
#include "engine/tensor.h"
#include "kernels/conv2d.h"
#include "kernels/cuda/runtime_api.h"

LK_CUDA_NAMESPACE_BEGIN

enum class MathMode { FP32_FMA, TF32 };

void cudnn_check(cudnnStatus_t s, const char* expr, const char* file, int line);
#define LK_CUDNN_CHECK(expr) ::lk::cuda::cudnn_check((expr), #expr, __FILE__, __LINE__)
// For destructors, which must not throw: prints the failure instead.
void cudnn_check_nothrow(cudnnStatus_t s, const char* expr, const char* file, int line) noexcept;
#define LK_CUDNN_CHECK_NOTHROW(expr) ::lk::cuda::cudnn_check_nothrow((expr), #expr, __FILE__, __LINE__)

class CudnnConv {
 public:
  CudnnConv(cudaStream_t stream, Allocator& workspace);
  ~CudnnConv();
  CudnnConv(const CudnnConv&) = delete;
  CudnnConv& operator=(const CudnnConv&) = delete;

  cudnnHandle_t handle() const { return handle_; }
  void set_math(MathMode m) { math_ = m; }
  MathMode math() const { return math_; }
  void set_deterministic(bool on) { deterministic_ = on; }
  bool deterministic() const { return deterministic_; }

  // y = conv(x, w) + b (b may be null); accumulate: y += conv(x, w) + b.
  // Pointers to elements of type t (F32, BF16 or F16), all of them.
  void fwd(const ConvGeom& g, DType t, const void* x, const void* w, const void* b, void* y, bool accumulate);
  // dx += ... (= without accumulate: cuDNN's beta 0)
  void bwd_data(const ConvGeom& g, DType t, const void* dy, const void* w, void* dx, bool accumulate = true);
  // dw, db += ... (acc_* false: =)
  void bwd_filter(const ConvGeom& g, DType t, const void* dy, const void* x, void* dw, void* db, bool acc_dw = true,
                  bool acc_db = true);
  // float32
  void fwd(const ConvGeom& g, const float* x, const float* w, const float* b, float* y, bool accumulate) {
    fwd(g, DType::F32, x, w, b, y, accumulate);
  }
  void bwd_data(const ConvGeom& g, const float* dy, const float* w, float* dx, bool accumulate = true) {
    bwd_data(g, DType::F32, dy, w, dx, accumulate);
  }
  void bwd_filter(const ConvGeom& g, const float* dy, const float* x, float* dw, float* db, bool acc_dw = true,
                  bool acc_db = true) {
    bwd_filter(g, DType::F32, dy, x, dw, db, acc_dw, acc_db);
  }

  size_t plans() const { return plans_.size(); }  // geometries seen so far

  struct Plan;  // descriptors, algorithms and workspace sizes of one geometry (cudnn_conv.cpp)

 private:
  Plan& plan(const ConvGeom& g, DType t);
  void* workspace(size_t bytes);

  cudnnHandle_t handle_ = nullptr;
  Workspace ws_;
  MathMode math_ = MathMode::FP32_FMA;
  bool deterministic_ = true;
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                         int64_t, int, bool, int>;
  std::map<Key, std::unique_ptr<Plan>> plans_;
};

LK_CUDA_NAMESPACE_END
