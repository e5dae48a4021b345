// The NCCL communicator (engine/dist.h): gradients and other device tensors
// summed by NCCL on a stream of its own. Built with the real CUDA backend
// when CMake finds NCCL (LKASEG_HAVE_NCCL); not under the SIMT emulator.
#pragma once

#include <memory>

#include "engine/dist.h"

namespace lk::cuda {

// NCCL over the ranks of `host` on cuda:`device` (this process's GPU). Rank 0
// makes the NCCL unique id and `host` broadcasts it; host sums, broadcasts of
// host bytes, barriers and abort go through `host` (MPI for several ranks, or
// the single-process communicator: NCCL with one rank). Device tensors:
// start_sum() makes NCCL's stream wait for the compute stream
// (engine/cuda/backend_cuda.h) at the point of the call, sums the tensors in
// one NCCL group there, and wait() makes the compute stream wait for that -
// the host never blocks, so a bucket's all-reduce runs while the backward's
// kernels go on. CPU tensors are refused.
std::unique_ptr<dist::Communicator> make_nccl(int device, std::unique_ptr<dist::Communicator> host);

}  // namespace lk::cuda
