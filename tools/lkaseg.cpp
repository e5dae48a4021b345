// lkaseg: the command line. Subcommands so far:
//   info   what this build can run on (backends, threads, CUDA devices)
//   demo   trains the tiny U-Net on generated toy data (CE + adaptive
//          Tversky) and reports loss and Dice before and after
// The paper's protocol (synth, preprocess, train, cv, predict, evaluate,
// figures) arrives with the data and model issues.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>

#include "data/toy_blobs.h"
#include "engine/backend.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "model/networks.h"
#include "model/tiny_unet.h"
#ifdef LKASEG_HAVE_CUDA
#include "engine/cuda/device_info.h"
#endif

namespace {

using namespace lk;

Device resolve_device(const std::string& want) {
  if (want == "cpu") return cpu_device();
#ifdef LKASEG_HAVE_CUDA
  const int n = cuda::device_count();
#else
  const int n = 0;
#endif
  if (want == "auto") {
    if (n == 0) std::fprintf(stderr, "lkaseg: no usable GPU, running on the CPU\n");
    else std::fprintf(stderr, "lkaseg: a GPU is present but the CUDA backend is not built yet; running on the CPU\n");
    return cpu_device();
  }
  const Device d = Device::parse(want);  // throws on a malformed name
  throw std::runtime_error("device " + d.str() + " requested, but the CUDA backend is not available in this build yet");
}

int cmd_info() {
  std::printf("lkaseg 0.1.0\ncpu backend: %s\n", backend(cpu_device()).describe().c_str());
#ifdef LKASEG_HAVE_CUDA
  const int n = cuda::device_count();
  if (n == 0) std::printf("cuda: built for this toolkit, no device (%s)\n", cuda::why_none().c_str());
  for (int i = 0; i < n; ++i) std::printf("cuda:%d %s\n", i, cuda::describe(i).c_str());
#else
  std::printf("cuda: not built (-DLKASEG_CUDA=OFF or no nvcc)\n");
#endif
  return 0;
}

struct DemoOptions {
  int steps = 60, batch = 8, size = 64, width = 16;
  double lr = 3e-3;
  uint64_t seed = 42;
  std::string optimizer = "adamw", device = "auto";
};

// Mean Dice over the foreground classes 1..3 of argmax(logits) vs labels.
double foreground_dice(const Tensor& logits, const Tensor& labels) {
  const int64_t n = logits.size(0), c = logits.size(1), hw = logits.size(2) * logits.size(3);
  const std::vector<double> z = logits.to_vector();
  const int32_t* y = labels.data<int32_t>();
  std::vector<double> tp(c, 0), fp(c, 0), fn(c, 0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = 0; p < hw; ++p) {
      int64_t best = 0;
      for (int64_t k = 1; k < c; ++k)
        if (z[(i * c + k) * hw + p] > z[(i * c + best) * hw + p]) best = k;
      const int64_t t = y[i * hw + p];
      if (best == t) tp[t] += 1;
      else fp[best] += 1, fn[t] += 1;
    }
  double s = 0;
  for (int64_t k = 1; k < c; ++k) s += 2 * tp[k] / std::max(1.0, 2 * tp[k] + fp[k] + fn[k]);
  return s / static_cast<double>(c - 1);
}

int cmd_demo(const DemoOptions& o) {
  const Device dev = resolve_device(o.device);
  std::printf("demo: tiny U-Net (width %d) on %dx%d toy lesions, batch %d, %d steps, %s lr %.g, on %s\n", o.width,
              o.size, o.size, o.batch, o.steps, o.optimizer.c_str(), o.lr, dev.str().c_str());
  model::TinyUNet net(4, 4, o.width, o.seed);
  std::printf("parameters: %lld\n", static_cast<long long>(net.parameter_count()));
  std::unique_ptr<Optimizer> opt;
  if (o.optimizer == "sgd") opt = std::make_unique<SGD>(net.parameters(), o.lr, 0.9);
  else opt = std::make_unique<AdamW>(net.parameters(), AdamW::Options{.lr = o.lr});
  const Tensor class_w = Tensor::from_vector({0.1, 1.0, 1.0, 1.0}, {4});
  const data::ToyBatch held_out = data::make_toy_batch(o.batch, o.size, o.seed, 1u << 30);

  auto evaluate = [&] {
    NoGradGuard ng;
    net.train(false);
    const Tensor logits = net.forward(held_out.images);
    const double ce = cross_entropy(logits, held_out.labels, class_w).item();
    net.train(true);
    return std::pair{ce, foreground_dice(logits, held_out.labels)};
  };
  const auto [ce0, dice0] = evaluate();
  std::printf("before: held-out CE %.4f, foreground Dice %.3f\n", ce0, dice0);

  const auto t0 = std::chrono::steady_clock::now();
  for (int step = 1; step <= o.steps; ++step) {
    const data::ToyBatch b = data::make_toy_batch(o.batch, o.size, o.seed, static_cast<uint64_t>(step));
    const Tensor logits = net.forward(b.images);
    const Tensor ce = cross_entropy(logits, b.labels, class_w);
    const Tensor tv = tversky_loss(softmax(logits), b.labels);
    const Tensor loss = add(ce, tv);
    opt->zero_grad();
    backward(loss);
    opt->step();
    if (step == 1 || step % 10 == 0 || step == o.steps)
      std::printf("step %4d  loss %.4f  (ce %.4f, tversky %.4f)\n", step, loss.item(), ce.item(), tv.item());
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto [ce1, dice1] = evaluate();
  std::printf("after:  held-out CE %.4f, foreground Dice %.3f  (%.2f s, %.1f steps/s)\n", ce1, dice1, secs,
              o.steps / secs);
  return 0;
}

}  // namespace

int cmd_summary(const std::string& net, const std::vector<int64_t>& widths, int64_t batch, int64_t size) {
  model::NetConfig cfg;
  cfg.arch = model::parse_arch(net);
  if (!widths.empty()) cfg.widths = widths;
  const model::SegNet model(cfg);
  std::fputs(model.summary(batch, size).c_str(), stdout);
  return 0;
}

int main(int argc, char** argv) {
  CLI::App app{"lkaseg: ResSE-LKA-UNet brain-tumour segmentation engine and trainer"};
  app.require_subcommand(1);
  app.add_subcommand("info", "show backends and devices");
  DemoOptions demo;
  CLI::App* d = app.add_subcommand("demo", "train a tiny U-Net on generated toy data");
  d->add_option("--steps", demo.steps, "training steps")->check(CLI::Range(1, 1000000));
  d->add_option("--batch", demo.batch, "batch size")->check(CLI::Range(1, 4096));
  d->add_option("--size", demo.size, "image side (even)")->check(CLI::Range(4, 4096));
  d->add_option("--width", demo.width, "channels of the first level")->check(CLI::Range(1, 4096));
  d->add_option("--lr", demo.lr, "learning rate")->check(CLI::PositiveNumber);
  d->add_option("--seed", demo.seed, "random seed");
  d->add_option("--optimizer", demo.optimizer, "sgd or adamw")->check(CLI::IsMember({"sgd", "adamw"}));
  d->add_option("--device", demo.device, "auto, cpu, cuda or cuda:N");
  std::string net = "resse_lka_unet";
  std::vector<int64_t> widths;
  int64_t sum_batch = 8, sum_size = 128;
  CLI::App* sm = app.add_subcommand("summary", "print a network's layers, output shapes, parameters and training memory");
  sm->add_option("--net", net, "resse_lka_unet, unet or attention_unet")
      ->check(CLI::IsMember({"resse_lka_unet", "unet", "attention_unet"}));
  sm->add_option("--widths", widths, "channels per level, e.g. 32 64 128 256 512");
  sm->add_option("--batch", sum_batch, "batch size")->check(CLI::Range(1, 4096));
  sm->add_option("--size", sum_size, "input side")->check(CLI::Range(8, 4096));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (app.got_subcommand("info")) return cmd_info();
    if (app.got_subcommand("summary")) return cmd_summary(net, widths, sum_batch, sum_size);
    if (demo.size % 2) throw std::invalid_argument("--size must be even (one 2x2 pooling level)");
    return cmd_demo(demo);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lkaseg: error: %s\n", e.what());
    return 1;
  }
}
