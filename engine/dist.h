// Data-parallel processes ("ranks") and what they exchange: the
// communicator of distributed training (train/trainer.h) and the gradient
// synchronisation built on it.
//
// Communicator implementations:
//   single  one process: every sum is the identity              make_single()   engine/dist.cpp
//   MPI     ranks started by mpirun / srun (Open MPI): host       make_mpi()      engine/dist_mpi.cpp,
//           buffers and CPU tensors through MPI_COMM_WORLD,                       built when CMake finds
//           device tensors staged through the host                                MPI (LKASEG_HAVE_MPI)
//   NCCL    device tensors (gradients) through NCCL on a stream   make_nccl()     engine/cuda/dist_nccl.h
//           of their own; host buffers, barriers and the                          (LKASEG_HAVE_NCCL)
//           bootstrap through an MPI (or single) communicator
// Every MPI and NCCL call is checked; a failure throws naming the call, the
// file and the line.
//
// Collectives must be issued in the same order on every rank (the training
// loop is deterministic, so they are). Sums over ranks are the same on every
// rank (MPI's and NCCL's reductions hand every rank the same result), so the
// replicas stay identical; train/ checks that at every epoch end.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/tensor.h"

namespace lk::dist {

// What the launcher told this process, from its environment: Open MPI's
// mpirun (OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK,LOCAL_SIZE}), Slurm's srun
// (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_TASKS_PER_NODE) or a
// PMI launcher such as MPICH's (PMI_RANK, PMI_SIZE, MPI_LOCALRANKID,
// MPI_LOCALNRANKS). size 1 and launcher "" without one.
struct Launch {
  int rank = 0, size = 1, local_rank = 0, local_size = 1;
  std::string launcher;
};
Launch detect_launch();

// A sum over the ranks in flight. wait(): the tensors hold the sums for
// every later use (on a GPU: for work queued on the compute stream after
// wait returns; the host does not block).
class Pending {
 public:
  virtual ~Pending() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string describe() const = 0;

  // n host doubles summed over the ranks, in place (batch statistics, flags).
  virtual void sum_host(double* v, int64_t n) = 0;
  // `bytes` host bytes of rank `root` copied to every rank.
  virtual void broadcast_host(void* data, int64_t bytes, int root) = 0;
  // Float tensors (any device) summed over the ranks in place. Every rank
  // starts the same list (count, shapes, dtypes, order). Until wait() the
  // tensors must not be read or written.
  virtual std::unique_ptr<Pending> start_sum(std::vector<Tensor> ts) = 0;
  // The tensor of rank `root` copied into the same tensor of every rank.
  virtual void broadcast(const Tensor& t, int root) = 0;
  // Every rank arrives. A rank kept waiting (while rank 0 validates and
  // writes checkpoints) sleeps between polls instead of spinning on a core.
  virtual void barrier() = 0;
  // Ends the whole job now, every rank's process, exit code `code` (after an
  // error on this rank that the others cannot learn of).
  [[noreturn]] virtual void abort(int code) = 0;
};

// The sum of one tensor, waited for.
void sum(Communicator& c, const Tensor& t);

std::unique_ptr<Communicator> make_single();
// True when this build has MPI (CMake found it: LKASEG_HAVE_MPI).
bool mpi_built();
// MPI_COMM_WORLD (MPI_Init_thread on first use, MPI_Finalize when the last
// MPI communicator goes). Throws when the build has no MPI.
std::unique_ptr<Communicator> make_mpi();

// Watches the processes of the other ranks on this node: a rank that dies
// (killed, crashed) leaves the others waiting inside a collective forever,
// and MPI does not tell them; the launcher ends them later (mpirun: SIGTERM,
// then SIGKILL) without saying why on their side. A PeerWatch polls the
// peers' processes from a thread of its own (no MPI calls) and calls
// `on_death` once, naming the first one found gone.
//
// Which processes: the MPI communicator hands every rank's host, PID
// namespace and pid to every rank; the peers in this host and PID namespace
// are watched (ranks on other nodes are not: their death reaches this rank
// through the launcher's SIGTERM). A peer is told apart from a later process
// reusing its pid by its start time (/proc/<pid>/stat).
struct Peer {
  int rank = 0;
  long pid = 0;
};
// "<host name>/<PID namespace>", equal for processes that see each other's pids.
std::string process_space();

class PeerWatch {
 public:
  // Peers not alive now are dropped (see watched()).
  PeerWatch(std::vector<Peer> peers, std::function<void(const Peer&)> on_death,
            std::chrono::milliseconds period = std::chrono::milliseconds(100));
  ~PeerWatch();  // stops the thread (on_death is not called after it returns)
  PeerWatch(const PeerWatch&) = delete;
  PeerWatch& operator=(const PeerWatch&) = delete;
  size_t watched() const { return peers_.size(); }

 private:
  struct Watched {
    Peer peer;
    unsigned long long start = 0;  // start time in clock ticks after boot; 0: unknown
  };
  void run();
  std::vector<Watched> peers_;
  std::function<void(const Peer&)> on_death_;
  std::chrono::milliseconds period_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Sums the parameters' gradients over the ranks after each backward, so every
// rank holds the gradient of the whole (global) batch's loss - the ops reduce
// the batch statistics (engine/ops.h, BatchReduceScope), so each rank's
// backward yields its share of that gradient, and the shares add up.
// Buckets of about `bucket_bytes` are formed from the last parameter
// backwards (the order the backward finishes them); a bucket's sum starts
// as soon as its gradients are complete (ready(), called by backward()), in
// bucket order, so on a GPU the all-reduce runs behind the rest of the
// backward. finish() starts what is left and waits.
class GradSync {
 public:
  GradSync(Communicator& comm, std::vector<Tensor> params, int64_t bucket_bytes = int64_t{25} << 20);
  // The gradient of `leaf` is complete (backward's on_leaf_ready); other leaves are ignored.
  void ready(const Tensor& leaf);
  // After backward: every parameter's grad() (when it has one) is the sum over the ranks.
  void finish();
  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }
  // The buckets started before finish() in the last step (0 when nothing overlapped).
  int64_t started_early() const { return started_early_; }

 private:
  void start_ready_buckets();
  Communicator& comm_;
  std::vector<Tensor> params_;
  std::unordered_map<const TensorImpl*, size_t> index_;  // parameter -> its position
  struct Bucket {
    std::vector<size_t> members;
    size_t waiting = 0;  // members not yet ready this step
    std::unique_ptr<Pending> pending;
  };
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;
  std::vector<char> is_ready_;
  size_t next_start_ = 0;
  int64_t started_early_ = 0;
  bool in_step_ = false;
};

}  // namespace lk::dist
