// The counting layer at the emulator's runtime-API boundary: the CUDA
// spellings (global names) of the calls that make the host wait, allocate,
// copy, or order streams. Each counts itself in lk::simt::api_counts()
// (runtime.h) and forwards to the emulator; calls made with the qualified
// lk::simt:: names (the emulator itself) are not counted.
//
// They are function objects, not functions: a call through an object's name
// is not subject to argument-dependent lookup, which would otherwise also
// find the uncounted lk::simt:: function of the same signature (the stream,
// event and memcpy-kind types live there) and make the call ambiguous.
// Included by runtime.h only.
#pragma once

#include "simt/runtime.h"

namespace lk::simt::detail {
enum class Counted : int { Sync, Malloc, Free, Copy, Memset, EventRecord, StreamWait, GraphLaunch, kCount };
void count(Counted what);
}  // namespace lk::simt::detail

// clang-format off
#define LK_SIMT_COUNTED_CALL(name, what, params, args)           \
  inline constexpr struct {                                      \
    cudaError_t operator() params const {                        \
      ::lk::simt::detail::count(::lk::simt::detail::Counted::what); \
      return ::lk::simt::name args;                              \
    }                                                            \
  } name {}
// Allocations also take T** (as the CUDA headers' templates do).
#define LK_SIMT_COUNTED_ALLOC(name, params, args)                \
  inline constexpr struct {                                      \
    template <class T>                                           \
    cudaError_t operator() params const {                        \
      ::lk::simt::detail::count(::lk::simt::detail::Counted::Malloc); \
      return ::lk::simt::name args;                              \
    }                                                            \
  } name {}
// clang-format on

LK_SIMT_COUNTED_CALL(cudaDeviceSynchronize, Sync, (), ());
LK_SIMT_COUNTED_CALL(cudaStreamSynchronize, Sync, (cudaStream_t s), (s));
LK_SIMT_COUNTED_CALL(cudaEventSynchronize, Sync, (cudaEvent_t e), (e));
LK_SIMT_COUNTED_CALL(cudaMemcpy, Sync, (void* dst, const void* src, size_t bytes, cudaMemcpyKind kind), (dst, src, bytes, kind));
// Asynchronous for device memory (CUDA's API synchronisation behaviour): stream work, not a host wait.
LK_SIMT_COUNTED_CALL(cudaMemset, Memset, (void* p, int value, size_t bytes), (p, value, bytes));
LK_SIMT_COUNTED_CALL(cudaMemcpyAsync, Copy, (void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s = nullptr), (dst, src, bytes, kind, s));
LK_SIMT_COUNTED_CALL(cudaMemsetAsync, Memset, (void* p, int value, size_t bytes, cudaStream_t s = nullptr), (p, value, bytes, s));
LK_SIMT_COUNTED_CALL(cudaFree, Free, (void* p), (p));
LK_SIMT_COUNTED_CALL(cudaFreeAsync, Free, (void* p, cudaStream_t s), (p, s));
LK_SIMT_COUNTED_CALL(cudaFreeHost, Free, (void* p), (p));
LK_SIMT_COUNTED_CALL(cudaEventRecord, EventRecord, (cudaEvent_t e, cudaStream_t s = nullptr), (e, s));
LK_SIMT_COUNTED_CALL(cudaStreamWaitEvent, StreamWait, (cudaStream_t s, cudaEvent_t e, unsigned flags = 0), (s, e, flags));
LK_SIMT_COUNTED_CALL(cudaGraphLaunch, GraphLaunch, (cudaGraphExec_t g, cudaStream_t s), (g, s));
LK_SIMT_COUNTED_ALLOC(cudaMalloc, (T** p, size_t bytes), (reinterpret_cast<void**>(p), bytes));
LK_SIMT_COUNTED_ALLOC(cudaMallocAsync, (T** p, size_t bytes, cudaStream_t s), (reinterpret_cast<void**>(p), bytes, s));
LK_SIMT_COUNTED_ALLOC(cudaMallocHost, (T** p, size_t bytes), (reinterpret_cast<void**>(p), bytes));

#undef LK_SIMT_COUNTED_CALL
#undef LK_SIMT_COUNTED_ALLOC
