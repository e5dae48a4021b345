// Channel concatenation forward (block copy) and backward (block add), float, bf16 or f16.
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/concat.h"
#include "kernels/cuda/cuda_compat.cuh"

LK_CUDA_NAMESPACE_BEGIN
namespace {

constexpr int kThreads = kConcatThreads;
constexpr int64_t kMaxGridX = 1024;
constexpr int64_t kMaxGridY = 65535;

__device__ __forceinline__ float plus(float a, float b) { return a + b; }
template <typename T>
__device__ __forceinline__ T plus(T a, T b) {  // bf16, f16: the sum in float, rounded once
  return T(static_cast<float>(a) + static_cast<float>(b));
}
__device__ __forceinline__ float4 plus(float4 a, float4 b) {
  return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

// For each of n images: out[i*out_stride + out_off + j] (+)= in[i*in_stride + in_off + j],
// j < len; everything in units of V (float or float4).
// Grid: (chunks of len, images), both grid-stride.
template <typename V, bool kAdd>
__global__ void __launch_bounds__(kThreads)
    block_copy_kernel(int64_t n, int64_t len, const V* __restrict__ in, int64_t in_stride, int64_t in_off,
                      V* __restrict__ out, int64_t out_stride, int64_t out_off) {
  const int64_t start = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.y; i < n; i += gridDim.y) {
    const V* src = in + i * in_stride + in_off;
    V* dst = out + i * out_stride + out_off;
    for (int64_t j = start; j < len; j += step) {
      if constexpr (kAdd) dst[j] = plus(dst[j], src[j]);
      else dst[j] = src[j];
    }
  }
}

template <bool kAdd, typename T>
cudaError_t run(int64_t n, int64_t len, const T* in, int64_t in_stride, int64_t in_off, T* out,
                int64_t out_stride, int64_t out_off, cudaStream_t stream) {
  if constexpr (!std::is_same_v<T, float>) {  // 16-bit storage: one element per thread
    const int64_t chunks = (len + kThreads - 1) / kThreads;
    const dim3 grid(static_cast<unsigned>(chunks < kMaxGridX ? chunks : kMaxGridX),
                    static_cast<unsigned>(n < kMaxGridY ? n : kMaxGridY));
    return LK_LAUNCH((block_copy_kernel<T, kAdd>), grid, kThreads, 0, stream)(n, len, in, in_stride, in_off, out,
                                                                             out_stride, out_off);
  } else {
  // float4 when every offset is a multiple of 4 floats and both pointers are 16-byte aligned.
  const bool vec = len % 4 == 0 && in_stride % 4 == 0 && in_off % 4 == 0 && out_stride % 4 == 0 &&
                   out_off % 4 == 0 && reinterpret_cast<uintptr_t>(in) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(out) % 16 == 0;
  const int64_t v = vec ? 4 : 1, units = len / v;
  const int64_t chunks = (units + kThreads - 1) / kThreads;
  const dim3 grid(static_cast<unsigned>(chunks < kMaxGridX ? chunks : kMaxGridX),
                  static_cast<unsigned>(n < kMaxGridY ? n : kMaxGridY));
  if (vec)
    return LK_LAUNCH((block_copy_kernel<float4, kAdd>), grid, kThreads, 0, stream)(
        n, units, reinterpret_cast<const float4*>(in), in_stride / 4, in_off / 4, reinterpret_cast<float4*>(out),
        out_stride / 4, out_off / 4);
  return LK_LAUNCH((block_copy_kernel<float, kAdd>), grid, kThreads, 0, stream)(n, units, in, in_stride, in_off, out,
                                                                               out_stride, out_off);
  }
}

bool valid(int64_t n, int64_t c_src, int64_t c_dst, int64_t offset, int64_t hw) {
  return n >= 0 && c_src >= 0 && offset >= 0 && hw >= 0 && offset + c_src <= c_dst;
}

}  // namespace

template <typename T>
cudaError_t concat_fwd(int64_t n, int64_t c_src, int64_t c_dst, int64_t offset, int64_t hw, const T* src, T* dst,
                       cudaStream_t stream) {
  if (!valid(n, c_src, c_dst, offset, hw)) return cudaErrorInvalidValue;
  if (n * c_src * hw == 0) return cudaSuccess;
  return run<false>(n, c_src * hw, src, c_src * hw, 0, dst, c_dst * hw, offset * hw, stream);
}

template <typename T>
cudaError_t concat_bwd(int64_t n, int64_t c_src, int64_t c_dst, int64_t offset, int64_t hw, const T* ddst, T* dsrc,
                       cudaStream_t stream, bool accumulate) {
  if (!valid(n, c_src, c_dst, offset, hw)) return cudaErrorInvalidValue;
  if (n * c_src * hw == 0) return cudaSuccess;
  if (!accumulate) return run<false>(n, c_src * hw, ddst, c_dst * hw, offset * hw, dsrc, c_src * hw, 0, stream);
  return run<true>(n, c_src * hw, ddst, c_dst * hw, offset * hw, dsrc, c_src * hw, 0, stream);
}

#define LK_INST(T)                                                                                          \
  template cudaError_t concat_fwd<T>(int64_t, int64_t, int64_t, int64_t, int64_t, const T*, T*, cudaStream_t); \
  template cudaError_t concat_bwd<T>(int64_t, int64_t, int64_t, int64_t, int64_t, const T*, T*, cudaStream_t, \
                                     bool);
LK_INSTANTIATE_STORAGE(LK_INST)
#undef LK_INST

LK_CUDA_NAMESPACE_END
