#include "engine/profiler.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>

#include <nlohmann/json.hpp>

#if defined(LKASEG_NVTX) && __has_include(<nvtx3/nvToolsExt.h>)
#include <nvtx3/nvToolsExt.h>
#define LK_HAVE_NVTX 1
#else
#define LK_HAVE_NVTX 0
#endif

namespace lk {

// ------------------------------------------------------------------ timeline, NVTX

namespace {
class HostTimeline final : public Timeline {
 public:
  int64_t mark() override {
    marks_.push_back(std::chrono::steady_clock::now());
    return static_cast<int64_t>(marks_.size()) - 1;
  }
  std::vector<double> resolve() override {
    std::vector<double> s;
    for (const auto& m : marks_) s.push_back(std::chrono::duration<double>(m - marks_.front()).count());
    return s;
  }

 private:
  std::vector<std::chrono::steady_clock::time_point> marks_;
};
}  // namespace

std::unique_ptr<Timeline> make_host_timeline() { return std::make_unique<HostTimeline>(); }

NvtxRange::NvtxRange([[maybe_unused]] const char* name) {
#if LK_HAVE_NVTX
  nvtxRangePushA(name);
#endif
}
NvtxRange::~NvtxRange() {
#if LK_HAVE_NVTX
  nvtxRangePop();
#endif
}
bool nvtx_available() { return LK_HAVE_NVTX != 0; }

// ------------------------------------------------------------------ the decorator

namespace {
uint64_t nb(const Tensor& t) { return t.defined() ? t.nbytes() : 0; }
// Bytes of tensors read (or written) once.
uint64_t once(std::initializer_list<const Tensor*> ts) {
  uint64_t b = 0;
  for (const Tensor* t : ts) b += nb(*t);
  return b;
}
// A gradient output: written, and read too when the op adds into it.
uint64_t grad_out(const Tensor& t) { return nb(t) * (t.defined() && !t.first_write() ? 2 : 1); }
}  // namespace

class Profiler::Decorator final : public Backend {
 public:
  Decorator(Profiler& p, Backend& inner) : p_(p), b_(inner) {}

  Device device() const override { return b_.device(); }
  Allocator& allocator() override { return b_.allocator(); }
  void synchronize() override { b_.synchronize(); }
  std::unique_ptr<Graph> capture(const std::function<void()>& f, std::string* why) override {
    return b_.capture(f, why);
  }
  std::string describe() const override { return b_.describe(); }
  std::vector<KernelVariant> variants() const override { return b_.variants(); }

  // Every op: NVTX range, marks, the launch count, bytes.
  template <class F>
  void op(const char* name, uint64_t bytes, F&& f) {
    std::unique_ptr<NvtxRange> range;
    if (p_.opt_.nvtx) range = std::make_unique<NvtxRange>(name);
    p_.op_begin(name);
    f();
    p_.op_end(name, bytes);
  }

  void copy(const Tensor& src, const Tensor& dst) override {
    op("copy", once({&src, &dst}), [&] { b_.copy(src, dst); });
  }
  void fill(const Tensor& y, double v) override {
    op("fill", nb(y), [&] { b_.fill(y, v); });
  }
  void axpy(double a, const Tensor& x, const Tensor& y) override {
    op("axpy", nb(x) + grad_out(y), [&] { b_.axpy(a, x, y); });
  }

  void conv2d_fwd(const ConvGeom& g, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y) override {
    op("conv2d_fwd", once({&x, &w, &b, &y}), [&] { b_.conv2d_fwd(g, x, w, b, y); });
  }
  void scale(const Tensor& y, double a) override {
    op("scale", 2 * nb(y), [&] { b_.scale(y, a); });
  }
  void cast(const Tensor& src, const Tensor& dst, bool accumulate) override {
    op("cast", nb(src) + (accumulate ? grad_out(dst) : nb(dst)), [&] { b_.cast(src, dst, accumulate); });
  }
  void conv2d_bwd_data(const ConvGeom& g, const Tensor& dy, const Tensor& w, const Tensor& dx) override {
    op("conv2d_bwd_data", once({&dy, &w}) + grad_out(dx), [&] { b_.conv2d_bwd_data(g, dy, w, dx); });
  }
  void conv2d_bwd_weight(const ConvGeom& g, const Tensor& dy, const Tensor& x, const Tensor& dw,
                         const Tensor& db) override {
    op("conv2d_bwd_weight", once({&dy, &x}) + grad_out(dw) + grad_out(db),
       [&] { b_.conv2d_bwd_weight(g, dy, x, dw, db); });
  }
  std::shared_ptr<void> conv2d_fwd_train(const ConvGeom& g, const Tensor& x, const Tensor& w, const Tensor& b,
                                         const Tensor& y) override {
    std::shared_ptr<void> kept;
    op("conv2d_fwd", once({&x, &w, &b, &y}), [&] { kept = b_.conv2d_fwd_train(g, x, w, b, y); });
    return kept;
  }
  void conv2d_bwd(const ConvGeom& g, const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& b,
                  const Tensor& dx, const Tensor& dw, const Tensor& db, const std::shared_ptr<void>& kept) override {
    op("conv2d_bwd", once({&dy, &x, &w}) + grad_out(dx) + grad_out(dw) + grad_out(db),
       [&] { b_.conv2d_bwd(g, dy, x, w, b, dx, dw, db, kept); });
  }
  void conv_transpose2d_fwd(const ConvGeom& g, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y) override {
    op("conv_transpose2d_fwd", once({&x, &w, &b, &y}), [&] { b_.conv_transpose2d_fwd(g, x, w, b, y); });
  }
  void conv_transpose2d_bwd_data(const ConvGeom& g, const Tensor& dy, const Tensor& w, const Tensor& dx) override {
    op("conv_transpose2d_bwd_data", once({&dy, &w}) + grad_out(dx), [&] { b_.conv_transpose2d_bwd_data(g, dy, w, dx); });
  }
  void conv_transpose2d_bwd_weight(const ConvGeom& g, const Tensor& dy, const Tensor& x, const Tensor& dw,
                           const Tensor& db) override {
    op("conv_transpose2d_bwd_weight", once({&dy, &x}) + grad_out(dw) + grad_out(db),
       [&] { b_.conv_transpose2d_bwd_weight(g, dy, x, dw, db); });
  }

  void batch_norm_fwd(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& rm, const Tensor& rv,
                      bool training, double momentum, double eps, const Tensor& y, const Tensor& mean,
                      const Tensor& invstd) override {
    const uint64_t running = training ? 2 * once({&rm, &rv}) : once({&rm, &rv});
    op("batch_norm_fwd", once({&x, &gamma, &beta, &y, &mean, &invstd}) + running,
       [&] { b_.batch_norm_fwd(x, gamma, beta, rm, rv, training, momentum, eps, y, mean, invstd); });
  }
  void batch_norm_bwd(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                      const Tensor& invstd, bool training, const Tensor& dx, const Tensor& dgamma,
                      const Tensor& dbeta) override {
    op("batch_norm_bwd", once({&dy, &x, &gamma, &mean, &invstd}) + grad_out(dx) + grad_out(dgamma) + grad_out(dbeta),
       [&] { b_.batch_norm_bwd(dy, x, gamma, mean, invstd, training, dx, dgamma, dbeta); });
  }
  void batch_norm_relu_fwd(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& rm,
                           const Tensor& rv, bool training, double momentum, double eps, const Tensor& r,
                           BnResidual mode, const Tensor& y, const Tensor& mean, const Tensor& invstd) override {
    const uint64_t running = training ? 2 * once({&rm, &rv}) : once({&rm, &rv});
    op("batch_norm_relu_fwd", once({&x, &gamma, &beta, &r, &y, &mean, &invstd}) + running,
       [&] { b_.batch_norm_relu_fwd(x, gamma, beta, rm, rv, training, momentum, eps, r, mode, y, mean, invstd); });
  }
  void batch_norm_relu_bwd(BnResidual mode, const Tensor& dy, const Tensor& x, const Tensor& y, const Tensor& gamma,
                           const Tensor& beta, const Tensor& mean, const Tensor& invstd, bool training,
                           const Tensor& dx, const Tensor& dr, const Tensor& dgamma, const Tensor& dbeta) override {
    const Tensor y_read = mode == BnResidual::BeforeRelu ? y : Tensor();
    op("batch_norm_relu_bwd",
       once({&dy, &x, &y_read, &gamma, &beta, &mean, &invstd}) + grad_out(dx) + grad_out(dr) + grad_out(dgamma) +
           grad_out(dbeta),
       [&] { b_.batch_norm_relu_bwd(mode, dy, x, y, gamma, beta, mean, invstd, training, dx, dr, dgamma, dbeta); });
  }
  std::vector<double> batch_norm_sums(const Tensor& x, const std::vector<double>& mean, const Tensor& dy,
                                      const Tensor& save_mean, const Tensor& save_invstd) override {
    std::vector<double> out;
    op("batch_norm_sums", once({&x, &dy, &save_mean, &save_invstd}),
       [&] { out = b_.batch_norm_sums(x, mean, dy, save_mean, save_invstd); });
    return out;
  }
  void batch_norm_fwd_stats(const Tensor& x, const Tensor& gamma, const Tensor& beta, const std::vector<double>& mean,
                            const std::vector<double>& var, double eps, const Tensor& y, const Tensor& save_mean,
                            const Tensor& save_invstd) override {
    op("batch_norm_fwd_stats", once({&x, &gamma, &beta, &y, &save_mean, &save_invstd}),
       [&] { b_.batch_norm_fwd_stats(x, gamma, beta, mean, var, eps, y, save_mean, save_invstd); });
  }
  void batch_norm_bwd_dx(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                         const Tensor& save_invstd, const std::vector<double>& means, const Tensor& dx) override {
    op("batch_norm_bwd_dx", once({&dy, &x, &gamma, &save_mean, &save_invstd}) + grad_out(dx),
       [&] { b_.batch_norm_bwd_dx(dy, x, gamma, save_mean, save_invstd, means, dx); });
  }
  void lka_gate_fwd(const Tensor& x, const Tensor& f, const Tensor& gamma, const Tensor& beta, const Tensor& rm,
                    const Tensor& rv, bool training, double momentum, double eps, const Tensor& y, const Tensor& mean,
                    const Tensor& invstd) override {
    const uint64_t running = training ? 2 * once({&rm, &rv}) : once({&rm, &rv});
    op("lka_gate_fwd", once({&x, &f, &gamma, &beta, &y, &mean, &invstd}) + running,
       [&] { b_.lka_gate_fwd(x, f, gamma, beta, rm, rv, training, momentum, eps, y, mean, invstd); });
  }
  void lka_gate_bwd(const Tensor& dy, const Tensor& x, const Tensor& f, const Tensor& gamma, const Tensor& beta,
                    const Tensor& mean, const Tensor& invstd, bool training, const Tensor& dx, const Tensor& df,
                    const Tensor& dgamma, const Tensor& dbeta) override {
    op("lka_gate_bwd",
       once({&dy, &x, &f, &gamma, &beta, &mean, &invstd}) + grad_out(dx) + grad_out(df) + grad_out(dgamma) +
           grad_out(dbeta),
       [&] { b_.lka_gate_bwd(dy, x, f, gamma, beta, mean, invstd, training, dx, df, dgamma, dbeta); });
  }

  void activation_fwd(Activation a, const Tensor& x, const Tensor& y) override {
    op("activation_fwd", once({&x, &y}), [&] { b_.activation_fwd(a, x, y); });
  }
  void activation_bwd(Activation a, const Tensor& dy, const Tensor& y, const Tensor& dx) override {
    op("activation_bwd", once({&dy, &y}) + grad_out(dx), [&] { b_.activation_bwd(a, dy, y, dx); });
  }
  void binary_fwd(BinaryOp o, const Tensor& a, const Tensor& b, const Tensor& y) override {
    op("binary_fwd", once({&a, &b, &y}), [&] { b_.binary_fwd(o, a, b, y); });
  }
  void binary_bwd(BinaryOp o, const Tensor& dy, const Tensor& other, const Tensor& d_self) override {
    const uint64_t in = nb(dy) + (o == BinaryOp::Mul ? nb(other) : 0);
    op("binary_bwd", in + grad_out(d_self), [&] { b_.binary_bwd(o, dy, other, d_self); });
  }

  void global_avg_pool_fwd(const Tensor& x, const Tensor& y) override {
    op("global_avg_pool_fwd", once({&x, &y}), [&] { b_.global_avg_pool_fwd(x, y); });
  }
  void global_avg_pool_bwd(const Tensor& dy, const Tensor& dx) override {
    op("global_avg_pool_bwd", nb(dy) + grad_out(dx), [&] { b_.global_avg_pool_bwd(dy, dx); });
  }
  void max_pool2d_fwd(int64_t k, int64_t s, const Tensor& x, const Tensor& y, const Tensor& idx) override {
    op("max_pool2d_fwd", once({&x, &y, &idx}), [&] { b_.max_pool2d_fwd(k, s, x, y, idx); });
  }
  void max_pool2d_bwd(int64_t k, int64_t s, const Tensor& dy, const Tensor& idx, const Tensor& dx) override {
    op("max_pool2d_bwd", once({&dy, &idx}) + grad_out(dx), [&] { b_.max_pool2d_bwd(k, s, dy, idx, dx); });
  }
  void upsample_fwd(UpsampleMode m, int64_t f, const Tensor& x, const Tensor& y) override {
    op("upsample_fwd", once({&x, &y}), [&] { b_.upsample_fwd(m, f, x, y); });
  }
  void upsample_bwd(UpsampleMode m, int64_t f, const Tensor& dy, const Tensor& dx) override {
    op("upsample_bwd", nb(dy) + grad_out(dx), [&] { b_.upsample_bwd(m, f, dy, dx); });
  }
  // concat moves the source's share of the destination.
  void concat_fwd(int64_t offset, const Tensor& src, const Tensor& dst) override {
    op("concat_fwd", 2 * nb(src), [&] { b_.concat_fwd(offset, src, dst); });
  }
  void concat_bwd(int64_t offset, const Tensor& ddst, const Tensor& dsrc) override {
    op("concat_bwd", nb(dsrc) + grad_out(dsrc), [&] { b_.concat_bwd(offset, ddst, dsrc); });
  }
  void linear_fwd(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y) override {
    op("linear_fwd", once({&x, &w, &b, &y}), [&] { b_.linear_fwd(x, w, b, y); });
  }
  void linear_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& dx, const Tensor& dw,
                  const Tensor& db) override {
    op("linear_bwd", once({&dy, &x, &w}) + grad_out(dx) + grad_out(dw) + grad_out(db),
       [&] { b_.linear_bwd(dy, x, w, dx, dw, db); });
  }

  void softmax_fwd(const Tensor& x, const Tensor& y) override {
    op("softmax_fwd", once({&x, &y}), [&] { b_.softmax_fwd(x, y); });
  }
  void softmax_bwd(const Tensor& dy, const Tensor& y, const Tensor& dx) override {
    op("softmax_bwd", once({&dy, &y}) + grad_out(dx), [&] { b_.softmax_bwd(dy, y, dx); });
  }
  void cross_entropy_fwd(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,
                         const Tensor& probs, const Tensor& wsum) override {
    op("cross_entropy_fwd", once({&logits, &target, &weight, &loss, &probs, &wsum}),
       [&] { b_.cross_entropy_fwd(logits, target, weight, loss, probs, wsum); });
  }
  void cross_entropy_bwd(const Tensor& dloss, const Tensor& probs, const Tensor& target, const Tensor& weight,
                         const Tensor& wsum, const Tensor& dlogits) override {
    op("cross_entropy_bwd", once({&dloss, &probs, &target, &weight, &wsum}) + grad_out(dlogits),
       [&] { b_.cross_entropy_bwd(dloss, probs, target, weight, wsum, dlogits); });
  }
  void tversky_fwd(const TverskyParams& tp, const Tensor& probs, const Tensor& target, const Tensor& loss,
                   const Tensor& stats) override {
    op("tversky_fwd", once({&probs, &target, &loss, &stats}), [&] { b_.tversky_fwd(tp, probs, target, loss, stats); });
  }
  void tversky_bwd(const TverskyParams& tp, const Tensor& dloss, const Tensor& target, const Tensor& stats,
                   const Tensor& dprobs) override {
    op("tversky_bwd", once({&dloss, &target, &stats}) + grad_out(dprobs),
       [&] { b_.tversky_bwd(tp, dloss, target, stats, dprobs); });
  }

  void ce_tversky_fwd(const TverskyParams& tp, const Tensor& logits, const Tensor& target, const Tensor& weight,
                      const Tensor& loss, const Tensor& stats) override {
    op("ce_tversky_fwd", once({&logits, &target, &weight, &loss, &stats}),
       [&] { b_.ce_tversky_fwd(tp, logits, target, weight, loss, stats); });
  }
  void ce_tversky_bwd(const TverskyParams& tp, const Tensor& dloss, const Tensor& logits, const Tensor& target,
                      const Tensor& weight, const Tensor& stats, const Tensor& dlogits) override {
    op("ce_tversky_bwd", once({&dloss, &logits, &target, &weight, &stats}) + grad_out(dlogits),
       [&] { b_.ce_tversky_bwd(tp, dloss, logits, target, weight, stats, dlogits); });
  }
  void weighted_sum_fwd(const std::vector<Tensor>& xs, const std::vector<double>& w, const Tensor& y) override {
    uint64_t bytes = nb(y);
    for (const Tensor& x : xs) bytes += nb(x);
    op("weighted_sum_fwd", bytes, [&] { b_.weighted_sum_fwd(xs, w, y); });
  }
  void weighted_sum_bwd(const Tensor& dy, const std::vector<double>& w, const std::vector<Tensor>& dxs) override {
    uint64_t bytes = nb(dy);
    for (const Tensor& d : dxs) bytes += grad_out(d);
    op("weighted_sum_bwd", bytes, [&] { b_.weighted_sum_bwd(dy, w, dxs); });
  }

  // Reads each parameter and gradient, reads and writes the parameter and its moments.
  void adamw_step(const AdamWParams& a, const Tensor& state, const std::vector<Tensor>& params,
                  const std::vector<Tensor>& m, const std::vector<Tensor>& v, const Tensor& skip) override {
    uint64_t bytes = 2 * nb(state) + nb(skip);
    for (size_t i = 0; i < params.size(); ++i)
      if (params[i].grad().defined()) bytes += 2 * (nb(params[i]) + nb(m[i]) + nb(v[i])) + nb(params[i].grad());
    op("adamw_step", bytes, [&] { b_.adamw_step(a, state, params, m, v, skip); });
  }
  // Reads and writes each gradient and the state.
  void grad_unscale(const std::vector<Tensor>& grads, const cpu::LossScaleParams& p, const Tensor& state) override {
    uint64_t bytes = 2 * nb(state);
    for (const Tensor& g : grads) bytes += 2 * nb(g);
    op("grad_unscale", bytes, [&] { b_.grad_unscale(grads, p, state); });
  }

  void augment(const Tensor& draws, int64_t pad, const Tensor& images, const Tensor& labels,
               const Tensor& out_images, const Tensor& out_labels) override {
    op("augment", once({&draws, &images, &labels, &out_images, &out_labels}),
       [&] { b_.augment(draws, pad, images, labels, out_images, out_labels); });
  }
  std::unique_ptr<UploadRing> make_upload_ring(const std::vector<std::pair<Shape, DType>>& parts,
                                               int slots) override {
    return b_.make_upload_ring(parts, slots);
  }

 private:
  Profiler& p_;
  Backend& b_;
};

// ------------------------------------------------------------------ profiler

Profiler::Profiler(Device device, Options o) : device_(device), opt_(std::move(o)), inner_(&backend(device)) {
  decorator_ = std::make_unique<Decorator>(*this, *inner_);
  register_backend(device_, decorator_.get());
}

Profiler::~Profiler() { register_backend(device_, device_.type == DeviceType::CPU ? nullptr : inner_); }

void Profiler::reset() {
  calls_ = bytes_ = 0;
  ops_.clear();
  slices_.clear();
  times_.clear();
}

void Profiler::begin_phase(const std::string& name) {
  if (opt_.nvtx) {
#if LK_HAVE_NVTX
    nvtxRangePushA(name.c_str());
#endif
  }
  phase_stack_.emplace_back(name, opt_.timeline ? opt_.timeline->mark() : -1);
}

void Profiler::end_phase() {
  if (phase_stack_.empty()) throw std::logic_error("Profiler::end_phase without begin_phase");
  auto [name, begin] = phase_stack_.back();
  phase_stack_.pop_back();
  if (opt_.timeline) slices_.push_back({name, "phase", begin, opt_.timeline->mark()});
  if (opt_.nvtx) {
#if LK_HAVE_NVTX
    nvtxRangePop();
#endif
  }
}

void Profiler::op_begin(const char*) {
  op_launches_ = opt_.launches ? opt_.launches() : 0;
  op_mark_ = opt_.timeline && opt_.mark_ops ? opt_.timeline->mark() : -1;
}

void Profiler::op_end(const char* op, uint64_t bytes) {
  OpStats& s = ops_[op];
  ++s.calls;
  s.bytes += bytes;
  if (opt_.launches) s.launches += opt_.launches() - op_launches_;
  ++calls_;
  bytes_ += bytes;
  if (op_mark_ >= 0) slices_.push_back({op, "op", op_mark_, opt_.timeline->mark()});
}

void Profiler::finish() {
  if (!opt_.timeline) return;
  times_ = opt_.timeline->resolve();
  for (auto& [name, s] : ops_) s.seconds = 0;
  for (const TraceSlice& s : slices_)
    if (s.cat == "op") ops_[s.name].seconds += times_.at(s.end) - times_.at(s.begin);
}

std::string Profiler::trace_json() const {
  using json = nlohmann::json;
  const std::vector<std::string> tracks{"phase", "op", "kernel"};
  json events = json::array();
  for (size_t t = 0; t < tracks.size(); ++t)
    events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 1}, {"tid", t + 1},
                      {"args", {{"name", tracks[t] + "s"}}}});
  for (const TraceSlice& s : slices_) {
    if (s.begin < 0 || s.end < 0 || static_cast<size_t>(std::max(s.begin, s.end)) >= times_.size()) continue;
    const auto tid = std::find(tracks.begin(), tracks.end(), s.cat) - tracks.begin() + 1;
    const double ts = times_[s.begin] * 1e6, dur = std::max(0.0, times_[s.end] - times_[s.begin]) * 1e6;
    json e = {{"name", s.name}, {"cat", s.cat}, {"ph", "X"}, {"pid", 1}, {"tid", tid}, {"ts", ts}, {"dur", dur}};
    if (s.cat == "op") {
      auto it = ops_.find(s.name);
      if (it != ops_.end() && it->second.calls)
        e["args"] = {{"bytes_per_call", it->second.bytes / it->second.calls}};
    }
    events.push_back(std::move(e));
  }
  return json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump();
}

std::string Profiler::table(double per) const {
  std::vector<std::pair<std::string, OpStats>> rows(ops_.begin(), ops_.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return a.second.seconds != b.second.seconds ? a.second.seconds > b.second.seconds : a.second.bytes > b.second.bytes;
  });
  double total = 0;
  for (const auto& r : rows) total += r.second.seconds;
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-22s %10s %7s %9s %9s %12s\n", "op", "ms", "share", "calls", "launches",
                "MB");
  out += line;
  OpStats sum;
  for (const auto& [name, s] : rows) {
    std::snprintf(line, sizeof line, "%-22s %10.3f %6.1f%% %9.1f %9.1f %12.3f\n", name.c_str(), s.seconds / per * 1e3,
                  total > 0 ? 100.0 * s.seconds / total : 0.0, s.calls / per, s.launches / per, s.bytes / per / 1e6);
    out += line;
    sum.calls += s.calls, sum.launches += s.launches, sum.bytes += s.bytes;
  }
  std::snprintf(line, sizeof line, "%-22s %10.3f %6.1f%% %9.1f %9.1f %12.3f\n", "total", total / per * 1e3, 100.0,
                sum.calls / per, sum.launches / per, sum.bytes / per / 1e6);
  return out + line;
}

}  // namespace lk
