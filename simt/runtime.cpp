// SIMT emulator: diagnostics and errors, copies and memsets (queued on the
// streams of streams.cpp), and the diagnostic controls of runtime.h.
// README.md has the design.
#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <memory>
#include <vector>
#include <string>

#include "simt/internal.h"

namespace lk::simt {

namespace detail {

// ================================================================= diagnostics

std::mutex g_msg_mu;
std::string g_last_msg;
std::atomic<bool> g_quiet{false};

std::string strf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char buf[1024];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

void report(const std::string& msg, bool primary) {
  std::lock_guard lk(g_msg_mu);
  if (primary) g_last_msg = msg;
  if (!g_quiet.load()) std::fprintf(stderr, "lkaseg simt: %s\n", msg.c_str());
}

// Last error per host thread (as the CUDA runtime keeps it), plus the error
// of a failed kernel execution, which the next synchronising call reports.
// Either report consumes both: an execution error is reported once.
thread_local cudaError t_last_error = cudaSuccess;
std::atomic<int> g_pending{cudaSuccess};

cudaError set_error(cudaError e) {
  if (e != cudaSuccess) t_last_error = e;
  return e;
}

cudaError take_pending() {
  const auto e = static_cast<cudaError>(g_pending.exchange(cudaSuccess));
  if (e != cudaSuccess && t_last_error == e) t_last_error = cudaSuccess;
  return e;
}

std::string env_string(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

long env_long(const char* name, long fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long r = std::strtol(v, &end, 10);
  return (end && *end == '\0') ? r : fallback;
}

cudaError config_error(cudaError e, const std::string& msg) {
  report(msg);
  return set_error(e);
}

void async_error(cudaError e, const std::string& msg) {
  report(msg);
  int none = cudaSuccess;
  g_pending.compare_exchange_strong(none, e);  // the first error stays
}

cudaError synchronize(const char* what) {
  const std::string problems = check_all_allocations(std::string("at ") + what);
  if (!problems.empty()) report(problems);
  const cudaError pending = take_pending();
  if (pending != cudaSuccess) return set_error(pending);
  return problems.empty() ? cudaSuccess : set_error(cudaErrorIllegalAddress);
}

// Which side of a copy is device memory: by kind, or by address for
// cudaMemcpyDefault.
struct Sides {
  bool dst_dev = false, src_dev = false;
};

cudaError check_copy(const char* call, void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, Sides* sides) {
  if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault)
    return config_error(cudaErrorInvalidMemcpyDirection, strf("%s with kind %d", call, static_cast<int>(kind)));
  if (!dst || !src) return config_error(cudaErrorInvalidValue, strf("%s with a null pointer", call));
  Sides s;
  if (kind == cudaMemcpyDefault) {
    s.dst_dev = is_device_range(dst, bytes);
    s.src_dev = is_device_range(src, bytes);
  } else {
    s.dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    s.src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  }
  if (s.dst_dev && !is_device_range(dst, bytes))
    return config_error(cudaErrorInvalidValue,
                        strf("%s of %zu bytes to %p: the destination is not inside one cudaMalloc allocation", call,
                             bytes, dst));
  if (s.src_dev && !is_device_range(src, bytes))
    return config_error(
        cudaErrorInvalidValue,
        strf("%s of %zu bytes from %p: the source is not inside one cudaMalloc allocation", call, bytes, src));
  *sides = s;
  return cudaSuccess;
}

// The copy, when its stream gets to it: its device memory must still exist.
void run_copy(const char* call, void* dst, const void* src, size_t bytes, Sides s) {
  if ((s.dst_dev && !is_device_range(dst, bytes)) || (s.src_dev && !is_device_range(src, bytes))) {
    async_error(cudaErrorIllegalAddress,
                strf("%s of %zu bytes (%p -> %p) ran after its device memory had been freed", call, bytes, src, dst));
    return;
  }
  std::memmove(dst, src, bytes);
}

// A blocking copy: queued on the legacy default stream (after the work of the
// device's blocking streams), waited for; returns a pending execution error.
cudaError blocking_copy(const char* call, void* dst, const void* src, size_t bytes, Sides s) {
  if (const cudaError e = capture_forbids(call, nullptr, true); e != cudaSuccess) return e;
  Ticket t;
  if (enqueue(nullptr, [=] { run_copy(call, dst, src, bytes, s); }, &t) != cudaSuccess)
    return set_error(cudaErrorInvalidResourceHandle);
  wait_ticket(t);
  const cudaError pending = take_pending();
  return pending == cudaSuccess ? pending : set_error(pending);
}

cudaError memcpy_symbol(void* dst, const void* src, size_t bytes, bool in_range, cudaMemcpyKind kind) {
  if (!in_range || (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault))
    return config_error(cudaErrorInvalidValue, "cudaMemcpy{To,From}Symbol: range outside the symbol or bad kind");
  if (bytes == 0) return cudaSuccess;
  touch_context();
  return blocking_copy("cudaMemcpy{To,From}Symbol", dst, src, bytes, Sides{});
}

cudaError memset_on(const char* call, void* ptr, int value, size_t bytes, cudaStream_t stream) {
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
  if (bytes == 0) return cudaSuccess;
  touch_context();
  if (!is_device_range(ptr, bytes))
    return config_error(cudaErrorInvalidValue,
                        strf("%s of %zu bytes at %p: not inside one cudaMalloc allocation", call, bytes, ptr));
  const cudaError e = enqueue(stream, [=] {
    if (is_device_range(ptr, bytes))
      std::memset(ptr, value, bytes);
    else
      async_error(cudaErrorIllegalAddress,
                  strf("%s of %zu bytes at %p ran after the memory had been freed", call, bytes, ptr));
  });
  return e == cudaSuccess ? e : set_error(e);
}

}  // namespace detail

using namespace detail;

// ================================================================= runtime API

cudaError cudaGetLastError() {
  const cudaError e = t_last_error;
  t_last_error = cudaSuccess;
  if (e != cudaSuccess) {
    int expected = e;
    g_pending.compare_exchange_strong(expected, cudaSuccess);
  }
  return e;
}

cudaError cudaPeekAtLastError() { return t_last_error; }

const char* cudaGetErrorName(cudaError e) {
  switch (e) {
#define LK_SIMT_NAME(x) \
  case x: return #x;
    LK_SIMT_NAME(cudaSuccess)
    LK_SIMT_NAME(cudaErrorInvalidValue)
    LK_SIMT_NAME(cudaErrorMemoryAllocation)
    LK_SIMT_NAME(cudaErrorInvalidConfiguration)
    LK_SIMT_NAME(cudaErrorInvalidSymbol)
    LK_SIMT_NAME(cudaErrorInvalidDevicePointer)
    LK_SIMT_NAME(cudaErrorInvalidMemcpyDirection)
    LK_SIMT_NAME(cudaErrorInvalidDeviceFunction)
    LK_SIMT_NAME(cudaErrorNoDevice)
    LK_SIMT_NAME(cudaErrorInvalidDevice)
    LK_SIMT_NAME(cudaErrorInvalidResourceHandle)
    LK_SIMT_NAME(cudaErrorNotReady)
    LK_SIMT_NAME(cudaErrorIllegalAddress)
    LK_SIMT_NAME(cudaErrorLaunchOutOfResources)
    LK_SIMT_NAME(cudaErrorLaunchTimeout)
    LK_SIMT_NAME(cudaErrorAssert)
    LK_SIMT_NAME(cudaErrorIllegalInstruction)
    LK_SIMT_NAME(cudaErrorMisalignedAddress)
    LK_SIMT_NAME(cudaErrorLaunchFailure)
    LK_SIMT_NAME(cudaErrorNotSupported)
    LK_SIMT_NAME(cudaErrorStreamCaptureUnsupported)
    LK_SIMT_NAME(cudaErrorStreamCaptureInvalidated)
    LK_SIMT_NAME(cudaErrorStreamCaptureIsolation)
    LK_SIMT_NAME(cudaErrorStreamCaptureWrongThread)
    LK_SIMT_NAME(cudaErrorIllegalState)
    LK_SIMT_NAME(cudaErrorUnknown)
#undef LK_SIMT_NAME
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidSymbol: return "invalid device symbol";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInvalidDeviceFunction: return "invalid device function";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorLaunchTimeout: return "the launch timed out and was terminated";
    case cudaErrorAssert: return "device-side assert triggered";
    case cudaErrorIllegalInstruction: return "an illegal instruction was encountered";
    case cudaErrorMisalignedAddress: return "misaligned address";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorNotSupported: return "operation not supported";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureIsolation: return "dependency created on uncaptured work in another stream";
    case cudaErrorStreamCaptureWrongThread: return "attempt to terminate a thread-local capture sequence from another thread";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorUnknown: return "unknown error";
  }
  return "unknown error";
}

// ================================================================= copies and memsets

cudaError cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  touch_context();
  Sides sides;
  if (const cudaError e = check_copy("cudaMemcpy", dst, src, bytes, kind, &sides); e != cudaSuccess) return e;
  return blocking_copy("cudaMemcpy", dst, src, bytes, sides);
}

// Pageable host memory is staged before the call returns (as the CUDA driver
// does), so the caller may reuse it at once; pinned host memory is read, and
// any host destination written, only when the stream runs the copy.
cudaError cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, StreamImpl* stream) {
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
  if (bytes == 0) return cudaSuccess;
  touch_context();
  Sides sides;
  if (const cudaError e = check_copy("cudaMemcpyAsync", dst, src, bytes, kind, &sides); e != cudaSuccess) return e;
  std::shared_ptr<std::vector<unsigned char>> staged;
  if (!sides.src_dev && !is_pinned(src, bytes)) {
    // A graph would replay the bytes staged at capture time.
    if (const cudaError e = capture_forbids("cudaMemcpyAsync from pageable host memory", stream, false);
        e != cudaSuccess)
      return e;
    const auto* b = static_cast<const unsigned char*>(src);
    staged = std::make_shared<std::vector<unsigned char>>(b, b + bytes);
    src = staged->data();
  }
  const cudaError e = enqueue(stream, [dst, src, bytes, sides, staged] {
    run_copy("cudaMemcpyAsync", dst, src, bytes, sides);
  });
  return e == cudaSuccess ? e : set_error(e);
}

// Asynchronous with respect to the host for device memory (CUDA's "API
// synchronisation behaviour"): queued on the legacy default stream.
cudaError cudaMemset(void* ptr, int value, size_t bytes) {
  // On the legacy default stream, which waits for the capturing one.
  if (const cudaError e = capture_forbids("cudaMemset", nullptr, true); e != cudaSuccess) return e;
  return memset_on("cudaMemset", ptr, value, bytes, nullptr);
}

cudaError cudaMemsetAsync(void* ptr, int value, size_t bytes, StreamImpl* stream) {
  return memset_on("cudaMemsetAsync", ptr, value, bytes, stream);
}

std::string last_message() {
  std::lock_guard lk(g_msg_mu);
  return g_last_msg;
}

void set_quiet(bool quiet) { g_quiet.store(quiet); }


}  // namespace lk::simt
