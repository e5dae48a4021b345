// cuDNN reference paths of our hand-written non-convolution kernels (real GPU
// builds only), selected with Backend::set_variant(op, Cudnn) or
// globally. The CUDA backend (backend_cuda*.cpp) routes:
//   "activation"       relu / sigmoid        cudnnActivationForward/Backward
//   "binary"           broadcast add / mul   cudnnOpTensor, backward through
//                                            cudnnOpTensor + cudnnReduceTensor
//   "global_avg_pool"  GAP                   cudnnReduceTensor (AVG); backward
//                                            cudnnAddTensor (broadcast, 1/HW)
//   "softmax"          channel softmax       cudnnSoftmaxForward/Backward
//   "batch_norm"       training fwd/bwd      cudnnBatchNormalization* (spatial);
//                                            evaluation stays on our kernel
// The LKA gate's reference is the composition of the batch_norm, activation
// and binary references. Every backward accumulates (beta = 1) or overwrites
// (beta = 0, accumulate false), like ours.
#pragma once

#include <cudnn.h>

#include "engine/cuda/cudnn_conv.h"
#include "engine/cuda/workspace.h"
#include "kernels/activation.h"
#include "kernels/binary.h"

LK_CUDA_NAMESPACE_BEGIN

class CudnnOps {
 public:
  CudnnOps(cudnnHandle_t handle, Allocator& scratch);
  ~CudnnOps();
  CudnnOps(const CudnnOps&) = delete;
  CudnnOps& operator=(const CudnnOps&) = delete;

  void activation_fwd(Activation a, int64_t n, const float* x, float* y);
  void activation_bwd(Activation a, int64_t n, const float* dy, const float* y, float* dx, bool accumulate = true);
  void binary_fwd(BinaryOp op, const Dims4& out, const float* a, const Dims4& sa, const float* b,
                  const Dims4& sb, float* y);
  void binary_bwd(BinaryOp op, const Dims4& out, const float* dy, const Dims4& s_self,
                  const float* other, const Dims4& s_other, float* d_self, bool accumulate = true);
  void global_avg_pool_fwd(int64_t n, int64_t c, int64_t hw, const float* x, float* y);
  void global_avg_pool_bwd(int64_t n, int64_t c, int64_t hw, const float* dy, float* dx, bool accumulate = true);
  void softmax_fwd(int64_t n, int64_t c, int64_t hw, const float* x, float* y);
  void softmax_bwd(int64_t n, int64_t c, int64_t hw, const float* dy, const float* y, float* dx, bool accumulate = true);
  void batch_norm_fwd_train(int64_t n, int64_t c, int64_t hw, const float* x, const float* gamma, const float* beta,
                            float* running_mean, float* running_var, double momentum, double eps, float* y,
                            float* save_mean, float* save_invstd);
  void batch_norm_bwd_train(int64_t n, int64_t c, int64_t hw, const float* dy, const float* x, const float* gamma,
                            const float* save_mean, const float* save_invstd, double eps, float* dx, float* dgamma,
                            float* dbeta, bool acc_dx = true, bool acc_dgamma = true, bool acc_dbeta = true);

 private:
  cudnnTensorDescriptor_t desc(int slot, const Dims4& d);
  void* scratch(size_t bytes);

  cudnnHandle_t handle_;
  cudnnTensorDescriptor_t t_[3] = {nullptr, nullptr, nullptr};
  cudnnActivationDescriptor_t act_ = nullptr;
  cudnnOpTensorDescriptor_t op_ = nullptr;
  cudnnReduceTensorDescriptor_t reduce_ = nullptr;
  Workspace scratch_;
};

LK_CUDA_NAMESPACE_END
