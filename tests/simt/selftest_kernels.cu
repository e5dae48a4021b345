// Kernels for the emulator self-tests (selftest_kernels.h). Plain CUDA plus
// cuda_compat.cuh: compiled by nvcc too when LKASEG_CUDA is on.
#include "kernels/cuda/cuda_compat.cuh"
#include "tests/simt/selftest_kernels.h"

namespace lk::emu_test {
namespace {

constexpr int kReduceThreads = 256;

__global__ void index_cover_kernel(int nx, int ny, int nz, int* counts, int* bad) {
  if (threadIdx.x >= blockDim.x || threadIdx.y >= blockDim.y || threadIdx.z >= blockDim.z || blockIdx.x >= gridDim.x ||
      blockIdx.y >= gridDim.y || blockIdx.z >= gridDim.z)
    atomicAdd(bad, 1);
  const unsigned x = blockIdx.x * blockDim.x + threadIdx.x;
  const unsigned y = blockIdx.y * blockDim.y + threadIdx.y;
  const unsigned z = blockIdx.z * blockDim.z + threadIdx.z;
  if (x < unsigned(nx) && y < unsigned(ny) && z < unsigned(nz)) atomicAdd(&counts[(z * ny + y) * nx + x], 1);
}

__global__ void grid_stride_kernel(int64_t n, int* counts) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(blockDim.x) * gridDim.x)
    atomicAdd(&counts[i], 1);
}

__global__ void block_sums_kernel(const float* x, int n, float* out) {
  LK_SHARED(float, buf, [kReduceThreads]);
  const int tid = threadIdx.x;
  const int i = blockIdx.x * kReduceThreads + tid;
  buf[tid] = i < n ? x[i] : 0.f;
  __syncthreads();
  for (int s = kReduceThreads / 2; s > 0; s >>= 1) {
    if (tid < s) buf[tid] += buf[tid + s];
    __syncthreads();
  }
  if (tid == 0) out[blockIdx.x] = buf[0];
}

__global__ void block_sums_missing_sync_kernel(const float* x, int n, float* out) {
  LK_SHARED(float, buf, [kReduceThreads]);
  const int tid = threadIdx.x;
  const int i = blockIdx.x * kReduceThreads + tid;
  buf[tid] = i < n ? x[i] : 0.f;
  // BUG (on purpose): no __syncthreads() here, so the first level of the
  // tree reads slots other threads may not have written yet.
  for (int s = kReduceThreads / 2; s > 0; s >>= 1) {
    if (tid < s) buf[tid] += buf[tid + s];
    __syncthreads();
  }
  if (tid == 0) out[blockIdx.x] = buf[0];
}

__global__ void warp_sums_kernel(const float* x, int n, float* out) {
  LK_SHARED(float, partial, [32]);
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int nwarps = (blockDim.x + 31) / 32;
  const int i = blockIdx.x * blockDim.x + tid;
  float v = i < n ? x[i] : 0.f;
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < nwarps ? partial[lane] : 0.f;
    for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
    if (lane == 0) out[blockIdx.x] = v;
  }
}

__global__ void reverse_chunks_kernel(const int* in, int* out, int* tag) {
  LK_SHARED(int, first, [1]);
  int* chunk = lk_dynamic_smem<int>();
  const int n = blockDim.x, t = threadIdx.x;
  if (t == 0) first[0] = 1000 + blockIdx.x;
  chunk[t] = in[blockIdx.x * n + t];
  __syncthreads();
  out[blockIdx.x * n + t] = chunk[n - 1 - t];
  if (t == n - 1) tag[blockIdx.x] = first[0];
}

__global__ void shuffle_kernel(int op, int param, int width, unsigned mask, const int* in, int* out) {
  const int i = threadIdx.x;
  if (!(mask & (1u << (i % 32)))) return;
  const int v = in[i];
  int r = 0;
  switch (op) {
    case 0: r = __shfl_sync(mask, v, param, width); break;
    case 1: r = __shfl_up_sync(mask, v, unsigned(param), width); break;
    case 2: r = __shfl_down_sync(mask, v, unsigned(param), width); break;
    default: r = __shfl_xor_sync(mask, v, param, width); break;
  }
  out[i] = r;
}

__global__ void vote_kernel(const int* pred, unsigned* ballot, int* any, int* all) {
  const int i = threadIdx.x;
  const int p = pred[i];
  ballot[i] = __ballot_sync(0xffffffffu, p);
  any[i] = __any_sync(0xffffffffu, p);
  all[i] = __all_sync(0xffffffffu, p);
}

__global__ void sync_reductions_kernel(const int* pred, int* count, int* all, int* any) {
  const int i = threadIdx.x;
  const int p = pred[i];
  count[i] = __syncthreads_count(p);
  all[i] = __syncthreads_and(p);
  any[i] = __syncthreads_or(p);
}

__global__ void atomics_kernel(AtomicCounters* c) {
  const int gid = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(&c->fsum, 1.0f);
  atomicAdd(&c->dsum, 0.5);
  atomicAdd(&c->isum, 2);
  atomicAdd(&c->usum, 3u);
  atomicAdd(&c->ullsum, 1ull);
  atomicMax(&c->imax, gid);
  atomicMin(&c->imin, gid);
  unsigned old = atomicAdd(&c->cas, 0u), assumed;
  do {
    assumed = old;
    old = atomicCAS(&c->cas, assumed, assumed + 1);
  } while (old != assumed);
  atomicInc(&c->inc, 999u);
  atomicSub(&c->sub, 1);
}

__global__ void copy_kernel(const float* x, float* y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = x[i];
}

__global__ void write_at_kernel(float* p, int64_t index) {
  if (blockIdx.x == 0 && threadIdx.x == 0) p[index] = 42.f;
}

__global__ void shared_write_kernel(int index) {
  LK_SHARED(float, slots, [64]);
  slots[threadIdx.x] = 1.f;
  __syncthreads();
  // Through a pointer, so that only the guard words can notice.
  float* p = slots;
  if (threadIdx.x == 0) p[index] = 2.f;
}

__global__ void noop_kernel(int value) {
  if (value == 12345 && threadIdx.x == 1u << 30) __trap();
}

__global__ void big_smem_kernel(size_t bytes, int* out) {
  unsigned char* s = lk_dynamic_smem<unsigned char>();
  for (size_t i = threadIdx.x; i < bytes; i += blockDim.x) s[i] = static_cast<unsigned char>(i);
  __syncthreads();
  if (threadIdx.x == 0) *out = s[bytes - 1];
}

__global__ void deadlock_kernel() {
  if (threadIdx.x == 0)
    __syncthreads();
  else
    __syncwarp(0xffffffffu);
}

__global__ void exited_lane_kernel() {
  if (threadIdx.x >= 16) return;
  __syncwarp(0xffffffffu);
}

__global__ void trap_kernel() {
  if (threadIdx.x == 0) __trap();
}

__global__ void misaligned_atomic_kernel(float* p) {
  atomicAdd(reinterpret_cast<float*>(reinterpret_cast<char*>(p) + 2), 1.f);
}

__global__ void shared_isolation_kernel(int* mismatches) {
  LK_SHARED(unsigned, mine, [128]);
  mine[threadIdx.x] = blockIdx.x;
  __syncthreads();
  for (int k = 0; k < 16; ++k) {
    const unsigned other = mine[(threadIdx.x + 7 * k) % blockDim.x];
    if (other != blockIdx.x) atomicAdd(mismatches, 1);
  }
}

// ------------------------------------------------------------------ streams

__global__ void fill_int_kernel(int* p, int n, int value) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) p[i] = value;
}

__global__ void copy_int_kernel(const int* x, int* y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = x[i];
}

__global__ void add_int_kernel(const int* x, int* y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] += x[i];
}

// ------------------------------------------------------------------ order and barriers

__global__ void arrival_kernel(int* next, int* tickets) {
  tickets[blockIdx.x * blockDim.x + threadIdx.x] = atomicAdd(next, 1);
}

__global__ void neighbour_sum_kernel(const float* x, float* out) {
  LK_SHARED(float, buf, [256]);
  const int t = threadIdx.x;
  buf[t] = x[t];
  __syncthreads();
  out[t] = (t > 0 ? buf[t - 1] : x[0]) + 1.f;
}

__global__ void neighbour_sum_missing_sync_kernel(const float* x, float* out) {
  LK_SHARED(float, buf, [256]);
  const int t = threadIdx.x;
  buf[t] = x[t];
  // BUG (on purpose): no __syncthreads() here.
  out[t] = (t > 0 ? buf[t - 1] : x[0]) + 1.f;
}

__global__ void divergent_barrier_kernel() {
  if (threadIdx.x < 32) {
    __syncthreads();
  } else {
    __syncthreads();
  }
}

__global__ void uneven_barrier_loop_kernel() {
  const int rounds = threadIdx.x < 32 ? 2 : 1;
  for (int r = 0; r < rounds; ++r) __syncthreads();
  __syncthreads();
}

__global__ void early_exit_barrier_kernel(int* out) {
  if (threadIdx.x >= 32) return;
  __syncthreads();
  out[threadIdx.x] = threadIdx.x;
}

__global__ void __launch_bounds__(64) bounded64_kernel(int* out) { out[threadIdx.x] = 1; }

__global__ void __launch_bounds__(kBoundedThreads, 2) bounded96_kernel(int* out) { out[threadIdx.x] = 1; }

__global__ void unbounded_kernel(int* out) { out[threadIdx.x] = 1; }

__global__ void static_smem_kernel(int* out) {
  LK_SHARED(int, big, [40 * 1024 / 4]);
  unsigned char* dyn = lk_dynamic_smem<unsigned char>();
  big[threadIdx.x] = threadIdx.x;
  dyn[threadIdx.x] = 1;
  __syncthreads();
  if (threadIdx.x == 0) *out = big[blockDim.x - 1] + dyn[0];
}

}  // namespace

cudaError_t index_cover(dim3 grid, dim3 block, int nx, int ny, int nz, int* counts, int* bad) {
  return LK_LAUNCH(index_cover_kernel, grid, block, 0, nullptr)(nx, ny, nz, counts, bad);
}
cudaError_t grid_stride_cover(int grid, int block, int64_t n, int* counts) {
  return LK_LAUNCH(grid_stride_kernel, grid, block, 0, nullptr)(n, counts);
}
cudaError_t block_sums(int blocks, const float* x, int n, float* out) {
  return LK_LAUNCH(block_sums_kernel, blocks, kReduceThreads, 0, nullptr)(x, n, out);
}
cudaError_t block_sums_missing_sync(int blocks, const float* x, int n, float* out) {
  return LK_LAUNCH(block_sums_missing_sync_kernel, blocks, kReduceThreads, 0, nullptr)(x, n, out);
}
cudaError_t warp_sums(int blocks, int threads, const float* x, int n, float* out) {
  return LK_LAUNCH(warp_sums_kernel, blocks, threads, 0, nullptr)(x, n, out);
}
cudaError_t reverse_chunks(int blocks, int chunk, const int* in, int* out, int* tag) {
  return LK_LAUNCH(reverse_chunks_kernel, blocks, chunk, chunk * sizeof(int), nullptr)(in, out, tag);
}
cudaError_t shuffle(Shfl op, int threads, int param, int width, unsigned mask, const int* in, int* out) {
  return LK_LAUNCH(shuffle_kernel, 1, threads, 0, nullptr)(static_cast<int>(op), param, width, mask, in, out);
}
cudaError_t vote(int threads, const int* pred, unsigned* ballot, int* any, int* all) {
  return LK_LAUNCH(vote_kernel, 1, threads, 0, nullptr)(pred, ballot, any, all);
}
cudaError_t sync_reductions(int threads, const int* pred, int* count, int* all, int* any) {
  return LK_LAUNCH(sync_reductions_kernel, 1, threads, 0, nullptr)(pred, count, all, any);
}
cudaError_t atomics(int blocks, int threads, AtomicCounters* c) {
  return LK_LAUNCH(atomics_kernel, blocks, threads, 0, nullptr)(c);
}
cudaError_t copy(const float* x, float* y, int n) {
  return LK_LAUNCH(copy_kernel, (n + 127) / 128, 128, 0, nullptr)(x, y, n);
}
cudaError_t write_at(float* p, int64_t index) { return LK_LAUNCH(write_at_kernel, 2, 32, 0, nullptr)(p, index); }
cudaError_t shared_write_at(int index) { return LK_LAUNCH(shared_write_kernel, 2, 64, 0, nullptr)(index); }
cudaError_t launch_config(dim3 grid, dim3 block, size_t dynamic_smem) {
  return LK_LAUNCH(noop_kernel, grid, block, dynamic_smem, nullptr)(0);
}
cudaError_t big_dynamic_smem(size_t bytes, bool opt_in, int* out) {
  if (opt_in) {
    const cudaError_t e =
        cudaFuncSetAttribute(big_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
    if (e != cudaSuccess) return e;
  }
  return LK_LAUNCH(big_smem_kernel, 1, 128, bytes, nullptr)(bytes, out);
}
cudaError_t deadlock() { return LK_LAUNCH(deadlock_kernel, 1, 64, 0, nullptr)(); }
cudaError_t exited_lane_in_mask() { return LK_LAUNCH(exited_lane_kernel, 1, 32, 0, nullptr)(); }
cudaError_t trap() { return LK_LAUNCH(trap_kernel, 1, 32, 0, nullptr)(); }
cudaError_t misaligned_atomic(float* p) { return LK_LAUNCH(misaligned_atomic_kernel, 1, 1, 0, nullptr)(p); }
cudaError_t shared_isolation(int blocks, int* mismatches) {
  return LK_LAUNCH(shared_isolation_kernel, blocks, 128, 0, nullptr)(mismatches);
}

cudaError_t fill_on(int* p, int n, int value, cudaStream_t stream) {
  return LK_LAUNCH(fill_int_kernel, (n + 127) / 128, 128, 0, stream)(p, n, value);
}
cudaError_t copy_on(const int* x, int* y, int n, cudaStream_t stream) {
  return LK_LAUNCH(copy_int_kernel, (n + 127) / 128, 128, 0, stream)(x, y, n);
}
cudaError_t add_on(const int* x, int* y, int n, cudaStream_t stream) {
  return LK_LAUNCH(add_int_kernel, (n + 127) / 128, 128, 0, stream)(x, y, n);
}

cudaError_t arrival_order(int blocks, int threads, int* next, int* tickets) {
  return LK_LAUNCH(arrival_kernel, blocks, threads, 0, nullptr)(next, tickets);
}
cudaError_t neighbour_sum(const float* x, float* out) {
  return LK_LAUNCH(neighbour_sum_kernel, 1, 256, 0, nullptr)(x, out);
}
cudaError_t neighbour_sum_missing_sync(const float* x, float* out) {
  return LK_LAUNCH(neighbour_sum_missing_sync_kernel, 1, 256, 0, nullptr)(x, out);
}
cudaError_t divergent_barrier() { return LK_LAUNCH(divergent_barrier_kernel, 1, 64, 0, nullptr)(); }
cudaError_t uneven_barrier_loop() { return LK_LAUNCH(uneven_barrier_loop_kernel, 1, 64, 0, nullptr)(); }
cudaError_t early_exit_barrier(int* out) { return LK_LAUNCH(early_exit_barrier_kernel, 1, 64, 0, nullptr)(out); }
cudaError_t bounded64(int threads, int* out) { return LK_LAUNCH(bounded64_kernel, 1, threads, 0, nullptr)(out); }
cudaError_t bounded96(int threads, int* out) { return LK_LAUNCH(bounded96_kernel, 1, threads, 0, nullptr)(out); }
void (*bounded64_kernel_ptr())() { return reinterpret_cast<void (*)()>(&bounded64_kernel); }
void (*bounded96_kernel_ptr())() { return reinterpret_cast<void (*)()>(&bounded96_kernel); }
void (*unbounded_kernel_ptr())() { return reinterpret_cast<void (*)()>(&unbounded_kernel); }
cudaError_t static_plus_dynamic_smem(size_t dynamic, bool opt_in, int* out) {
  if (opt_in) {
    const cudaError_t e = cudaFuncSetAttribute(static_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(dynamic));
    if (e != cudaSuccess) return e;
  }
  return LK_LAUNCH(static_smem_kernel, 1, 64, dynamic, nullptr)(out);
}

}  // namespace lk::emu_test
