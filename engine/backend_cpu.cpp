// The CPU backend: dtype dispatch from Tensors to the kernels in kernels/.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/backend.h"
#include "kernels/augment.h"
#include "kernels/batch_norm.h"
#include "kernels/batch_norm_relu.h"
#include "kernels/concat.h"
#include "kernels/conv_transpose2d.h"
#include "kernels/cross_entropy.h"
#include "kernels/global_avg_pool.h"
#include "kernels/linear.h"
#include "kernels/lka_gate.h"
#include "kernels/loss_terms.h"
#include "kernels/max_pool2d.h"
#include "kernels/onednn_conv.h"
#include "kernels/softmax.h"

namespace lk {

namespace {

template <typename F>
void dispatch_float(const Tensor& t, const char* op, F&& f) {
  switch (t.dtype()) {
    case DType::F32: f.template operator()<float>(); return;
    case DType::F64: f.template operator()<double>(); return;
    case DType::BF16:
    case DType::F16:
      throw std::invalid_argument(std::string(op) + ": the CPU backend computes in float32/float64, not " +
                                  dtype_name(t.dtype()) + " (mixed precision needs the CUDA backend)");
    default: throw std::invalid_argument(std::string(op) + ": expects a float tensor, got " + dtype_name(t.dtype()));
  }
}

template <typename T>
T* ptr(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// A gradient output is added into unless it is a first write (engine/backend.h).
bool acc(const Tensor& t) { return !t.first_write(); }

// For the kernels that only add (the convolutions: their oneDNN, im2col and
// plain-loop paths): a first write is zeroed here, a memory pass and no launch.
template <typename T>
T* cleared(const Tensor& t) {
  if (!t.defined()) return nullptr;
  if (t.first_write()) std::fill(t.data<T>(), t.data<T>() + t.numel(), T(0));
  return t.data<T>();
}

// (N, C, rest) view of an NCHW-like tensor.
struct NC {
  int64_t n, c, hw;
};
NC nc_of(const Tensor& t) {
  const int64_t n = t.size(0), c = t.ndim() > 1 ? t.size(1) : 1;
  return {n, c, t.numel() / (n * c)};
}

Dims4 dims4(const Shape& s) {
  Dims4 d{1, 1, 1, 1};
  const size_t off = 4 - s.size();
  for (size_t i = 0; i < s.size(); ++i) d[off + i] = s[i];
  return d;
}

class CpuBackend final : public Backend {
 public:
  Device device() const override { return cpu_device(); }
  Allocator& allocator() override { return cpu_allocator(); }
  std::string describe() const override {
    const std::string dnnl = cpu::onednn_available() ? std::string(", oneDNN ") + cpu::onednn_version() : "";
    return "cpu (" + std::to_string(omp_get_max_threads()) + " OpenMP threads, OpenBLAS" + dnnl + ")";
  }

  std::vector<KernelVariant> variants() const override {
    return {KernelVariant::Fast, KernelVariant::PlainLoops, KernelVariant::Im2colBlas};
  }
  // The convolution implementation for `op` ("conv2d", "conv_transpose2d").
  cpu::ConvImpl conv_impl(const char* op) const {
    switch (variant(op)) {
      case KernelVariant::PlainLoops: return cpu::ConvImpl::PlainLoops;
      case KernelVariant::Im2colBlas: return cpu::ConvImpl::Im2colBlas;
      default: return cpu::ConvImpl::OneDnn;
    }
  }

  void copy(const Tensor& src, const Tensor& dst) override { std::memcpy(dst.raw(), src.raw(), dst.nbytes()); }
  void fill(const Tensor& y, double v) override {
    dispatch_float(y, "fill", [&]<typename T>() { cpu::fill<T>(y.numel(), static_cast<T>(v), y.data<T>()); });
  }
  void axpy(double a, const Tensor& x, const Tensor& y) override {
    dispatch_float(y, "axpy", [&]<typename T>() {
      cpu::axpy<T>(y.numel(), static_cast<T>(a), x.data<T>(), y.data<T>(), acc(y));
    });
  }

  void conv2d_fwd(const ConvGeom& g, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y) override {
    dispatch_float(x, "conv2d", [&]<typename T>() {
      cpu::conv2d_fwd<T>(conv_impl("conv2d"), g, x.data<T>(), w.data<T>(), ptr<T>(b), y.data<T>());
    });
  }
  void conv2d_bwd_data(const ConvGeom& g, const Tensor& dy, const Tensor& w, const Tensor& dx) override {
    dispatch_float(dy, "conv2d_bwd_data", [&]<typename T>() {
      cpu::conv2d_bwd_data<T>(conv_impl("conv2d"), g, dy.data<T>(), w.data<T>(), cleared<T>(dx));
    });
  }
  void conv2d_bwd_weight(const ConvGeom& g, const Tensor& dy, const Tensor& x, const Tensor& dw, const Tensor& db) override {
    dispatch_float(dy, "conv2d_bwd_weight", [&]<typename T>() {
      cpu::conv2d_bwd_weight<T>(conv_impl("conv2d"), g, dy.data<T>(), x.data<T>(), cleared<T>(dw), cleared<T>(db));
    });
  }
  // oneDNN's training pair (kernels/onednn_conv.h): the forward keeps x and w
  // in the primitive's layouts, in tensors the backward reads.
  struct ConvKept {
    Tensor src, wei;
  };
  bool onednn_conv(const ConvGeom& g, const Tensor& x) const {
    return x.dtype() == DType::F32 && cpu::onednn_takes(g) && conv_impl("conv2d") == cpu::ConvImpl::OneDnn;
  }
  std::shared_ptr<void> conv2d_fwd_train(const ConvGeom& g, const Tensor& x, const Tensor& w, const Tensor& b,
                                         const Tensor& y) override {
    int64_t ns = 0, nw = 0;
    if (!onednn_conv(g, x) || !cpu::onednn_conv2d_kept_floats(g, b.defined(), &ns, &nw)) {
      conv2d_fwd(g, x, w, b, y);
      return nullptr;
    }
    auto k = std::make_shared<ConvKept>();
    if (ns) k->src = Tensor::empty({ns}, DType::F32, device());
    if (nw) k->wei = Tensor::empty({nw}, DType::F32, device());
    cpu::onednn_conv2d_fwd_keep(g, x.data<float>(), w.data<float>(), ptr<float>(b), y.data<float>(),
                                ptr<float>(k->src), ptr<float>(k->wei));
    return k;
  }
  void conv2d_bwd(const ConvGeom& g, const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& b,
                  const Tensor& dx, const Tensor& dw, const Tensor& db, const std::shared_ptr<void>& kept) override {
    const auto* k = static_cast<const ConvKept*>(kept.get());
    const auto first = [](const Tensor& t) { return t.defined() && t.first_write(); };
    if (onednn_conv(g, dy) &&
        cpu::onednn_conv2d_bwd(g, dy.data<float>(), x.data<float>(), w.data<float>(), b.defined(), ptr<float>(dx),
                               first(dx), ptr<float>(dw), first(dw), ptr<float>(db), first(db),
                               k ? ptr<float>(k->src) : nullptr, k ? ptr<float>(k->wei) : nullptr))
      return;
    Backend::conv2d_bwd(g, dy, x, w, b, dx, dw, db, kept);
  }
  void conv_transpose2d_fwd(const ConvGeom& g, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y) override {
    dispatch_float(x, "conv_transpose2d", [&]<typename T>() {
      cpu::conv_transpose2d_fwd<T>(g, x.data<T>(), w.data<T>(), ptr<T>(b), y.data<T>(), conv_impl("conv_transpose2d"));
    });
  }
  void conv_transpose2d_bwd_data(const ConvGeom& g, const Tensor& dy, const Tensor& w, const Tensor& dx) override {
    dispatch_float(dy, "conv_transpose2d_bwd_data", [&]<typename T>() {
      cpu::conv_transpose2d_bwd_data<T>(g, dy.data<T>(), w.data<T>(), cleared<T>(dx), conv_impl("conv_transpose2d"));
    });
  }
  void conv_transpose2d_bwd_weight(const ConvGeom& g, const Tensor& dy, const Tensor& x, const Tensor& dw, const Tensor& db) override {
    dispatch_float(dy, "conv_transpose2d_bwd_weight", [&]<typename T>() {
      cpu::conv_transpose2d_bwd_weight<T>(g, dy.data<T>(), x.data<T>(), cleared<T>(dw), cleared<T>(db),
                                          conv_impl("conv_transpose2d"));
    });
  }

  void batch_norm_fwd(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& rm,
                      const Tensor& rv, bool training, double momentum, double eps, const Tensor& y,
                      const Tensor& save_mean, const Tensor& save_invstd) override {
    const NC s = nc_of(x);
    dispatch_float(x, "batch_norm", [&]<typename T>() {
      cpu::batch_norm_fwd<T>(s.n, s.c, s.hw, x.data<T>(), gamma.data<T>(), beta.data<T>(), rm.data<T>(),
                             rv.data<T>(), training, momentum, eps, y.data<T>(), save_mean.data<T>(),
                             save_invstd.data<T>());
    });
  }
  void batch_norm_bwd(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                      const Tensor& save_invstd, bool training, const Tensor& dx, const Tensor& dgamma,
                      const Tensor& dbeta) override {
    const NC s = nc_of(x);
    dispatch_float(x, "batch_norm_bwd", [&]<typename T>() {
      cpu::batch_norm_bwd<T>(s.n, s.c, s.hw, dy.data<T>(), x.data<T>(), gamma.data<T>(), save_mean.data<T>(),
                             save_invstd.data<T>(), training, ptr<T>(dx), ptr<T>(dgamma), ptr<T>(dbeta), acc(dx),
                             acc(dgamma), acc(dbeta));
    });
  }

  std::vector<double> batch_norm_sums(const Tensor& x, const std::vector<double>& mean, const Tensor& dy,
                                      const Tensor& save_mean, const Tensor& save_invstd) override {
    const NC s = nc_of(x);
    std::vector<double> out(static_cast<size_t>((dy.defined() ? 2 : 1) * s.c));
    dispatch_float(x, "batch_norm_sums", [&]<typename T>() {
      cpu::batch_norm_sums<T>(s.n, s.c, s.hw, x.data<T>(), mean.empty() ? nullptr : mean.data(), ptr<T>(dy),
                              ptr<T>(save_mean), ptr<T>(save_invstd), out.data());
    });
    return out;
  }
  void batch_norm_fwd_stats(const Tensor& x, const Tensor& gamma, const Tensor& beta, const std::vector<double>& mean,
                            const std::vector<double>& var, double eps, const Tensor& y, const Tensor& save_mean,
                            const Tensor& save_invstd) override {
    const NC s = nc_of(x);
    dispatch_float(x, "batch_norm_fwd_stats", [&]<typename T>() {
      cpu::batch_norm_fwd_stats<T>(s.n, s.c, s.hw, x.data<T>(), gamma.data<T>(), beta.data<T>(), mean.data(),
                                   var.data(), eps, y.data<T>(), save_mean.data<T>(), save_invstd.data<T>());
    });
  }
  void batch_norm_bwd_dx(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                         const Tensor& save_invstd, const std::vector<double>& means, const Tensor& dx) override {
    const NC s = nc_of(x);
    dispatch_float(x, "batch_norm_bwd_dx", [&]<typename T>() {
      cpu::batch_norm_bwd_dx<T>(s.n, s.c, s.hw, dy.data<T>(), x.data<T>(), gamma.data<T>(), save_mean.data<T>(),
                                save_invstd.data<T>(), means.data(), cleared<T>(dx));  // the kernel adds
    });
  }

  void batch_norm_relu_fwd(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& rm,
                           const Tensor& rv, bool training, double momentum, double eps, const Tensor& r,
                           BnResidual mode, const Tensor& y, const Tensor& save_mean,
                           const Tensor& save_invstd) override {
    const NC s = nc_of(x);
    dispatch_float(x, "batch_norm_relu", [&]<typename T>() {
      cpu::batch_norm_relu_fwd<T>(s.n, s.c, s.hw, x.data<T>(), gamma.data<T>(), beta.data<T>(), rm.data<T>(),
                                  rv.data<T>(), training, momentum, eps, ptr<T>(r), mode, y.data<T>(),
                                  save_mean.data<T>(), save_invstd.data<T>());
    });
  }
  void batch_norm_relu_bwd(BnResidual mode, const Tensor& dy, const Tensor& x, const Tensor& y, const Tensor& gamma,
                           const Tensor& beta, const Tensor& save_mean, const Tensor& save_invstd, bool training,
                           const Tensor& dx, const Tensor& dr, const Tensor& dgamma, const Tensor& dbeta) override {
    const NC s = nc_of(x);
    dispatch_float(x, "batch_norm_relu_bwd", [&]<typename T>() {
      cpu::batch_norm_relu_bwd<T>(s.n, s.c, s.hw, mode, dy.data<T>(), x.data<T>(), ptr<T>(y), gamma.data<T>(),
                                  beta.data<T>(), save_mean.data<T>(), save_invstd.data<T>(), training, ptr<T>(dx),
                                  ptr<T>(dr), ptr<T>(dgamma), ptr<T>(dbeta), acc(dx), acc(dr), acc(dgamma),
                                  acc(dbeta));
    });
  }

  void lka_gate_fwd(const Tensor& x, const Tensor& f, const Tensor& gamma, const Tensor& beta, const Tensor& rm,
                    const Tensor& rv, bool training, double momentum, double eps, const Tensor& y,
                    const Tensor& save_mean, const Tensor& save_invstd) override {
    const NC s = nc_of(x);
    dispatch_float(x, "lka_gate", [&]<typename T>() {
      cpu::lka_gate_fwd<T>(s.n, s.c, s.hw, x.data<T>(), f.data<T>(), gamma.data<T>(), beta.data<T>(), rm.data<T>(),
                           rv.data<T>(), training, momentum, eps, y.data<T>(), save_mean.data<T>(),
                           save_invstd.data<T>());
    });
  }
  void lka_gate_bwd(const Tensor& dy, const Tensor& x, const Tensor& f, const Tensor& gamma, const Tensor& beta,
                    const Tensor& save_mean, const Tensor& save_invstd, bool training, const Tensor& dx,
                    const Tensor& df, const Tensor& dgamma, const Tensor& dbeta) override {
    const NC s = nc_of(x);
    dispatch_float(x, "lka_gate_bwd", [&]<typename T>() {
      cpu::lka_gate_bwd<T>(s.n, s.c, s.hw, dy.data<T>(), x.data<T>(), f.data<T>(), gamma.data<T>(), beta.data<T>(),
                           save_mean.data<T>(), save_invstd.data<T>(), training, ptr<T>(dx), ptr<T>(df),
                           ptr<T>(dgamma), ptr<T>(dbeta), acc(dx), acc(df), acc(dgamma), acc(dbeta));
    });
  }

  void activation_fwd(Activation a, const Tensor& x, const Tensor& y) override {
    dispatch_float(x, "activation", [&]<typename T>() { cpu::activation_fwd<T>(a, x.numel(), x.data<T>(), y.data<T>()); });
  }
  void activation_bwd(Activation a, const Tensor& dy, const Tensor& y, const Tensor& dx) override {
    dispatch_float(y, "activation_bwd", [&]<typename T>() {
      cpu::activation_bwd<T>(a, y.numel(), dy.data<T>(), y.data<T>(), dx.data<T>(), acc(dx));
    });
  }
  void binary_fwd(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& y) override {
    dispatch_float(y, "binary", [&]<typename T>() {
      cpu::binary_fwd<T>(op, dims4(y.shape()), a.data<T>(), dims4(a.shape()), b.data<T>(), dims4(b.shape()), y.data<T>());
    });
  }
  void binary_bwd(BinaryOp op, const Tensor& dy, const Tensor& other, const Tensor& d_self) override {
    dispatch_float(dy, "binary_bwd", [&]<typename T>() {
      const T* o = op == BinaryOp::Mul ? other.data<T>() : nullptr;
      cpu::binary_bwd<T>(op, dims4(dy.shape()), dy.data<T>(), dims4(d_self.shape()), o,
                         op == BinaryOp::Mul ? dims4(other.shape()) : Dims4{1, 1, 1, 1}, d_self.data<T>(),
                         acc(d_self));
    });
  }

  void global_avg_pool_fwd(const Tensor& x, const Tensor& y) override {
    const NC s = nc_of(x);
    dispatch_float(x, "global_avg_pool", [&]<typename T>() {
      cpu::global_avg_pool_fwd<T>(s.n * s.c, s.hw, x.data<T>(), y.data<T>());
    });
  }
  void global_avg_pool_bwd(const Tensor& dy, const Tensor& dx) override {
    const NC s = nc_of(dx);
    dispatch_float(dx, "global_avg_pool_bwd", [&]<typename T>() {
      cpu::global_avg_pool_bwd<T>(s.n * s.c, s.hw, dy.data<T>(), dx.data<T>(), acc(dx));
    });
  }
  void max_pool2d_fwd(int64_t k, int64_t st, const Tensor& x, const Tensor& y, const Tensor& idx) override {
    dispatch_float(x, "max_pool2d", [&]<typename T>() {
      cpu::max_pool2d_fwd<T>(x.size(0) * x.size(1), x.size(2), x.size(3), k, st, x.data<T>(), y.data<T>(),
                             idx.data<int32_t>());
    });
  }
  void max_pool2d_bwd(int64_t k, int64_t st, const Tensor& dy, const Tensor& idx, const Tensor& dx) override {
    dispatch_float(dx, "max_pool2d_bwd", [&]<typename T>() {
      cpu::max_pool2d_bwd<T>(dx.size(0) * dx.size(1), dx.size(2), dx.size(3), k, st, dy.data<T>(),
                             idx.data<int32_t>(), dx.data<T>(), acc(dx));
    });
  }
  void upsample_fwd(UpsampleMode m, int64_t f, const Tensor& x, const Tensor& y) override {
    dispatch_float(x, "upsample", [&]<typename T>() {
      cpu::upsample_fwd<T>(m, x.size(0) * x.size(1), x.size(2), x.size(3), f, x.data<T>(), y.data<T>());
    });
  }
  void upsample_bwd(UpsampleMode m, int64_t f, const Tensor& dy, const Tensor& dx) override {
    dispatch_float(dx, "upsample_bwd", [&]<typename T>() {
      cpu::upsample_bwd<T>(m, dx.size(0) * dx.size(1), dx.size(2), dx.size(3), f, dy.data<T>(), dx.data<T>(),
                           acc(dx));
    });
  }
  void concat_fwd(int64_t offset, const Tensor& src, const Tensor& dst) override {
    const NC s = nc_of(src);
    dispatch_float(src, "concat", [&]<typename T>() {
      cpu::concat_fwd<T>(s.n, s.c, dst.size(1), offset, s.hw, src.data<T>(), dst.data<T>());
    });
  }
  void concat_bwd(int64_t offset, const Tensor& ddst, const Tensor& dsrc) override {
    const NC s = nc_of(dsrc);
    dispatch_float(dsrc, "concat_bwd", [&]<typename T>() {
      cpu::concat_bwd<T>(s.n, s.c, ddst.size(1), offset, s.hw, ddst.data<T>(), dsrc.data<T>(), acc(dsrc));
    });
  }
  void linear_fwd(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y) override {
    dispatch_float(x, "linear", [&]<typename T>() {
      cpu::linear_fwd<T>(x.size(0), x.size(1), w.size(0), x.data<T>(), w.data<T>(), ptr<T>(b), y.data<T>());
    });
  }
  void linear_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& dx, const Tensor& dw,
                  const Tensor& db) override {
    dispatch_float(x, "linear_bwd", [&]<typename T>() {
      cpu::linear_bwd<T>(x.size(0), x.size(1), w.size(0), dy.data<T>(), x.data<T>(), w.data<T>(), ptr<T>(dx),
                         ptr<T>(dw), ptr<T>(db), acc(dx), acc(dw), acc(db));
    });
  }

  void softmax_fwd(const Tensor& x, const Tensor& y) override {
    const NC s = nc_of(x);
    dispatch_float(x, "softmax", [&]<typename T>() { cpu::softmax_fwd<T>(s.n, s.c, s.hw, x.data<T>(), y.data<T>()); });
  }
  void softmax_bwd(const Tensor& dy, const Tensor& y, const Tensor& dx) override {
    const NC s = nc_of(y);
    dispatch_float(y, "softmax_bwd", [&]<typename T>() {
      cpu::softmax_bwd<T>(s.n, s.c, s.hw, dy.data<T>(), y.data<T>(), dx.data<T>(), acc(dx));
    });
  }
  void cross_entropy_fwd(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,
                         const Tensor& probs, const Tensor& wsum) override {
    const NC s = nc_of(logits);
    dispatch_float(logits, "cross_entropy", [&]<typename T>() {
      const int64_t bad = cpu::cross_entropy_fwd<T>(s.n, s.c, s.hw, logits.data<T>(), target.data<int32_t>(),
                                                    weight.data<T>(), loss.data<T>(), probs.data<T>(), wsum.data<T>());
      if (bad >= 0) bad_label("cross_entropy", target, bad, s.c);
    });
  }
  void cross_entropy_bwd(const Tensor& dloss, const Tensor& probs, const Tensor& target, const Tensor& weight,
                         const Tensor& wsum, const Tensor& dlogits) override {
    const NC s = nc_of(probs);
    dispatch_float(probs, "cross_entropy_bwd", [&]<typename T>() {
      cpu::cross_entropy_bwd<T>(s.n, s.c, s.hw, dloss.data<T>(), probs.data<T>(), target.data<int32_t>(),
                                weight.data<T>(), wsum.data<T>(), dlogits.data<T>(), acc(dlogits));
    });
  }
  void tversky_fwd(const TverskyParams& p, const Tensor& probs, const Tensor& target, const Tensor& loss,
                   const Tensor& stats) override {
    const NC s = nc_of(probs);
    dispatch_float(probs, "tversky", [&]<typename T>() {
      const int64_t bad = cpu::tversky_fwd<T>(p, s.n, s.c, s.hw, probs.data<T>(), target.data<int32_t>(),
                                              loss.data<T>(), stats.data<T>());
      if (bad >= 0) bad_label("tversky", target, bad, s.c);
    });
  }
  void tversky_bwd(const TverskyParams& p, const Tensor& dloss, const Tensor& target, const Tensor& stats,
                   const Tensor& dprobs) override {
    const NC s = nc_of(dprobs);
    dispatch_float(dprobs, "tversky_bwd", [&]<typename T>() {
      cpu::tversky_bwd<T>(p, s.n, s.c, s.hw, dloss.data<T>(), target.data<int32_t>(), stats.data<T>(),
                          dprobs.data<T>(), acc(dprobs));
    });
  }

  void ce_tversky_fwd(const TverskyParams& p, const Tensor& logits, const Tensor& target, const Tensor& weight,
                      const Tensor& loss, const Tensor& stats) override {
    const NC s = nc_of(logits);
    dispatch_float(logits, "ce_tversky", [&]<typename T>() {
      const int64_t bad = cpu::ce_tversky_fwd<T>(p, s.n, s.c, s.hw, logits.data<T>(), target.data<int32_t>(),
                                                 weight.data<T>(), loss.data<T>(), stats.data<T>());
      if (bad >= 0) bad_label("ce_tversky", target, bad, s.c);
    });
  }
  void ce_tversky_bwd(const TverskyParams& p, const Tensor& dloss, const Tensor& logits, const Tensor& target,
                      const Tensor& weight, const Tensor& stats, const Tensor& dlogits) override {
    const NC s = nc_of(logits);
    dispatch_float(logits, "ce_tversky_bwd", [&]<typename T>() {
      cpu::ce_tversky_bwd<T>(p, s.n, s.c, s.hw, dloss.data<T>(), logits.data<T>(), target.data<int32_t>(),
                             weight.data<T>(), stats.data<T>(), dlogits.data<T>(), acc(dlogits));
    });
  }
  void weighted_sum_fwd(const std::vector<Tensor>& xs, const std::vector<double>& w, const Tensor& y) override {
    dispatch_float(y, "weighted_sum", [&]<typename T>() {
      std::vector<const T*> p;
      for (const Tensor& x : xs) p.push_back(x.data<T>());
      cpu::weighted_sum_fwd<T>(static_cast<int64_t>(xs.size()), p.data(), w.data(), y.numel(), y.data<T>());
    });
  }
  void weighted_sum_bwd(const Tensor& dy, const std::vector<double>& w, const std::vector<Tensor>& dxs) override {
    dispatch_float(dy, "weighted_sum_bwd", [&]<typename T>() {
      std::vector<T*> p;
      const std::unique_ptr<bool[]> flags(new bool[dxs.size()]);  // vector<bool> has no data()
      for (size_t i = 0; i < dxs.size(); ++i) p.push_back(ptr<T>(dxs[i])), flags[i] = acc(dxs[i]);
      cpu::weighted_sum_bwd<T>(static_cast<int64_t>(dxs.size()), dy.data<T>(), w.data(), dy.numel(), p.data(),
                               flags.get());
    });
  }

  void adamw_step(const AdamWParams& a, const Tensor& state, const std::vector<Tensor>& params,
                  const std::vector<Tensor>& m, const std::vector<Tensor>& v, const Tensor& skip) override {
    double* s = state.data<double>();
    if (!cpu::adamw_advance(s, a.beta1, a.beta2, a.weight_decay, skip.defined() ? skip.data<float>() : nullptr))
      return;
    AdamWParams b = a;
    b.lr = s[cpu::kAdamWLr];
    const auto step = static_cast<int64_t>(s[cpu::kAdamWStep]);
    std::vector<cpu::AdamWTensor<float>> f32;  // one multi-tensor update per dtype
    std::vector<cpu::AdamWTensor<double>> f64;
    for (size_t i = 0; i < params.size(); ++i) {
      const Tensor& p = params[i];
      const Tensor g = p.grad();
      if (!g.defined()) continue;
      dispatch_float(p, "adamw", [&]<typename T>() {
        auto& list = [&]() -> auto& { if constexpr (std::is_same_v<T, float>) return f32; else return f64; }();
        list.push_back({p.numel(), p.data<T>(), g.data<T>(), m[i].data<T>(), v[i].data<T>()});
      });
    }
    cpu::adamw_update_multi(b, step, f32.data(), static_cast<int64_t>(f32.size()));
    cpu::adamw_update_multi(b, step, f64.data(), static_cast<int64_t>(f64.size()));
  }

  void grad_unscale(const std::vector<Tensor>& grads, const cpu::LossScaleParams& p, const Tensor& state) override {
    check_grad_unscale(grads, state);
    std::vector<float*> g;
    std::vector<int64_t> n;
    for (const Tensor& t : grads) g.push_back(t.data<float>()), n.push_back(t.numel());
    cpu::grad_unscale(g.data(), n.data(), static_cast<int64_t>(g.size()), state.data<float>());
    cpu::loss_scale_update(p, state.data<float>());
  }

  void augment(const Tensor& draws, int64_t pad, const Tensor& images, const Tensor& labels,
               const Tensor& out_images, const Tensor& out_labels) override {
    const int64_t B = images.size(0), S = images.size(2), O = out_images.size(2);
    const float* img = images.data<float>();
    const int32_t* lab = ptr<int32_t>(labels);
    float* oimg = out_images.data<float>();
    int32_t* olab = ptr<int32_t>(out_labels);
    const int32_t* words = draws.data<int32_t>();
    std::exception_ptr failed;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t b = 0; b < B; ++b) {
      try {
        data::AugmentDraw d;
        data::unpack_augment_draws(words + b * data::kAugDrawWords, 1, &d);
        data::augment_cpu(d, img + b * data::kAugChannels * S * S, lab ? lab + b * S * S : nullptr, S,
                          oimg + b * data::kAugChannels * O * O, olab ? olab + b * O * O : nullptr, O, pad);
      } catch (...) {
#pragma omp critical(lk_cpu_augment)
        failed = std::current_exception();
      }
    }
    if (failed) std::rethrow_exception(failed);
  }

  std::unique_ptr<UploadRing> make_upload_ring(const std::vector<std::pair<Shape, DType>>& parts,
                                               int slots) override;

 private:
  [[noreturn]] static void bad_label(const char* op, const Tensor& target, int64_t at, int64_t c) {
    throw std::invalid_argument(std::string(op) + ": label " + std::to_string(target.data<int32_t>()[at]) +
                                " at flat index " + std::to_string(at) + " is outside [0, " +
                                std::to_string(c) + ")");
  }
};

// Host and "device" are the same memory: nothing to copy or wait for.
class CpuUploadRing final : public UploadRing {
 public:
  CpuUploadRing(const std::vector<std::pair<Shape, DType>>& parts, int slots) : parts_(static_cast<int>(parts.size())) {
    if (slots < 1 || parts.empty()) throw std::invalid_argument("make_upload_ring: needs at least one slot and part");
    for (int k = 0; k < slots; ++k)
      for (const auto& [shape, dtype] : parts) host_.push_back(Tensor::empty(shape, dtype));
  }
  int slots() const override { return static_cast<int>(host_.size()) / parts_; }
  int parts() const override { return parts_; }
  const Tensor& host(int slot, int part) const override { return host_.at(static_cast<size_t>(slot * parts_ + part)); }
  void wait_writable(int) override {}
  void upload(int, int64_t) override {}
  std::vector<Tensor> acquire(int slot, int64_t rows) override {
    std::vector<Tensor> out;
    for (int p = 0; p < parts_; ++p) out.push_back(host(slot, p).head(rows));
    return out;
  }
  void release(int) override {}

 private:
  int parts_;
  std::vector<Tensor> host_;
};

std::unique_ptr<UploadRing> CpuBackend::make_upload_ring(const std::vector<std::pair<Shape, DType>>& parts,
                                                         int slots) {
  return std::make_unique<CpuUploadRing>(parts, slots);
}

std::mutex g_registry_mutex;
std::array<Backend*, 2> g_registry{};  // indexed by DeviceType

}  // namespace

Backend& backend(Device d) {
  static CpuBackend cpu_backend;
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  Backend* b = g_registry[static_cast<size_t>(d.type)];
  if (!b && d.type == DeviceType::CPU) return cpu_backend;  // unless a profiler stands in front of it
  if (!b) throw std::runtime_error("no backend registered for device " + d.str());
  return *b;
}

void register_backend(Device d, Backend* b) {
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  g_registry[static_cast<size_t>(d.type)] = b;
}

const char* variant_name(KernelVariant v) {
  switch (v) {
    case KernelVariant::Fast: return "fast";
    case KernelVariant::PlainLoops: return "plain_loops";
    case KernelVariant::Cudnn: return "cudnn";
    case KernelVariant::Im2colBlas: return "im2col_blas";
  }
  return "?";
}

void check_grad_unscale(const std::vector<Tensor>& grads, const Tensor& state) {
  if (state.dtype() != DType::F32 || state.numel() != cpu::kLossScaleStateSize)
    throw std::invalid_argument("grad_unscale: the state must be a loss scaler's (float32, " +
                                std::to_string(cpu::kLossScaleStateSize) + " elements)");
  for (const Tensor& g : grads) {
    if (g.dtype() != DType::F32)
      throw std::invalid_argument(std::string("grad_unscale: gradients are float32, got ") + dtype_name(g.dtype()));
    if (!(g.device() == state.device()))
      throw std::invalid_argument("grad_unscale: a gradient on " + g.device().str() + ", the state on " +
                                  state.device().str());
  }
}

KernelVariant Backend::checked(KernelVariant v) const {
  for (KernelVariant have : variants())
    if (have == v) return v;
  throw std::invalid_argument(describe() + ": no " + variant_name(v) + " kernels on this backend");
}

}  // namespace lk
