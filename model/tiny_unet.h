// A two-level U-Net small enough to train in seconds on the CPU: the quick
// demo and the end-to-end training test. The paper's networks live beside it
// (model issue).
//   enc: conv3x3-BN-ReLU (4 -> w) | maxpool | conv3x3-BN-ReLU (w -> 2w)
//   dec: convT 2x2 s2 (2w -> w) | concat skip | conv3x3-BN-ReLU (2w -> w)
//   head: conv1x1 (w -> classes)
#pragma once

#include "engine/module.h"

namespace lk::model {

class ConvBnRelu : public Module {
 public:
  ConvBnRelu(int64_t c_in, int64_t c_out, Rng& rng);
  Tensor forward(const Tensor& x) const;

 private:
  Conv2d& conv_;
  BatchNorm2d& bn_;
};

class TinyUNet : public Module {
 public:
  TinyUNet(int64_t in_channels, int64_t classes, int64_t width, uint64_t seed);
  Tensor forward(const Tensor& x) const;  // (N, in, S, S) -> logits (N, classes, S, S)

 private:
  Rng rng_;
  ConvBnRelu& enc1_;
  ConvBnRelu& enc2_;
  ConvTranspose2d& up_;
  ConvBnRelu& dec_;
  Conv2d& head_;
};

}  // namespace lk::model
