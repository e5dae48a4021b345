// A training step captured once as a CUDA Graph and replayed (the trainer's
// and bench/step_profile's; docs/ARCHITECTURE.md, "A step's life").
//
// StepGraph::run(images, labels, net, opt, body) runs one step, body(images,
// labels) being the whole of it (net's forward, loss, zero_grad + backward,
// opt.step()) and returning the loss (one element, on the device):
//   1. the first call copies the batch into static input buffers (device to
//      device, on the stream) and runs body on them eagerly: the warm-up
//      that leaves every block the step needs in the allocator's cache and
//      sizes the workspaces and AdamW's table;
//   2. the second copies the batch in, writes lr into AdamW's device state
//      (upload_lr: a launch outside the graph, only when lr changed) and
//      captures body on the statics (Backend::capture; its memory from a
//      pool private to the graph), then launches the graph;
//   3. every later call copies the batch in, upload_lr, launches the graph
//      (one call; the device advances AdamW's step count and bias
//      corrections itself) and counts the step on the host: AdamW's
//      (count_replayed_step) and net's host-side counters (BatchNorm's
//      num_batches_tracked: each int32 host buffer moves by what the
//      captured step moved it).
// The loss it returns is then the same static tensor every step (overwritten
// by each replay): copy it (LossMeter::add) before the next run.
// It stays eager (body on the given tensors, as before) when graphs are
// off, the device has none (the CPU), or the capture failed: then `say` is
// told why once, the step is rerun eagerly, and every later step is eager.
// A batch of another shape or dtype than the statics runs eagerly too.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/backend.h"
#include "engine/module.h"
#include "engine/optim.h"

namespace lk {

class StepGraph {
 public:
  using Body = std::function<Tensor(const Tensor& images, const Tensor& labels)>;
  // wanted: try graphs (on devices that have them); say: where the one
  // "running eagerly because ..." line goes (may be empty).
  StepGraph(bool wanted, std::function<void(const std::string&)> say = {});
  ~StepGraph();
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;

  Tensor run(const Tensor& images, const Tensor& labels, Module& net, AdamW& opt, const Body& body);

  bool replaying() const { return graph_ != nullptr; }  // a graph was captured
  int64_t launches() const { return launches_; }        // graph launches so far
  // "on" (a graph replays), "warming up", "off", or "off: <why>".
  std::string status() const;

 private:
  void give_up(const std::string& why);
  bool wanted_;
  std::function<void(const std::string&)> say_;
  std::string why_off_;
  int64_t eager_ = 0;  // warm-up steps taken
  int64_t launches_ = 0;
  Tensor images_, labels_, loss_;  // statics
  std::unique_ptr<Graph> graph_;
  std::vector<std::pair<Tensor, int32_t>> counters_;  // host counters and what a step adds
};

}  // namespace lk
