// The building blocks of the paper's networks (docs/MODELS.md is the exact
// contract, parameter names included). Each block is a Module whose child
// names are the state_dict keys of the PyTorch reference.
#pragma once

#include <vector>

#include "engine/module.h"

namespace lk::model {

// A single-input block: an encoder level of any of the networks.
class Block : public Module {
 public:
  virtual Tensor forward(const Tensor& x) const = 0;
};

// conv3x3-BN-ReLU twice: conv1, bn1, conv2, bn2.
class ConvBlock : public Block {
 public:
  ConvBlock(int64_t c_in, int64_t c_out, Rng& rng);
  Tensor forward(const Tensor& x) const override;

 private:
  Conv2d& conv1_;
  BatchNorm2d& bn1_;
  Conv2d& conv2_;
  BatchNorm2d& bn2_;
};

// Squeeze-and-excitation: s = sigmoid(fc2(relu(fc1(GAP(x))))), y = x * s.
class SqueezeExcite : public Module {
 public:
  SqueezeExcite(int64_t c, int64_t hidden, Rng& rng);
  Tensor forward(const Tensor& x) const;

 private:
  Linear& fc1_;
  Linear& fc2_;
};

// Residual block with SE recalibration: F = skip(x) + R(x); y = SE(F).
class ResSE : public Module {
 public:
  ResSE(int64_t c_in, int64_t c_out, int64_t se_hidden, Rng& rng);
  Tensor forward(const Tensor& x) const;

 private:
  Conv2d& conv1_;
  BatchNorm2d& bn1_;
  Conv2d& conv2_;
  BatchNorm2d& bn2_;
  Conv2d* skip_conv_ = nullptr;  // only when channels change
  BatchNorm2d* skip_bn_ = nullptr;
  SqueezeExcite& se_;
};

// Large kernel attention: y = x * sigmoid(bn(pw(dw7(dw5(x))))).
class LKA : public Module {
 public:
  LKA(int64_t c, int64_t dilation, Rng& rng);
  Tensor forward(const Tensor& x) const;

 private:
  Conv2d& dw5_;
  Conv2d& dw7_;
  Conv2d& pw_;
  BatchNorm2d& bn_;
};

// An encoder level of ResSE-LKA-UNet: res (ResSE) then lka.
class ResSELKALevel : public Block {
 public:
  ResSELKALevel(int64_t c_in, int64_t c_out, int64_t se_hidden, int64_t dilation, Rng& rng);
  Tensor forward(const Tensor& x) const override;

 private:
  ResSE& res_;
  LKA& lka_;
};

// Context extraction at the bottleneck: relu(bn(b1(x) + b2(x) + b3(GAP(x)))).
class ContextExtraction : public Module {
 public:
  ContextExtraction(int64_t c, Rng& rng);
  Tensor forward(const Tensor& x) const;

 private:
  Conv2d& b1_;
  Conv2d& b2_;
  Conv2d& b3_;
  BatchNorm2d& bn_;
};

// Additive attention gate (Oktay et al. 2018) with the upsampled decoder
// feature as gating signal: x * sigmoid(bn_psi(psi(relu(bn_g(w_g(g)) + bn_x(w_x(x)))))).
class AttentionGate : public Module {
 public:
  AttentionGate(int64_t c, int64_t f_int, Rng& rng);
  Tensor forward(const Tensor& g, const Tensor& x) const;

 private:
  Conv2d& w_g_;
  BatchNorm2d& bn_g_;
  Conv2d& w_x_;
  BatchNorm2d& bn_x_;
  Conv2d& psi_;
  BatchNorm2d& bn_psi_;
};

// up (2x2 stride-2 transposed conv), optional attention on the skip,
// concat [up, skip], then conv1/bn1/conv2/bn2.
class DecoderLevel : public Module {
 public:
  DecoderLevel(int64_t c_in, int64_t c_skip, bool attention, Rng& rng);
  Tensor forward(const Tensor& x, const Tensor& skip) const;

 private:
  ConvTranspose2d& up_;
  AttentionGate* att_ = nullptr;
  Conv2d& conv1_;
  BatchNorm2d& bn1_;
  Conv2d& conv2_;
  BatchNorm2d& bn2_;
};

}  // namespace lk::model
