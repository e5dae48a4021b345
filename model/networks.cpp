#include "model/networks.h"

#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "engine/autograd.h"
#include "model/loss.h"

namespace lk::model {

Arch parse_arch(const std::string& name) {
  if (name == "resse_lka_unet") return Arch::ResSELKAUNet;
  if (name == "unet") return Arch::UNet;
  if (name == "attention_unet") return Arch::AttentionUNet;
  throw std::invalid_argument("unknown network '" + name + "' (expected resse_lka_unet, unet or attention_unet)");
}

std::string arch_name(Arch a) {
  switch (a) {
    case Arch::ResSELKAUNet: return "resse_lka_unet";
    case Arch::UNet: return "unet";
    case Arch::AttentionUNet: return "attention_unet";
  }
  return "?";
}

namespace {
const NetConfig& validated(const NetConfig& c) {
  if (c.widths.size() < 2) throw std::invalid_argument("network config: need at least 2 levels (widths)");
  if (c.deep_supervision && c.widths.size() < 4)
    throw std::invalid_argument("network config: deep supervision needs 4 or more levels (heads at 1/2, 1/4, 1/8)");
  for (int64_t w : c.widths)
    if (w < 1) throw std::invalid_argument("network config: widths must be positive");
  if (c.in_channels < 1 || c.classes < 2 || c.se_ratio < 1 || c.se_min_hidden < 1 || c.lka_dilation < 1)
    throw std::invalid_argument("network config: in_channels, se_ratio, se_min_hidden, lka_dilation >= 1, classes >= 2");
  return c;
}
}  // namespace

SegNet::SegNet(const NetConfig& cfg)
    : cfg_(validated(cfg)),
      rng_(cfg.seed),
      enc_(register_module("enc", std::make_unique<ModuleList>())),
      ce_(cfg.arch == Arch::ResSELKAUNet ? &register_module("ce", std::make_unique<ContextExtraction>(cfg.widths.back(), rng_))
                                         : nullptr),
      dec_(register_module("dec", std::make_unique<ModuleList>())),
      head_(register_module("head", std::make_unique<Conv2d>(cfg.widths[0], cfg.classes, 1, rng_))),
      aux_(cfg.deep_supervision ? &register_module("aux", std::make_unique<ModuleList>()) : nullptr) {
  // Children are created in the order above, then the levels: the
  // initialisation draws follow this order (fixed by the seed).
  const auto& w = cfg_.widths;
  const size_t levels = w.size();
  int64_t c_in = cfg_.in_channels;
  for (size_t i = 0; i < levels; ++i) {
    if (cfg_.arch == Arch::ResSELKAUNet) {
      const int64_t hidden = std::max(w[i] / cfg_.se_ratio, cfg_.se_min_hidden);
      enc_blocks_.push_back(&enc_.add(std::make_unique<ResSELKALevel>(c_in, w[i], hidden, cfg_.lka_dilation, rng_)));
    } else {
      enc_blocks_.push_back(&enc_.add(std::make_unique<ConvBlock>(c_in, w[i], rng_)));
    }
    c_in = w[i];
  }
  for (size_t j = 0; j + 1 < levels; ++j) {
    const size_t deep = levels - 1 - j;
    dec_levels_.push_back(
        &dec_.add(std::make_unique<DecoderLevel>(w[deep], w[deep - 1], cfg_.arch == Arch::AttentionUNet, rng_)));
  }
  if (aux_)
    for (int k = 0; k < 3; ++k) {
      // aux.k reads the decoder-path feature at 1/2^(k+1): level k+1's width.
      aux_heads_.push_back(&aux_->add(std::make_unique<Conv2d>(w[k + 1], cfg_.classes, 1, rng_)));
    }
}

std::vector<Tensor> SegNet::run(const Tensor& x, const Trace& trace) const {
  const size_t levels = enc_blocks_.size();
  const int64_t stride = int64_t{1} << (levels - 1);
  if (x.ndim() != 4 || x.size(1) != cfg_.in_channels || x.size(2) % stride || x.size(3) % stride)
    shape_error(arch_name(cfg_.arch), "input must be (N, " + std::to_string(cfg_.in_channels) + ", H, W) with H, W divisible by " +
                                          std::to_string(stride),
                x.shape());
  auto note = [&](const std::string& name, const Tensor& t) {
    if (trace) trace(name, t);
  };
  std::vector<Tensor> skips;
  // Mixed precision: in at the reduced type, logits out in float32.
  const bool reduced = is_reduced(precision_);
  auto out_cast = [&](const Tensor& t) { return reduced ? cast(t, DType::F32) : t; };
  Tensor h = reduced ? cast(x, precision_) : x;
  for (size_t i = 0; i < levels; ++i) {
    if (i > 0) h = max_pool2d(h, 2, 2);
    h = enc_blocks_[i]->forward(h);
    note("enc." + std::to_string(i), h);
    skips.push_back(h);
  }
  if (ce_) {
    h = ce_->forward(h);
    note("ce", h);
  }
  // Decoder-path features by scale: index s holds the feature at 1/2^s.
  std::vector<Tensor> path(levels);
  path[levels - 1] = h;
  for (size_t j = 0; j < dec_levels_.size(); ++j) {
    const size_t scale = levels - 2 - j;
    h = dec_levels_[j]->forward(h, skips[scale]);
    note("dec." + std::to_string(j), h);
    path[scale] = h;
  }
  std::vector<Tensor> out{out_cast(head_.forward(h))};
  note("head", out[0]);
  for (size_t k = 0; k < aux_heads_.size(); ++k) {
    out.push_back(out_cast(aux_heads_[k]->forward(path[k + 1])));
    note("aux." + std::to_string(k), out.back());
  }
  return out;
}

std::vector<Tensor> SegNet::forward(const Tensor& x) const { return run(x, nullptr); }

void SegNet::set_precision(DType activations) {
  if (activations != DType::F32 && activations != DType::BF16 && activations != DType::F16)
    throw std::invalid_argument(std::string("network precision: float32, bfloat16 or float16, not ") +
                                dtype_name(activations));
  precision_ = activations;
}

std::string SegNet::summary(int64_t batch, int64_t size) const {
  std::ostringstream o;
  o << arch_name(cfg_.arch) << ": widths";
  for (int64_t w : cfg_.widths) o << ' ' << w;
  o << ", " << cfg_.classes << " classes, deep supervision " << (cfg_.deep_supervision ? "on" : "off") << "\n";

  // Parameter count per top-level block, keyed by the name prefix.
  auto params_under = [&](const std::string& prefix) {
    int64_t n = 0;
    for (const auto& [name, t] : named_parameters())
      if (name.rfind(prefix + ".", 0) == 0) n += t.numel();
    return n;
  };
  char line[160];
  std::snprintf(line, sizeof line, "  %-8s %-24s %12s\n", "layer", "output", "parameters");
  o << line;

  const Tensor x = Tensor::zeros({batch, cfg_.in_channels, size, size});
  const MemoryStats before = cpu_memory_stats();
  reset_cpu_memory_peak();
  size_t after_forward = 0;
  {
    // Measure a real training step's forward+backward (batch statistics).
    std::vector<Tensor> out = run(x, [&](const std::string& name, const Tensor& t) {
      std::snprintf(line, sizeof line, "  %-8s %-24s %12lld\n", name.c_str(), shape_str(t.shape()).c_str(),
                    static_cast<long long>(params_under(name)));
      o << line;
    });
    after_forward = cpu_memory_stats().current - before.current;
    const Tensor labels = Tensor::zeros({batch, size, size}, DType::I32);
    LossConfig lc;
    lc.class_weights.assign(static_cast<size_t>(cfg_.classes), 1.0);
    backward(deep_supervision_loss(out, labels, lc).total);
  }
  const MemoryStats after = cpu_memory_stats();
  const auto params = parameters();
  int64_t count = 0;
  for (const Tensor& p : params) count += p.numel();
  const double mib = 1.0 / (1 << 20);
  std::snprintf(line, sizeof line, "total parameters: %lld (%.1f MiB in float32)\n", static_cast<long long>(count),
                static_cast<double>(count) * 4 * mib);
  o << line;
  std::snprintf(line, sizeof line,
                "memory for forward+backward at batch %lld, %lldx%lld, float32: %.1f MiB peak "
                "(%.1f MiB kept by the forward for backward; parameters and gradients included)\n",
                static_cast<long long>(batch), static_cast<long long>(size), static_cast<long long>(size),
                static_cast<double>(after.peak - before.current) * mib + static_cast<double>(count) * 4 * mib,
                static_cast<double>(after_forward) * mib);
  o << line;
  // A training step also holds AdamW's two float32 moments per parameter.
  // bf16/fp16 activations (--precision, CUDA only, so not measured here):
  // parameters, their gradients and moments stay float32 (16 B per
  // parameter; a convolution narrows its weight per call, keeping no 16-bit
  // copy), every other tensor of the step is taken at half size (the float32
  // logits, loss and BN statistics are small beside the activations; the
  // float32 twins of the ops without a 16-bit kernel, one op's tensors at a
  // time, are not counted). The float32 peak is the CPU backend's, which
  // also keeps each convolution's input in oneDNN's layout (a GPU does not):
  // on a GPU activations weigh less against the 16 B per parameter, and the
  // ratio comes out a little higher (docs/PERFORMANCE.md).
  const double p4 = static_cast<double>(count) * 4;
  const double f32_fb = static_cast<double>(after.peak - before.current) + p4;  // forward+backward, p + g
  const double f32_step = f32_fb + 2 * p4;
  const double half_step = 4 * p4 + (f32_fb - 2 * p4) / 2;
  std::snprintf(line, sizeof line,
                "memory of a training step (+ AdamW's moments), float32: %.1f MiB; with bf16/fp16 activations: "
                "%.1f MiB (computed: %.2fx float32's)\n",
                f32_step * mib, half_step * mib, half_step / f32_step);
  o << line;
  const_cast<SegNet*>(this)->zero_grad();
  return o.str();
}

}  // namespace lk::model
