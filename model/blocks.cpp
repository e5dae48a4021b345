#include "model/blocks.h"

namespace lk::model {

namespace {
constexpr Conv2dOptions kPad1{.padding = 1};
}  // namespace

// Shorthands that keep the constructors declarative (rng is the
// constructor's generator).
#define LK_CONV(name, cin, cout, k, opts, bias) \
  register_module(name, std::make_unique<Conv2d>(cin, cout, k, rng, Conv2dOptions(opts), bias))
#define LK_BN(name, c) register_module(name, std::make_unique<BatchNorm2d>(c))

ConvBlock::ConvBlock(int64_t c_in, int64_t c_out, Rng& rng)
    : conv1_(LK_CONV("conv1", c_in, c_out, 3, kPad1, false)),
      bn1_(LK_BN("bn1", c_out)),
      conv2_(LK_CONV("conv2", c_out, c_out, 3, kPad1, false)),
      bn2_(LK_BN("bn2", c_out)) {}

Tensor ConvBlock::forward(const Tensor& x) const {
  return bn2_.forward_relu(conv2_.forward(bn1_.forward_relu(conv1_.forward(x))));
}

SqueezeExcite::SqueezeExcite(int64_t c, int64_t hidden, Rng& rng)
    : fc1_(register_module("fc1", std::make_unique<Linear>(c, hidden, rng))),
      fc2_(register_module("fc2", std::make_unique<Linear>(hidden, c, rng))) {}

Tensor SqueezeExcite::forward(const Tensor& x) const {
  const int64_t n = x.size(0), c = x.size(1);
  const Tensor z = reshape(global_avg_pool(x), {n, c});
  const Tensor s = sigmoid(fc2_.forward(relu(fc1_.forward(z))));
  return mul(x, reshape(s, {n, c, 1, 1}));
}

ResSE::ResSE(int64_t c_in, int64_t c_out, int64_t se_hidden, Rng& rng)
    : conv1_(LK_CONV("conv1", c_in, c_out, 3, kPad1, false)),
      bn1_(LK_BN("bn1", c_out)),
      conv2_(LK_CONV("conv2", c_out, c_out, 3, kPad1, false)),
      bn2_(LK_BN("bn2", c_out)),
      skip_conv_(c_in != c_out ? &LK_CONV("skip_conv", c_in, c_out, 1, {}, false) : nullptr),
      skip_bn_(c_in != c_out ? &LK_BN("skip_bn", c_out) : nullptr),
      se_(register_module("se", std::make_unique<SqueezeExcite>(c_out, se_hidden, rng))) {}

Tensor ResSE::forward(const Tensor& x) const {
  // F = skip + relu(bn2(conv2(...))): the add fused into bn2's ReLU.
  const Tensor h = bn1_.forward_relu(conv1_.forward(x));
  const Tensor skip = skip_conv_ ? skip_bn_->forward(skip_conv_->forward(x)) : x;
  return se_.forward(bn2_.forward_relu(conv2_.forward(h), skip, BnResidual::AfterRelu));
}

LKA::LKA(int64_t c, int64_t d, Rng& rng)
    : dw5_(LK_CONV("dw5", c, c, 5, (Conv2dOptions{.padding = 2, .groups = c}), true)),
      dw7_(LK_CONV("dw7", c, c, 7, (Conv2dOptions{.padding = 3 * d, .dilation = d, .groups = c}), true)),
      pw_(LK_CONV("pw", c, c, 1, {}, false)),
      bn_(LK_BN("bn", c)) {}

Tensor LKA::forward(const Tensor& x) const {
  return bn_.gate(x, pw_.forward(dw7_.forward(dw5_.forward(x))));  // x * sigmoid(bn(...)), fused
}

ResSELKALevel::ResSELKALevel(int64_t c_in, int64_t c_out, int64_t se_hidden, int64_t d, Rng& rng)
    : res_(register_module("res", std::make_unique<ResSE>(c_in, c_out, se_hidden, rng))),
      lka_(register_module("lka", std::make_unique<LKA>(c_out, d, rng))) {}

Tensor ResSELKALevel::forward(const Tensor& x) const { return lka_.forward(res_.forward(x)); }

ContextExtraction::ContextExtraction(int64_t c, Rng& rng)
    : b1_(LK_CONV("b1", c, c, 1, {}, false)),
      b2_(LK_CONV("b2", c, c, 3, kPad1, false)),
      b3_(LK_CONV("b3", c, c, 1, {}, false)),
      bn_(LK_BN("bn", c)) {}

Tensor ContextExtraction::forward(const Tensor& x) const {
  const Tensor local = add(b1_.forward(x), b2_.forward(x));
  return bn_.forward_relu(add(local, b3_.forward(global_avg_pool(x))));
}

AttentionGate::AttentionGate(int64_t c, int64_t f_int, Rng& rng)
    : w_g_(LK_CONV("w_g", c, f_int, 1, {}, true)),
      bn_g_(LK_BN("bn_g", f_int)),
      w_x_(LK_CONV("w_x", c, f_int, 1, {}, true)),
      bn_x_(LK_BN("bn_x", f_int)),
      psi_(LK_CONV("psi", f_int, 1, 1, {}, true)),
      bn_psi_(LK_BN("bn_psi", 1)) {}

Tensor AttentionGate::forward(const Tensor& g, const Tensor& x) const {
  // relu(bn_g(w_g(g)) + bn_x(w_x(x))): the add and the ReLU fused into bn_x.
  const Tensor a = bn_x_.forward_relu(w_x_.forward(x), bn_g_.forward(w_g_.forward(g)), BnResidual::BeforeRelu);
  return mul(x, sigmoid(bn_psi_.forward(psi_.forward(a))));
}

DecoderLevel::DecoderLevel(int64_t c_in, int64_t c_skip, bool attention, Rng& rng)
    : up_(register_module("up", std::make_unique<ConvTranspose2d>(c_in, c_skip, 2, 2, rng))),
      att_(attention ? &register_module("att", std::make_unique<AttentionGate>(c_skip, std::max<int64_t>(c_skip / 2, 1), rng))
                     : nullptr),
      conv1_(LK_CONV("conv1", 2 * c_skip, c_skip, 3, kPad1, false)),
      bn1_(LK_BN("bn1", c_skip)),
      conv2_(LK_CONV("conv2", c_skip, c_skip, 3, kPad1, false)),
      bn2_(LK_BN("bn2", c_skip)) {}

Tensor DecoderLevel::forward(const Tensor& x, const Tensor& skip) const {
  const Tensor u = up_.forward(x);
  const Tensor s = att_ ? att_->forward(u, skip) : skip;
  const Tensor h = bn1_.forward_relu(conv1_.forward(concat({u, s})));
  return bn2_.forward_relu(conv2_.forward(h));
}

#undef LK_CONV
#undef LK_BN

}  // namespace lk::model
