// Multi-tensor AdamW step (float), one launch over a (tensor, chunk) table.
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cuda/adamw.h"
#include "kernels/cuda/cuda_compat.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace {

constexpr int kThreads = kAdamWThreads;
constexpr int64_t kMaxBlocks = 65535;

struct Chunk {
  int32_t tensor;  // index into the tensor list
  int32_t index;   // elements [index * kAdamWChunk, (index + 1) * kAdamWChunk) of it
};

// The step's scalars, rounded to float from double.
struct Coefs {
  float decay;         // 1 - lr * wd
  float beta1, beta2;  // and their complements
  float one_minus_beta1, one_minus_beta2;
  float step_size;  // lr / bc1
  float sqrt_bc2;   // sqrt(1 - beta2^t)
  float eps;
};

__global__ void __launch_bounds__(kThreads)
    adamw_kernel(const AdamWTensor* __restrict__ tensors, const Chunk* __restrict__ chunks, int64_t n_chunks, Coefs c) {
  for (int64_t q = blockIdx.x; q < n_chunks; q += gridDim.x) {
    const Chunk ch = chunks[q];
    const AdamWTensor t = tensors[ch.tensor];
    const int64_t begin = int64_t(ch.index) * kAdamWChunk;
    const int64_t end = begin + kAdamWChunk < t.numel ? begin + kAdamWChunk : t.numel;
    for (int64_t k = begin + threadIdx.x; k < end; k += blockDim.x) {
      const float g = t.grad[k];
      float p = t.param[k] * c.decay;
      const float m = c.beta1 * t.exp_avg[k] + c.one_minus_beta1 * g;
      const float v = c.beta2 * t.exp_avg_sq[k] + c.one_minus_beta2 * g * g;
      p -= c.step_size * m / (sqrtf(v) / c.sqrt_bc2 + c.eps);
      t.param[k] = p;
      t.exp_avg[k] = m;
      t.exp_avg_sq[k] = v;
    }
  }
}

}  // namespace

cudaError_t adamw_step(const std::vector<AdamWTensor>& tensors, double lr, double beta1, double beta2, double eps,
                       double weight_decay, int64_t step, cudaStream_t stream) {
  if (step < 1) return cudaErrorInvalidValue;
  // The table: active tensors, then their chunks.
  std::vector<AdamWTensor> active;
  std::vector<Chunk> chunks;
  for (const AdamWTensor& t : tensors) {
    if (t.numel < 0) return cudaErrorInvalidValue;
    if (!t.grad || t.numel == 0) continue;
    if (!t.param || !t.exp_avg || !t.exp_avg_sq) return cudaErrorInvalidValue;
    const int64_t n = (t.numel + kAdamWChunk - 1) / kAdamWChunk;
    if (n > INT32_MAX || active.size() >= static_cast<size_t>(INT32_MAX)) return cudaErrorInvalidValue;
    for (int64_t i = 0; i < n; ++i) chunks.push_back({static_cast<int32_t>(active.size()), static_cast<int32_t>(i)});
    active.push_back(t);
  }
  if (chunks.empty()) return cudaSuccess;

  const size_t tensor_bytes = active.size() * sizeof(AdamWTensor), chunk_bytes = chunks.size() * sizeof(Chunk);
  std::vector<unsigned char> host(tensor_bytes + chunk_bytes);
  std::memcpy(host.data(), active.data(), tensor_bytes);
  std::memcpy(host.data() + tensor_bytes, chunks.data(), chunk_bytes);

  const double t = static_cast<double>(step);
  const double bc1 = 1 - std::pow(beta1, t), bc2 = 1 - std::pow(beta2, t);
  Coefs c{};
  c.decay = static_cast<float>(1 - lr * weight_decay);
  c.beta1 = static_cast<float>(beta1);
  c.beta2 = static_cast<float>(beta2);
  c.one_minus_beta1 = static_cast<float>(1 - beta1);
  c.one_minus_beta2 = static_cast<float>(1 - beta2);
  c.step_size = static_cast<float>(lr / bc1);
  c.sqrt_bc2 = static_cast<float>(std::sqrt(bc2));
  c.eps = static_cast<float>(eps);

  void* table = nullptr;
  cudaError_t err = cudaMallocAsync(&table, host.size(), stream);
  if (err != cudaSuccess) return err;
  err = cudaMemcpyAsync(table, host.data(), host.size(), cudaMemcpyHostToDevice, stream);
  if (err == cudaSuccess) {
    const int64_t n_chunks = static_cast<int64_t>(chunks.size());
    const auto* d_tensors = static_cast<const AdamWTensor*>(table);
    const auto* d_chunks = reinterpret_cast<const Chunk*>(static_cast<const unsigned char*>(table) + tensor_bytes);
    err = LK_LAUNCH(adamw_kernel, n_chunks < kMaxBlocks ? n_chunks : kMaxBlocks, kThreads, 0, stream)(
        d_tensors, d_chunks, n_chunks, c);
  }
  const cudaError_t freed = cudaFreeAsync(table, stream);
  return err != cudaSuccess ? err : freed;
}

LK_CUDA_NAMESPACE_END
