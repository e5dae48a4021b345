// BatchReduceScope (engine/ops.h): the whole-batch statistics hook of the ops.
#include "engine/ops.h"

namespace lk {

namespace {
thread_local std::shared_ptr<const BatchReduce> t_reduce;
}

BatchReduceScope::BatchReduceScope(std::shared_ptr<const BatchReduce> r) : prev_(std::move(t_reduce)) {
  t_reduce = std::move(r);
}
BatchReduceScope::~BatchReduceScope() { t_reduce = std::move(prev_); }

const std::shared_ptr<const BatchReduce>& current_batch_reduce() { return t_reduce; }

}  // namespace lk
