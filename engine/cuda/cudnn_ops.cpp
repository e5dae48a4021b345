#include "engine/cuda/cudnn_ops.h"

#include <stdexcept>

#include "engine/cuda/cuda_check.h"

LK_CUDA_NAMESPACE_BEGIN

namespace {
int to_int(int64_t v) {
  if (v > (int64_t(1) << 31) - 1) throw std::invalid_argument("cuDNN reference: a dimension exceeds int");
  return static_cast<int>(v);
}
bool same(const Dims4& a, const Dims4& b) { return a == b; }
}  // namespace

CudnnOps::CudnnOps(cudnnHandle_t handle, Allocator& scratch) : handle_(handle), scratch_(scratch) {
  for (auto& t : t_) LK_CUDNN_CHECK(cudnnCreateTensorDescriptor(&t));
  LK_CUDNN_CHECK(cudnnCreateActivationDescriptor(&act_));
  LK_CUDNN_CHECK(cudnnCreateOpTensorDescriptor(&op_));
  LK_CUDNN_CHECK(cudnnCreateReduceTensorDescriptor(&reduce_));
}

CudnnOps::~CudnnOps() {
  for (auto& t : t_) LK_CUDNN_CHECK_NOTHROW(cudnnDestroyTensorDescriptor(t));
  LK_CUDNN_CHECK_NOTHROW(cudnnDestroyActivationDescriptor(act_));
  LK_CUDNN_CHECK_NOTHROW(cudnnDestroyOpTensorDescriptor(op_));
  LK_CUDNN_CHECK_NOTHROW(cudnnDestroyReduceTensorDescriptor(reduce_));
}

cudnnTensorDescriptor_t CudnnOps::desc(int slot, const Dims4& d) {
  LK_CUDNN_CHECK(cudnnSetTensor4dDescriptor(t_[slot], CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, to_int(d[0]), to_int(d[1]),
                                            to_int(d[2]), to_int(d[3])));
  return t_[slot];
}

void* CudnnOps::scratch(size_t bytes) { return scratch_.get(bytes); }

void CudnnOps::activation_fwd(Activation a, int64_t n, const float* x, float* y) {
  LK_CUDNN_CHECK(cudnnSetActivationDescriptor(
      act_, a == Activation::Relu ? CUDNN_ACTIVATION_RELU : CUDNN_ACTIVATION_SIGMOID, CUDNN_NOT_PROPAGATE_NAN, 0.0));
  const cudnnTensorDescriptor_t d = desc(0, {1, 1, 1, n});
  const float one = 1.f, zero = 0.f;
  LK_CUDNN_CHECK(cudnnActivationForward(handle_, act_, &one, d, x, &zero, d, y));
}

void CudnnOps::activation_bwd(Activation a, int64_t n, const float* dy, const float* y, float* dx, bool accumulate) {
  LK_CUDNN_CHECK(cudnnSetActivationDescriptor(
      act_, a == Activation::Relu ? CUDNN_ACTIVATION_RELU : CUDNN_ACTIVATION_SIGMOID, CUDNN_NOT_PROPAGATE_NAN, 0.0));
  const cudnnTensorDescriptor_t d = desc(0, {1, 1, 1, n});
  const float one = 1.f, beta = accumulate ? 1.f : 0.f;
  // Both derivatives are functions of y (relu: y > 0 iff x > 0), so y serves as x.
  LK_CUDNN_CHECK(cudnnActivationBackward(handle_, act_, &one, d, y, d, dy, d, y, &beta, d, dx));
}

void CudnnOps::binary_fwd(BinaryOp op, const Dims4& out, const float* a, const Dims4& sa, const float* b,
                          const Dims4& sb, float* y) {
  // cudnnOpTensor broadcasts B only: put the full-shape operand first (both
  // ops commute).
  if (!same(sa, out)) {
    if (!same(sb, out)) throw std::invalid_argument("cuDNN reference binary op: neither operand has the output shape");
    std::swap(a, b);
  }
  const Dims4& small = same(sa, out) ? sb : sa;
  LK_CUDNN_CHECK(cudnnSetOpTensorDescriptor(op_, op == BinaryOp::Add ? CUDNN_OP_TENSOR_ADD : CUDNN_OP_TENSOR_MUL,
                                            CUDNN_DATA_FLOAT, CUDNN_NOT_PROPAGATE_NAN));
  const float one = 1.f, zero = 0.f;
  LK_CUDNN_CHECK(cudnnOpTensor(handle_, op_, &one, desc(0, out), a, &one, desc(1, small), b, &zero, desc(2, out), y));
}

void CudnnOps::binary_bwd(BinaryOp op, const Dims4& out, const float* dy, const Dims4& s_self,
                          const float* other, const Dims4& s_other, float* d_self, bool accumulate) {
  const float one = 1.f, zero = 0.f, beta = accumulate ? 1.f : 0.f;
  const int64_t total = out[0] * out[1] * out[2] * out[3];
  const float* src = dy;
  size_t prod_bytes = 0;
  if (op == BinaryOp::Mul) {
    prod_bytes = static_cast<size_t>(total) * sizeof(float);
  }
  LK_CUDNN_CHECK(cudnnSetReduceTensorDescriptor(reduce_, CUDNN_REDUCE_TENSOR_ADD, CUDNN_DATA_FLOAT, CUDNN_NOT_PROPAGATE_NAN,
                                                CUDNN_REDUCE_TENSOR_NO_INDICES, CUDNN_32BIT_INDICES));
  size_t ws = 0;
  LK_CUDNN_CHECK(cudnnGetReductionWorkspaceSize(handle_, reduce_, desc(0, out), desc(1, s_self), &ws));
  char* base = static_cast<char*>(scratch(prod_bytes + ws + 256));
  if (op == BinaryOp::Mul) {
    // dy * other (other broadcast), then reduce to self's shape.
    LK_CUDNN_CHECK(cudnnSetOpTensorDescriptor(op_, CUDNN_OP_TENSOR_MUL, CUDNN_DATA_FLOAT, CUDNN_NOT_PROPAGATE_NAN));
    float* prod = reinterpret_cast<float*>(base);
    LK_CUDNN_CHECK(cudnnOpTensor(handle_, op_, &one, desc(0, out), dy, &one, desc(1, s_other), other, &zero,
                                 desc(2, out), prod));
    src = prod;
  }
  void* wsp = ws ? base + (prod_bytes + 255) / 256 * 256 : nullptr;
  LK_CUDNN_CHECK(cudnnReduceTensor(handle_, reduce_, nullptr, 0, wsp, ws, &one, desc(0, out), src, &beta,
                                   desc(1, s_self), d_self));
}

void CudnnOps::global_avg_pool_fwd(int64_t n, int64_t c, int64_t hw, const float* x, float* y) {
  LK_CUDNN_CHECK(cudnnSetReduceTensorDescriptor(reduce_, CUDNN_REDUCE_TENSOR_AVG, CUDNN_DATA_FLOAT, CUDNN_NOT_PROPAGATE_NAN,
                                                CUDNN_REDUCE_TENSOR_NO_INDICES, CUDNN_32BIT_INDICES));
  size_t ws = 0;
  const cudnnTensorDescriptor_t dx = desc(0, {n, c, 1, hw}), dyd = desc(1, {n, c, 1, 1});
  LK_CUDNN_CHECK(cudnnGetReductionWorkspaceSize(handle_, reduce_, dx, dyd, &ws));
  const float one = 1.f, zero = 0.f;
  LK_CUDNN_CHECK(cudnnReduceTensor(handle_, reduce_, nullptr, 0, ws ? scratch(ws) : nullptr, ws, &one, dx, x, &zero, dyd, y));
}

void CudnnOps::global_avg_pool_bwd(int64_t n, int64_t c, int64_t hw, const float* dy, float* dx, bool accumulate) {
  const float scale = 1.f / static_cast<float>(hw), beta = accumulate ? 1.f : 0.f;
  LK_CUDNN_CHECK(cudnnAddTensor(handle_, &scale, desc(0, {n, c, 1, 1}), dy, &beta, desc(1, {n, c, 1, hw}), dx));
}

void CudnnOps::softmax_fwd(int64_t n, int64_t c, int64_t hw, const float* x, float* y) {
  const cudnnTensorDescriptor_t d = desc(0, {n, c, 1, hw});
  const float one = 1.f, zero = 0.f;
  LK_CUDNN_CHECK(cudnnSoftmaxForward(handle_, CUDNN_SOFTMAX_ACCURATE, CUDNN_SOFTMAX_MODE_CHANNEL, &one, d, x, &zero, d, y));
}

void CudnnOps::softmax_bwd(int64_t n, int64_t c, int64_t hw, const float* dy, const float* y, float* dx,
                           bool accumulate) {
  const cudnnTensorDescriptor_t d = desc(0, {n, c, 1, hw});
  const float one = 1.f, beta = accumulate ? 1.f : 0.f;
  LK_CUDNN_CHECK(
      cudnnSoftmaxBackward(handle_, CUDNN_SOFTMAX_ACCURATE, CUDNN_SOFTMAX_MODE_CHANNEL, &one, d, y, d, dy, &beta, d, dx));
}

void CudnnOps::batch_norm_fwd_train(int64_t n, int64_t c, int64_t hw, const float* x, const float* gamma,
                                    const float* beta, float* running_mean, float* running_var, double momentum,
                                    double eps, float* y, float* save_mean, float* save_invstd) {
  const cudnnTensorDescriptor_t d = desc(0, {n, c, 1, hw}), p = desc(1, {1, c, 1, 1});
  const float one = 1.f, zero = 0.f;
  // cuDNN, like PyTorch, updates the running variance with the unbiased
  // batch variance; the saved inverse std is 1/sqrt(var + eps), as ours.
  LK_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(handle_, CUDNN_BATCHNORM_SPATIAL, &one, &zero, d, x, d, y, p,
                                                        gamma, beta, momentum, running_mean, running_var, eps, save_mean,
                                                        save_invstd));
}

void CudnnOps::batch_norm_bwd_train(int64_t n, int64_t c, int64_t hw, const float* dy, const float* x,
                                    const float* gamma, const float* save_mean, const float* save_invstd, double eps,
                                    float* dx, float* dgamma, float* dbeta, bool acc_dx, bool acc_dgamma,
                                    bool acc_dbeta) {
  const cudnnTensorDescriptor_t d = desc(0, {n, c, 1, hw}), p = desc(1, {1, c, 1, 1});
  // cuDNN writes all three gradients: unwanted ones go to scratch.
  const size_t need = (dx ? 0 : static_cast<size_t>(n * c * hw)) + (dgamma ? 0 : static_cast<size_t>(c)) +
                      (dbeta ? 0 : static_cast<size_t>(c));
  float* tmp = need ? static_cast<float*>(scratch(need * sizeof(float))) : nullptr;
  if (!dx) dx = tmp, tmp += n * c * hw;
  if (!dgamma) dgamma = tmp, tmp += c;
  if (!dbeta) dbeta = tmp;
  // One beta for both parameter gradients: when only one is overwritten, it
  // is zeroed and both accumulate.
  if (acc_dgamma != acc_dbeta) {
    cudaStream_t s = nullptr;
    LK_CUDNN_CHECK(cudnnGetStream(handle_, &s));
    LK_CUDA_CHECK(cudaMemsetAsync(acc_dgamma ? dbeta : dgamma, 0, static_cast<size_t>(c) * sizeof(float), s));
    acc_dgamma = acc_dbeta = true;
  }
  const float one = 1.f, beta_dx = acc_dx ? 1.f : 0.f, beta_p = acc_dgamma ? 1.f : 0.f;
  LK_CUDNN_CHECK(cudnnBatchNormalizationBackward(handle_, CUDNN_BATCHNORM_SPATIAL, &one, &beta_dx, &one, &beta_p, d, x, d,
                                                 dy, d, dx, p, gamma, dgamma, dbeta, eps, save_mean, save_invstd));
}

LK_CUDA_NAMESPACE_END
