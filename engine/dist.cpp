// The launcher's environment, the single-process communicator and GradSync
// (engine/dist.h). MPI lives in dist_mpi.cpp, NCCL in cuda/dist_nccl.cpp.
#include "engine/dist.h"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace lk::dist {

namespace {

// The integer value of the first variable of `names` that is set, or -1.
int env_int(std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (const char* v = std::getenv(n); v && *v) {
      char* end = nullptr;
      const long x = std::strtol(v, &end, 10);
      if (end != v && x >= 0 && x < (1L << 30)) return static_cast<int>(x);
    }
  return -1;
}

class Done final : public Pending {
 public:
  void wait() override {}
};

class Single final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string describe() const override { return "single process"; }
  void sum_host(double*, int64_t) override {}
  void broadcast_host(void*, int64_t, int) override {}
  std::unique_ptr<Pending> start_sum(std::vector<Tensor>) override { return std::make_unique<Done>(); }
  void broadcast(const Tensor&, int) override {}
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::_Exit(code); }
};

}  // namespace

Launch detect_launch() {
  Launch l;
  struct Scheme {
    const char* name;
    std::initializer_list<const char*> rank, size, local_rank, local_size;
  };
  // Open MPI first: under `srun --mpi=pmix` with Open MPI both sets exist and agree.
  const Scheme schemes[] = {
      {"mpirun (Open MPI)", {"OMPI_COMM_WORLD_RANK"}, {"OMPI_COMM_WORLD_SIZE"}, {"OMPI_COMM_WORLD_LOCAL_RANK"},
       {"OMPI_COMM_WORLD_LOCAL_SIZE"}},
      {"srun (Slurm)", {"SLURM_PROCID"}, {"SLURM_NTASKS", "SLURM_NPROCS"}, {"SLURM_LOCALID"}, {"SLURM_TASKS_PER_NODE"}},
      {"PMI", {"PMI_RANK"}, {"PMI_SIZE"}, {"MPI_LOCALRANKID"}, {"MPI_LOCALNRANKS"}},
  };
  for (const Scheme& s : schemes) {
    const int rank = env_int(s.rank), size = env_int(s.size);
    if (rank < 0 || size < 1 || rank >= size) continue;
    l.rank = rank;
    l.size = size;
    l.launcher = s.name;
    // SLURM_TASKS_PER_NODE reads like "4(x2),3": its first number is ours when
    // the nodes are evenly filled; strtol stops at the parenthesis.
    const int lr = env_int(s.local_rank), ls = env_int(s.local_size);
    l.local_rank = lr >= 0 ? lr : 0;
    l.local_size = ls >= 1 && l.local_rank < ls ? ls : 1;
    break;
  }
  return l;
}

void sum(Communicator& c, const Tensor& t) { c.start_sum({t})->wait(); }

std::unique_ptr<Communicator> make_single() { return std::make_unique<Single>(); }

// ------------------------------------------------------------ GradSync

GradSync::GradSync(Communicator& comm, std::vector<Tensor> params, int64_t bucket_bytes)
    : comm_(comm), params_(std::move(params)) {
  if (bucket_bytes < 1) throw std::invalid_argument("GradSync: bucket size must be >= 1 byte");
  bucket_of_.resize(params_.size());
  is_ready_.assign(params_.size(), 0);
  int64_t filled = bucket_bytes;  // start a new bucket with the first parameter
  for (size_t k = params_.size(); k-- > 0;) {
    const Tensor& p = params_[k];
    if (!index_.emplace(p.impl(), k).second)
      throw std::invalid_argument("GradSync: parameter '" + p.name() + "' is listed twice");
    const int64_t bytes = static_cast<int64_t>(p.nbytes());
    if (filled + bytes > bucket_bytes && filled > 0) {
      buckets_.emplace_back();
      filled = 0;
    }
    buckets_.back().members.push_back(k);
    bucket_of_[k] = buckets_.size() - 1;
    filled += bytes;
  }
}

void GradSync::ready(const Tensor& leaf) {
  const auto it = index_.find(leaf.impl());
  if (it == index_.end()) return;
  const size_t k = it->second;
  if (!in_step_) {  // the first ready() of a backward
    in_step_ = true;
    started_early_ = 0;
    for (Bucket& b : buckets_) b.waiting = b.members.size();
  }
  if (is_ready_[k]) return;
  is_ready_[k] = 1;
  --buckets_[bucket_of_[k]].waiting;
  start_ready_buckets();
  started_early_ = static_cast<int64_t>(next_start_);
}

// Starts the complete buckets in bucket order (the same order on every rank).
void GradSync::start_ready_buckets() {
  while (next_start_ < buckets_.size() && buckets_[next_start_].waiting == 0) {
    Bucket& b = buckets_[next_start_++];
    std::vector<Tensor> grads;
    for (size_t k : b.members)
      if (Tensor g = params_[k].grad(); g.defined()) grads.push_back(g);
    b.pending = comm_.start_sum(std::move(grads));
  }
}

void GradSync::finish() {
  if (!in_step_) {  // no ready() calls at all (e.g. a backward without the hook)
    started_early_ = 0;
    for (Bucket& b : buckets_) b.waiting = b.members.size();
  }
  // Parameters the backward never reached have no gradient on any rank (the
  // graph is the same everywhere): their buckets start without them.
  for (Bucket& b : buckets_) b.waiting = 0;
  start_ready_buckets();
  for (Bucket& b : buckets_) {
    if (b.pending) b.pending->wait();
    b.pending.reset();
  }
  std::fill(is_ready_.begin(), is_ready_.end(), 0);
  next_start_ = 0;
  in_step_ = false;
}

#if !defined(LKASEG_HAVE_MPI)
bool mpi_built() { return false; }
std::unique_ptr<Communicator> make_mpi() {
  throw std::runtime_error("this lkaseg was built without MPI (CMake found no MPI: install libopenmpi-dev and "
                           "rebuild, see tools/install_deps.sh)");
}
#endif

}  // namespace lk::dist
