// Op dispatch: the device-facing half of every op.
//
// engine/ops/*.cpp validate shapes, allocate outputs on the input's device and
// record autograd nodes; the arithmetic goes through the Backend of that
// device. A backend owns its allocator and its stream; every method works on
// tensors that live on its device and may run asynchronously on that stream
// (synchronize() waits; it also raises errors the device recorded, such as
// a label out of range in a loss, naming the op). Backward methods write each
// gradient output in one of two modes: they ADD into it, or, when the handle
// is marked first_write (Tensor::first_write, set by the autograd for a
// gradient that has no contribution yet), OVERWRITE it (beta = 0) and must
// write every element; so no gradient needs a zero-fill first. axpy follows
// the same rule for y. An undefined Tensor argument means "not wanted" (e.g.
// no bias, no dx).
//
// To plug in a device: implement this interface (see backend_cpu.cpp), give
// it an Allocator, and register it with register_backend(). To add an op:
// see docs/ARCHITECTURE.md.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"
#include "kernels/activation.h"
#include "kernels/adamw.h"
#include "kernels/loss_scale.h"
#include "kernels/binary.h"
#include "kernels/conv2d.h"
#include "kernels/tversky.h"
#include "kernels/upsample.h"

namespace lk {

// Which implementation of an op a backend runs. Every backend has Fast, the
// path training takes; the others are named for what they are:
//   Fast        CPU: oneDNN for float32 dense convolutions (when built with
//               it), our OpenMP kernels and BLAS for the rest; CUDA: our
//               kernels (kernels/cuda)
//   PlainLoops  CPU only: the plain nested loops (the kernels' *_ref), the
//               reference every other implementation is tested against
//   Im2colBlas  CPU only: dense convolutions as im2col + OpenBLAS sgemm (the
//               fallback where oneDNN is missing or refuses a geometry); the
//               other ops as Fast
//   Cudnn       CUDA only: the cuDNN path where one exists
//               (engine/cuda/backend_cuda.h; under the emulator, which has no
//               cuDNN, our direct convolution kernel stands in)
// Backend::variants() lists a backend's; set_variant refuses any other.
enum class KernelVariant { Fast, PlainLoops, Cudnn, Im2colBlas };

// "fast", "plain_loops", "cudnn", "im2col_blas": the spelling in benchmark
// rows and messages.
const char* variant_name(KernelVariant v);

class UploadRing;

// Work captured from a backend's stream (a CUDA Graph): launch() queues all
// of it once more, on that stream, as one call. The memory the captured work
// allocated belongs to the graph's private pool while it lives.
class Graph {
 public:
  virtual ~Graph() = default;
  virtual void launch() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual Allocator& allocator() = 0;
  virtual void synchronize() {}
  virtual std::string describe() const = 0;

  // The variants this backend has: {Fast, PlainLoops, Im2colBlas} on the
  // CPU, {Fast, Cudnn} on CUDA.
  virtual std::vector<KernelVariant> variants() const = 0;
  // The variant for every op, and per-op overrides by op name ("conv2d",
  // "conv_transpose2d", "batch_norm", "activation", "binary",
  // "global_avg_pool", "softmax", ...; see each backend for the ops it has
  // more than one implementation of). A variant the backend does not have
  // throws std::invalid_argument. Not thread-safe against running ops.
  void set_variant(KernelVariant v) { variant_ = checked(v); }
  KernelVariant variant() const { return variant_; }
  void set_variant(const std::string& op, KernelVariant v) { per_op_[op] = checked(v); }
  void clear_op_variants() { per_op_.clear(); }
  KernelVariant variant(const std::string& op) const {
    auto it = per_op_.find(op);
    return it == per_op_.end() ? variant_ : it->second;
  }

  // Memory. copy: same dtype and element count; one side lives on this
  // backend's device, the other on it or on the host. Returns when dst can
  // be read on the host if dst is a host tensor.
  virtual void copy(const Tensor& src, const Tensor& dst) = 0;
  virtual void fill(const Tensor& y, double value) = 0;
  virtual void axpy(double a, const Tensor& x, const Tensor& y) = 0;  // y += a*x (y = a*x on first write)
  // y *= a in place (the loss scaler's unscaling: exact for a power of 2).
  // The default goes through a zeroed temporary and axpy; CUDA has a kernel.
  virtual void scale(const Tensor& y, double a) {
    const Tensor t = Tensor::zeros(y.shape(), y.dtype(), y.device());
    axpy(a, y, t);
    copy(t, y);
  }
  // dst (+)= src converted to dst's dtype (same element count): the casts of
  // mixed precision (engine/ops.h cast); with accumulate, dst first_write is
  // overwritten as any gradient output. The default converts on the host
  // (the CPU backend); the CUDA backend has a kernel.
  virtual void cast(const Tensor& src, const Tensor& dst, bool accumulate) {
    if (!accumulate) return dst.copy_from(src);
    axpy(1.0, src.to(dst.dtype()), dst);
  }

  // Convolutions (geometry in conv2d.h / conv_transpose2d.h terms)
  virtual void conv2d_fwd(const ConvGeom& g, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y) = 0;
  virtual void conv2d_bwd_data(const ConvGeom& g, const Tensor& dy, const Tensor& w, const Tensor& dx) = 0;
  virtual void conv2d_bwd_weight(const ConvGeom& g, const Tensor& dy, const Tensor& x, const Tensor& dw, const Tensor& db) = 0;
  // The training pair, for backends that keep something from the forward for
  // the backward (the CPU's oneDNN path keeps x and w in its own layouts, so
  // the backward reorders neither, and reorders dy once for dx and dw):
  // conv2d_fwd_train returns that state (or null), conv2d_bwd takes it back
  // with every wanted gradient (undefined: not wanted). By default the
  // single-pass methods above.
  virtual std::shared_ptr<void> conv2d_fwd_train(const ConvGeom& g, const Tensor& x, const Tensor& w, const Tensor& b,
                                                 const Tensor& y) {
    conv2d_fwd(g, x, w, b, y);
    return nullptr;
  }
  virtual void conv2d_bwd(const ConvGeom& g, const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& b,
                          const Tensor& dx, const Tensor& dw, const Tensor& db, const std::shared_ptr<void>& kept) {
    (void)b, (void)kept;
    if (dx.defined()) conv2d_bwd_data(g, dy, w, dx);
    if (dw.defined() || db.defined()) conv2d_bwd_weight(g, dy, x, dw, db);
  }
  virtual void conv_transpose2d_fwd(const ConvGeom& g, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y) = 0;
  virtual void conv_transpose2d_bwd_data(const ConvGeom& g, const Tensor& dy, const Tensor& w, const Tensor& dx) = 0;
  virtual void conv_transpose2d_bwd_weight(const ConvGeom& g, const Tensor& dy, const Tensor& x, const Tensor& dw, const Tensor& db) = 0;

  // Batch norm over (N, C, H*W)
  virtual void batch_norm_fwd(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                              const Tensor& running_mean, const Tensor& running_var, bool training,
                              double momentum, double eps, const Tensor& y,
                              const Tensor& save_mean, const Tensor& save_invstd) = 0;
  virtual void batch_norm_bwd(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                              const Tensor& save_mean, const Tensor& save_invstd, bool training,
                              const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta) = 0;

  // Batch norm fused with ReLU and a residual add (kernels/batch_norm_relu.h):
  // y = relu(BN(x)), relu(BN(x)) + r or relu(BN(x) + r) by `mode`; r
  // undefined for None. The backward reads y for BeforeRelu only; dr may be
  // undefined (not wanted, or None).
  virtual void batch_norm_relu_fwd(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                   const Tensor& running_mean, const Tensor& running_var, bool training,
                                   double momentum, double eps, const Tensor& r, BnResidual mode, const Tensor& y,
                                   const Tensor& save_mean, const Tensor& save_invstd) = 0;
  virtual void batch_norm_relu_bwd(BnResidual mode, const Tensor& dy, const Tensor& x, const Tensor& y,
                                   const Tensor& gamma, const Tensor& beta, const Tensor& save_mean,
                                   const Tensor& save_invstd, bool training, const Tensor& dx, const Tensor& dr,
                                   const Tensor& dgamma, const Tensor& dbeta) = 0;
  // Synchronised batch norm (engine/ops/norm.cpp, kernels/batch_norm.h):
  // per-channel sums in double on the host - sum x (C values: dy undefined,
  // mean empty), sum (x - mean)^2 (C: mean given), or sum dy and sum dy*xhat
  // (2C: dy given); the training forward from the whole batch's mean and
  // biased variance (C doubles each; running statistics untouched); and
  // dx += gamma*invstd*(dy - mean_dy - xhat*mean_dyxhat) from the whole
  // batch's means (2C).
  virtual std::vector<double> batch_norm_sums(const Tensor& x, const std::vector<double>& mean, const Tensor& dy,
                                              const Tensor& save_mean, const Tensor& save_invstd) = 0;
  virtual void batch_norm_fwd_stats(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                    const std::vector<double>& mean, const std::vector<double>& var, double eps,
                                    const Tensor& y, const Tensor& save_mean, const Tensor& save_invstd) = 0;
  virtual void batch_norm_bwd_dx(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                                 const Tensor& save_invstd, const std::vector<double>& means, const Tensor& dx) = 0;

  // The LKA tail y = x * sigmoid(BN(f)) (kernels/lka_gate.h)
  virtual void lka_gate_fwd(const Tensor& x, const Tensor& f, const Tensor& gamma, const Tensor& beta,
                            const Tensor& running_mean, const Tensor& running_var, bool training, double momentum,
                            double eps, const Tensor& y, const Tensor& save_mean, const Tensor& save_invstd) = 0;
  virtual void lka_gate_bwd(const Tensor& dy, const Tensor& x, const Tensor& f, const Tensor& gamma,
                            const Tensor& beta, const Tensor& save_mean, const Tensor& save_invstd, bool training,
                            const Tensor& dx, const Tensor& df, const Tensor& dgamma, const Tensor& dbeta) = 0;

  // Pointwise and broadcasting
  virtual void activation_fwd(Activation a, const Tensor& x, const Tensor& y) = 0;
  virtual void activation_bwd(Activation a, const Tensor& dy, const Tensor& y, const Tensor& dx) = 0;
  virtual void binary_fwd(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& y) = 0;
  // d_self += reduce(dy * other) for Mul, reduce(dy) for Add
  virtual void binary_bwd(BinaryOp op, const Tensor& dy, const Tensor& other, const Tensor& d_self) = 0;

  // Pooling, resampling, layout
  virtual void global_avg_pool_fwd(const Tensor& x, const Tensor& y) = 0;
  virtual void global_avg_pool_bwd(const Tensor& dy, const Tensor& dx) = 0;
  virtual void max_pool2d_fwd(int64_t k, int64_t stride, const Tensor& x, const Tensor& y, const Tensor& idx) = 0;
  virtual void max_pool2d_bwd(int64_t k, int64_t stride, const Tensor& dy, const Tensor& idx, const Tensor& dx) = 0;
  virtual void upsample_fwd(UpsampleMode m, int64_t f, const Tensor& x, const Tensor& y) = 0;
  virtual void upsample_bwd(UpsampleMode m, int64_t f, const Tensor& dy, const Tensor& dx) = 0;
  virtual void concat_fwd(int64_t offset, const Tensor& src, const Tensor& dst) = 0;
  virtual void concat_bwd(int64_t offset, const Tensor& ddst, const Tensor& dsrc) = 0;
  virtual void linear_fwd(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y) = 0;
  virtual void linear_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& dx,
                          const Tensor& dw, const Tensor& db) = 0;

  // Softmax over channels and the losses (loss tensors have one element)
  virtual void softmax_fwd(const Tensor& x, const Tensor& y) = 0;
  virtual void softmax_bwd(const Tensor& dy, const Tensor& y, const Tensor& dx) = 0;
  virtual void cross_entropy_fwd(const Tensor& logits, const Tensor& target, const Tensor& weight,
                                 const Tensor& loss, const Tensor& probs, const Tensor& wsum) = 0;
  virtual void cross_entropy_bwd(const Tensor& dloss, const Tensor& probs, const Tensor& target,
                                 const Tensor& weight, const Tensor& wsum, const Tensor& dlogits) = 0;
  virtual void tversky_fwd(const TverskyParams& p, const Tensor& probs, const Tensor& target,
                           const Tensor& loss, const Tensor& stats) = 0;
  virtual void tversky_bwd(const TverskyParams& p, const Tensor& dloss, const Tensor& target,
                           const Tensor& stats, const Tensor& dprobs) = 0;

  // One deep-supervision term (kernels/loss_terms.h): loss (1) = CE_w(logits)
  // + Tversky(softmax(logits)); stats (4C + 3) keeps what the backward and
  // the logs need. At most kCeTverskyMaxClasses classes.
  virtual void ce_tversky_fwd(const TverskyParams& p, const Tensor& logits, const Tensor& target, const Tensor& weight,
                              const Tensor& loss, const Tensor& stats) = 0;
  virtual void ce_tversky_bwd(const TverskyParams& p, const Tensor& dloss, const Tensor& logits, const Tensor& target,
                              const Tensor& weight, const Tensor& stats, const Tensor& dlogits) = 0;
  // y = sum_i w_i xs[i] over same-shape tensors; the backward gives each
  // defined dxs[i] w_i dy.
  virtual void weighted_sum_fwd(const std::vector<Tensor>& xs, const std::vector<double>& w, const Tensor& y) = 0;
  virtual void weighted_sum_bwd(const Tensor& dy, const std::vector<double>& w, const std::vector<Tensor>& dxs) = 0;

  // Optimiser: one AdamW step over every parameter whose grad() is defined;
  // m and v are the moments, in parameter order. `state` (float64, on this
  // device: lk::adamw_state, kernels/adamw.h) holds lr and the step count:
  // the step advances the count and takes lr from there (a.lr is not used),
  // so nothing passes from the host. `skip`: undefined, or one float32
  // element on this device; when it is not 0 as the step runs, the step is
  // skipped (parameters, moments and count unchanged: kernels/adamw.h).
  virtual void adamw_step(const AdamWParams& a, const Tensor& state, const std::vector<Tensor>& params,
                          const std::vector<Tensor>& m, const std::vector<Tensor>& v, const Tensor& skip) = 0;
  // The float16 loss scaler's step (kernels/loss_scale.h), on this device:
  // every gradient in `grads` (float32) multiplied in place by 1/S from
  // `state` (float32, kLossScaleStateSize: scale, 1/scale, clean steps,
  // skipped steps, overflow flag, the unscale's flag), then the decision: a
  // NaN or infinity among the products sets the overflow flag, halves S and
  // counts a skipped step, else the step counts towards growing S. Nothing
  // passes to or from the host (a CUDA Graph captures it).
  virtual void grad_unscale(const std::vector<Tensor>& grads, const cpu::LossScaleParams& p,
                            const Tensor& state) = 0;

  // Training augmentation of a batch (kernels/augment.h): draws (B, W) int32,
  // B packed AugmentDraw (pack_augment_draws); images (B, 4, S, S) float32 and
  // labels (B, S, S) int32 or undefined -> out_images (B, 4, O, O) and
  // out_labels (B, O, O) (undefined with labels), the crop taken from the
  // slice reflect-padded by `pad`. Use lk::augment_batch (engine/ops.h).
  virtual void augment(const Tensor& draws, int64_t pad, const Tensor& images, const Tensor& labels,
                       const Tensor& out_images, const Tensor& out_labels) = 0;

  // Runs f with this backend's stream capturing (CUDA Graphs): f's device
  // work is recorded, not run, and memory f allocates or frees comes from
  // and goes to a pool private to the graph (engine/cuda/caching_allocator.h),
  // never handed to other work while the graph lives; tensors f leaves alive
  // keep their memory, which every launch() writes again. Returns the graph
  // (not launched yet), or nullptr with *why set when the backend has no
  // graphs or f did something a capture cannot hold (a host wait, a
  // host-memory copy, an error f threw): then none of f's device work ran.
  // Warm f up eagerly once first, so that its memory is already cached.
  virtual std::unique_ptr<Graph> capture(const std::function<void()>& f, std::string* why) {
    (void)f;
    *why = "no graphs on " + device().str();
    return nullptr;
  }

  // Host-to-device staging for input pipelines (see UploadRing below).
  // `parts`: the shape and dtype of each tensor of one slot.
  virtual std::unique_ptr<UploadRing> make_upload_ring(const std::vector<std::pair<Shape, DType>>& parts,
                                                       int slots) = 0;

 private:
  KernelVariant checked(KernelVariant v) const;
  KernelVariant variant_ = KernelVariant::Fast;
  std::map<std::string, KernelVariant> per_op_;
};

// A ring of `slots()` staging slots through which an input pipeline (the
// data loader, data/loader.h) moves batches to the device while the device
// computes. Each slot holds one host tensor per part (page-locked on CUDA,
// so copies are asynchronous) and its device twin. The protocol for slot k,
// which the caller serialises per slot (one producer fills it, then one
// consumer takes it, then the producer may fill it again):
//   producer: wait_writable(k); write host(k, p); upload(k, rows);
//   consumer: device tensors = acquire(k, rows); queue work reading them;
//             release(k).
// upload starts copying the first `rows` rows (dim 0) of every part on a copy
// stream; acquire makes the backend's compute stream wait for that copy and
// returns the device tensors (views of their first `rows` rows); release
// marks the point of the compute stream after which the device tensors may
// be overwritten by the next upload into k, and wait_writable blocks until
// the host tensors' last upload has completed. On the CPU the host and
// device tensors are the same and every call but host/acquire is a no-op.
// Calls for different slots may come from different threads.
class UploadRing {
 public:
  virtual ~UploadRing() = default;
  virtual int slots() const = 0;
  virtual int parts() const = 0;
  virtual const Tensor& host(int slot, int part) const = 0;
  virtual void wait_writable(int slot) = 0;
  virtual void upload(int slot, int64_t rows) = 0;
  virtual std::vector<Tensor> acquire(int slot, int64_t rows) = 0;
  virtual void release(int slot) = 0;
};

// Backend::grad_unscale's arguments, checked by every backend: throws
// std::invalid_argument naming the problem unless `state` is a loss scaler's
// (float32, kLossScaleStateSize elements) and every gradient float32 on its device.
void check_grad_unscale(const std::vector<Tensor>& grads, const Tensor& state);

// The backend of a device (throws when none is registered for it).
Backend& backend(Device d);
// Not owned; lives for the process. A backend registered for the CPU stands
// in front of the built-in one (a profiler, engine/profiler.h); null restores it.
void register_backend(Device d, Backend* b);

}  // namespace lk
