// SIMT emulator: the runtime API besides memory and launches - diagnostics
// and errors, the device, copies and memsets, streams and events - and the
// diagnostic controls of runtime.h. README.md has the design.
#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <string>

#include "simt/internal.h"

namespace lk::simt {

struct StreamImpl {
  unsigned flags = 0;
};
struct EventImpl {
  unsigned flags = 0;
  bool recorded = false;
  std::chrono::steady_clock::time_point when{};
};

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

std::mutex g_handle_mu;
std::set<const void*> g_streams, g_events;

bool valid_stream(cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return true;
  std::lock_guard lk(g_handle_mu);
  return g_streams.count(s) != 0;
}

bool valid_event(cudaEvent_t e) {
  std::lock_guard lk(g_handle_mu);
  return e && g_events.count(e) != 0;
}

cudaError config_error(cudaError e, const std::string& msg) {
  report(msg);
  return set_error(e);
}

// Synchronising calls: check every allocation's guards, then report a
// pending execution error once.
cudaError synchronize(const char* what) {
  const std::string problems = check_all_allocations(std::string("at ") + what);
  if (!problems.empty()) report(problems);
  const cudaError pending = take_pending();
  if (pending != cudaSuccess) return set_error(pending);
  return problems.empty() ? cudaSuccess : set_error(cudaErrorIllegalAddress);
}

cudaError memcpy_symbol(void* dst, const void* src, size_t bytes, bool in_range, cudaMemcpyKind kind) {
  if (!in_range || (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault))
    return config_error(cudaErrorInvalidValue, "cudaMemcpy{To,From}Symbol: range outside the symbol or bad kind");
  std::memmove(dst, src, bytes);
  return cudaSuccess;
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
    case cudaErrorUnknown: return "unknown error";
  }
  return "unknown error";
}

cudaError cudaGetDeviceCount(int* n) {
  if (!n) return set_error(cudaErrorInvalidValue);
  *n = 1;
  return cudaSuccess;
}
cudaError cudaSetDevice(int device) { return device == 0 ? cudaSuccess : set_error(cudaErrorInvalidDevice); }
cudaError cudaGetDevice(int* device) {
  if (!device) return set_error(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}
cudaError cudaDeviceSynchronize() { return synchronize("cudaDeviceSynchronize"); }

cudaError cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault)
    return config_error(cudaErrorInvalidMemcpyDirection, strf("cudaMemcpy with kind %d", static_cast<int>(kind)));
  if (!dst || !src) return config_error(cudaErrorInvalidValue, "cudaMemcpy with a null pointer");
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (dst_dev && !is_device_range(dst, bytes))
    return config_error(cudaErrorInvalidValue,
                        strf("cudaMemcpy of %zu bytes to %p: the destination is not inside one cudaMalloc "
                             "allocation",
                             bytes, dst));
  if (src_dev && !is_device_range(src, bytes))
    return config_error(
        cudaErrorInvalidValue,
        strf("cudaMemcpy of %zu bytes from %p: the source is not inside one cudaMalloc allocation", bytes, src));
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, StreamImpl* stream) {
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
  return cudaMemcpy(dst, src, bytes, kind);
}

cudaError cudaMemset(void* ptr, int value, size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  if (!is_device_range(ptr, bytes))
    return config_error(cudaErrorInvalidValue,
                        strf("cudaMemset of %zu bytes at %p: not inside one cudaMalloc allocation", bytes, ptr));
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}

cudaError cudaMemsetAsync(void* ptr, int value, size_t bytes, StreamImpl* stream) {
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
  return cudaMemset(ptr, value, bytes);
}

cudaError cudaStreamCreate(StreamImpl** stream) { return cudaStreamCreateWithFlags(stream, 0); }
cudaError cudaStreamCreateWithFlags(StreamImpl** stream, unsigned flags) {
  if (!stream) return set_error(cudaErrorInvalidValue);
  *stream = new StreamImpl{flags};
  std::lock_guard lk(g_handle_mu);
  g_streams.insert(*stream);
  return cudaSuccess;
}
cudaError cudaStreamDestroy(StreamImpl* stream) {
  {
    std::lock_guard lk(g_handle_mu);
    if (!stream || !g_streams.erase(stream)) return set_error(cudaErrorInvalidResourceHandle);
  }
  delete stream;
  return cudaSuccess;
}
cudaError cudaStreamSynchronize(StreamImpl* stream) {
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
  return synchronize("cudaStreamSynchronize");
}
cudaError cudaStreamQuery(StreamImpl* stream) {
  return valid_stream(stream) ? cudaSuccess : set_error(cudaErrorInvalidResourceHandle);
}
cudaError cudaStreamWaitEvent(StreamImpl* stream, EventImpl* event, unsigned) {
  if (!valid_stream(stream) || !valid_event(event)) return set_error(cudaErrorInvalidResourceHandle);
  return cudaSuccess;
}

cudaError cudaEventCreate(EventImpl** event) { return cudaEventCreateWithFlags(event, 0); }
cudaError cudaEventCreateWithFlags(EventImpl** event, unsigned flags) {
  if (!event) return set_error(cudaErrorInvalidValue);
  *event = new EventImpl{flags, false, {}};
  std::lock_guard lk(g_handle_mu);
  g_events.insert(*event);
  return cudaSuccess;
}
cudaError cudaEventDestroy(EventImpl* event) {
  {
    std::lock_guard lk(g_handle_mu);
    if (!event || !g_events.erase(event)) return set_error(cudaErrorInvalidResourceHandle);
  }
  delete event;
  return cudaSuccess;
}
cudaError cudaEventRecord(EventImpl* event, StreamImpl* stream) {
  if (!valid_event(event) || !valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
  event->recorded = true;
  event->when = std::chrono::steady_clock::now();
  return cudaSuccess;
}
cudaError cudaEventSynchronize(EventImpl* event) {
  if (!valid_event(event)) return set_error(cudaErrorInvalidResourceHandle);
  return synchronize("cudaEventSynchronize");
}
cudaError cudaEventQuery(EventImpl* event) {
  return valid_event(event) ? cudaSuccess : set_error(cudaErrorInvalidResourceHandle);
}
cudaError cudaEventElapsedTime(float* ms, EventImpl* start, EventImpl* end) {
  if (!ms) return set_error(cudaErrorInvalidValue);
  if (!valid_event(start) || !valid_event(end)) return set_error(cudaErrorInvalidResourceHandle);
  if (!start->recorded || !end->recorded || (start->flags | end->flags) & cudaEventDisableTiming)
    return set_error(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
  return cudaSuccess;
}

std::string last_message() {
  std::lock_guard lk(g_msg_mu);
  return g_last_msg;
}

void set_quiet(bool quiet) { g_quiet.store(quiet); }


}  // namespace lk::simt
