// The one header a CUDA kernel source includes. The same .cu file is compiled
// by nvcc for the GPU and by the host compiler against the SIMT emulator
// (simt/README.md); this header is the only place the two differ.
//
// Kernel sources use, besides plain CUDA:
//   LK_SHARED(type, name, dims...)   static shared memory, one copy per block:
//                                    LK_SHARED(float, tile, [16][17]);
//                                    (nvcc: __shared__ float tile[16][17];)
//   lk_dynamic_smem<T>()             the dynamic shared memory of the launch
//                                    (nvcc: extern __shared__ array)
//   LK_LAUNCH(kernel, grid, block, shmem, stream)(args...)
//                                    kernel<<<grid, block, shmem, stream>>>(args...)
//                                    and returns cudaGetLastError(); wrap a
//                                    template-id with commas in parentheses:
//                                    LK_LAUNCH((k<float, 5>), ...)
//   LK_UNROLL                        #pragma unroll where the compiler knows it
#pragma once

#include <cstddef>
#include <utility>

#include "kernels/cuda/launch_observer.h"
#include "kernels/cuda/runtime_api.h"

#if defined(__CUDACC__)

#define LK_SHARED(type, name, ...) __shared__ type name __VA_ARGS__
#define LK_UNROLL _Pragma("unroll")

template <typename T>
__device__ __forceinline__ T* lk_dynamic_smem() {
  extern __shared__ __align__(16) unsigned char lk_dynamic_smem_bytes[];
  return reinterpret_cast<T*>(lk_dynamic_smem_bytes);
}

#else  // host compiler: the SIMT emulator

#include "simt/simt.h"

#define LK_SIMT_CAT2(a, b) a##b
#define LK_SIMT_CAT(a, b) LK_SIMT_CAT2(a, b)
// A constant-initialised site object per declaration (and per template
// instantiation); the block's shared arena hands every thread of the block
// the same storage for it, poisoned with 0xFF and followed by guard bytes.
#define LK_SHARED(type, name, ...)                                                                  \
  static ::lk::simt::SharedSite LK_SIMT_CAT(lk_shared_site_, name){#name, sizeof(type __VA_ARGS__), \
                                                                   alignof(type __VA_ARGS__)};      \
  type(&name) __VA_ARGS__ =                                                                         \
      *static_cast<type(*) __VA_ARGS__>(::lk::simt::detail::shared_static(LK_SIMT_CAT(lk_shared_site_, name)))
#define LK_UNROLL

template <typename T>
inline T* lk_dynamic_smem() {
  return static_cast<T*>(::lk::simt::detail::shared_dynamic());
}

#endif

namespace lk {

// What LK_LAUNCH builds: the configuration, then operator() launches.
template <typename... P>
struct KernelLaunch {
  const char* name;
  void (*kernel)(P...);
  dim3 grid, block;
  size_t shmem;
  cudaStream_t stream;

  template <typename... A>
  [[nodiscard]] cudaError_t operator()(A&&... args) const {
    ::lk::cuda::LaunchObserver* observer = ::lk::cuda::g_launch_observer.load(std::memory_order_acquire);
    if (observer) observer->before(name, stream);
#if defined(__CUDACC__)
    kernel<<<grid, block, shmem, stream>>>(std::forward<A>(args)...);
#else
    ::lk::simt::launch(name, kernel, grid, block, shmem, stream, std::forward<A>(args)...);
#endif
    const cudaError_t result = cudaGetLastError();
    if (observer) observer->after(name, stream, result);
    return result;
  }
};
template <typename... P>
KernelLaunch(const char*, void (*)(P...), dim3, dim3, size_t, cudaStream_t) -> KernelLaunch<P...>;

}  // namespace lk

// clang-format off
#define LK_LAUNCH(kernel, grid, block, shmem, stream) \
  ::lk::KernelLaunch { #kernel, kernel, dim3(grid), dim3(block), static_cast<size_t>(shmem), (stream) }
// clang-format on

// How a backward kernel stores into a gradient output (kernels/common.h): it
// adds into it, or overwrites it (beta = 0: the buffer holds nothing yet).
template <typename T>
__device__ __forceinline__ void lk_put_grad(T& out, T v, bool accumulate) {
  out = accumulate ? out + v : v;
}
