// The MPI communicator (engine/dist.h): MPI_COMM_WORLD of the ranks mpirun or
// srun started. Built only when CMake finds MPI (LKASEG_HAVE_MPI).
//
// Errors: MPI_COMM_WORLD gets MPI_ERRORS_RETURN, so a failed call throws
// (naming the call, the file, the line and MPI's message) instead of
// aborting inside MPI; the caller decides (the CLI ends the job with
// abort(), so the other ranks do not wait forever).
// Threads: MPI_THREAD_FUNNELED - only the thread that made the communicator
// calls MPI (the training loop); the loader's workers never do.
// A rank that dies: with several ranks, each watches the others on its node
// (PeerWatch, engine/dist.h); the first death found ends this rank too, with
// a message naming the dead rank and exit code 1, after a checkpoint being
// written is complete (util/interrupt.h: exit_process).
// The C API only: Open MPI's and MPICH's mpi.h pull in the deprecated C++
// bindings (a library of their own) when compiled as C++.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <unistd.h>
#include <string>
#include <thread>

#include "engine/backend.h"
#include "engine/dist.h"
#include "util/interrupt.h"

namespace lk::dist {

namespace {

void mpi_check(int rc, const char* expr, const char* file, int line) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {0};
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) std::snprintf(text, sizeof text, "error %d", rc);
  throw std::runtime_error(std::string("MPI error (") + text + ") in " + expr + " at " + file + ":" +
                           std::to_string(line));
}
#define LK_MPI_CHECK(expr) mpi_check((expr), #expr, __FILE__, __LINE__)

MPI_Datatype mpi_type(const Tensor& t) {
  switch (t.dtype()) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    case DType::I32: return MPI_INT;
    case DType::BF16:
    case DType::F16:  // mixed precision keeps weights, gradients and buffers float32
      throw std::invalid_argument(std::string("MPI: no exchange of ") + dtype_name(t.dtype()) + " tensors");
  }
  return MPI_DATATYPE_NULL;
}

int count_of(const Tensor& t) {
  if (t.numel() > INT32_MAX) throw std::invalid_argument("MPI: a tensor of more than 2^31 - 1 elements");
  return static_cast<int>(t.numel());
}

// MPI_Init once per process; MPI_Finalize when the last communicator goes.
std::mutex g_mu;
int g_users = 0;

class MpiPending final : public Pending {
 public:
  std::vector<MPI_Request> requests;
  void wait() override {
    if (requests.empty()) return;
    LK_MPI_CHECK(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE));
    requests.clear();
  }
  ~MpiPending() override {
    // A sum abandoned by an exception: let it complete so its buffers may go.
    if (!requests.empty()) MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE);
  }
};

class Done final : public Pending {
 public:
  void wait() override {}
};

class Mpi final : public Communicator {
 public:
  Mpi() {
    std::lock_guard lk(g_mu);
    int inited = 0, finalized = 0;
    LK_MPI_CHECK(MPI_Initialized(&inited));
    LK_MPI_CHECK(MPI_Finalized(&finalized));
    if (finalized) throw std::runtime_error("MPI was finalised already in this process");
    if (!inited) {
      int provided = 0;
      LK_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
      if (provided < MPI_THREAD_FUNNELED)
        throw std::runtime_error("MPI: the library cannot give MPI_THREAD_FUNNELED (threads calling into MPI)");
    }
    ++g_users;
    LK_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    LK_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    LK_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
    char lib[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
    int len = 0;
    LK_MPI_CHECK(MPI_Get_library_version(lib, &len));
    library_ = std::string(lib, static_cast<size_t>(len));
    if (const size_t cut = library_.find_first_of(",\n"); cut != std::string::npos) library_.resize(cut);
    if (size_ > 1) watch_neighbours();
  }
  ~Mpi() override {
    if (watch_) {
      // Every rank stops watching before any may end: a rank that finished
      // normally is no death.
      watch_.reset();
      MPI_Barrier(MPI_COMM_WORLD);
    }
    std::lock_guard lk(g_mu);
    if (--g_users == 0) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override {
    return "MPI (" + library_ + "), rank " + std::to_string(rank_) + " of " + std::to_string(size_);
  }

  void sum_host(double* v, int64_t n) override {
    if (n > INT32_MAX) throw std::invalid_argument("MPI: more than 2^31 - 1 values to sum");
    if (n > 0) LK_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, v, static_cast<int>(n), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
  }

  void broadcast_host(void* data, int64_t bytes, int root) override {
    if (bytes > INT32_MAX) throw std::invalid_argument("MPI: a broadcast of more than 2^31 - 1 bytes");
    if (bytes > 0) LK_MPI_CHECK(MPI_Bcast(data, static_cast<int>(bytes), MPI_BYTE, root, MPI_COMM_WORLD));
  }

  std::unique_ptr<Pending> start_sum(std::vector<Tensor> ts) override {
    auto p = std::make_unique<MpiPending>();
    for (const Tensor& t : ts) {
      if (t.dtype() == DType::I32) throw std::invalid_argument("MPI sum: '" + t.name() + "' is not a float tensor");
      if (t.device().type == DeviceType::CPU) {
        p->requests.emplace_back();
        LK_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, t.raw(), count_of(t), mpi_type(t), MPI_SUM, MPI_COMM_WORLD,
                                    &p->requests.back()));
      } else {
        // Device memory is not handed to MPI (no CUDA-aware MPI assumed):
        // staged through the host, blocking. The NCCL communicator is the fast path.
        Tensor h = t.to(cpu_device());
        LK_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, h.raw(), count_of(h), mpi_type(h), MPI_SUM, MPI_COMM_WORLD));
        backend(t.device()).copy(h, t);
      }
    }
    return p;
  }

  void broadcast(const Tensor& t, int root) override {
    if (t.device().type == DeviceType::CPU) {
      LK_MPI_CHECK(MPI_Bcast(t.raw(), count_of(t), mpi_type(t), root, MPI_COMM_WORLD));
      return;
    }
    Tensor h = t.to(cpu_device());
    LK_MPI_CHECK(MPI_Bcast(h.raw(), count_of(h), mpi_type(h), root, MPI_COMM_WORLD));
    backend(t.device()).copy(h, t);
  }

  void barrier() override {
    MPI_Request r;
    LK_MPI_CHECK(MPI_Ibarrier(MPI_COMM_WORLD, &r));
    // Poll with a growing sleep (up to 20 ms): MPI's own blocking wait spins
    // on a core the other ranks' work may need.
    int done = 0;
    for (int us = 50;; us = std::min(us * 2, 20000)) {
      LK_MPI_CHECK(MPI_Test(&r, &done, MPI_STATUS_IGNORE));
      if (done) return;
      std::this_thread::sleep_for(std::chrono::microseconds(us));
    }
  }

  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; in case it does
  }

 private:
  // Every rank's process space and pid to every rank; the neighbours watched.
  void watch_neighbours() {
    struct Id {
      char space[240];
      long long pid;
    };
    Id me{};
    const std::string space = process_space();
    std::snprintf(me.space, sizeof me.space, "%s", space.c_str());
    me.pid = ::getpid();
    std::vector<Id> all(static_cast<size_t>(size_));
    LK_MPI_CHECK(MPI_Allgather(&me, sizeof me, MPI_BYTE, all.data(), sizeof me, MPI_BYTE, MPI_COMM_WORLD));
    std::vector<Peer> peers;
    for (int r = 0; r < size_; ++r)
      if (r != rank_ && !space.empty() && space == all[static_cast<size_t>(r)].space)
        peers.push_back({r, static_cast<long>(all[static_cast<size_t>(r)].pid)});
    const int rank = rank_, size = size_;
    watch_ = std::make_unique<PeerWatch>(std::move(peers), [rank, size](const Peer& dead) {
      std::fprintf(stderr,
                   "lkaseg: rank %d of %d: error: rank %d (pid %ld, this node) has died; ending this rank too "
                   "(the newest complete checkpoint is kept: run the same command again to resume)\n",
                   rank, size, dead.rank, dead.pid);
      std::fflush(stderr);
      exit_process(1);
    });
  }

  int rank_ = 0, size_ = 1;
  std::string library_;
  std::unique_ptr<PeerWatch> watch_;
};

}  // namespace

bool mpi_built() { return true; }
std::unique_ptr<Communicator> make_mpi() { return std::make_unique<Mpi>(); }

}  // namespace lk::dist
