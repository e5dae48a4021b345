// The paper's three networks (docs/MODELS.md): ResSE-LKA-UNet and the two
// baselines of its Tables 4-5, U-Net and Attention U-Net, sharing one
// encoder-decoder skeleton, one configuration and the deep-supervision heads.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/module.h"
#include "model/blocks.h"

namespace lk::model {

enum class Arch { ResSELKAUNet, UNet, AttentionUNet };
Arch parse_arch(const std::string& name);  // resse_lka_unet, unet, attention_unet
std::string arch_name(Arch a);

struct NetConfig {
  Arch arch = Arch::ResSELKAUNet;
  int64_t in_channels = 4;
  int64_t classes = 4;
  std::vector<int64_t> widths{32, 64, 128, 256, 512};
  bool deep_supervision = true;
  int64_t se_ratio = 16;
  int64_t se_min_hidden = 4;
  int64_t lka_dilation = 1;
  uint64_t seed = 42;  // initialisation
};

class SegNet : public Module {
 public:
  explicit SegNet(const NetConfig& cfg);
  // x (N, in, S, S), S divisible by 2^(levels-1). Returns the logits
  // [main (S), aux.0 (S/2), aux.1 (S/4), aux.2 (S/8)]; main only without
  // deep supervision.
  std::vector<Tensor> forward(const Tensor& x) const;
  const NetConfig& config() const { return cfg_; }

  // Mixed precision: the dtype of the activations inside the network
  // (float32, the default; bfloat16 or float16, on the CUDA backend). The
  // input is cast to it and the logits back to float32, so the loss and
  // everything outside see float32; parameters, their gradients and the
  // batch-norm statistics stay float32 (engine/ops.h).
  void set_precision(DType activations);
  DType precision() const { return precision_; }

  // One line per layer with its output shape and parameter count for an
  // input of (batch, in, size, size), the total parameters, and the memory a
  // forward+backward needs (activations kept for backward, gradients,
  // parameters), measured by running it.
  std::string summary(int64_t batch, int64_t size) const;

 private:
  using Trace = std::function<void(const std::string& name, const Tensor& out)>;
  std::vector<Tensor> run(const Tensor& x, const Trace& trace) const;

  NetConfig cfg_;
  DType precision_ = DType::F32;
  Rng rng_;
  ModuleList& enc_;
  ContextExtraction* ce_ = nullptr;
  ModuleList& dec_;
  Conv2d& head_;
  ModuleList* aux_ = nullptr;
  std::vector<Block*> enc_blocks_;  // typed views of the children of enc_
  std::vector<DecoderLevel*> dec_levels_;
  std::vector<Conv2d*> aux_heads_;
};

}  // namespace lk::model
