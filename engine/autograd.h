// Reverse-mode autograd over a recorded graph.
//
// Every differentiable op that sees an input requiring grad (and grad mode on)
// records a Node: its inputs (the graph edges), a weak link to its output, and
// a backward closure. backward(root) walks the nodes in reverse topological
// order; each closure ADDS its input gradients into grad_buffer(input), so a
// tensor that feeds several ops (skip connections, x * sigmoid(se(x)))
// accumulates the sum. Gradients of non-leaf tensors are dropped once consumed.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace lk {

struct Node {
  std::string op;                        // op name, for error messages
  std::vector<Tensor> inputs;            // edges; undefined entries are skipped
  std::weak_ptr<TensorImpl> output;
  std::function<void(const Tensor& grad_out)> backward;  // adds into inputs' grads
};

// Grad mode (thread-local). NoGradGuard switches it off for a scope.
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when an op over these inputs must record a node.
bool needs_grad(std::initializer_list<const Tensor*> inputs);

// Records `fn` as the producer of `out` (marks out as requiring grad).
void record(Tensor& out, std::string op, std::vector<Tensor> inputs,
            std::function<void(const Tensor& grad_out)> fn);

// The gradient buffer of t, created as zeros on first use. Backward closures
// add into it; it is what Tensor::grad() returns afterwards.
Tensor grad_buffer(const Tensor& t);

// Runs backward from `root`. With no `grad`, root must hold one element and is
// seeded with 1. The graph is freed afterwards unless retain_graph.
void backward(const Tensor& root, const Tensor& grad = {}, bool retain_graph = false);

// The same, calling on_leaf_ready(leaf) for every leaf of the graph that
// requires grad as soon as no later closure adds into its gradient (right
// after the last node using it ran): data-parallel training starts summing
// gradients over the ranks then, while the backward goes on (engine/dist.h).
using LeafReadyFn = std::function<void(const Tensor& leaf)>;
void backward(const Tensor& root, const Tensor& grad, bool retain_graph, const LeafReadyFn& on_leaf_ready);

}  // namespace lk
