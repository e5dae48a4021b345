// Tensors, autograd bookkeeping, shape errors, modules and safetensors I/O.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/module.h"
#include "engine/optim.h"
#include "engine/profiler.h"
#include "engine/safetensors.h"
#include "kernels/adamw.h"
#include "tests/support/harness.h"

using namespace lk;
using namespace lk::test;
using Catch::Matchers::Contains;

TEST_CASE("tensors: creation, dtype, views, poisoning", "[tensor]") {
  Tensor z = Tensor::zeros({2, 3});
  CHECK(z.numel() == 6);
  CHECK(z.to_vector() == std::vector<double>(6, 0.0));
  CHECK(z.size(-1) == 3);
  CHECK_THROWS_WITH(z.size(2), Contains("out of range"));
  CHECK_THROWS_WITH(z.data<double>(), Contains("float32"));

  Tensor e = Tensor::empty({4});  // poisoned by the test main
  for (double v : e.to_vector()) CHECK(std::isnan(v));

  Tensor v = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::F64);
  Tensor r = v.view({3, 2});
  r.data<double>()[0] = 9;  // a view shares storage
  CHECK(v.data<double>()[0] == 9);
  Tensor c = v.clone();
  c.data<double>()[1] = -1;
  CHECK(v.data<double>()[1] == 2);
  CHECK(v.to(DType::F32).to_vector() == v.to_vector());
  CHECK_THROWS_WITH(v.view({4, 2}), Contains("view") && Contains("[2, 3]") && Contains("[4, 2]"));
  CHECK_THROWS(Tensor::from_vector({1, 2}, {3}));
}

TEST_CASE("devices parse and bad names are refused", "[tensor]") {
  CHECK(Device::parse("cpu") == cpu_device());
  CHECK(Device::parse("cuda:1").index == 1);
  CHECK(Device::parse("cuda").type == DeviceType::CUDA);
  for (const char* bad : {"gpu", "cuda:", "cuda:x", "cuda:-1", "cuda:1x"}) CHECK_THROWS_WITH(Device::parse(bad), Contains(bad));
}

TEST_CASE("shape errors name the op and both shapes", "[tensor]") {
  const Tensor x = randn({2, 3, 8, 8}, 1, DType::F32);
  CHECK_THROWS_WITH(conv2d(x, randn({4, 2, 3, 3}, 2, DType::F32), Tensor()),
                    Contains("conv2d") && Contains("[2, 3, 8, 8]") && Contains("[4, 2, 3, 3]"));
  CHECK_THROWS_WITH(add(x, randn({2, 4, 8, 8}, 3, DType::F32)), Contains("add") && Contains("[2, 4, 8, 8]"));
  CHECK_THROWS_WITH(mul(x, randn({2, 3, 8}, 3, DType::F32)), Contains("mul"));
  CHECK_THROWS_WITH(concat({x, randn({2, 3, 4, 8}, 4, DType::F32)}), Contains("concat") && Contains("[2, 3, 4, 8]"));
  CHECK_THROWS_WITH(add(x, randn({2, 3, 8, 8}, 5, DType::F64)), Contains("dtype mismatch"));
  CHECK_THROWS_WITH(max_pool2d(randn({1, 1, 1, 1}, 6, DType::F32)), Contains("max_pool2d"));
  CHECK_THROWS_WITH(cross_entropy(x, Tensor::from_labels({0, 1}, {2}), Tensor::from_vector({1, 1, 1}, {3})),
                    Contains("cross_entropy"));
  const Tensor logits = randn({1, 3, 2, 2}, 7, DType::F32);
  const Tensor w = Tensor::from_vector({1, 1, 1}, {3});
  CHECK_THROWS_WITH(cross_entropy(logits, Tensor::from_labels({0, 1, 2, 4}, {1, 2, 2}), w), Contains("label 4"));
  CHECK_THROWS_WITH(tversky_loss(softmax(logits), Tensor::from_labels({0, -1, 2, 1}, {1, 2, 2})), Contains("label -1"));
  CHECK_THROWS_WITH(ce_tversky_loss(logits, Tensor::from_labels({0, 7, 2, 1}, {1, 2, 2}), w), Contains("label 7"));
  CHECK_THROWS_WITH(ce_tversky_loss(randn({1, 9, 2, 2}, 9, DType::F32), Tensor::from_labels({0, 1, 2, 1}, {1, 2, 2}),
                                    Tensor::full({9}, 1.0)),
                    Contains("at most 8 classes"));
  CHECK_THROWS_WITH(weighted_sum({logits, randn({1, 3, 2, 1}, 10, DType::F32)}, {1.0, 1.0}), Contains("weighted_sum"));
  CHECK_THROWS_WITH(weighted_sum({logits}, {1.0, 2.0}), Contains("1 tensors for 2 weights"));
  CHECK_THROWS_WITH(batch_norm(randn({1, 2, 1, 1}, 8, DType::F32), Tensor::full({2}, 1), Tensor::zeros({2}),
                               Tensor::zeros({2}), Tensor::full({2}, 1), true),
                    Contains("more than one value"));
}

TEST_CASE("the fused deep-supervision term equals CE + Tversky on softmax, value and gradient", "[loss]") {
  const Tensor w = Tensor::from_vector({0.1, 1.0, 1.0, 1.0}, {4}, DType::F64);
  const Tensor t = random_labels({2, 5, 7}, 4, 3);
  TverskyParams p;
  p.detach_alpha = false;
  Tensor za = randn({2, 4, 5, 7}, 4).set_requires_grad(true), zb = za.detach().clone().set_requires_grad(true);
  Tensor stats;
  const Tensor fused = ce_tversky_loss(za, t, w, p, &stats);
  const Tensor ce = cross_entropy(zb, t, w), tv = tversky_loss(softmax(zb), t, p);
  const Tensor composed = add(ce, tv);
  CHECK(fused.item() == Approx(composed.item()).epsilon(1e-12));
  const std::vector<double> s = stats.to_vector();  // ..., wsum, CE, Tversky
  CHECK(s.at(17) == Approx(ce.item()).epsilon(1e-12));
  CHECK(s.at(18) == Approx(tv.item()).epsilon(1e-12));
  backward(weighted_sum({fused}, {0.4}));
  backward(scale(composed, 0.4));
  const auto ga = za.grad().to_vector(), gb = zb.grad().to_vector();
  for (size_t i = 0; i < ga.size(); ++i) CHECK(ga[i] == Approx(gb[i]).margin(1e-12));
}

TEST_CASE("autograd accumulates into a tensor used several times", "[autograd]") {
  // y = x * sigmoid(x) + x : three uses of x; dy/dx = s + x s (1 - s) + 1
  Tensor x = Tensor::from_vector({-2.0, -0.5, 0.0, 0.7, 3.0}, {1, 5, 1, 1}, DType::F64).set_requires_grad(true);
  Tensor y = add(mul(x, sigmoid(x)), x);
  backward(y, Tensor::full(y.shape(), 1.0, DType::F64));
  const auto xv = x.to_vector(), g = x.grad().to_vector();
  for (size_t i = 0; i < xv.size(); ++i) {
    const double s = 1 / (1 + std::exp(-xv[i]));
    CHECK(g[i] == Approx(s + xv[i] * s * (1 - s) + 1).epsilon(1e-12));
  }
  // A second backward over a fresh graph adds to the existing gradient.
  Tensor y2 = scale(x, 2.0);
  backward(y2, Tensor::full(y2.shape(), 1.0, DType::F64));
  for (size_t i = 0; i < xv.size(); ++i) {
    const double s = 1 / (1 + std::exp(-xv[i]));
    CHECK(x.grad().to_vector()[i] == Approx(s + xv[i] * s * (1 - s) + 3).epsilon(1e-12));
  }
}

TEST_CASE("the first contribution to a gradient writes it; later ones add", "[autograd]") {
  Tensor x = randn({2, 3}, 5).set_requires_grad(true);
  const Tensor g = grad_buffer(x);
  CHECK(g.first_write());  // no gradient yet: the caller writes every element
  CHECK_FALSE(all_finite(g));  // nothing was filled (the poisoning allocator's NaN)
  CHECK_FALSE(grad_buffer(x).first_write());  // now it exists: add into it
  CHECK(grad_buffer(x).raw() == g.raw());
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("parameter gradients live in one arena: zero_grad keeps the memory, backward overwrites it", "[autograd]") {
  std::vector<Tensor> ps = {randn({4, 3}, 1).set_requires_grad(true), randn({5}, 2).set_requires_grad(true)};
  SGD opt(ps, 0.1);  // any optimiser gives its parameters the arena
  for (const Tensor& p : ps) {
    const Tensor g = grad_buffer(p);
    CHECK(g.first_write());
    g.fill_(3.0);
  }
  const void* where0 = ps[0].grad().raw();
  const void* where1 = ps[1].grad().raw();
  // Both slices of one buffer, 64 elements apart at least (aligned).
  CHECK(static_cast<const char*>(where1) - static_cast<const char*>(where0) >= 64 * 8);
  opt.zero_grad();
  CHECK_FALSE(ps[0].grad().defined());
  // The next gradient lands in the same memory and overwrites the old values.
  Tensor y = reshape(linear(Tensor::full({1, 3}, 1.0, DType::F64), ps[0], Tensor()), {4});
  backward(y, Tensor::full({4}, 1.0, DType::F64));
  REQUIRE(ps[0].grad().defined());
  CHECK(ps[0].grad().raw() == where0);
  for (double v : ps[0].grad().to_vector()) CHECK(v == 1.0);  // dy/dw = x = 1, not 3 + 1
  CHECK_FALSE(ps[1].grad().defined());  // no contribution: no gradient (skipped by optimisers)
}

TEST_CASE("a sum and a reshape hand their gradient buffer on instead of copying it", "[autograd]") {
  Tensor x = randn({2, 3}, 1).set_requires_grad(true), y = randn({2, 3}, 2).set_requires_grad(true);
  Profiler::Options po;
  po.nvtx = false;
  Profiler prof(cpu_device(), po);  // counts the CPU backend's calls
  // (relu(x) + y) reshaped: the sum's gradient goes to relu's output as is,
  // the reshape's to the sum's output; only y's gradient is a copy.
  const Tensor out = reshape(add(relu(x), y), {6});
  backward(scale(out, 2.0), Tensor::full({6}, 1.0, DType::F64));
  CHECK(prof.ops().at("binary_bwd").calls == 1);
  CHECK(prof.ops().count("axpy") == 1);  // scale's backward (on first write: a copy); none for the reshape
  const auto xv = x.to_vector(), gx = x.grad().to_vector(), gy = y.grad().to_vector();
  for (size_t i = 0; i < xv.size(); ++i) {
    CHECK(gx[i] == (xv[i] > 0 ? 2.0 : 0.0));
    CHECK(gy[i] == 2.0);
  }
  // A tensor added to itself gets both contributions.
  Tensor z = randn({3}, 3).set_requires_grad(true);
  backward(add(z, z), Tensor::full({3}, 1.0, DType::F64));
  for (double v : z.grad().to_vector()) CHECK(v == 2.0);
}

TEST_CASE("autograd: no-grad scope, graph release, leaves only", "[autograd]") {
  Tensor x = randn({1, 2, 3, 3}, 11).set_requires_grad(true);
  {
    NoGradGuard ng;
    Tensor y = relu(x);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
  }
  CHECK(grad_enabled());
  Tensor h = relu(x);
  Tensor loss = scale(reshape(global_avg_pool(h), {1, 2}), 1.0);
  Tensor loss1 = linear(loss, Tensor::full({1, 2}, 1.0, DType::F64), Tensor());
  backward(reshape(loss1, {1}));
  CHECK(x.grad().defined());
  CHECK_FALSE(h.grad().defined());  // non-leaf gradients are dropped once used
  CHECK_THROWS_WITH(backward(randn({1}, 1)), Contains("does not require grad"));
  CHECK_THROWS_WITH(backward(h), Contains("one-element"));

  // retain_graph lets a graph be walked twice; otherwise the second walk has nothing to run
  Tensor a = randn({2}, 12).set_requires_grad(true);
  Tensor b = mul(a, a);
  Tensor s = linear(reshape(b, {1, 2}), Tensor::full({1, 2}, 1.0, DType::F64), Tensor());
  backward(reshape(s, {1}), {}, true);
  const auto g1 = a.grad().to_vector();
  backward(reshape(s, {1}), {}, true);
  const auto g2 = a.grad().to_vector();
  CHECK(g2[0] == Approx(2 * g1[0]));
}

TEST_CASE("modules name parameters PyTorch-style and initialise like it", "[module]") {
  Rng rng(5);
  struct Block : Module {
    explicit Block(Rng& r)
        : conv(register_module("conv1", std::make_unique<Conv2d>(8, 16, 3, r, Conv2dOptions{.padding = 1}))),
          bn(register_module("bn1", std::make_unique<BatchNorm2d>(16))) {}
    Conv2d& conv;
    BatchNorm2d& bn;
  };
  struct Net : Module {
    explicit Net(Rng& r) : res(register_module("res", std::make_unique<Block>(r))) {}
    Block& res;
  } net(rng);
  std::vector<std::string> names;
  for (auto& [n, t] : net.named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"res.conv1.weight", "res.conv1.bias", "res.bn1.weight", "res.bn1.bias"});
  std::vector<std::string> bufs;
  for (auto& [n, t] : net.named_buffers()) bufs.push_back(n);
  CHECK(bufs == std::vector<std::string>{"res.bn1.running_mean", "res.bn1.running_var", "res.bn1.num_batches_tracked"});
  CHECK(net.parameter_count() == 16 * 8 * 9 + 16 + 16 + 16);
  const double bound = 1.0 / std::sqrt(8.0 * 9);
  double mx = 0;
  for (double v : net.res.conv.weight.to_vector()) mx = std::max(mx, std::abs(v));
  CHECK(mx <= bound);
  CHECK(mx > 0.9 * bound);  // uniform over the whole range
  Rng rng2(5);
  Net again(rng2);
  CHECK(again.res.conv.weight.to_vector() == net.res.conv.weight.to_vector());  // seeded
}

TEST_CASE("AdamW follows torch.optim.AdamW on a hand-computed step", "[optim]") {
  Tensor p = Tensor::from_vector({1.0, -2.0}, {2}, DType::F64).set_requires_grad(true);
  AdamW opt({p}, {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-5, .weight_decay = 0.01});
  grad_buffer(p).copy_from(Tensor::from_vector({0.5, 0.25}, {2}, DType::F64));
  opt.step();
  // step 1: m_hat = g, v_hat = g^2, update = g / (|g| + eps)
  for (int i = 0; i < 2; ++i) {
    const double w0 = i ? -2.0 : 1.0, g = i ? 0.25 : 0.5;
    CHECK(p.to_vector()[i] == Approx(w0 * (1 - 0.1 * 0.01) - 0.1 * g / (g + 1e-5)).epsilon(1e-12));
  }
}

TEST_CASE("safetensors round trip, and damaged files are refused by name", "[io]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "lkaseg_st_test";
  fs::create_directories(dir);
  const std::string path = (dir / "a.safetensors").string();
  const Tensor a = randn({2, 3}, 1, DType::F32), b = randn({4}, 2, DType::F64);
  const Tensor l = Tensor::from_labels({0, 3, 2}, {3});
  save_safetensors(path, {{"a", a}, {"b", b}, {"l", l}}, {{"epoch", "3"}});
  const SafeTensors st = load_safetensors(path);
  CHECK(st.get("a").to_vector() == a.to_vector());
  CHECK(st.get("b").to_vector() == b.to_vector());
  CHECK(st.get("l").to_vector() == l.to_vector());
  CHECK(st.meta("epoch") == "3");
  CHECK_THROWS_WITH(st.get("nope"), Contains(path) && Contains("nope"));

  const std::string bytes = [&] {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }();
  auto write = [&](const std::string& name, const std::string& content) {
    const std::string p = (dir / name).string();
    std::ofstream(p, std::ios::binary) << content;
    return p;
  };
  const std::string trunc = write("trunc.safetensors", bytes.substr(0, bytes.size() - 5));
  CHECK_THROWS_WITH(load_safetensors(trunc), Contains(trunc) && Contains("outside"));
  const std::string tiny = write("tiny.safetensors", "abc");
  CHECK_THROWS_WITH(load_safetensors(tiny), Contains(tiny) && Contains("truncated"));
  std::string huge = bytes;
  huge[5] = '\x7f';
  const std::string hp = write("huge.safetensors", huge);
  CHECK_THROWS_WITH(load_safetensors(hp), Contains("header size"));
  std::string garbage = bytes;
  garbage[9] = '#';
  const std::string gp = write("garbage.safetensors", garbage);
  CHECK_THROWS_WITH(load_safetensors(gp), Contains("JSON"));
  CHECK_THROWS_WITH(load_safetensors((dir / "missing.safetensors").string()), Contains("cannot open"));

  // A failed write leaves the previous file intact.
  CHECK_THROWS_WITH(save_safetensors((dir / "no_such_dir" / "x.safetensors").string(), {{"a", a}}),
                    Contains("no_such_dir"));
  CHECK(load_safetensors(path).get("a").to_vector() == a.to_vector());
  fs::remove_all(dir);
}

TEST_CASE("kernel variants are chosen globally or per op", "[backend]") {
  Backend& b = backend(cpu_device());
  b.set_variant(KernelVariant::Fast);
  b.set_variant("conv_transpose2d", KernelVariant::PlainLoops);
  CHECK(b.variant("conv2d") == KernelVariant::Fast);
  CHECK(b.variant("conv_transpose2d") == KernelVariant::PlainLoops);
  // The per-op choice changes which kernel runs, not the result.
  const Tensor x = randn({1, 3, 5, 4}, 1, DType::F64), w = randn({3, 2, 2, 2}, 2, DType::F64);
  const Tensor ref = conv_transpose2d(x, w, Tensor());
  b.clear_op_variants();
  CHECK(b.variant("conv_transpose2d") == KernelVariant::Fast);
  CHECK(scaled_error(conv_transpose2d(x, w, Tensor()), ref) < 1e-12);
}

TEST_CASE("a backend refuses a kernel variant it does not have", "[backend]") {
  Backend& b = backend(cpu_device());
  CHECK(b.variants() == std::vector<KernelVariant>{KernelVariant::Fast, KernelVariant::PlainLoops, KernelVariant::Im2colBlas});
  CHECK_THROWS_WITH(b.set_variant(KernelVariant::Cudnn), Contains("no cudnn kernels"));
  CHECK_THROWS_WITH(b.set_variant("conv2d", KernelVariant::Cudnn), Contains("no cudnn kernels"));
  CHECK(b.variant() == KernelVariant::Fast);
  CHECK(b.variant("conv2d") == KernelVariant::Fast);
  CHECK(std::string(variant_name(KernelVariant::PlainLoops)) == "plain_loops");
}

TEST_CASE("the CPU allocator hands a freed buffer to the next request of its size, poisoned again", "[memory]") {
  { const Tensor warm = Tensor::empty({3, 1000}); }  // a freed buffer of this size now exists
  const uint64_t before = cpu_memory_stats().allocations;
  const Tensor t = Tensor::empty({3, 1000});
  CHECK(cpu_memory_stats().allocations == before);  // no new buffer from the system
  if (poison_allocations()) CHECK(std::isnan(t.data<float>()[0]));
  t.data<float>()[0] = 1.f;
  const void* p = t.data<float>();
  const Tensor other = Tensor::empty({3, 1001});  // another size: a new buffer
  CHECK(other.data<float>() != p);
}

// Each convolution implementation of the CPU against the float64 plain loops
// at shapes the networks use (3x3 at 16 channels takes oneDNN's Winograd
// path, 1x1 a GEMM per image, 2x2 stride 2 the transposed convolution), with
// gradients that already hold values (the accumulation), with none (first
// writes: oneDNN's training pair overwrites them), and with the weight frozen
// but the bias trained.
TEST_CASE("every CPU convolution variant matches the plain loops and adds into its gradients", "[backend]") {
  Backend& b = backend(cpu_device());
  struct Case {
    const char* name;
    int64_t cin, cout, k, pad, hw;
    bool transposed;
  };
  for (const Case& c : {Case{"3x3", 16, 32, 3, 1, 12, false}, Case{"1x1", 32, 16, 1, 0, 10, false},
                        Case{"conv_t 2x2 s2", 32, 16, 2, 0, 6, true}}) {
    INFO(c.name);
    const Tensor x64 = randn({2, c.cin, c.hw, c.hw}, 11, DType::F64);
    const Tensor w64 = c.transposed ? randn({c.cin, c.cout, c.k, c.k}, 12, DType::F64, 0.2)
                                    : randn({c.cout, c.cin, c.k, c.k}, 12, DType::F64, 0.2);
    const Tensor b64 = randn({c.cout}, 13, DType::F64);
    for (int mode : {0, 1, 2}) {  // 0: prior gradients, 1: first writes, 2: frozen weight
      INFO("mode " << mode);
      auto run = [&](KernelVariant v, DType dt) {
        VariantScope scope(b, v);
        Tensor x = x64.to(dt).set_requires_grad(true), w = w64.to(dt).set_requires_grad(mode != 2),
               bias = b64.to(dt).set_requires_grad(true);
        if (mode == 0)
          for (Tensor* t : {&x, &w, &bias}) grad_buffer(*t).copy_from(randn(t->shape(), 14, dt));  // prior values
        const Tensor y = c.transposed ? conv_transpose2d(x, w, bias, 2, 0) : conv2d(x, w, bias, {.padding = c.pad});
        backward(y, randn(y.shape(), 15, dt));
        std::vector<Tensor> out{y, x.grad(), bias.grad()};
        if (mode != 2) out.push_back(w.grad());
        else CHECK_FALSE(w.grad().defined());
        return out;
      };
      const std::vector<Tensor> ref = run(KernelVariant::PlainLoops, DType::F64);
      for (KernelVariant v : b.variants()) {
        INFO(variant_name(v));
        const std::vector<Tensor> got = run(v, DType::F32);
        for (size_t i = 0; i < ref.size(); ++i) {
          INFO("output " << i);
          CHECK(scaled_error(got[i], ref[i]) < 2e-5);
        }
      }
    }
  }
}

// The multi-tensor AdamW of the CPU backend (one parallel region over every
// tensor) against the one-tensor kernel, on tensors of odd sizes that the
// threads' shares cut through.
TEST_CASE("the CPU's multi-tensor AdamW equals the per-tensor update", "[optim]") {
  const AdamWParams a{.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.05};
  const std::vector<int64_t> sizes{1, 37, 4096, 5, 100003, 17};
  std::vector<std::vector<float>> p(sizes.size()), g(sizes.size()), m(sizes.size()), v(sizes.size());
  std::vector<cpu::AdamWTensor<float>> list;
  const auto floats = [](const Tensor& t) {
    const std::vector<double> d = t.to_vector();
    return std::vector<float>(d.begin(), d.end());
  };
  for (size_t i = 0; i < sizes.size(); ++i) {
    p[i] = floats(randn({sizes[i]}, 20 + i)), g[i] = floats(randn({sizes[i]}, 40 + i));
    m[i] = floats(randn({sizes[i]}, 60 + i, DType::F64, 0.1));
    v[i].assign(sizes[i], 0.01f);
    list.push_back({sizes[i], p[i].data(), g[i].data(), m[i].data(), v[i].data()});
  }
  auto p1 = p, m1 = m, v1 = v;
  for (size_t i = 0; i < sizes.size(); ++i)
    cpu::adamw_update(a, 3, sizes[i], p1[i].data(), g[i].data(), m1[i].data(), v1[i].data());
  cpu::adamw_update_multi(a, 3, list.data(), static_cast<int64_t>(list.size()));
  CHECK(p == p1);
  CHECK(m == m1);
  CHECK(v == v1);
  CHECK(p[4] != floats(randn({sizes[4]}, 24)));  // it did update
}
