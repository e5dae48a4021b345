// The CUDA backend (see backend_cuda.h): Tensors -> launchers in kernels/cuda.
#include "engine/cuda/backend_cuda.h"

#include <map>
#include <memory>
#include <vector>
#include <mutex>
#include <stdexcept>
#include <string>

#include "engine/cuda/caching_allocator.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/device_info.h"
#include "engine/cuda/upload_ring.h"
#include "kernels/adamw.h"
#include "engine/cuda/workspace.h"
#include "kernels/augment.h"
#include "kernels/cuda/augment.h"
#include "kernels/conv_transpose2d.h"
#include "kernels/cuda/activation.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/batch_norm.h"
#include "kernels/cuda/concat.h"
#include "kernels/cuda/conv2d_direct.h"
#include "kernels/cuda/depthwise_conv2d.h"
#include "kernels/cuda/binary.h"
#include "kernels/cuda/linear.h"
#include "kernels/cuda/lka_gate.h"
#include "kernels/cuda/loss_terms.h"
#include "kernels/cuda/pooling.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/tversky.h"
#include "kernels/cuda/upsample.h"
#if !defined(LKASEG_SIMT)
#include "engine/cuda/cudnn_conv.h"
#include "engine/cuda/cudnn_ops.h"
// The cuDNN path of `op` is wanted (only GPU builds have cuDNN).
#define LK_CUDNN_REF(op) (variant(op) == KernelVariant::Cudnn)
#else
#define LK_CUDNN_REF(op) false
#endif

LK_CUDA_NAMESPACE_BEGIN

namespace {

bool g_tf32 = false;
bool g_deterministic = true;

const float* cf(const Tensor& t) {
  if (!t.defined()) return nullptr;
  if (t.dtype() != DType::F32)
    throw std::invalid_argument(std::string("CUDA backend computes in float32 only, got a ") + dtype_name(t.dtype()) +
                                " tensor");
  return t.data<float>();
}
float* mf(const Tensor& t) { return const_cast<float*>(cf(t)); }
// A gradient output is added into unless it is a first write (engine/backend.h).
bool acc(const Tensor& t) { return !t.first_write(); }

Dims4 dims4(const Shape& s) {
  Dims4 d{1, 1, 1, 1};
  const size_t off = 4 - s.size();
  for (size_t i = 0; i < s.size(); ++i) d[off + i] = s[i];
  return d;
}

struct NC {
  int64_t n, c, hw;
};
NC nc_of(const Tensor& t) {
  const int64_t n = t.size(0), c = t.ndim() > 1 ? t.size(1) : 1;
  return {n, c, t.numel() / (n * c)};
}

#define LK_LAUNCHED(expr) ::lk::cuda::check((expr), #expr, __FILE__, __LINE__)

// A captured step: its executable graph and its allocator pool.
class CudaGraph final : public Graph {
 public:
  CudaGraph(int device, cudaStream_t stream, CachingAllocator& alloc, cudaGraphExec_t exec, int pool)
      : device_(device), stream_(stream), alloc_(alloc), exec_(exec), pool_(pool) {}
  ~CudaGraph() override {
    // Later work on the stream runs after the last replay, so the pool's
    // blocks may go back to the cache at once.
    try {
      LK_CUDA_CHECK(cudaSetDevice(device_));
      LK_CUDA_CHECK(cudaGraphExecDestroy(exec_));
    } catch (...) {
    }
    alloc_.release_pool(pool_);
  }
  void launch() override { LK_CUDA_CHECK(cudaGraphLaunch(exec_, stream_)); }

 private:
  int device_;
  cudaStream_t stream_;
  CachingAllocator& alloc_;
  cudaGraphExec_t exec_;
  int pool_;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device), alloc_(device), pinned_(device, true) {
    LK_CUDA_CHECK(cudaSetDevice(device));
    LK_CUDA_CHECK(cudaStreamCreate(&stream_));
    alloc_.set_stream(stream_);  // device blocks are reused in this stream's order
    label_errors_ = static_cast<LabelError*>(alloc_.allocate(2 * sizeof(LabelError)));
    label_errors_seen_ = static_cast<LabelError*>(pinned_.allocate(2 * sizeof(LabelError)));
    LK_CUDA_CHECK(cudaMemsetAsync(label_errors_, 0xFF, 2 * sizeof(LabelError), stream_));  // none
#if !defined(LKASEG_SIMT)
    cudnn_ = std::make_unique<CudnnConv>(stream_, alloc_);
    ref_ = std::make_unique<CudnnOps>(cudnn_->handle(), alloc_);
#endif
  }
  ~CudaBackend() override {
    for (auto& [state, u] : adamw_uploads_)
      if (u.device) cudaFreeAsync(u.device, stream_);
    if (label_errors_) alloc_.deallocate(label_errors_, 2 * sizeof(LabelError));
    if (label_errors_seen_) pinned_.deallocate(label_errors_seen_, 2 * sizeof(LabelError));
    if (stream_) cudaStreamDestroy(stream_);
  }

  Device device() const override { return {DeviceType::CUDA, device_}; }
  cudaStream_t stream() const { return stream_; }
  Allocator& allocator() override { return alloc_; }
  // Every wait for the stream also reads the label error records (one small
  // copy before the wait) and throws the first error a loss kernel recorded.
  void synchronize() override {
    LK_CUDA_CHECK(cudaMemcpyAsync(label_errors_seen_, label_errors_, 2 * sizeof(LabelError), cudaMemcpyDeviceToHost,
                                  stream_));
    LK_CUDA_CHECK(cudaStreamSynchronize(stream_));
    raise_label_errors();
  }
  std::string describe() const override { return "cuda:" + std::to_string(device_) + " " + lk::cuda::describe(device_); }
  std::vector<KernelVariant> variants() const override { return {KernelVariant::Fast, KernelVariant::Cudnn}; }

  // ---------------------------------------------------------------- memory
  void copy(const Tensor& src, const Tensor& dst) override {
    LK_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), dst.nbytes(), cudaMemcpyDefault, stream_));
    if (dst.device().type == DeviceType::CPU || src.device().type == DeviceType::CPU) synchronize();
  }
  void fill(const Tensor& y, double v) override {
    if (y.dtype() == DType::I32) {
      if (v != 0.0 && v != -1.0) throw std::invalid_argument("CUDA fill of int32 tensors supports 0 and -1 only");
      LK_CUDA_CHECK(cudaMemsetAsync(y.raw(), v == 0.0 ? 0 : 0xFF, y.nbytes(), stream_));
      return;
    }
    if (y.dtype() == DType::F64)  // small state arrays (the optimiser's)
      return LK_LAUNCHED(lk::cuda::fill(y.numel(), v, y.data<double>(), stream_));
    LK_LAUNCHED(fill_kernel(y.numel(), static_cast<float>(v), mf(y)));
  }
  void axpy(double a, const Tensor& x, const Tensor& y) override {
    LK_LAUNCHED(lk::cuda::axpy(y.numel(), static_cast<float>(a), cf(x), mf(y), stream_, acc(y)));
  }

  // ---------------------------------------------------------------- convolutions
  void conv2d_fwd(const ConvGeom& g, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y) override {
    conv_fwd(g, cf(x), cf(w), cf(b), mf(y), false);
  }
  void conv2d_bwd_data(const ConvGeom& g, const Tensor& dy, const Tensor& w, const Tensor& dx) override {
    conv_bwd_data(g, cf(dy), cf(w), mf(dx), acc(dx));
  }
  void conv2d_bwd_weight(const ConvGeom& g, const Tensor& dy, const Tensor& x, const Tensor& dw, const Tensor& db) override {
    conv_bwd_weight(g, cf(dy), cf(x), mf(dw), mf(db), acc(dw), acc(db));
  }
  // Transposed convolution = the adjoint of the convolution `g` describes
  // (kernels/conv_transpose2d.h): its passes are that convolution's passes.
  void conv_transpose2d_fwd(const ConvGeom& g, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y) override {
    conv_bwd_data(g, cf(x), cf(w), mf(y), false);
    if (b.defined()) {  // y += bias, in place (binary_fwd allows y == a when a has y's shape)
      const Dims4 out = dims4(y.shape()), sb{1, g.c_in, 1, 1};
      LK_LAUNCHED(lk::cuda::binary_fwd(BinaryOp::Add, out, cf(y), out, cf(b), sb, mf(y), stream_));
    }
  }
  void conv_transpose2d_bwd_data(const ConvGeom& g, const Tensor& dy, const Tensor& w, const Tensor& dx) override {
    conv_fwd(g, cf(dy), cf(w), nullptr, mf(dx), acc(dx));
  }
  void conv_transpose2d_bwd_weight(const ConvGeom& g, const Tensor& dy, const Tensor& x, const Tensor& dw, const Tensor& db) override {
    conv_bwd_weight(g, cf(x), cf(dy), mf(dw), nullptr, acc(dw), true);
    if (db.defined()) LK_LAUNCHED(channel_sum_acc(g.n, g.c_in, g.h * g.w, cf(dy), mf(db), stream_, acc(db)));
  }

  // ---------------------------------------------------------------- batch norm
  void batch_norm_fwd(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& rm, const Tensor& rv,
                      bool training, double momentum, double eps, const Tensor& y, const Tensor& save_mean,
                      const Tensor& save_invstd) override {
    const NC s = nc_of(x);
    bn_eps_ = eps;  // cuDNN's backward wants the forward's eps (every BN here shares one)
#if !defined(LKASEG_SIMT)
    if (training && LK_CUDNN_REF("batch_norm"))
      return ref_->batch_norm_fwd_train(s.n, s.c, s.hw, cf(x), cf(gamma), cf(beta), mf(rm), mf(rv), momentum, eps, mf(y),
                                        mf(save_mean), mf(save_invstd));
#endif
    LK_LAUNCHED(lk::cuda::batch_norm_fwd(s.n, s.c, s.hw, cf(x), cf(gamma), cf(beta), mf(rm), mf(rv), training, momentum,
                                         eps, mf(y), mf(save_mean), mf(save_invstd), stream_));
  }
  void batch_norm_bwd(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                      const Tensor& save_invstd, bool training, const Tensor& dx, const Tensor& dgamma,
                      const Tensor& dbeta) override {
    const NC s = nc_of(x);
#if !defined(LKASEG_SIMT)
    if (training && LK_CUDNN_REF("batch_norm"))
      return ref_->batch_norm_bwd_train(s.n, s.c, s.hw, cf(dy), cf(x), cf(gamma), cf(save_mean), cf(save_invstd),
                                        bn_eps_, mf(dx), mf(dgamma), mf(dbeta), acc(dx), acc(dgamma), acc(dbeta));
#endif
    LK_LAUNCHED(lk::cuda::batch_norm_bwd(s.n, s.c, s.hw, cf(dy), cf(x), cf(gamma), cf(save_mean), cf(save_invstd),
                                         training, mf(dx), mf(dgamma), mf(dbeta), stream_, acc(dx), acc(dgamma),
                                         acc(dbeta)));
  }

  // Synchronised batch norm: the sums in double on the device, read back
  // (this waits for the stream); the statistics go up as float32 and
  // normalise through the evaluation kernel.
  std::vector<double> batch_norm_sums(const Tensor& x, const std::vector<double>& mean, const Tensor& dy,
                                      const Tensor& save_mean, const Tensor& save_invstd) override {
    const NC s = nc_of(x);
    const Tensor out = Tensor::empty({(dy.defined() ? 2 : 1) * s.c}, DType::F64, device());
    Tensor mu;
    if (!mean.empty()) mu = Tensor::from_vector(mean, {s.c}, DType::F64).to(device());
    LK_LAUNCHED(lk::cuda::batch_norm_sums(s.n, s.c, s.hw, cf(x), mu.defined() ? mu.data<double>() : nullptr, cf(dy),
                                          cf(save_mean), cf(save_invstd), out.data<double>(), stream_));
    return out.to(cpu_device()).to_vector();
  }
  void batch_norm_fwd_stats(const Tensor& x, const Tensor& gamma, const Tensor& beta, const std::vector<double>& mean,
                            const std::vector<double>& var, double eps, const Tensor& y, const Tensor& save_mean,
                            const Tensor& save_invstd) override {
    const NC s = nc_of(x);
    const Tensor m = Tensor::from_vector(mean, {s.c}).to(device()), v = Tensor::from_vector(var, {s.c}).to(device());
    LK_LAUNCHED(lk::cuda::batch_norm_fwd(s.n, s.c, s.hw, cf(x), cf(gamma), cf(beta), mf(m), mf(v), false, 0.0, eps,
                                         mf(y), mf(save_mean), mf(save_invstd), stream_));
  }
  void batch_norm_bwd_dx(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                         const Tensor& save_invstd, const std::vector<double>& means, const Tensor& dx) override {
    const NC s = nc_of(x);
    const Tensor m = Tensor::from_vector(means, {static_cast<int64_t>(means.size())}).to(device());
    if (dx.first_write()) fill(dx, 0.0);  // the kernel adds
    LK_LAUNCHED(lk::cuda::batch_norm_bwd_dx(s.n, s.c, s.hw, cf(dy), cf(x), cf(gamma), cf(save_mean), cf(save_invstd),
                                            cf(m), mf(dx), stream_));
  }

  // ---------------------------------------------------------------- the LKA gate
  // Fast: the fused kernel. Cudnn: the composition of this backend's batch
  // norm, sigmoid and multiply (each on cuDNN on a GPU).
  void lka_gate_fwd(const Tensor& x, const Tensor& f, const Tensor& gamma, const Tensor& beta, const Tensor& rm,
                    const Tensor& rv, bool training, double momentum, double eps, const Tensor& y,
                    const Tensor& save_mean, const Tensor& save_invstd) override {
    const NC s = nc_of(x);
    bn_eps_ = eps;
    if (variant("lka_gate") == KernelVariant::Cudnn) {
      Tensor z = Tensor::empty(x.shape(), DType::F32, device());
      batch_norm_fwd(f, gamma, beta, rm, rv, training, momentum, eps, z, save_mean, save_invstd);
      Tensor a = Tensor::empty(x.shape(), DType::F32, device());
      activation_fwd(Activation::Sigmoid, z, a);
      binary_fwd(BinaryOp::Mul, x, a, y);
      return;
    }
    const size_t ws = lka_gate_workspace_bytes(s.n, s.c, s.hw);
    LK_LAUNCHED(lk::cuda::lka_gate_fwd(s.n, s.c, s.hw, cf(x), cf(f), cf(gamma), cf(beta), mf(rm), mf(rv), training,
                                       momentum, eps, mf(y), mf(save_mean), mf(save_invstd), nullptr, scratch(ws), ws,
                                       stream_));
  }
  void lka_gate_bwd(const Tensor& dy, const Tensor& x, const Tensor& f, const Tensor& gamma, const Tensor& beta,
                    const Tensor& save_mean, const Tensor& save_invstd, bool training, const Tensor& dx,
                    const Tensor& df, const Tensor& dgamma, const Tensor& dbeta) override {
    const NC s = nc_of(x);
    if (variant("lka_gate") == KernelVariant::Cudnn) {
      // Recompute A = sigmoid(gamma * (f - mean) * invstd + beta) in eval form
      // from the saved statistics, then the three backward passes.
      Tensor z = Tensor::empty(x.shape(), DType::F32, device()), m2 = Tensor::empty(save_mean.shape(), DType::F32, device()),
             i2 = Tensor::empty(save_mean.shape(), DType::F32, device());
      // var = 1/invstd^2 - eps reproduces the saved invstd in an eval-mode pass.
      Tensor var = Tensor::empty(save_mean.shape(), DType::F32, device());
      {
        std::vector<double> inv = save_invstd.to_vector(), v(inv.size());
        for (size_t k = 0; k < inv.size(); ++k) v[k] = 1.0 / (inv[k] * inv[k]) - bn_eps_;
        var.copy_from(Tensor::from_vector(v, save_mean.shape()));
      }
      Tensor mean = save_mean.clone();
      batch_norm_fwd(f, gamma, beta, mean, var, false, 0.0, bn_eps_, z, m2, i2);
      Tensor a = Tensor::empty(x.shape(), DType::F32, device());
      activation_fwd(Activation::Sigmoid, z, a);
      if (dx.defined()) binary_bwd(BinaryOp::Mul, dy, a, dx);  // dx += dy * A
      Tensor da = Tensor::empty(x.shape(), DType::F32, device()).as_first_write();
      binary_bwd(BinaryOp::Mul, dy, x, da);  // dA = dy * x
      Tensor dz = Tensor::empty(x.shape(), DType::F32, device()).as_first_write();
      activation_bwd(Activation::Sigmoid, da, a, dz);
      batch_norm_bwd(dz, f, gamma, save_mean, save_invstd, training, df, dgamma, dbeta);
      return;
    }
    const size_t ws = lka_gate_workspace_bytes(s.n, s.c, s.hw);
    LK_LAUNCHED(lk::cuda::lka_gate_bwd(s.n, s.c, s.hw, cf(dy), cf(x), cf(f), cf(gamma), cf(beta), cf(save_mean),
                                       cf(save_invstd), training, mf(dx), mf(df), mf(dgamma), mf(dbeta), scratch(ws), ws,
                                       stream_, acc(dx), acc(df), acc(dgamma), acc(dbeta)));
  }

  // ---------------------------------------------------------------- pointwise
  void activation_fwd(Activation a, const Tensor& x, const Tensor& y) override {
#if !defined(LKASEG_SIMT)
    if (LK_CUDNN_REF("activation")) return ref_->activation_fwd(a, x.numel(), cf(x), mf(y));
#endif
    LK_LAUNCHED(lk::cuda::activation_fwd(a, x.numel(), cf(x), mf(y), stream_));
  }
  void activation_bwd(Activation a, const Tensor& dy, const Tensor& y, const Tensor& dx) override {
#if !defined(LKASEG_SIMT)
    if (LK_CUDNN_REF("activation")) return ref_->activation_bwd(a, y.numel(), cf(dy), cf(y), mf(dx), acc(dx));
#endif
    LK_LAUNCHED(lk::cuda::activation_bwd(a, y.numel(), cf(dy), cf(y), mf(dx), stream_, acc(dx)));
  }
  void binary_fwd(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& y) override {
#if !defined(LKASEG_SIMT)
    if (LK_CUDNN_REF("binary"))
      return ref_->binary_fwd(op, dims4(y.shape()), cf(a), dims4(a.shape()), cf(b), dims4(b.shape()), mf(y));
#endif
    LK_LAUNCHED(lk::cuda::binary_fwd(op, dims4(y.shape()), cf(a), dims4(a.shape()), cf(b), dims4(b.shape()), mf(y),
                                     stream_));
  }
  void binary_bwd(BinaryOp op, const Tensor& dy, const Tensor& other, const Tensor& d_self) override {
    const bool mul = op == BinaryOp::Mul;
#if !defined(LKASEG_SIMT)
    if (LK_CUDNN_REF("binary"))
      return ref_->binary_bwd(op, dims4(dy.shape()), cf(dy), dims4(d_self.shape()), mul ? cf(other) : nullptr,
                              mul ? dims4(other.shape()) : Dims4{1, 1, 1, 1}, mf(d_self), acc(d_self));
#endif
    LK_LAUNCHED(lk::cuda::binary_bwd(op, dims4(dy.shape()), cf(dy), dims4(d_self.shape()), mul ? cf(other) : nullptr,
                                     mul ? dims4(other.shape()) : Dims4{1, 1, 1, 1}, mf(d_self), stream_, acc(d_self)));
  }

  // ---------------------------------------------------------------- pooling, resampling, layout
  void global_avg_pool_fwd(const Tensor& x, const Tensor& y) override {
    const NC s = nc_of(x);
#if !defined(LKASEG_SIMT)
    if (LK_CUDNN_REF("global_avg_pool")) return ref_->global_avg_pool_fwd(s.n, s.c, s.hw, cf(x), mf(y));
#endif
    LK_LAUNCHED(lk::cuda::global_avg_pool_fwd(s.n * s.c, s.hw, cf(x), mf(y), stream_));
  }
  void global_avg_pool_bwd(const Tensor& dy, const Tensor& dx) override {
    const NC s = nc_of(dx);
#if !defined(LKASEG_SIMT)
    if (LK_CUDNN_REF("global_avg_pool")) return ref_->global_avg_pool_bwd(s.n, s.c, s.hw, cf(dy), mf(dx), acc(dx));
#endif
    LK_LAUNCHED(lk::cuda::global_avg_pool_bwd(s.n * s.c, s.hw, cf(dy), mf(dx), stream_, acc(dx)));
  }
  void max_pool2d_fwd(int64_t k, int64_t st, const Tensor& x, const Tensor& y, const Tensor& idx) override {
    LK_LAUNCHED(lk::cuda::max_pool2d_fwd(x.size(0) * x.size(1), x.size(2), x.size(3), k, st, cf(x), mf(y),
                                         idx.data<int32_t>(), stream_));
  }
  void max_pool2d_bwd(int64_t k, int64_t st, const Tensor& dy, const Tensor& idx, const Tensor& dx) override {
    LK_LAUNCHED(lk::cuda::max_pool2d_bwd(dx.size(0) * dx.size(1), dx.size(2), dx.size(3), k, st, cf(dy),
                                         idx.data<int32_t>(), mf(dx), stream_, acc(dx)));
  }
  void upsample_fwd(UpsampleMode m, int64_t f, const Tensor& x, const Tensor& y) override {
    LK_LAUNCHED(lk::cuda::upsample_fwd(m, x.size(0) * x.size(1), x.size(2), x.size(3), f, cf(x), mf(y), stream_));
  }
  void upsample_bwd(UpsampleMode m, int64_t f, const Tensor& dy, const Tensor& dx) override {
    LK_LAUNCHED(lk::cuda::upsample_bwd(m, dx.size(0) * dx.size(1), dx.size(2), dx.size(3), f, cf(dy), mf(dx), stream_,
                                       acc(dx)));
  }
  void concat_fwd(int64_t offset, const Tensor& src, const Tensor& dst) override {
    const NC s = nc_of(src);
    LK_LAUNCHED(lk::cuda::concat_fwd(s.n, s.c, dst.size(1), offset, s.hw, cf(src), mf(dst), stream_));
  }
  void concat_bwd(int64_t offset, const Tensor& ddst, const Tensor& dsrc) override {
    const NC s = nc_of(dsrc);
    LK_LAUNCHED(lk::cuda::concat_bwd(s.n, s.c, ddst.size(1), offset, s.hw, cf(ddst), mf(dsrc), stream_, acc(dsrc)));
  }
  void linear_fwd(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y) override {
    LK_LAUNCHED(lk::cuda::linear_fwd(x.size(0), x.size(1), w.size(0), cf(x), cf(w), cf(b), mf(y), stream_));
  }
  void linear_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& dx, const Tensor& dw,
                  const Tensor& db) override {
    LK_LAUNCHED(lk::cuda::linear_bwd(x.size(0), x.size(1), w.size(0), cf(dy), cf(x), cf(w), mf(dx), mf(dw), mf(db),
                                     stream_, acc(dx), acc(dw), acc(db)));
  }

  // ---------------------------------------------------------------- softmax and losses
  void softmax_fwd(const Tensor& x, const Tensor& y) override {
    const NC s = nc_of(x);
#if !defined(LKASEG_SIMT)
    if (LK_CUDNN_REF("softmax")) return ref_->softmax_fwd(s.n, s.c, s.hw, cf(x), mf(y));
#endif
    LK_LAUNCHED(lk::cuda::softmax_fwd(s.n, s.c, s.hw, cf(x), mf(y), stream_));
  }
  void softmax_bwd(const Tensor& dy, const Tensor& y, const Tensor& dx) override {
    const NC s = nc_of(y);
#if !defined(LKASEG_SIMT)
    if (LK_CUDNN_REF("softmax")) return ref_->softmax_bwd(s.n, s.c, s.hw, cf(dy), cf(y), mf(dx), acc(dx));
#endif
    LK_LAUNCHED(lk::cuda::softmax_bwd(s.n, s.c, s.hw, cf(dy), cf(y), mf(dx), stream_, acc(dx)));
  }
  void cross_entropy_fwd(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,
                         const Tensor& probs, const Tensor& wsum) override {
    const NC s = nc_of(logits);
    const size_t ws = lk::cuda::cross_entropy_workspace_bytes(s.n, s.hw);
    label_classes_[0] = s.c;
    LK_LAUNCHED(lk::cuda::cross_entropy_fwd(s.n, s.c, s.hw, cf(logits), target.data<int32_t>(), cf(weight), mf(probs),
                                            mf(loss), mf(wsum), &label_errors_[0], scratch(ws), ws, stream_));
  }
  void cross_entropy_bwd(const Tensor& dloss, const Tensor& probs, const Tensor& target, const Tensor& weight,
                         const Tensor& wsum, const Tensor& dlogits) override {
    const NC s = nc_of(probs);
    LK_LAUNCHED(lk::cuda::cross_entropy_bwd(s.n, s.c, s.hw, cf(dloss), cf(probs), target.data<int32_t>(), cf(weight),
                                            cf(wsum), mf(dlogits), stream_, acc(dlogits)));
  }
  void tversky_fwd(const TverskyParams& p, const Tensor& probs, const Tensor& target, const Tensor& loss,
                   const Tensor& stats) override {
    const NC s = nc_of(probs);
    const size_t ws = tversky_workspace_bytes(s.n, s.c, s.hw);
    label_classes_[1] = s.c;
    LK_LAUNCHED(lk::cuda::tversky_fwd(p, s.n, s.c, s.hw, cf(probs), target.data<int32_t>(), mf(loss), mf(stats),
                                      &label_errors_[1], scratch(ws), ws, stream_));
  }
  void tversky_bwd(const TverskyParams& p, const Tensor& dloss, const Tensor& target, const Tensor& stats,
                   const Tensor& dprobs) override {
    const NC s = nc_of(dprobs);
    LK_LAUNCHED(lk::cuda::tversky_bwd(p, s.n, s.c, s.hw, cf(dloss), target.data<int32_t>(), cf(stats), mf(dprobs),
                                      stream_, acc(dprobs)));
  }

  // The fused deep-supervision term shares cross_entropy's label-error record.
  void ce_tversky_fwd(const TverskyParams& p, const Tensor& logits, const Tensor& target, const Tensor& weight,
                      const Tensor& loss, const Tensor& stats) override {
    const NC s = nc_of(logits);
    const size_t ws = ce_tversky_workspace_bytes(s.n, s.c, s.hw);
    label_classes_[0] = s.c;
    LK_LAUNCHED(lk::cuda::ce_tversky_fwd(p, s.n, s.c, s.hw, cf(logits), target.data<int32_t>(), cf(weight), mf(loss),
                                         mf(stats), &label_errors_[0], scratch(ws), ws, stream_));
  }
  void ce_tversky_bwd(const TverskyParams& p, const Tensor& dloss, const Tensor& logits, const Tensor& target,
                      const Tensor& weight, const Tensor& stats, const Tensor& dlogits) override {
    const NC s = nc_of(logits);
    LK_LAUNCHED(lk::cuda::ce_tversky_bwd(p, s.n, s.c, s.hw, cf(dloss), cf(logits), target.data<int32_t>(), cf(weight),
                                         cf(stats), mf(dlogits), stream_, acc(dlogits)));
  }
  // Up to kWeightedSumMax terms per launch.
  void weighted_sum_fwd(const std::vector<Tensor>& xs, const std::vector<double>& w, const Tensor& y) override {
    for (size_t i0 = 0; i0 < xs.size(); i0 += kWeightedSumMax) {
      const size_t k = std::min<size_t>(kWeightedSumMax, xs.size() - i0);
      std::vector<const float*> p;
      for (size_t i = i0; i < i0 + k; ++i) p.push_back(cf(xs[i]));
      LK_LAUNCHED(lk::cuda::weighted_sum_fwd(static_cast<int>(k), p.data(), w.data() + i0, y.numel(), mf(y), stream_,
                                             i0 > 0));
    }
  }
  void weighted_sum_bwd(const Tensor& dy, const std::vector<double>& w, const std::vector<Tensor>& dxs) override {
    for (size_t i0 = 0; i0 < dxs.size(); i0 += kWeightedSumMax) {
      const size_t k = std::min<size_t>(kWeightedSumMax, dxs.size() - i0);
      std::vector<float*> p;
      bool flags[kWeightedSumMax];
      for (size_t i = i0; i < i0 + k; ++i) p.push_back(mf(dxs[i])), flags[i - i0] = acc(dxs[i]);
      LK_LAUNCHED(lk::cuda::weighted_sum_bwd(static_cast<int>(k), cf(dy), w.data() + i0, dy.numel(), p.data(), flags,
                                             stream_));
    }
  }

  // The (tensor, chunk) table is uploaded when it changes (the first step,
  // or another set of gradients), then kept: a step copies nothing. Its
  // buffer comes from the driver, not the caching allocator, so that taking
  // it at the end of the first step does not take a block the next forward
  // pass would have reused.
  void adamw_step(const AdamWParams& a, const Tensor& state, const std::vector<Tensor>& params,
                  const std::vector<Tensor>& m, const std::vector<Tensor>& v) override {
    if (state.dtype() != DType::F64 || state.numel() != cpu::kAdamWStateSize)
      throw std::invalid_argument("adamw_step: the state must be lk::adamw_state");
    std::vector<AdamWTensor> tensors;
    for (size_t i = 0; i < params.size(); ++i) {
      const Tensor g = params[i].grad();
      tensors.push_back({mf(params[i]), g.defined() ? cf(g) : nullptr, mf(m[i]), mf(v[i]), params[i].numel()});
    }
    AdamWTable table;
    LK_CUDA_CHECK(adamw_table(tensors, &table));
    // Per optimizer (its state's address): two optimizers stepping in turn
    // do not upload their tables each step, and a replayed graph finds the
    // table its capture read.
    AdamWUpload& u = adamw_uploads_[state.raw()];
    if (table.bytes != u.table.bytes) {
      u.table = {};  // not valid on the device until the copy is queued
      if (table.bytes.size() > u.bytes) {
        if (u.device) LK_CUDA_CHECK(cudaFreeAsync(u.device, stream_));
        u.device = nullptr;
        u.bytes = 0;
        LK_CUDA_CHECK(cudaMallocAsync(&u.device, table.bytes.size(), stream_));
        u.bytes = table.bytes.size();
      }
      if (!table.bytes.empty())
        LK_CUDA_CHECK(cudaMemcpyAsync(u.device, table.bytes.data(), table.bytes.size(), cudaMemcpyHostToDevice,
                                      stream_));
      u.table = std::move(table);  // kept alive (the same buffer): the source of the copy
    }
    LK_LAUNCHED(lk::cuda::adamw_step(u.table, u.device, state.data<double>(), a.beta1, a.beta2, a.eps,
                                     a.weight_decay, stream_));
  }

  void augment(const Tensor& draws, int64_t pad, const Tensor& images, const Tensor& labels,
               const Tensor& out_images, const Tensor& out_labels) override {
    const auto* d = reinterpret_cast<const data::AugmentDraw*>(draws.data<int32_t>());
    LK_LAUNCHED(lk::cuda::augment_batch(d, images.size(0), cf(images),
                                        labels.defined() ? labels.data<int32_t>() : nullptr, images.size(2),
                                        mf(out_images), out_labels.defined() ? out_labels.data<int32_t>() : nullptr,
                                        out_images.size(2), pad, stream_));
  }

  std::unique_ptr<Graph> capture(const std::function<void()>& f, std::string* why) override {
    LK_CUDA_CHECK(cudaSetDevice(device_));
    const int pool = alloc_.begin_pool();
    // Thread-local: the loader's worker threads may allocate meanwhile.
    if (const cudaError_t e = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal); e != cudaSuccess) {
      (void)cudaGetLastError();
      alloc_.release_pool(pool);
      *why = std::string("cudaStreamBeginCapture: ") + cudaGetErrorString(e);
      return nullptr;
    }
    std::string failed;
    try {
      f();
    } catch (const std::exception& e) {
      failed = e.what();
    }
    alloc_.end_pool();
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
    cudaGraphExec_t exec = nullptr;
    if (failed.empty() && ended != cudaSuccess)
      failed = std::string("cudaStreamEndCapture: ") + cudaGetErrorString(ended);
    if (failed.empty()) {
      const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
      if (made != cudaSuccess) failed = std::string("cudaGraphInstantiate: ") + cudaGetErrorString(made);
    }
    if (graph) LK_CUDA_CHECK(cudaGraphDestroy(graph));
    if (!failed.empty()) {
      (void)cudaGetLastError();  // capture errors are not sticky; clear the last one
      alloc_.release_pool(pool);
      *why = failed;
      return nullptr;
    }
    return std::make_unique<CudaGraph>(device_, stream_, alloc_, exec, pool);
  }

  std::unique_ptr<UploadRing> make_upload_ring(const std::vector<std::pair<Shape, DType>>& parts,
                                               int slots) override {
    return make_cuda_upload_ring(device_, stream_, alloc_, pinned_, parts, slots);
  }

 private:
  cudaError_t fill_kernel(int64_t n, float v, float* y) { return lk::cuda::fill(n, v, y, stream_); }

  // After a wait: the first label error the loss kernels recorded since the
  // last one was reported (the records are cleared for the next).
  void raise_label_errors() {
    static constexpr const char* kOps[2] = {"cross_entropy", "tversky"};
    for (int k = 0; k < 2; ++k) {
      const LabelError e = label_errors_seen_[k];
      if (e.index < 0) continue;
      label_errors_seen_[0].index = label_errors_seen_[1].index = -1;
      LK_CUDA_CHECK(cudaMemsetAsync(label_errors_, 0xFF, 2 * sizeof(LabelError), stream_));
      throw std::invalid_argument(std::string(kOps[k]) + ": label " + std::to_string(e.label) + " at flat index " +
                                  std::to_string(e.index) + " is outside [0, " + std::to_string(label_classes_[k]) +
                                  ") (found on the device, reported at the next wait for it)");
    }
  }

  // The kernels' workspaces: one at a time on the single stream.
  void* scratch(size_t bytes) { return scratch_.get(bytes); }

  bool use_ours_depthwise(const ConvGeom& g) const {
    return g.depthwise() && depthwise_conv2d_supported(g) && variant("conv2d") == KernelVariant::Fast;
  }

  void conv_fwd(const ConvGeom& g, const float* x, const float* w, const float* b, float* y, bool acc) {
    if (use_ours_depthwise(g)) return LK_LAUNCHED(depthwise_conv2d_fwd(g, x, w, b, y, acc, stream_));
#if defined(LKASEG_SIMT)
    LK_LAUNCHED(conv2d_direct_fwd(g, x, w, b, y, acc, stream_));
#else
    cudnn_->set_math(g_tf32 ? MathMode::TF32 : MathMode::FP32_FMA);
    cudnn_->set_deterministic(g_deterministic);
    cudnn_->fwd(g, x, w, b, y, acc);
#endif
  }
  void conv_bwd_data(const ConvGeom& g, const float* dy, const float* w, float* dx, bool acc_dx) {
    if (use_ours_depthwise(g)) return LK_LAUNCHED(depthwise_conv2d_bwd_data(g, dy, w, dx, stream_, acc_dx));
#if defined(LKASEG_SIMT)
    LK_LAUNCHED(conv2d_direct_bwd_data(g, dy, w, dx, stream_, acc_dx));
#else
    cudnn_->set_math(g_tf32 ? MathMode::TF32 : MathMode::FP32_FMA);
    cudnn_->set_deterministic(g_deterministic);
    cudnn_->bwd_data(g, dy, w, dx, acc_dx);
#endif
  }
  void conv_bwd_weight(const ConvGeom& g, const float* dy, const float* x, float* dw, float* db, bool acc_dw,
                       bool acc_db) {
    if (use_ours_depthwise(g)) {
      const size_t ws = depthwise_conv2d_bwd_weight_workspace_bytes(g);
      return LK_LAUNCHED(depthwise_conv2d_bwd_weight(g, dy, x, dw, db, scratch(ws), ws, stream_, acc_dw, acc_db));
    }
#if defined(LKASEG_SIMT)
    LK_LAUNCHED(conv2d_direct_bwd_weight(g, dy, x, dw, db, stream_, acc_dw, acc_db));
#else
    cudnn_->set_math(g_tf32 ? MathMode::TF32 : MathMode::FP32_FMA);
    cudnn_->set_deterministic(g_deterministic);
    cudnn_->bwd_filter(g, dy, x, dw, db, acc_dw, acc_db);
#endif
  }

  const int device_;
  cudaStream_t stream_ = nullptr;
  CachingAllocator alloc_;
  CachingAllocator pinned_;  // page-locked host memory of upload rings
  Workspace scratch_{alloc_};
  LabelError* label_errors_ = nullptr;       // device: cross_entropy's, tversky's (cross_entropy.h)
  LabelError* label_errors_seen_ = nullptr;  // pinned host copy, read after each wait
  int64_t label_classes_[2] = {0, 0};        // C of the last call of each
  struct AdamWUpload {
    AdamWTable table;  // as uploaded to device
    void* device = nullptr;
    size_t bytes = 0;
  };
  std::map<const void*, AdamWUpload> adamw_uploads_;
  double bn_eps_ = 1e-5;
#if !defined(LKASEG_SIMT)
  std::unique_ptr<CudnnConv> cudnn_;
  std::unique_ptr<CudnnOps> ref_;
#endif
};

}  // namespace

Backend& cuda_backend(int device) {
  static std::mutex mu;
  static std::map<int, std::unique_ptr<CudaBackend>> instances;  // one per device
  std::lock_guard lock(mu);
  std::unique_ptr<CudaBackend>& instance = instances[device];
  if (!instance) {
    if (device_count() <= device)
      throw std::runtime_error("cuda:" + std::to_string(device) + " is not available (" +
                               (device_count() ? std::to_string(device_count()) + " device(s)" : why_none()) + ")");
    instance = std::make_unique<CudaBackend>(device);
    register_backend({DeviceType::CUDA, device}, instance.get());
  }
  return *instance;
}

void set_tf32(bool on) { g_tf32 = on; }
void set_deterministic(bool on) { g_deterministic = on; }

cudaStream_t compute_stream(int device) { return static_cast<CudaBackend&>(cuda_backend(device)).stream(); }

LK_CUDA_NAMESPACE_END
