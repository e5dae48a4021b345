#include "model/tiny_unet.h"

namespace lk::model {

ConvBnRelu::ConvBnRelu(int64_t c_in, int64_t c_out, Rng& rng)
    : conv_(register_module("conv", std::make_unique<Conv2d>(c_in, c_out, 3, rng, Conv2dOptions{.padding = 1}))),
      bn_(register_module("bn", std::make_unique<BatchNorm2d>(c_out))) {}

Tensor ConvBnRelu::forward(const Tensor& x) const { return relu(bn_.forward(conv_.forward(x))); }

TinyUNet::TinyUNet(int64_t in, int64_t classes, int64_t w, uint64_t seed)
    : rng_(seed),
      enc1_(register_module("enc1", std::make_unique<ConvBnRelu>(in, w, rng_))),
      enc2_(register_module("enc2", std::make_unique<ConvBnRelu>(w, 2 * w, rng_))),
      up_(register_module("up", std::make_unique<ConvTranspose2d>(2 * w, w, 2, 2, rng_))),
      dec_(register_module("dec", std::make_unique<ConvBnRelu>(2 * w, w, rng_))),
      head_(register_module("head", std::make_unique<Conv2d>(w, classes, 1, rng_))) {}

Tensor TinyUNet::forward(const Tensor& x) const {
  Tensor s1 = enc1_.forward(x);                 // (N, w, S, S)
  Tensor s2 = enc2_.forward(max_pool2d(s1));    // (N, 2w, S/2, S/2)
  Tensor u = up_.forward(s2);                   // (N, w, S, S)
  return head_.forward(dec_.forward(concat({u, s1})));
}

}  // namespace lk::model
