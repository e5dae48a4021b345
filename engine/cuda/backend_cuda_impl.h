// Internal to the CUDA backend (engine/cuda/backend_cuda.h): its class and
// the helpers its methods share. The methods live in three files:
// backend_cuda.cpp (construction, memory, convolutions, graphs, the float32
// twins), backend_cuda_norm.cpp (batch norm, fused BN + ReLU (+ residual),
// synchronised batch norm, the LKA gate) and backend_cuda_ops.cpp
// (pointwise, pooling, resampling, layout, softmax and losses, AdamW,
// augmentation). Built, as they are, against the real runtime and the emulator.
#pragma once

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
#include "kernels/cuda/loss_scale.h"
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

namespace backend_impl {

// Float32 pointers of the ops that compute in float32 only (a reduced-
// precision tensor reaching one is a bug: the methods widen those first).
inline const float* cf(const Tensor& t) {
  if (!t.defined()) return nullptr;
  if (t.dtype() != DType::F32)
    throw std::invalid_argument(std::string("CUDA backend: this op computes in float32 only, got a ") +
                                dtype_name(t.dtype()) + " tensor");
  return t.data<float>();
}
inline float* mf(const Tensor& t) { return const_cast<float*>(cf(t)); }
// A gradient output is added into unless it is a first write (engine/backend.h).
inline bool acc(const Tensor& t) { return !t.first_write(); }

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
    case DType::F32:
      return f.template operator()<float>();
    case DType::BF16:
      return f.template operator()<bf16>();
    case DType::F16:
      return f.template operator()<f16>();
    default:
      throw std::invalid_argument(std::string("CUDA backend: expects a float32, bfloat16 or float16 tensor, got ") +
                                  dtype_name(t.dtype()));
  }
}

inline bool reduced(const Tensor& t) { return t.defined() && is_reduced(t.dtype()); }

inline Dims4 dims4(const Shape& s) {
  Dims4 d{1, 1, 1, 1};
  const size_t off = 4 - s.size();
  for (size_t i = 0; i < s.size(); ++i) d[off + i] = s[i];
  return d;
}

struct NC {
  int64_t n, c, hw;
};
inline NC nc_of(const Tensor& t) {
  const int64_t n = t.size(0), c = t.ndim() > 1 ? t.size(1) : 1;
  return {n, c, t.numel() / (n * c)};
}

#define LK_LAUNCHED(expr) ::lk::cuda::check((expr), #expr, __FILE__, __LINE__)

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;

  Device device() const override { return {DeviceType::CUDA, device_}; }
  cudaStream_t stream() const { return stream_; }
  Allocator& allocator() override { return alloc_; }
  // Every wait for the stream also reads the label error records (one small
  // copy before the wait) and throws the first error a loss kernel recorded.
  void synchronize() override;
  std::string describe() const override {
    return "cuda:" + std::to_string(device_) + " " + lk::cuda::describe(device_);
  }
  std::vector<KernelVariant> variants() const override { return {KernelVariant::Fast, KernelVariant::Cudnn}; }

  // ---------------------------------------------------------------- memory
  void copy(const Tensor& src, const Tensor& dst) override {
    LK_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), dst.nbytes(), cudaMemcpyDefault, stream_));
    if (dst.device().type == DeviceType::CPU || src.device().type == DeviceType::CPU) synchronize();
  }
  void fill(const Tensor& y, double v) override;
  void axpy(double a, const Tensor& x, const Tensor& y) override;
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
  void conv2d_bwd_weight(const ConvGeom& g, const Tensor& dy, const Tensor& x, const Tensor& dw,
                         const Tensor& db) override {
    conv_bwd_weight(g, dy, x, dw, db, acc(dw), acc(db));
  }
  // Transposed convolution = the adjoint of the convolution `g` describes
  // (kernels/conv_transpose2d.h): its passes are that convolution's passes.
  void conv_transpose2d_fwd(const ConvGeom& g, const Tensor& x, const Tensor& w, const Tensor& b,
                            const Tensor& y) override;
  void conv_transpose2d_bwd_data(const ConvGeom& g, const Tensor& dy, const Tensor& w, const Tensor& dx) override {
    conv_fwd(g, dy, w, Tensor(), dx, acc(dx));
  }
  void conv_transpose2d_bwd_weight(const ConvGeom& g, const Tensor& dy, const Tensor& x, const Tensor& dw,
                                   const Tensor& db) override;

  // ---------------------------------------------------------------- batch norm
  void batch_norm_fwd(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& rm, const Tensor& rv,
                      bool training, double momentum, double eps, const Tensor& y, const Tensor& save_mean,
                      const Tensor& save_invstd) override;
  void batch_norm_bwd(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                      const Tensor& save_invstd, bool training, const Tensor& dx, const Tensor& dgamma,
                      const Tensor& dbeta) override;

  // ---------------------------------------------------------------- batch norm + ReLU (+ residual)
  // Fast: the fused kernels. Cudnn: the composition of this backend's batch
  // norm (cuDNN on a GPU), ReLU and add.
  void batch_norm_relu_fwd(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& rm, const Tensor& rv,
                           bool training, double momentum, double eps, const Tensor& r, BnResidual mode,
                           const Tensor& y, const Tensor& save_mean, const Tensor& save_invstd) override;
  void batch_norm_relu_bwd(BnResidual mode, const Tensor& dy, const Tensor& x, const Tensor& y, const Tensor& gamma,
                           const Tensor& beta, const Tensor& save_mean, const Tensor& save_invstd, bool training,
                           const Tensor& dx, const Tensor& dr, const Tensor& dgamma, const Tensor& dbeta) override;

  // Synchronised batch norm: the sums in double on the device, read back
  // (this waits for the stream); the statistics go up as float32 and
  // normalise through the evaluation kernel. 16-bit activations: the sums
  // and dx on float32 twins (the statistics kernels are float32 only).
  std::vector<double> batch_norm_sums(const Tensor& x, const std::vector<double>& mean, const Tensor& dy,
                                      const Tensor& save_mean, const Tensor& save_invstd) override;
  void batch_norm_fwd_stats(const Tensor& x, const Tensor& gamma, const Tensor& beta, const std::vector<double>& mean,
                            const std::vector<double>& var, double eps, const Tensor& y, const Tensor& save_mean,
                            const Tensor& save_invstd) override;
  void batch_norm_bwd_dx(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                         const Tensor& save_invstd, const std::vector<double>& means, const Tensor& dx) override;

  // ---------------------------------------------------------------- the LKA gate
  // Fast: the fused kernel. Cudnn: the composition of this backend's batch
  // norm, sigmoid and multiply (each on cuDNN on a GPU).
  void lka_gate_fwd(const Tensor& x, const Tensor& f, const Tensor& gamma, const Tensor& beta, const Tensor& rm,
                    const Tensor& rv, bool training, double momentum, double eps, const Tensor& y,
                    const Tensor& save_mean, const Tensor& save_invstd) override;
  void lka_gate_bwd(const Tensor& dy, const Tensor& x, const Tensor& f, const Tensor& gamma, const Tensor& beta,
                    const Tensor& save_mean, const Tensor& save_invstd, bool training, const Tensor& dx,
                    const Tensor& df, const Tensor& dgamma, const Tensor& dbeta) override;

  // ---------------------------------------------------------------- pointwise
  void activation_fwd(Activation a, const Tensor& x, const Tensor& y) override;
  void activation_bwd(Activation a, const Tensor& dy, const Tensor& y, const Tensor& dx) override;
  void binary_fwd(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& y) override;
  void binary_bwd(BinaryOp op, const Tensor& dy, const Tensor& other, const Tensor& d_self) override;

  // ---------------------------------------------------------------- pooling, resampling, layout
  void global_avg_pool_fwd(const Tensor& x, const Tensor& y) override;
  void global_avg_pool_bwd(const Tensor& dy, const Tensor& dx) override;
  void max_pool2d_fwd(int64_t k, int64_t st, const Tensor& x, const Tensor& y, const Tensor& idx) override;
  void max_pool2d_bwd(int64_t k, int64_t st, const Tensor& dy, const Tensor& idx, const Tensor& dx) override;
  void upsample_fwd(UpsampleMode m, int64_t f, const Tensor& x, const Tensor& y) override;
  void upsample_bwd(UpsampleMode m, int64_t f, const Tensor& dy, const Tensor& dx) override;
  void concat_fwd(int64_t offset, const Tensor& src, const Tensor& dst) override;
  void concat_bwd(int64_t offset, const Tensor& ddst, const Tensor& dsrc) override;
  void linear_fwd(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y) override;
  void linear_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& dx, const Tensor& dw,
                  const Tensor& db) override;

  // ---------------------------------------------------------------- softmax and losses
  void softmax_fwd(const Tensor& x, const Tensor& y) override;
  void softmax_bwd(const Tensor& dy, const Tensor& y, const Tensor& dx) override;
  void cross_entropy_fwd(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,
                         const Tensor& probs, const Tensor& wsum) override;
  void cross_entropy_bwd(const Tensor& dloss, const Tensor& probs, const Tensor& target, const Tensor& weight,
                         const Tensor& wsum, const Tensor& dlogits) override;
  void tversky_fwd(const TverskyParams& p, const Tensor& probs, const Tensor& target, const Tensor& loss,
                   const Tensor& stats) override;
  void tversky_bwd(const TverskyParams& p, const Tensor& dloss, const Tensor& target, const Tensor& stats,
                   const Tensor& dprobs) override;

  // The fused deep-supervision term shares cross_entropy's label-error record.
  void ce_tversky_fwd(const TverskyParams& p, const Tensor& logits, const Tensor& target, const Tensor& weight,
                      const Tensor& loss, const Tensor& stats) override;
  void ce_tversky_bwd(const TverskyParams& p, const Tensor& dloss, const Tensor& logits, const Tensor& target,
                      const Tensor& weight, const Tensor& stats, const Tensor& dlogits) override;
  // Up to kWeightedSumMax terms per launch.
  void weighted_sum_fwd(const std::vector<Tensor>& xs, const std::vector<double>& w, const Tensor& y) override;
  void weighted_sum_bwd(const Tensor& dy, const std::vector<double>& w, const std::vector<Tensor>& dxs) override;

  // Multi-tensor ops over a (tensor, chunk) table (upload_table): a step
  // copies nothing once the table is on the device.
  void adamw_step(const AdamWParams& a, const Tensor& state, const std::vector<Tensor>& params,
                  const std::vector<Tensor>& m, const std::vector<Tensor>& v, const Tensor& skip) override;
  void grad_unscale(const std::vector<Tensor>& grads, const cpu::LossScaleParams& p, const Tensor& state) override;

  void augment(const Tensor& draws, int64_t pad, const Tensor& images, const Tensor& labels, const Tensor& out_images,
               const Tensor& out_labels) override;

  std::unique_ptr<Graph> capture(const std::function<void()>& f, std::string* why) override;

  std::unique_ptr<UploadRing> make_upload_ring(const std::vector<std::pair<Shape, DType>>& parts, int slots) override {
    return make_cuda_upload_ring(device_, stream_, alloc_, pinned_, parts, slots);
  }

 private:
  // Float32 twins for the ops without a kernel for a reduced storage type
  // (linear, softmax; the dense convolutions under the emulator): wide() a float32 copy of an input or of a gradient
  // that is added to, wide_out() a float32 buffer for an output that is written, narrow() the twin back into the
  // reduced tensor. Each costs a conversion pass that op_bytes (engine/profiler.h) does not count; docs/PERFORMANCE.md.
  Tensor wide(const Tensor& t);
  // dst (+)= src converted (the cast kernels; accumulate as given).
  void cast_to(const Tensor& src, const Tensor& dst, bool accumulate);
  Tensor wide_out(const Tensor& t) { return reduced(t) ? Tensor::empty(t.shape(), DType::F32, device()) : t; }
  // A gradient output's twin: added to, or first-written as t is (engine/backend.h).
  Tensor wide_grad(const Tensor& t) { return t.first_write() ? wide_out(t).as_first_write() : wide(t); }
  void narrow(const Tensor& w, const Tensor& t) {
    if (reduced(t)) cast(w, t, false);
  }

  // After a wait: the first label error the loss kernels recorded since the
  // last one was reported (the records are cleared for the next).
  void raise_label_errors();

  // BN(x) in evaluation form from the statistics a training forward saved
  // (the Cudnn compositions' backward): var = 1/invstd^2 - eps reproduces
  // the saved invstd. Reads the statistics back to the host (a reference path).
  Tensor bn_recompute(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& save_mean,
                      const Tensor& save_invstd);

  // The kernels' workspaces: one at a time on the single stream.
  void* scratch(size_t bytes) { return scratch_.get(bytes); }

  bool use_ours_depthwise(const ConvGeom& g) const {
    return g.depthwise() && depthwise_conv2d_supported(g) && variant("conv2d") == KernelVariant::Fast;
  }

  // t in storage type `to`: itself, or a converted copy (a float32 weight or
  // bias of a 16-bit convolution: cuDNN wants one data type per convolution).
  Tensor as_storage(const Tensor& t, DType to);
#if !defined(LKASEG_SIMT)
  void cudnn_mode();  // the math and determinism set_tf32 / set_deterministic chose
#endif

  // The convolution passes of conv2d_* and conv_transpose2d_* (the weights,
  // biases and their gradients float32; the activations any storage type).
  // 16-bit activations on a GPU: cuDNN's 16-bit plans on the weights
  // narrowed per call, the filter gradient summed by cuDNN in 16 bits and
  // added to the float32 one (as PyTorch's autocast), the bias gradient
  // summed in float32 by our kernel. Under the emulator: float32 twins.
  void conv_fwd(const ConvGeom& g, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y, bool acc);
  void conv_bwd_data(const ConvGeom& g, const Tensor& dy, const Tensor& w, const Tensor& dx, bool acc_dx);
  void conv_bwd_weight(const ConvGeom& g, const Tensor& dy, const Tensor& x, const Tensor& dw, const Tensor& db,
                       bool acc_dw, bool acc_db);

  const int device_;
  cudaStream_t stream_ = nullptr;
  CachingAllocator alloc_;
  CachingAllocator pinned_;  // page-locked host memory of upload rings
  Workspace scratch_{alloc_};
  LabelError* label_errors_ = nullptr;       // device: cross_entropy's, tversky's (cross_entropy.h)
  LabelError* label_errors_seen_ = nullptr;  // pinned host copy, read after each wait
  int64_t label_classes_[2] = {0, 0};        // C of the last call of each
  // A multi-tensor op's table (kernels/cuda/tensor_table.h) on the device,
  // per owner (an optimiser's or a loss scaler's state: its address): two
  // owners stepping in turn do not upload their tables each step, and a
  // replayed graph finds the table its capture read. Uploaded when it
  // changes (the first step, or another set of gradients), then kept. The
  // buffer comes from the driver, not the caching allocator, so that taking
  // it at the end of the first step does not take a block the next forward
  // pass would have reused.
  struct TableUpload {
    TensorTable table;  // as uploaded to device
    void* device = nullptr;
    size_t bytes = 0;
  };
  const TableUpload& upload_table(const void* owner, TensorTable&& table);
  std::map<const void*, TableUpload> table_uploads_;
  double bn_eps_ = 1e-5;
#if !defined(LKASEG_SIMT)
  std::unique_ptr<CudnnConv> cudnn_;
  std::unique_ptr<CudnnOps> ref_;
#endif
};

}  // namespace backend_impl

LK_CUDA_NAMESPACE_END
