// The host-side half of the SIMT emulator: the subset of the CUDA runtime API
// our host code and launchers use (errors, memory, streams, events), plus the
// emulator's own controls. Safe to include from ordinary host code: it defines
// no kernel-side names (threadIdx, __syncthreads, ...; those are in simt.h).
//
// Everything lives in namespace lk::simt and is re-exported into the global
// namespace under the CUDA spelling (using-declarations), so host code and
// launchers compile unchanged against either this or <cuda_runtime_api.h>,
// while the mangled names never collide with the real libcudart (a binary may
// link both). Error codes keep CUDA's numeric values. See README.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace lk::simt {

// ----------------------------------------------------------------- types

enum cudaError : int {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidSymbol = 13,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorLaunchTimeout = 702,
  cudaErrorAssert = 710,
  cudaErrorIllegalInstruction = 715,
  cudaErrorMisalignedAddress = 716,
  cudaErrorLaunchFailure = 719,
  cudaErrorNotSupported = 801,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureIsolation = 905,
  cudaErrorStreamCaptureWrongThread = 908,
  cudaErrorIllegalState = 401,
  cudaErrorUnknown = 999,
};

enum cudaMemcpyKind : int {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

enum cudaFuncAttribute : int {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

struct StreamImpl;  // opaque handles; only their addresses are used
struct EventImpl;
struct GraphImpl;
struct GraphExecImpl;

// Stream capture (graph.cpp, README.md "Graphs").
enum cudaStreamCaptureMode : int {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2,
};
enum cudaStreamCaptureStatus : int {
  cudaStreamCaptureStatusNone = 0,
  cudaStreamCaptureStatusActive = 1,
  cudaStreamCaptureStatusInvalidated = 2,
};

// ----------------------------------------------------------------- runtime API

cudaError cudaGetLastError();
cudaError cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError e);
const char* cudaGetErrorName(cudaError e);

cudaError cudaGetDeviceCount(int* n);
cudaError cudaSetDevice(int device);
cudaError cudaGetDevice(int* device);
cudaError cudaDeviceSynchronize();
cudaError cudaDeviceReset();

cudaError cudaMalloc(void** ptr, size_t bytes);
cudaError cudaFree(void* ptr);
cudaError cudaMallocAsync(void** ptr, size_t bytes, StreamImpl* stream);
cudaError cudaFreeAsync(void* ptr, StreamImpl* stream);
cudaError cudaMallocHost(void** ptr, size_t bytes);
cudaError cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError cudaFreeHost(void* ptr);
cudaError cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, StreamImpl* stream = nullptr);
cudaError cudaMemset(void* ptr, int value, size_t bytes);
cudaError cudaMemsetAsync(void* ptr, int value, size_t bytes, StreamImpl* stream = nullptr);

template <class T>
cudaError cudaMalloc(T** ptr, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(ptr), bytes);
}
template <class T>
cudaError cudaMallocAsync(T** ptr, size_t bytes, StreamImpl* stream) {
  return cudaMallocAsync(reinterpret_cast<void**>(ptr), bytes, stream);
}
template <class T>
cudaError cudaMallocHost(T** ptr, size_t bytes) {
  return cudaMallocHost(reinterpret_cast<void**>(ptr), bytes);
}

// __constant__ / __device__ variables are ordinary globals in the emulator.
template <class T>
cudaError cudaMemcpyToSymbol(T& symbol, const void* src, size_t bytes, size_t offset = 0,
                             cudaMemcpyKind kind = cudaMemcpyHostToDevice);
template <class T>
cudaError cudaMemcpyFromSymbol(void* dst, const T& symbol, size_t bytes, size_t offset = 0,
                               cudaMemcpyKind kind = cudaMemcpyDeviceToHost);

cudaError cudaStreamCreate(StreamImpl** stream);
cudaError cudaStreamCreateWithFlags(StreamImpl** stream, unsigned flags);
cudaError cudaStreamDestroy(StreamImpl* stream);
cudaError cudaStreamSynchronize(StreamImpl* stream);
cudaError cudaStreamQuery(StreamImpl* stream);
cudaError cudaStreamWaitEvent(StreamImpl* stream, EventImpl* event, unsigned flags = 0);

cudaError cudaEventCreate(EventImpl** event);
cudaError cudaEventCreateWithFlags(EventImpl** event, unsigned flags);
cudaError cudaEventDestroy(EventImpl* event);
cudaError cudaEventRecord(EventImpl* event, StreamImpl* stream = nullptr);
cudaError cudaEventSynchronize(EventImpl* event);
cudaError cudaEventQuery(EventImpl* event);
cudaError cudaEventElapsedTime(float* ms, EventImpl* start, EventImpl* end);

// Stream capture and graphs (graph.cpp): while a stream captures, the work
// queued on it (launches, copies, memsets, event records) is recorded, not
// run; a graph launch queues the recorded work, in order, on a stream. Calls
// a capture cannot hold (cudaMalloc, synchronisations, pageable copies, ...)
// fail with cudaErrorStreamCaptureUnsupported and invalidate the capture, whose
// cudaStreamEndCapture then returns cudaErrorStreamCaptureInvalidated.
cudaError cudaStreamBeginCapture(StreamImpl* stream, cudaStreamCaptureMode mode);
cudaError cudaStreamEndCapture(StreamImpl* stream, GraphImpl** graph);
cudaError cudaStreamIsCapturing(StreamImpl* stream, cudaStreamCaptureStatus* status);
cudaError cudaGraphInstantiate(GraphExecImpl** exec, GraphImpl* graph, unsigned long long flags = 0);
cudaError cudaGraphLaunch(GraphExecImpl* exec, StreamImpl* stream);
cudaError cudaGraphDestroy(GraphImpl* graph);
cudaError cudaGraphExecDestroy(GraphExecImpl* exec);
cudaError cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode* mode);
// The number of operations a graph holds (an emulator extra, for tests).
size_t graph_nodes(const GraphImpl* graph);

// Function attributes are keyed by the kernel's address.
cudaError func_set_attribute(void (*key)(), cudaFuncAttribute attr, int value);
// A kernel's __launch_bounds__ thread limit (kMaxThreadsPerBlock without one).
unsigned launch_bound(void (*key)());
template <class F>
cudaError cudaFuncSetAttribute(F* kernel, cudaFuncAttribute attr, int value) {
  return func_set_attribute(reinterpret_cast<void (*)()>(kernel), attr, value);
}

// ----------------------------------------------------------------- emulator controls

// How the threads of a block execute (README.md):
//   Fibers   each CUDA thread is a cooperative fiber (ucontext) of one host
//            thread; __syncthreads and warp intrinsics yield. Default; fast.
//   Threads  each CUDA thread is an OS thread, barriers are real, so
//            ThreadSanitizer sees the races a missing __syncthreads leaves.
// Chosen per launch: set_mode() override, else LKASEG_SIMT_MODE=fibers|threads,
// else the compile definition LKASEG_SIMT_DEFAULT_THREADS, else Fibers.
enum class Mode { Fibers, Threads };
Mode mode();
void set_mode(std::optional<Mode> m);  // nullopt: back to env / default

struct ScopedMode {
  explicit ScopedMode(Mode m);
  ~ScopedMode();
  ScopedMode(const ScopedMode&) = delete;
  ScopedMode& operator=(const ScopedMode&) = delete;

 private:
  std::optional<Mode> saved_;
};

const char* mode_name(Mode m);

// Host threads that run blocks concurrently (0: LKASEG_SIMT_WORKERS, else the
// hardware concurrency up to 8 in fibers mode, 2 block groups in threads mode).
void set_workers(int n);

// The order in which the threads of a block run (fibers mode: the order the
// scheduler resumes them in, each round) and in which blocks are handed to
// the workers, so that a race whose outcome depends on it fails under some
// order (README.md "Thread order"):
//   Forward  thread 0 first, block 0 first (the default)
//   Reverse  the last thread and the last block first
//   Shuffle  a permutation drawn from `seed`, per block and per round
// Chosen per launch: set_thread_order() override, else
// LKASEG_SIMT_ORDER=forward|reverse|shuffle[:SEED], else Forward.
enum class Order { Forward, Reverse, Shuffle };
struct ThreadOrder {
  Order order = Order::Forward;
  uint64_t seed = 0;
};
ThreadOrder thread_order();
void set_thread_order(std::optional<ThreadOrder> o);  // nullopt: back to env / default
std::string thread_order_name(ThreadOrder o);        // "forward", "shuffle:7", ...
// Parses LKASEG_SIMT_ORDER's syntax; nullopt if it is not valid.
std::optional<ThreadOrder> parse_thread_order(const std::string& s);

struct ScopedOrder {
  explicit ScopedOrder(ThreadOrder o);
  ~ScopedOrder();
  ScopedOrder(const ScopedOrder&) = delete;
  ScopedOrder& operator=(const ScopedOrder&) = delete;

 private:
  std::optional<ThreadOrder> saved_;
};

// How stream work runs (README.md "Streams and events"). Every stream has a
// worker thread that runs its queue in order, after what CUDA orders it
// after (event waits, the legacy default stream's implicit barriers).
//   Deferred  nothing runs until the host waits for something (a
//             synchronise, a blocking copy, a query, cudaFree); then the
//             newest runnable operation of any stream runs first, one at a
//             time. A missing event wait or host memory reused too early
//             fails every time. The default.
//   Eager     each stream runs its operations as soon as their dependencies
//             have, concurrently (as a GPU does).
// set_stream_policy() override, else LKASEG_SIMT_STREAMS=deferred|eager.
enum class StreamPolicy { Deferred, Eager };
StreamPolicy stream_policy();
void set_stream_policy(std::optional<StreamPolicy> p);  // waits for all streams first
const char* stream_policy_name(StreamPolicy p);

// Emulated devices (default 1, or LKASEG_SIMT_DEVICES): each has its own
// legacy default stream; streams and events belong to the device current
// when they were made, and a launch on another device's stream fails as on a
// GPU. They share one memory. device_contexts() has bit d set once a runtime
// call has run with device d current (as CUDA initialises that device's
// primary context): a thread that forgets cudaSetDevice touches device 0.
void set_device_count(int n);  // 0: back to LKASEG_SIMT_DEVICES / 1
unsigned device_contexts();
void reset_device_contexts();

// The emulated device's limits (an sm_89 part: the smallest we target).
inline constexpr unsigned kMaxThreadsPerBlock = 1024;
inline constexpr unsigned kMaxBlockDimX = 1024, kMaxBlockDimY = 1024, kMaxBlockDimZ = 64;
inline constexpr unsigned kMaxGridDimX = 2147483647u, kMaxGridDimY = 65535, kMaxGridDimZ = 65535;
inline constexpr size_t kDefaultSharedPerBlock = 48 * 1024;   // static + dynamic without opt-in
inline constexpr size_t kMaxSharedPerBlockOptin = 99 * 1024;  // with cudaFuncSetAttribute
inline constexpr int kWarpSize = 32;

// Guard bytes around every cudaMalloc allocation and every shared-memory
// region; fresh device and shared memory is filled with kPoisonByte (0xFF:
// NaN as float, -1 as int).
inline constexpr unsigned char kPoisonByte = 0xFF;
inline constexpr unsigned char kGuardByte = 0xAB;

// Checks the guards of every live allocation now (as cudaFree and the
// synchronisation calls do); false (and a message) on corruption.
bool check_device_memory();
size_t live_allocations();  // cudaMalloc'd and not yet freed
size_t live_allocation_bytes();
// The emulated device's memory size (default 8 GiB, or LKASEG_SIMT_DEVICE_BYTES).
void set_device_capacity(size_t bytes);

// The last diagnostic the emulator printed ("" if none) and a switch for
// printing them to stderr at all (tests of deliberate errors stay quiet).
std::string last_message();
void set_quiet(bool quiet);

struct LaunchStats {
  uint64_t launches = 0, blocks = 0, threads = 0;
};
LaunchStats stats();

// Runtime calls made through the CUDA spellings (the global names host code
// uses; api_counts.h), counted since the program started. Profilers take
// differences (bench/step_profile); exact because the emulator sees every call.
struct ApiCounts {
  uint64_t launches = 0;  // kernel launches (stats().launches)
  uint64_t syncs = 0;     // host waits: cudaStreamSynchronize, cudaDeviceSynchronize,
                          // cudaEventSynchronize, blocking cudaMemcpy
  uint64_t mallocs = 0;   // cudaMalloc, cudaMallocAsync, cudaMallocHost
  uint64_t frees = 0;     // cudaFree, cudaFreeAsync, cudaFreeHost
  uint64_t copies = 0;    // cudaMemcpyAsync
  uint64_t memsets = 0;   // cudaMemsetAsync, cudaMemset (asynchronous for device memory)
  uint64_t event_records = 0, stream_waits = 0;
  uint64_t graph_launches = 0;  // cudaGraphLaunch (its replayed work is not counted again)
};
ApiCounts api_counts();

namespace detail {
// Copies to/from a __constant__/__device__ global (a plain global here);
// in_range false reports cudaErrorInvalidValue.
cudaError memcpy_symbol(void* dst, const void* src, size_t bytes, bool in_range, cudaMemcpyKind kind);
}  // namespace detail

template <class T>
cudaError cudaMemcpyToSymbol(T& symbol, const void* src, size_t bytes, size_t offset, cudaMemcpyKind kind) {
  return detail::memcpy_symbol(reinterpret_cast<unsigned char*>(&symbol) + offset, src, bytes,
                               offset + bytes <= sizeof(T), kind);
}
template <class T>
cudaError cudaMemcpyFromSymbol(void* dst, const T& symbol, size_t bytes, size_t offset, cudaMemcpyKind kind) {
  return detail::memcpy_symbol(dst, reinterpret_cast<const unsigned char*>(&symbol) + offset, bytes,
                               offset + bytes <= sizeof(T), kind);
}

}  // namespace lk::simt

// ----------------------------------------------------------------- CUDA spellings

using cudaError_t = lk::simt::cudaError;
using enum lk::simt::cudaError;
using enum lk::simt::cudaMemcpyKind;
using enum lk::simt::cudaFuncAttribute;
using lk::simt::cudaFuncAttribute;
using lk::simt::cudaMemcpyKind;
using lk::simt::dim3;
using lk::simt::uint3;
using cudaStream_t = lk::simt::StreamImpl*;
using cudaEvent_t = lk::simt::EventImpl*;
using cudaGraph_t = lk::simt::GraphImpl*;
using cudaGraphExec_t = lk::simt::GraphExecImpl*;
using enum lk::simt::cudaStreamCaptureMode;
using enum lk::simt::cudaStreamCaptureStatus;
using lk::simt::cudaStreamCaptureMode;
using lk::simt::cudaStreamCaptureStatus;
using lk::simt::cudaStreamBeginCapture;
using lk::simt::cudaStreamEndCapture;
using lk::simt::cudaStreamIsCapturing;
using lk::simt::cudaGraphInstantiate;
using lk::simt::cudaGraphDestroy;
using lk::simt::cudaGraphExecDestroy;
using lk::simt::cudaThreadExchangeStreamCaptureMode;

using lk::simt::cudaDeviceReset;
using lk::simt::cudaEventCreate;
using lk::simt::cudaEventCreateWithFlags;
using lk::simt::cudaEventDestroy;
using lk::simt::cudaEventElapsedTime;
using lk::simt::cudaEventQuery;
using lk::simt::cudaFuncSetAttribute;
using lk::simt::cudaGetDevice;
using lk::simt::cudaGetDeviceCount;
using lk::simt::cudaGetErrorName;
using lk::simt::cudaGetErrorString;
using lk::simt::cudaGetLastError;
using lk::simt::cudaMemGetInfo;
using lk::simt::cudaMemcpyFromSymbol;
using lk::simt::cudaMemcpyToSymbol;
using lk::simt::cudaPeekAtLastError;
using lk::simt::cudaSetDevice;
using lk::simt::cudaStreamCreate;
using lk::simt::cudaStreamCreateWithFlags;
using lk::simt::cudaStreamDestroy;
using lk::simt::cudaStreamQuery;

// The calls that make the host wait, allocate, copy or order streams are
// counted on their way in (api_counts.h); the rest are re-exported as is.
#include "simt/api_counts.h"

#define cudaStreamLegacy (reinterpret_cast<cudaStream_t>(0x1))
#define cudaStreamPerThread (reinterpret_cast<cudaStream_t>(0x2))
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventBlockingSync 0x01
#define cudaEventDisableTiming 0x02
