// Reverse-mode autograd over a recorded graph.
//
// Every differentiable op that sees an input requiring grad (and grad mode on)
// records a Node: its inputs (the graph edges), a weak link to its output, and
// a backward closure. backward(root) walks the nodes in reverse topological
// order; each closure writes its input gradients through grad_buffer(input):
// the first contribution to a gradient overwrites the buffer (beta = 0: no
// zero-fill before), later ones add into it, so a tensor that feeds several
// ops (skip connections, x * sigmoid(se(x))) gets the sum. Gradients of
// non-leaf tensors are dropped once consumed. Parameters given to an
// optimiser keep their gradients in one persistent buffer (grad_arena), so
// zero_grad() drops a handle, not memory, and a training step allocates no
// gradient buffer of its own.
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
  // The input whose gradient is grad_out itself (add's same-shape operand,
  // reshape's input), or -1. When that input has no gradient yet (and no
  // arena slice), backward hands it grad_out's buffer instead of a copy, and
  // the closure skips it (took_gradient).
  int pass_through = -1;
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

// Records `fn` as the producer of `out` (marks out as requiring grad);
// pass_through as Node::pass_through.
void record(Tensor& out, std::string op, std::vector<Tensor> inputs,
            std::function<void(const Tensor& grad_out)> fn, int pass_through = -1);

// Inside a backward closure: the autograd gave `input` the buffer of
// `grad_out` as its gradient (a pass-through edge), so nothing is to be added.
bool took_gradient(const Tensor& input, const Tensor& grad_out);

// The gradient buffer of t; it is what Tensor::grad() returns afterwards.
// When t has no gradient yet, the buffer is made (its slice of the arena, or
// a new uninitialised one) and returned as a first_write handle: the caller
// must write every element through it (a backward method overwrites it);
// every later call returns a plain handle (methods add into it).
Tensor grad_buffer(const Tensor& t);

// Gives each of `params` (those that require grad) a fixed slice of one
// buffer per device and dtype for its gradient, which grad_buffer then uses
// instead of a new buffer. Optimisers call it for their parameters.
void grad_arena(const std::vector<Tensor>& params);

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
