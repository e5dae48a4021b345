#include "engine/step_graph.h"

#include <utility>

namespace lk {

StepGraph::StepGraph(bool wanted, std::function<void(const std::string&)> say)
    : wanted_(wanted), say_(std::move(say)) {}

StepGraph::~StepGraph() {
  // The graph (and its pool) before the statics its replays read.
  graph_.reset();
}

std::string StepGraph::status() const {
  if (graph_) return "on";
  if (!why_off_.empty()) return "off: " + why_off_;
  return wanted_ ? "warming up" : "off";
}

void StepGraph::give_up(const std::string& why) {
  wanted_ = false;
  why_off_ = why;
  graph_.reset();
  images_ = labels_ = loss_ = Tensor();
  if (say_) say_("CUDA Graph: " + why + "; training eagerly");
}

namespace {
// The module's host-side int32 counters (BatchNorm's num_batches_tracked).
std::vector<std::pair<Tensor, int32_t>> host_counters(const Module& net) {
  std::vector<std::pair<Tensor, int32_t>> c;
  for (const auto& [name, b] : net.named_buffers())
    if (b.dtype() == DType::I32 && b.device().type == DeviceType::CPU && b.numel() == 1)
      c.emplace_back(b, b.data<int32_t>()[0]);
  return c;
}
}  // namespace

Tensor StepGraph::run(const Tensor& images, const Tensor& labels, Module& net, AdamW& opt, const Body& body) {
  if (!wanted_ || images.device().type == DeviceType::CPU) return body(images, labels);
  if (images_.defined() && (images.shape() != images_.shape() || labels.shape() != labels_.shape() ||
                            images.dtype() != images_.dtype() || labels.dtype() != labels_.dtype()))
    return body(images, labels);
  Backend& be = backend(images.device());
  if (!images_.defined()) {
    images_ = Tensor::empty(images.shape(), images.dtype(), images.device());
    labels_ = Tensor::empty(labels.shape(), labels.dtype(), labels.device());
  }
  be.copy(images, images_);
  be.copy(labels, labels_);
  opt.upload_lr();  // outside the graph: it holds no lr
  if (graph_) {
    graph_->launch();
    ++launches_;
    opt.count_replayed_step();
    for (auto& [t, by] : counters_) t.data<int32_t>()[0] += by;
    return loss_;
  }
  if (eager_ < 1) {
    ++eager_;
    return body(images_, labels_);
  }
  const int64_t calls = opt.step_calls();
  counters_ = host_counters(net);
  std::string why;
  graph_ = be.capture([&] { loss_ = body(images_, labels_).detach(); }, &why);
  for (auto& [t, by] : counters_) {
    const int32_t before = by;
    by = t.data<int32_t>()[0] - before;
    if (!graph_) t.data<int32_t>()[0] = before;
  }
  if (!graph_) {
    opt.set_step_calls(calls);  // the host counted a step whose device work never ran
    give_up("the step could not be captured (" + why + ")");
    return body(images, labels);
  }
  graph_->launch();
  ++launches_;
  return loss_;
}

}  // namespace lk
