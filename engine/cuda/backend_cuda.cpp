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

// Float32 pointers of the ops that compute in float32 only (a reduced-
// precision tensor reaching one is a bug: the methods widen those first).
const float* cf(const Tensor& t) {
  if (!t.defined()) return nullptr;
  if (t.dtype() != DType::F32)
    throw std::invalid_argument(std::string("CUDA backend: this op computes in float32 only, got a ") +
                                dtype_name(t.dtype()) + " tensor");
  return t.data<float>();
}
float* mf(const Tensor& t) { return const_cast<float*>(cf(t)); }
// A gradient output is added into unless it is a first write (engine/backend.h).
bool acc(const Tensor& t) { return !t.first_write(); }

// Storage-type pointers of the kernels templated on T (kernels/half.h).
template <typename T>
const T* cp(const Tensor& t) {
  if (!t.defined()) return nullptr;
  if (t.dtype() != dtype_of<T>())
    throw std::invalid_argument(std::string("CUDA backend: one op got ") + dtype_name(t.dtype()) + " and " +
                                dtype_name(dtype_of<T>()) + " activations");
  return t.data<T>();
}
template <typename T>
T* mp(const Tensor& t) {
  return const_cast<T*>(cp<T>(t));
}

// f.template operator()<T>() for t's storage type: float32, bfloat16, float16.
template <typename F>
void storage(const Tensor& t, F&& f) {
  switch (t.dtype()) {
    case DType::F32: return f.template operator()<float>();
    case DType::BF16: return f.template operator()<bf16>();
    case DType::F16: return f.template operator()<f16>();
    default:
      throw std::invalid_argument(std::string("CUDA backend: expects a float32, bfloat16 or float16 tensor, got ") +
                                  dtype_name(t.dtype()));
  }
}

bool reduced(const Tensor& t) { return t.defined() && is_reduced(t.dtype()); }

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
    storage(y, [&]<typename T> { LK_LAUNCHED(lk::cuda::fill(y.numel(), static_cast<float>(v), mp<T>(y), stream_)); });
  }
  void axpy(double a, const Tensor& x, const Tensor& y) override {
    storage(y, [&]<typename T> {
      LK_LAUNCHED(lk::cuda::axpy(y.numel(), static_cast<float>(a), cp<T>(x), mp<T>(y), stream_, acc(y)));
    });
  }
  void scale(const Tensor& y, double a) override {
    storage(y, [&]<typename T> { LK_LAUNCHED(lk::cuda::scale(y.numel(), static_cast<float>(a), mp<T>(y), stream_)); });
  }
  // With accumulate, a first-write dst is overwritten (engine/backend.h).
  void cast(const Tensor& src, const Tensor& dst, bool accumulate) override {
    cast_to(src, dst, accumulate && acc(dst));
  }

  // ---------------------------------------------------------------- convolutions
  // Any storage type: our depthwise kernels natively; the other
  // convolutions through cuDNN (16-bit plans on a GPU) or, under the
  // emulator, our direct kernels on float32 twins (conv_fwd & co. below).
  void conv2d_fwd(const ConvGeom& g, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y) override {
    conv_fwd(g, x, w, b, y, false);
  }
  void conv2d_bwd_data(const ConvGeom& g, const Tensor& dy, const Tensor& w, const Tensor& dx) override {
    conv_bwd_data(g, dy, w, dx, acc(dx));
  }
  void conv2d_bwd_weight(const ConvGeom& g, const Tensor& dy, const Tensor& x, const Tensor& dw, const Tensor& db) override {
    conv_bwd_weight(g, dy, x, dw, db, acc(dw), acc(db));
  }
  // Transposed convolution = the adjoint of the convolution `g` describes
  // (kernels/conv_transpose2d.h): its passes are that convolution's passes.
  void conv_transpose2d_fwd(const ConvGeom& g, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y) override {
    conv_bwd_data(g, x, w, y, false);
    if (b.defined()) {  // y += bias, in place (binary_fwd allows y == a when a has y's shape)
      const Dims4 out = dims4(y.shape()), sb{1, g.c_in, 1, 1};
      const Tensor bt = as_storage(b, y.dtype());
      storage(y, [&]<typename T> {
        LK_LAUNCHED(lk::cuda::binary_fwd(BinaryOp::Add, out, cp<T>(y), out, cp<T>(bt), sb, mp<T>(y), stream_));
      });
    }
  }
  void conv_transpose2d_bwd_data(const ConvGeom& g, const Tensor& dy, const Tensor& w, const Tensor& dx) override {
    conv_fwd(g, dy, w, Tensor(), dx, acc(dx));
  }
  void conv_transpose2d_bwd_weight(const ConvGeom& g, const Tensor& dy, const Tensor& x, const Tensor& dw, const Tensor& db) override {
    conv_bwd_weight(g, x, dy, dw, Tensor(), acc(dw), true);
    if (db.defined())
      storage(dy, [&]<typename T> {
        LK_LAUNCHED(channel_sum_acc(g.n, g.c_in, g.h * g.w, cp<T>(dy), mf(db), stream_, acc(db)));
      });
  }

  // ---------------------------------------------------------------- batch norm
  void batch_norm_fwd(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& rm, const Tensor& rv,
                      bool training, double momentum, double eps, const Tensor& y, const Tensor& save_mean,
                      const Tensor& save_invstd) override {
    const NC s = nc_of(x);
    bn_eps_ = eps;  // cuDNN's backward wants the forward's eps (every BN here shares one)
#if !defined(LKASEG_SIMT)
    if (training && !reduced(x) && LK_CUDNN_REF("batch_norm"))
      return ref_->batch_norm_fwd_train(s.n, s.c, s.hw, cf(x), cf(gamma), cf(beta), mf(rm), mf(rv), momentum, eps, mf(y),
                                        mf(save_mean), mf(save_invstd));
#endif
    const size_t ws = training ? batch_norm_workspace_bytes(s.n, s.c, s.hw) : 0;
    storage(x, [&]<typename T> {
      LK_LAUNCHED(lk::cuda::batch_norm_fwd(s.n, s.c, s.hw, cp<T>(x), cf(gamma), cf(beta), mf(rm), mf(rv), training,
                                           momentum, eps, mp<T>(y), mf(save_mean), mf(save_invstd), scratch(ws), ws,
                                           stream_));
    });
  }
  void batch_norm_bwd(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                      const Tensor& save_invstd, bool training, const Tensor& dx, const Tensor& dgamma,
                      const Tensor& dbeta) override {
    const NC s = nc_of(x);
#if !defined(LKASEG_SIMT)
    if (training && !reduced(x) && LK_CUDNN_REF("batch_norm"))
      return ref_->batch_norm_bwd_train(s.n, s.c, s.hw, cf(dy), cf(x), cf(gamma), cf(save_mean), cf(save_invstd),
                                        bn_eps_, mf(dx), mf(dgamma), mf(dbeta), acc(dx), acc(dgamma), acc(dbeta));
#endif
    const size_t ws = batch_norm_workspace_bytes(s.n, s.c, s.hw);
    storage(x, [&]<typename T> {
      LK_LAUNCHED(lk::cuda::batch_norm_bwd(s.n, s.c, s.hw, cp<T>(dy), cp<T>(x), cf(gamma), cf(save_mean),
                                           cf(save_invstd), training, mp<T>(dx), mf(dgamma), mf(dbeta), scratch(ws), ws,
                                           stream_, acc(dx), acc(dgamma), acc(dbeta)));
    });
  }

  // ---------------------------------------------------------------- batch norm + ReLU (+ residual)
  // Fast: the fused kernels. Cudnn: the composition of this backend's batch
  // norm (cuDNN on a GPU), ReLU and add.
  void batch_norm_relu_fwd(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& rm,
                           const Tensor& rv, bool training, double momentum, double eps, const Tensor& r,
                           BnResidual mode, const Tensor& y, const Tensor& save_mean,
                           const Tensor& save_invstd) override {
    bn_eps_ = eps;
    if (variant("batch_norm_relu") == KernelVariant::Cudnn) {
      Tensor z = Tensor::empty(x.shape(), x.dtype(), device());
      batch_norm_fwd(x, gamma, beta, rm, rv, training, momentum, eps, z, save_mean, save_invstd);
      if (mode == BnResidual::BeforeRelu) binary_fwd(BinaryOp::Add, z, r, z);
      activation_fwd(Activation::Relu, z, y);
      if (mode == BnResidual::AfterRelu) binary_fwd(BinaryOp::Add, y, r, y);
      return;
    }
    const NC s = nc_of(x);
    const size_t ws = training ? batch_norm_workspace_bytes(s.n, s.c, s.hw) : 0;
    storage(x, [&]<typename T> {
      LK_LAUNCHED(lk::cuda::batch_norm_relu_fwd(s.n, s.c, s.hw, cp<T>(x), cf(gamma), cf(beta), mf(rm), mf(rv), training,
                                                momentum, eps, cp<T>(r), mode, mp<T>(y), mf(save_mean),
                                                mf(save_invstd), scratch(ws), ws, stream_));
    });
  }
  void batch_norm_relu_bwd(BnResidual mode, const Tensor& dy, const Tensor& x, const Tensor& y, const Tensor& gamma,
                           const Tensor& beta, const Tensor& save_mean, const Tensor& save_invstd, bool training,
                           const Tensor& dx, const Tensor& dr, const Tensor& dgamma, const Tensor& dbeta) override {
    if (variant("batch_norm_relu") == KernelVariant::Cudnn) {
      // g = dy through the ReLU (its output y, or relu of BN(x) recomputed), then batch norm's backward.
      Tensor out = y;
      if (mode != BnResidual::BeforeRelu) {
        out = Tensor::empty(x.shape(), x.dtype(), device());
        activation_fwd(Activation::Relu, bn_recompute(x, gamma, beta, save_mean, save_invstd), out);
      }
      Tensor g = Tensor::empty(x.shape(), x.dtype(), device()).as_first_write();
      activation_bwd(Activation::Relu, dy, out, g);
      if (dr.defined()) axpy(1.0, mode == BnResidual::AfterRelu ? dy : g, dr);
      batch_norm_bwd(g, x, gamma, save_mean, save_invstd, training, dx, dgamma, dbeta);
      return;
    }
    const NC s = nc_of(x);
    const size_t ws = batch_norm_workspace_bytes(s.n, s.c, s.hw);
    storage(x, [&]<typename T> {
      LK_LAUNCHED(lk::cuda::batch_norm_relu_bwd(s.n, s.c, s.hw, mode, cp<T>(dy), cp<T>(x), cp<T>(y), cf(gamma),
                                                cf(beta), cf(save_mean), cf(save_invstd), training, mp<T>(dx),
                                                mp<T>(dr), mf(dgamma), mf(dbeta), scratch(ws), ws, stream_, acc(dx),
                                                acc(dr), acc(dgamma), acc(dbeta)));
    });
  }

  // Synchronised batch norm: the sums in double on the device, read back
  // (this waits for the stream); the statistics go up as float32 and
  // normalise through the evaluation kernel. 16-bit activations: the sums
  // and dx on float32 twins (the statistics kernels are float32 only).
  std::vector<double> batch_norm_sums(const Tensor& x, const std::vector<double>& mean, const Tensor& dy,
                                      const Tensor& save_mean, const Tensor& save_invstd) override {
    const NC s = nc_of(x);
    if (reduced(x)) return batch_norm_sums(wide(x), mean, wide(dy), save_mean, save_invstd);
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
    storage(x, [&]<typename T> {
      LK_LAUNCHED(lk::cuda::batch_norm_fwd(s.n, s.c, s.hw, cp<T>(x), cf(gamma), cf(beta), mf(m), mf(v), false, 0.0, eps,
                                           mp<T>(y), mf(save_mean), mf(save_invstd), nullptr, 0, stream_));
    });
  }
  void batch_norm_bwd_dx(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                         const Tensor& save_invstd, const std::vector<double>& means, const Tensor& dx) override {
    if (reduced(x)) {
      const Tensor dxw = wide_grad(dx);
      batch_norm_bwd_dx(wide(dy), wide(x), gamma, save_mean, save_invstd, means, dxw);
      return narrow(dxw, dx);
    }
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
      Tensor z = Tensor::empty(x.shape(), x.dtype(), device());
      batch_norm_fwd(f, gamma, beta, rm, rv, training, momentum, eps, z, save_mean, save_invstd);
      Tensor a = Tensor::empty(x.shape(), x.dtype(), device());
      activation_fwd(Activation::Sigmoid, z, a);
      binary_fwd(BinaryOp::Mul, x, a, y);
      return;
    }
    const size_t ws = lka_gate_workspace_bytes(s.n, s.c, s.hw);
    storage(x, [&]<typename T> {
      LK_LAUNCHED(lk::cuda::lka_gate_fwd(s.n, s.c, s.hw, cp<T>(x), cp<T>(f), cf(gamma), cf(beta), mf(rm), mf(rv),
                                         training, momentum, eps, mp<T>(y), mf(save_mean), mf(save_invstd),
                                         static_cast<T*>(nullptr), scratch(ws), ws, stream_));
    });
  }
  void lka_gate_bwd(const Tensor& dy, const Tensor& x, const Tensor& f, const Tensor& gamma, const Tensor& beta,
                    const Tensor& save_mean, const Tensor& save_invstd, bool training, const Tensor& dx,
                    const Tensor& df, const Tensor& dgamma, const Tensor& dbeta) override {
    const NC s = nc_of(x);
    if (variant("lka_gate") == KernelVariant::Cudnn) {
      // A = sigmoid(BN(f)) recomputed from the saved statistics, then the three backward passes.
      Tensor a = Tensor::empty(x.shape(), x.dtype(), device());
      activation_fwd(Activation::Sigmoid, bn_recompute(f, gamma, beta, save_mean, save_invstd), a);
      if (dx.defined()) binary_bwd(BinaryOp::Mul, dy, a, dx);  // dx += dy * A
      Tensor da = Tensor::empty(x.shape(), x.dtype(), device()).as_first_write();
      binary_bwd(BinaryOp::Mul, dy, x, da);  // dA = dy * x
      Tensor dz = Tensor::empty(x.shape(), x.dtype(), device()).as_first_write();
      activation_bwd(Activation::Sigmoid, da, a, dz);
      batch_norm_bwd(dz, f, gamma, save_mean, save_invstd, training, df, dgamma, dbeta);
      return;
    }
    const size_t ws = lka_gate_workspace_bytes(s.n, s.c, s.hw);
    storage(x, [&]<typename T> {
      LK_LAUNCHED(lk::cuda::lka_gate_bwd(s.n, s.c, s.hw, cp<T>(dy), cp<T>(x), cp<T>(f), cf(gamma), cf(beta),
                                         cf(save_mean), cf(save_invstd), training, mp<T>(dx), mp<T>(df), mf(dgamma),
                                         mf(dbeta), scratch(ws), ws, stream_, acc(dx), acc(df), acc(dgamma), acc(dbeta)));
    });
  }

  // ---------------------------------------------------------------- pointwise
  void activation_fwd(Activation a, const Tensor& x, const Tensor& y) override {
#if !defined(LKASEG_SIMT)
    if (!reduced(x) && LK_CUDNN_REF("activation")) return ref_->activation_fwd(a, x.numel(), cf(x), mf(y));
#endif
    storage(x, [&]<typename T> { LK_LAUNCHED(lk::cuda::activation_fwd(a, x.numel(), cp<T>(x), mp<T>(y), stream_)); });
  }
  void activation_bwd(Activation a, const Tensor& dy, const Tensor& y, const Tensor& dx) override {
#if !defined(LKASEG_SIMT)
    if (!reduced(y) && LK_CUDNN_REF("activation"))
      return ref_->activation_bwd(a, y.numel(), cf(dy), cf(y), mf(dx), acc(dx));
#endif
    storage(y, [&]<typename T> {
      LK_LAUNCHED(lk::cuda::activation_bwd(a, y.numel(), cp<T>(dy), cp<T>(y), mp<T>(dx), stream_, acc(dx)));
    });
  }
  void binary_fwd(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& y) override {
#if !defined(LKASEG_SIMT)
    if (!reduced(y) && LK_CUDNN_REF("binary"))
      return ref_->binary_fwd(op, dims4(y.shape()), cf(a), dims4(a.shape()), cf(b), dims4(b.shape()), mf(y));
#endif
    storage(y, [&]<typename T> {
      LK_LAUNCHED(lk::cuda::binary_fwd(op, dims4(y.shape()), cp<T>(a), dims4(a.shape()), cp<T>(b), dims4(b.shape()),
                                       mp<T>(y), stream_));
    });
  }
  void binary_bwd(BinaryOp op, const Tensor& dy, const Tensor& other, const Tensor& d_self) override {
    const bool mul = op == BinaryOp::Mul;
#if !defined(LKASEG_SIMT)
    if (!reduced(dy) && LK_CUDNN_REF("binary"))
      return ref_->binary_bwd(op, dims4(dy.shape()), cf(dy), dims4(d_self.shape()), mul ? cf(other) : nullptr,
                              mul ? dims4(other.shape()) : Dims4{1, 1, 1, 1}, mf(d_self), acc(d_self));
#endif
    storage(dy, [&]<typename T> {
      LK_LAUNCHED(lk::cuda::binary_bwd(op, dims4(dy.shape()), cp<T>(dy), dims4(d_self.shape()),
                                       mul ? cp<T>(other) : nullptr, mul ? dims4(other.shape()) : Dims4{1, 1, 1, 1},
                                       mp<T>(d_self), stream_, acc(d_self)));
    });
  }

  // ---------------------------------------------------------------- pooling, resampling, layout
  void global_avg_pool_fwd(const Tensor& x, const Tensor& y) override {
    const NC s = nc_of(x);
#if !defined(LKASEG_SIMT)
    if (!reduced(x) && LK_CUDNN_REF("global_avg_pool")) return ref_->global_avg_pool_fwd(s.n, s.c, s.hw, cf(x), mf(y));
#endif
    storage(x, [&]<typename T> {
      LK_LAUNCHED(lk::cuda::global_avg_pool_fwd(s.n * s.c, s.hw, cp<T>(x), mp<T>(y), stream_));
    });
  }
  void global_avg_pool_bwd(const Tensor& dy, const Tensor& dx) override {
    const NC s = nc_of(dx);
#if !defined(LKASEG_SIMT)
    if (!reduced(dx) && LK_CUDNN_REF("global_avg_pool"))
      return ref_->global_avg_pool_bwd(s.n, s.c, s.hw, cf(dy), mf(dx), acc(dx));
#endif
    storage(dx, [&]<typename T> {
      LK_LAUNCHED(lk::cuda::global_avg_pool_bwd(s.n * s.c, s.hw, cp<T>(dy), mp<T>(dx), stream_, acc(dx)));
    });
  }
  void max_pool2d_fwd(int64_t k, int64_t st, const Tensor& x, const Tensor& y, const Tensor& idx) override {
    storage(x, [&]<typename T> {
      LK_LAUNCHED(lk::cuda::max_pool2d_fwd(x.size(0) * x.size(1), x.size(2), x.size(3), k, st, cp<T>(x), mp<T>(y),
                                           idx.data<int32_t>(), stream_));
    });
  }
  void max_pool2d_bwd(int64_t k, int64_t st, const Tensor& dy, const Tensor& idx, const Tensor& dx) override {
    storage(dx, [&]<typename T> {
      LK_LAUNCHED(lk::cuda::max_pool2d_bwd(dx.size(0) * dx.size(1), dx.size(2), dx.size(3), k, st, cp<T>(dy),
                                           idx.data<int32_t>(), mp<T>(dx), stream_, acc(dx)));
    });
  }
  void upsample_fwd(UpsampleMode m, int64_t f, const Tensor& x, const Tensor& y) override {
    storage(x, [&]<typename T> {
      LK_LAUNCHED(lk::cuda::upsample_fwd(m, x.size(0) * x.size(1), x.size(2), x.size(3), f, cp<T>(x), mp<T>(y),
                                         stream_));
    });
  }
  void upsample_bwd(UpsampleMode m, int64_t f, const Tensor& dy, const Tensor& dx) override {
    storage(dx, [&]<typename T> {
      LK_LAUNCHED(lk::cuda::upsample_bwd(m, dx.size(0) * dx.size(1), dx.size(2), dx.size(3), f, cp<T>(dy), mp<T>(dx),
                                         stream_, acc(dx)));
    });
  }
  void concat_fwd(int64_t offset, const Tensor& src, const Tensor& dst) override {
    const NC s = nc_of(src);
    storage(dst, [&]<typename T> {
      LK_LAUNCHED(lk::cuda::concat_fwd(s.n, s.c, dst.size(1), offset, s.hw, cp<T>(src), mp<T>(dst), stream_));
    });
  }
  void concat_bwd(int64_t offset, const Tensor& ddst, const Tensor& dsrc) override {
    const NC s = nc_of(dsrc);
    storage(dsrc, [&]<typename T> {
      LK_LAUNCHED(lk::cuda::concat_bwd(s.n, s.c, ddst.size(1), offset, s.hw, cp<T>(ddst), mp<T>(dsrc), stream_,
                                       acc(dsrc)));
    });
  }
  void linear_fwd(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y) override {
    if (reduced(x)) {
      const Tensor yw = wide_out(y);
      linear_fwd(wide(x), w, b, yw);
      return narrow(yw, y);
    }
    LK_LAUNCHED(lk::cuda::linear_fwd(x.size(0), x.size(1), w.size(0), cf(x), cf(w), cf(b), mf(y), stream_));
  }
  void linear_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& dx, const Tensor& dw,
                  const Tensor& db) override {
    if (reduced(x)) {
      const Tensor dxw = wide_grad(dx);
      linear_bwd(wide(dy), wide(x), w, dxw, dw, db);
      return narrow(dxw, dx);
    }
    LK_LAUNCHED(lk::cuda::linear_bwd(x.size(0), x.size(1), w.size(0), cf(dy), cf(x), cf(w), mf(dx), mf(dw), mf(db),
                                     stream_, acc(dx), acc(dw), acc(db)));
  }

  // ---------------------------------------------------------------- softmax and losses
  void softmax_fwd(const Tensor& x, const Tensor& y) override {
    if (reduced(x)) {
      const Tensor yw = wide_out(y);
      softmax_fwd(wide(x), yw);
      return narrow(yw, y);
    }
    const NC s = nc_of(x);
#if !defined(LKASEG_SIMT)
    if (LK_CUDNN_REF("softmax")) return ref_->softmax_fwd(s.n, s.c, s.hw, cf(x), mf(y));
#endif
    LK_LAUNCHED(lk::cuda::softmax_fwd(s.n, s.c, s.hw, cf(x), mf(y), stream_));
  }
  void softmax_bwd(const Tensor& dy, const Tensor& y, const Tensor& dx) override {
    if (reduced(y)) {
      const Tensor dxw = wide_grad(dx);
      softmax_bwd(wide(dy), wide(y), dxw);
      return narrow(dxw, dx);
    }
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
  // Float32 twins for the ops without a kernel for a reduced storage type
  // (linear, softmax; the dense convolutions under the emulator): wide() a float32 copy of an input or of a gradient that
  // is added to, wide_out() a float32 buffer for an output that is written,
  // narrow() the twin back into the reduced tensor. Each costs a conversion
  // pass that op_bytes (engine/profiler.h) does not count; docs/PERFORMANCE.md.
  Tensor wide(const Tensor& t) {
    if (!reduced(t)) return t;
    Tensor w = Tensor::empty(t.shape(), DType::F32, device());
    cast(t, w, false);
    return w;
  }
  // dst (+)= src converted (the cast kernels; accumulate as given).
  void cast_to(const Tensor& src, const Tensor& dst, bool accumulate) {
    storage(src, [&]<typename S> {
      storage(dst, [&]<typename D> {
        LK_LAUNCHED(lk::cuda::cast(src.numel(), cp<S>(src), mp<D>(dst), stream_, accumulate));
      });
    });
  }
  Tensor wide_out(const Tensor& t) { return reduced(t) ? Tensor::empty(t.shape(), DType::F32, device()) : t; }
  // A gradient output's twin: added to, or first-written as t is (engine/backend.h).
  Tensor wide_grad(const Tensor& t) { return t.first_write() ? wide_out(t).as_first_write() : wide(t); }
  void narrow(const Tensor& w, const Tensor& t) {
    if (reduced(t)) cast(w, t, false);
  }

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

  // BN(x) in evaluation form from the statistics a training forward saved
  // (the Cudnn compositions' backward): var = 1/invstd^2 - eps reproduces
  // the saved invstd. Reads the statistics back to the host (a reference path).
  Tensor bn_recompute(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& save_mean,
                      const Tensor& save_invstd) {
    std::vector<double> inv = save_invstd.to_vector(), v(inv.size());
    for (size_t k = 0; k < inv.size(); ++k) v[k] = 1.0 / (inv[k] * inv[k]) - bn_eps_;
    Tensor var = Tensor::empty(save_mean.shape(), DType::F32, device());
    var.copy_from(Tensor::from_vector(v, save_mean.shape()));
    Tensor mean = save_mean.clone(), m2 = Tensor::empty(save_mean.shape(), DType::F32, device()),
           i2 = Tensor::empty(save_mean.shape(), DType::F32, device());
    Tensor z = Tensor::empty(x.shape(), x.dtype(), device());
    batch_norm_fwd(x, gamma, beta, mean, var, false, 0.0, bn_eps_, z, m2, i2);
    return z;
  }

  // The kernels' workspaces: one at a time on the single stream.
  void* scratch(size_t bytes) { return scratch_.get(bytes); }

  bool use_ours_depthwise(const ConvGeom& g) const {
    return g.depthwise() && depthwise_conv2d_supported(g) && variant("conv2d") == KernelVariant::Fast;
  }

  // t in storage type `to`: itself, or a converted copy (a float32 weight or
  // bias of a 16-bit convolution: cuDNN wants one data type per convolution).
  Tensor as_storage(const Tensor& t, DType to) {
    if (!t.defined() || t.dtype() == to) return t;
    Tensor c = Tensor::empty(t.shape(), to, device());
    cast(t, c, false);
    return c;
  }
#if !defined(LKASEG_SIMT)
  void cudnn_mode() {
    cudnn_->set_math(g_tf32 ? MathMode::TF32 : MathMode::FP32_FMA);
    cudnn_->set_deterministic(g_deterministic);
  }
#endif

  // The convolution passes of conv2d_* and conv_transpose2d_* (the weights,
  // biases and their gradients float32; the activations any storage type).
  // 16-bit activations on a GPU: cuDNN's 16-bit plans on the weights
  // narrowed per call, the filter gradient summed by cuDNN in 16 bits and
  // added to the float32 one (as PyTorch's autocast), the bias gradient
  // summed in float32 by our kernel. Under the emulator: float32 twins.
  void conv_fwd(const ConvGeom& g, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y, bool acc) {
    if (use_ours_depthwise(g))
      return storage(x, [&]<typename T> {
        LK_LAUNCHED(depthwise_conv2d_fwd(g, cp<T>(x), cf(w), cf(b), mp<T>(y), acc, stream_));
      });
#if defined(LKASEG_SIMT)
    if (reduced(x)) {
      const Tensor yw = acc ? wide(y) : wide_out(y);
      conv_fwd(g, wide(x), w, b, yw, acc);
      return narrow(yw, y);
    }
    LK_LAUNCHED(conv2d_direct_fwd(g, cf(x), cf(w), cf(b), mf(y), acc, stream_));
#else
    cudnn_mode();
    const Tensor wt = as_storage(w, x.dtype()), bt = as_storage(b, x.dtype());
    cudnn_->fwd(g, x.dtype(), x.raw(), wt.raw(), bt.defined() ? bt.raw() : nullptr, y.raw(), acc);
#endif
  }
  void conv_bwd_data(const ConvGeom& g, const Tensor& dy, const Tensor& w, const Tensor& dx, bool acc_dx) {
    if (use_ours_depthwise(g))
      return storage(dy, [&]<typename T> {
        LK_LAUNCHED(depthwise_conv2d_bwd_data(g, cp<T>(dy), cf(w), mp<T>(dx), stream_, acc_dx));
      });
#if defined(LKASEG_SIMT)
    if (reduced(dy)) {
      const Tensor dxw = acc_dx ? wide(dx) : wide_out(dx);
      conv_bwd_data(g, wide(dy), w, dxw, acc_dx);
      return narrow(dxw, dx);
    }
    LK_LAUNCHED(conv2d_direct_bwd_data(g, cf(dy), cf(w), mf(dx), stream_, acc_dx));
#else
    cudnn_mode();
    cudnn_->bwd_data(g, dy.dtype(), dy.raw(), as_storage(w, dy.dtype()).raw(), dx.raw(), acc_dx);
#endif
  }
  void conv_bwd_weight(const ConvGeom& g, const Tensor& dy, const Tensor& x, const Tensor& dw, const Tensor& db,
                       bool acc_dw, bool acc_db) {
    if (use_ours_depthwise(g)) {
      const size_t ws = depthwise_conv2d_bwd_weight_workspace_bytes(g);
      return storage(x, [&]<typename T> {
        LK_LAUNCHED(depthwise_conv2d_bwd_weight(g, cp<T>(dy), cp<T>(x), mf(dw), mf(db), scratch(ws), ws, stream_,
                                                acc_dw, acc_db));
      });
    }
#if defined(LKASEG_SIMT)
    if (reduced(x)) return conv_bwd_weight(g, wide(dy), wide(x), dw, db, acc_dw, acc_db);
    LK_LAUNCHED(conv2d_direct_bwd_weight(g, cf(dy), cf(x), mf(dw), mf(db), stream_, acc_dw, acc_db));
#else
    cudnn_mode();
    if (!reduced(x)) return cudnn_->bwd_filter(g, cf(dy), cf(x), mf(dw), mf(db), acc_dw, acc_db);
    if (dw.defined()) {  // written by cuDNN (beta 0), then added to (or written into) the float32 gradient
      const Tensor dw16 = Tensor::empty(dw.shape(), x.dtype(), device());
      cudnn_->bwd_filter(g, x.dtype(), dy.raw(), x.raw(), dw16.raw(), nullptr, false, true);
      cast_to(dw16, dw, acc_dw);
    }
    if (db.defined())
      storage(dy, [&]<typename T> {
        LK_LAUNCHED(channel_sum_acc(g.n, g.c_out, g.oh * g.ow, cp<T>(dy), mf(db), stream_, acc_db));
      });
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
