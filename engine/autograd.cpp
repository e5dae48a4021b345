#include "engine/autograd.h"

#include <algorithm>
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
            std::function<void(const Tensor&)> fn, int pass_through) {
  auto node = std::make_shared<Node>();
  node->pass_through = pass_through;
  node->op = std::move(op);
  node->inputs = std::move(inputs);
  node->output = out.impl_ptr();
  node->backward = std::move(fn);
  out.impl()->requires_grad = true;
  out.impl()->grad_fn = std::move(node);
}

bool took_gradient(const Tensor& input, const Tensor& grad_out) {
  const TensorImpl* g = input.impl()->grad.get();
  return g && grad_out.defined() && g->storage == grad_out.impl()->storage;
}

namespace {
// A pass-through edge: the input takes the output's gradient buffer (viewed
// in its shape) when it has no gradient of its own yet.
void pass_gradient(const Node& node, const std::shared_ptr<TensorImpl>& out) {
  if (node.pass_through < 0 || static_cast<size_t>(node.pass_through) >= node.inputs.size()) return;
  const Tensor& in = node.inputs[static_cast<size_t>(node.pass_through)];
  if (!in.defined()) return;
  TensorImpl* ii = in.impl();
  const Tensor g(out->grad);
  if (!ii->requires_grad || ii->grad || ii->grad_home || ii->dtype != g.dtype() || shape_numel(ii->shape) != g.numel() ||
      !(in.device() == g.device()))
    return;
  ii->grad = ii->shape == g.shape() ? out->grad : g.view(ii->shape).impl_ptr();
}
}  // namespace

Tensor grad_buffer(const Tensor& t) {
  TensorImpl* impl = t.impl();
  if (impl->grad) return Tensor(impl->grad);
  const TensorImpl* home = impl->grad_home.get();
  if (home && home->shape == impl->shape && home->dtype == impl->dtype && Tensor(impl->grad_home).device() == t.device())
    impl->grad = impl->grad_home;
  else
    impl->grad = Tensor::empty(t.shape(), t.dtype(), t.device()).impl_ptr();
  return Tensor(impl->grad).as_first_write();
}

void grad_arena(const std::vector<Tensor>& params) {
  constexpr int64_t kAlign = 64;  // elements: every slice starts 256-byte aligned (float)
  std::vector<std::vector<const Tensor*>> groups;
  for (const Tensor& p : params) {
    if (!p.defined() || !p.requires_grad()) continue;
    auto same = [&](const std::vector<const Tensor*>& g) {
      return g.front()->device() == p.device() && g.front()->dtype() == p.dtype();
    };
    auto it = std::find_if(groups.begin(), groups.end(), same);
    if (it == groups.end()) groups.push_back({&p});
    else it->push_back(&p);
  }
  for (const auto& g : groups) {
    int64_t total = 0;
    for (const Tensor* p : g) total += (p->numel() + kAlign - 1) / kAlign * kAlign;
    const Tensor arena = Tensor::empty({total}, g.front()->dtype(), g.front()->device());
    int64_t at = 0;
    for (const Tensor* p : g) {
      p->impl()->grad_home = arena.slice_as(at, p->shape()).impl_ptr();
      at += (p->numel() + kAlign - 1) / kAlign * kAlign;
    }
  }
}

void backward(const Tensor& root, const Tensor& grad, bool retain_graph) { backward(root, grad, retain_graph, {}); }

void backward(const Tensor& root, const Tensor& grad, bool retain_graph, const LeafReadyFn& on_leaf_ready) {
  if (!root.requires_grad())
    throw std::invalid_argument("backward: the root tensor does not require grad");
  if (grad.defined()) {
    if (grad.shape() != root.shape()) shape_error("backward", "seed gradient shape differs", grad.shape(), root.shape());
    backend(root.device()).axpy(1.0, grad, grad_buffer(root));  // a copy on first write
  } else {
    if (root.numel() != 1) shape_error("backward", "implicit seed needs a one-element root", root.shape());
    const Tensor g = grad_buffer(root);
    if (g.first_write()) {
      backend(root.device()).fill(g, 1.0);
    } else {
      const Tensor one = Tensor::full(root.shape(), 1.0, root.dtype(), root.device());
      backend(root.device()).axpy(1.0, one, g);
    }
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
    if (out.get() != root.impl()) pass_gradient(*node, out);  // the root keeps its own gradient
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
