// The cuDNN convolution glue on a real GPU (label gpu; skipped without one):
// deterministic algorithms give bit-identical gradients run after run (the
// bit-exact resume), a plan is made once per geometry and reused, and the
// fast non-deterministic choice still computes the same convolution.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/cuda/caching_allocator.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/cudnn_conv.h"
#include "engine/cuda/device_info.h"
#include "kernels/conv2d.h"

namespace cu = lk::cuda;
using lk::ConvGeom;

namespace {

struct Buf {
  cu::CachingAllocator& a;
  size_t n;
  float* p;
  Buf(cu::CachingAllocator& alloc, const std::vector<float>& host)
      : a(alloc), n(host.size()), p(static_cast<float*>(alloc.allocate(n * sizeof(float)))) {
    LK_CUDA_CHECK(cudaMemcpy(p, host.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  }
  ~Buf() { a.deallocate(p, n * sizeof(float)); }
  std::vector<float> get() const {
    std::vector<float> h(n);
    LK_CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
  }
};

std::vector<float> randv(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("cuDNN convolutions: deterministic gradients, one plan per geometry", "[gpu][cudnn]") {
  if (cu::device_count() == 0) {
    WARN("no CUDA device (" << cu::why_none() << "): skipping");
    return;
  }
  LK_CUDA_CHECK(cudaSetDevice(0));
  cudaStream_t s = nullptr;
  LK_CUDA_CHECK(cudaStreamCreate(&s));
  {
    cu::CachingAllocator alloc(0);
    alloc.set_stream(s);
    cu::CudnnConv conv(s, alloc);
    REQUIRE(conv.deterministic());
    // A wide reduction over batch and space for the filter gradient, where
    // atomics would make the sum order (and so the bits) vary.
    ConvGeom g{8, 32, 64, 64, 32, 3, 3, 1, 1, 1, 1, 0, 0};
    REQUIRE(g.finish());
    const size_t nx = size_t(g.n * g.c_in * g.h * g.w), ny = size_t(g.n * g.c_out * g.oh * g.ow);
    const size_t nw = size_t(g.c_out * g.c_in * g.kh * g.kw);
    Buf x(alloc, randv(nx, 1)), w(alloc, randv(nw, 2)), dy(alloc, randv(ny, 3));
    auto grads = [&] {
      Buf dw(alloc, std::vector<float>(nw, 0.f)), db(alloc, std::vector<float>(size_t(g.c_out), 0.f)),
          dx(alloc, std::vector<float>(nx, 0.f)), y(alloc, std::vector<float>(ny, 0.f));
      conv.fwd(g, x.p, w.p, nullptr, y.p, false);
      conv.bwd_data(g, dy.p, w.p, dx.p);
      conv.bwd_filter(g, dy.p, x.p, dw.p, db.p);
      LK_CUDA_CHECK(cudaStreamSynchronize(s));
      return std::vector<std::vector<float>>{y.get(), dx.get(), dw.get(), db.get()};
    };
    const auto first = grads();
    for (int run = 0; run < 3; ++run) {
      const auto again = grads();
      for (size_t k = 0; k < first.size(); ++k) CHECK(bit_equal(again[k], first[k]));
    }
    CHECK(conv.plans() == 1);  // made once, reused by every later call
    // The fast choice computes the same convolution (to float rounding).
    conv.set_deterministic(false);
    const auto fast = grads();
    CHECK(conv.plans() == 2);
    for (size_t k = 0; k < first.size(); ++k) {
      double diff = 0, scale = 0;
      for (size_t i = 0; i < first[k].size(); ++i) {
        diff = std::max(diff, double(std::abs(fast[k][i] - first[k][i])));
        scale = std::max(scale, double(std::abs(first[k][i])));
      }
      CHECK(diff <= 1e-4 * scale);
    }
    alloc.release_cached();
  }
  LK_CUDA_CHECK(cudaStreamDestroy(s));
}
