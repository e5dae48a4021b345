// Kernels that exercise the SIMT emulator (selftest_kernels.cu), behind small
// launchers. The .cu is plain CUDA: it also compiles with nvcc (LKASEG_CUDA),
// which keeps the emulated subset honest. Launchers return the launch's
// cudaGetLastError().
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/runtime_api.h"

namespace lk::emu_test {

// counts[(z*ny + y)*nx + x] += 1 for every global thread index inside
// (nx, ny, nz); bad counts threads whose built-in variables are inconsistent.
cudaError_t index_cover(dim3 grid, dim3 block, int nx, int ny, int nz, int* counts, int* bad);
// counts[i] += 1 for i < n through a grid-stride loop.
cudaError_t grid_stride_cover(int grid, int block, int64_t n, int* counts);

// out[b] = sum of x[b*256 .. b*256+255] (zero past n): a shared-memory tree
// reduction over 256 threads. The broken variant lacks the __syncthreads
// between the stores and the first level of the tree.
cudaError_t block_sums(int blocks, const float* x, int n, float* out);
cudaError_t block_sums_missing_sync(int blocks, const float* x, int n, float* out);
// As block_sums with warp shuffles: __shfl_down_sync within each warp, the
// warp totals through shared memory, __shfl_xor_sync across them.
cudaError_t warp_sums(int blocks, int threads, const float* x, int n, float* out);

// out = in with each block's chunk of `chunk` ints reversed, staged in
// dynamic shared memory (chunk threads per block); tag[b] = a static shared
// value written by thread 0 and read back by the last thread.
cudaError_t reverse_chunks(int blocks, int chunk, const int* in, int* out, int* tag);

enum class Shfl { Idx = 0, Up = 1, Down = 2, Xor = 3 };
// One block of `threads`; the lanes in `mask` do out[i] = shuffle(in[i]),
// the others return at once (out untouched).
cudaError_t shuffle(Shfl op, int threads, int param, int width, unsigned mask, const int* in, int* out);
// One block: ballot[i] / any[i] / all[i] of pred over i's warp (full mask).
cudaError_t vote(int threads, const int* pred, unsigned* ballot, int* any, int* all);
// One block: __syncthreads_count / _and / _or of pred, written by every thread.
cudaError_t sync_reductions(int threads, const int* pred, int* count, int* all, int* any);

struct AtomicCounters {
  float fsum;
  double dsum;
  int isum;
  unsigned usum;
  unsigned long long ullsum;
  int imax;
  int imin;
  unsigned cas;
  unsigned inc;
  int sub;
};
// Every thread: fsum += 1, dsum += 0.5, isum += 2, usum += 3, ullsum += 1,
// imax = max(gid), imin = min(gid), cas += 1 (CAS loop), inc = atomicInc(999),
// sub -= 1.
cudaError_t atomics(int blocks, int threads, AtomicCounters* c);

// y[i] = x[i] for i < n.
cudaError_t copy(const float* x, float* y, int n);
// Thread 0 writes p[index] (index outside [0, n) on purpose).
cudaError_t write_at(float* p, int64_t index);
// Every thread writes its static shared slot; thread 0 also writes slot `index`
// of the 64-float array through a pointer.
cudaError_t shared_write_at(int index);
// A do-nothing kernel launched with the given configuration.
cudaError_t launch_config(dim3 grid, dim3 block, size_t dynamic_smem);
// Touches every byte of `bytes` of dynamic shared memory; opt_in sets the
// kernel's cudaFuncAttributeMaxDynamicSharedMemorySize first.
cudaError_t big_dynamic_smem(size_t bytes, bool opt_in, int* out);
// Thread 0 waits at __syncthreads while the rest of its warp waits in
// __syncwarp for it: a deadlock.
cudaError_t deadlock();
// Lanes 16..31 return while lanes 0..15 call __syncwarp(0xffffffff).
cudaError_t exited_lane_in_mask();
// Thread 0 calls __trap().
cudaError_t trap();
// atomicAdd on a float at a misaligned address (p + 2 bytes).
cudaError_t misaligned_atomic(float* p);
// Each of `blocks` blocks stores its index in static shared memory, syncs,
// and counts (into mismatches) the threads that read back another value.
cudaError_t shared_isolation(int blocks, int* mismatches);

// ------------------------------------------------------------------ streams (test_simt_streams.cpp)
// p[i] = value for i < n; y[i] = x[i] for i < n; on `stream`.
cudaError_t fill_on(int* p, int n, int value, cudaStream_t stream);
cudaError_t copy_on(const int* x, int* y, int n, cudaStream_t stream);
// y[i] += x[i] for i < n, on `stream`.
cudaError_t add_on(const int* x, int* y, int n, cudaStream_t stream);

// ------------------------------------------------------------------ order and barriers (test_simt_checks.cpp)
// One ticket per thread in the order the threads start: tickets[block *
// threads + thread] = atomicAdd(next, 1) (no barrier).
cudaError_t arrival_order(int blocks, int threads, int* next, int* tickets);
// One block of 256: buf[t] = x[t]; out[t] = buf[t - 1] + 1 (t > 0; out[0] =
// x[0] + 1). The broken variant lacks the __syncthreads between the two, so
// thread t may read buf[t - 1] before thread t - 1 has written it.
cudaError_t neighbour_sum(const float* x, float* out);
cudaError_t neighbour_sum_missing_sync(const float* x, float* out);
// One block of 64: threads 0..31 wait at one __syncthreads, 32..63 at
// another (an if/else with a barrier in each branch).
cudaError_t divergent_barrier();
// One block of 64: warp 0 waits at a barrier in a loop twice, warp 1 once,
// then both at a barrier after the loop: the second round is divergent.
cudaError_t uneven_barrier_loop();
// One block of 64: threads 32..63 return, then threads 0..31 sync (legal:
// exited threads do not count, from Volta on) and write out[t] = t.
cudaError_t early_exit_barrier(int* out);
// A kernel with __launch_bounds__(64) / (kBoundedThreads, 2) launched with
// `threads` threads; out[i] = 1 for each thread.
inline constexpr int kBoundedThreads = 96;
cudaError_t bounded64(int threads, int* out);
cudaError_t bounded96(int threads, int* out);
// The kernel functions, for lk::simt::launch_bound.
void (*bounded64_kernel_ptr())();
void (*bounded96_kernel_ptr())();
void (*unbounded_kernel_ptr())();
// 40 KiB of static shared memory plus `dynamic` bytes; opt_in sets the
// kernel's cudaFuncAttributeMaxDynamicSharedMemorySize to `dynamic` first.
cudaError_t static_plus_dynamic_smem(size_t dynamic, bool opt_in, int* out);

}  // namespace lk::emu_test
