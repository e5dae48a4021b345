#include "engine/autograd.h"

#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "engine/backend.h"

namespace lk {

namespace {
thread_local bool t_grad_enabled = true;
}

bool grad_enabled() { return t_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = prev_; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

void record(Tensor& out, std::string op, std::vector<Tensor> inputs,
            std::function<void(const Tensor&)> fn) {
  auto node = std::make_shared<Node>();
  node->op = std::move(op);
  node->inputs = std::move(inputs);
  node->output = out.impl_ptr();
  node->backward = std::move(fn);
  out.impl()->requires_grad = true;
  out.impl()->grad_fn = std::move(node);
}

Tensor grad_buffer(const Tensor& t) {
  TensorImpl* impl = t.impl();
  if (!impl->grad) {
    Tensor g = Tensor::empty(t.shape(), t.dtype(), t.device());
    backend(t.device()).fill(g, 0.0);
    impl->grad = g.impl_ptr();
  }
  return Tensor(impl->grad);
}

void backward(const Tensor& root, const Tensor& grad, bool retain_graph) { backward(root, grad, retain_graph, {}); }

void backward(const Tensor& root, const Tensor& grad, bool retain_graph, const LeafReadyFn& on_leaf_ready) {
  if (!root.requires_grad())
    throw std::invalid_argument("backward: the root tensor does not require grad");
  if (grad.defined()) {
    if (grad.shape() != root.shape()) shape_error("backward", "seed gradient shape differs", grad.shape(), root.shape());
    backend(root.device()).axpy(1.0, grad, grad_buffer(root));
  } else {
    if (root.numel() != 1) shape_error("backward", "implicit seed needs a one-element root", root.shape());
    Tensor g = grad_buffer(root);
    Tensor one = Tensor::full(root.shape(), 1.0, root.dtype(), root.device());
    backend(root.device()).axpy(1.0, one, g);
  }
  if (!root.impl()->grad_fn) return;

  // Iterative post-order DFS gives a topological order (inputs before users).
  std::vector<Node*> order;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<Node*, size_t>> stack{{root.impl()->grad_fn.get(), 0}};
  seen.insert(stack.back().first);
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      const Tensor& in = node->inputs[next++];
      if (in.defined() && in.impl()->grad_fn) {
        Node* child = in.impl()->grad_fn.get();
        if (seen.insert(child).second) stack.push_back({child, 0});
      }
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }

  // With a hook: the leaves whose gradient is complete after each node (in
  // execution order, the last node that has them as an input).
  std::vector<std::vector<Tensor>> leaves_after;
  if (on_leaf_ready) {
    std::unordered_map<TensorImpl*, size_t> last;
    std::vector<Tensor> leaves;
    for (size_t i = 0; i < order.size(); ++i)
      for (const Tensor& in : order[order.size() - 1 - i]->inputs)
        if (in.defined() && !in.impl()->grad_fn && in.requires_grad()) {
          const auto [it, fresh] = last.emplace(in.impl(), i);
          if (fresh) leaves.push_back(in);
          it->second = i;
        }
    leaves_after.resize(order.size());
    for (const Tensor& l : leaves) leaves_after[last.at(l.impl())].push_back(l);
  }

  size_t step = 0;
  for (auto it = order.rbegin(); it != order.rend(); ++it, ++step) {
    if (on_leaf_ready && step > 0)
      for (const Tensor& l : leaves_after[step - 1]) on_leaf_ready(l);
    Node* node = *it;
    auto out = node->output.lock();
    if (!out || !out->grad) continue;  // nothing flowed into this node
    if (!node->backward)
      throw std::logic_error("backward through '" + node->op +
                             "' a second time; pass retain_graph=true the first time");
    Tensor gout(out->grad);
    node->backward(gout);
    if (out.get() != root.impl()) out->grad.reset();  // non-leaf gradient consumed
    if (!retain_graph) {
      node->backward = nullptr;  // frees the saved tensors
    }
  }
  if (on_leaf_ready && !order.empty())
    for (const Tensor& l : leaves_after.back()) on_leaf_ready(l);
  if (!retain_graph) {
    for (Node* node : order) node->inputs.clear();
    root.impl()->grad_fn.reset();
  }
}

}  // namespace lk
