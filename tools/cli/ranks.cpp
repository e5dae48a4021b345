// The data-parallel ranks of train and cv (tools/cli/run.h: run_on_ranks,
// prepare_all): each rank's device, threads and communicator.
#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include <omp.h>

#include "tools/cli/commands.h"
#include "tools/cli/run.h"
#include "util/interrupt.h"
#ifdef LKASEG_HAVE_CUDA
#include "engine/cuda/device_info.h"
#endif
#ifdef LKASEG_HAVE_NCCL
#include "engine/cuda/dist_nccl.h"
#endif

namespace lk::cli {

namespace {

// This rank's device: `auto` or `cuda` with several ranks on a node take
// cuda:<local rank modulo the GPUs>; anything else as for one process.
Device rank_device(const std::string& want, [[maybe_unused]] const dist::Launch& l) {
#ifdef LKASEG_HAVE_CUDA
  if (l.size > 1 && (want == "auto" || want == "cuda") && cuda::device_count() > 0)
    return resolve_device("cuda:" + std::to_string(l.local_rank % cuda::device_count()));
#endif
  return resolve_device(want);
}

// OpenMP threads (and OpenBLAS's, which follows OpenMP) of one rank: the
// cores the launcher bound it to, or its share of the node's cores when it
// is not bound; OMP_NUM_THREADS wins.
int set_rank_threads(const dist::Launch& l) {
  if (!std::getenv("OMP_NUM_THREADS")) {
    cpu_set_t set;
    CPU_ZERO(&set);
    const int all = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const int mine = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : all;
    omp_set_num_threads(mine < all ? mine : std::max(1, all / std::max(1, l.local_size)));
  }
  return omp_get_max_threads();
}

std::unique_ptr<dist::Communicator> start_comm(const RunOptions& o, const dist::Launch& l, Device dev,
                                               std::unique_ptr<dist::Communicator> host) {
  const bool gpu = dev.type == DeviceType::CUDA;
  if (o.comm == "nccl" && !gpu) throw std::invalid_argument("--comm nccl needs a CUDA device (--device cuda)");
  if (!gpu || o.comm == "mpi" || (o.comm == "auto" && l.size == 1)) return host;
#ifdef LKASEG_HAVE_NCCL
  return cuda::make_nccl(dev.index, std::move(host));
#else
  if (o.comm == "nccl") throw std::invalid_argument("--comm nccl: this lkaseg was built without NCCL");
  std::fprintf(stderr, "lkaseg: built without NCCL: GPU gradients go through the host and MPI (slow)\n");
  return host;
#endif
}

}  // namespace

int run_on_ranks(const RunOptions& o, const std::function<int(Ranks&)>& body) {
  Ranks r;
  r.launch = dist::detect_launch();
  const dist::Launch& l = r.launch;
  if (l.size > 1) {
    const std::string who = "launched as rank " + std::to_string(l.rank) + " of " + std::to_string(l.size) + " by " +
                            l.launcher;
    if (!dist::mpi_built())
      throw std::runtime_error(who + ", but this lkaseg was built without MPI, so the ranks would train " +
                               std::to_string(l.size) + " independent copies: install libopenmpi-dev "
                               "(tools/install_deps.sh) and rebuild, or run one process without mpirun");
    if (o.parallel_folds > 0 || !o.devices.empty())
      throw std::invalid_argument(who + ": --parallel-folds and --devices start their own processes; run them "
                                  "without mpirun (or drop them to train each fold on all ranks)");
    r.comm = dist::make_mpi();
    if (r.comm->size() != l.size)
      throw std::runtime_error(who + ", but MPI sees " + std::to_string(r.comm->size()) +
                               " rank(s): the launcher and the MPI library do not match (with Slurm: srun --mpi=pmix, "
                               "or mpirun inside the allocation)");
  } else {
    r.comm = o.comm == "mpi" && !l.launcher.empty() ? dist::make_mpi() : dist::make_single();
  }
  const int rank = r.comm->rank(), size = r.comm->size();
  if (size == 1) {
    r.device = rank_device(o.device, l);
    r.comm = start_comm(o, l, r.device, std::move(r.comm));
    return body(r);
  }
  // Several ranks: an error on one must end them all, or the others wait
  // for it forever inside a collective.
  try {
    if (rank > 0 && !std::freopen("/dev/null", "w", stdout))
      throw std::runtime_error("cannot silence the output of rank " + std::to_string(rank));
    const int threads = set_rank_threads(l);
    r.device = rank_device(o.device, l);
    r.comm = start_comm(o, l, r.device, std::move(r.comm));
    set_interrupt_name("rank " + std::to_string(rank) + " of " + std::to_string(size));  // in Ctrl-C/SIGTERM messages
    std::printf("%d ranks (%s), %s, %d thread(s) each, rank 0 on %s\n", size, l.launcher.c_str(),
                r.comm->describe().c_str(), threads, r.device.str().c_str());
    std::fflush(stdout);
    const int rc = body(r);
    r.comm->barrier();  // the others wait (sleeping) for rank 0's evaluation and files
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lkaseg: rank %d of %d: error: %s\nlkaseg: rank %d of %d: ending the job (all ranks)\n", rank,
                 size, e.what(), rank, size);
    std::fflush(stderr);
    r.comm->abort(1);
  }
  return 1;  // not reached: abort() ends the process
}

Prepared prepare_all(const RunOptions& o, Ranks& r) {
  if (r.comm->size() == 1) return prepare(o);
  std::optional<Prepared> p;
  if (r.lead()) p.emplace(prepare(o));
  r.comm->barrier();  // the split and the cache exist now
  // The others only read: on a cluster's shared folder a temporary of rank 0
  // (another node's pid) would look stale to them.
  if (!r.lead()) p.emplace(prepare(o, false));
  return std::move(*p);
}

}  // namespace lk::cli
