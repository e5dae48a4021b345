// The emulator's stream capture and graphs: captured work does not run,
// N replays do what N eager queuings do, in order (launches, copies,
// memsets, event records), and the calls a capture cannot hold fail as in
// CUDA and invalidate it.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "tests/kernels/cuda/emu_util.h"
#include "tests/simt/selftest_kernels.h"

using lk::emu_test::Deferred;
using lk::emu_test::DeviceBuffer;
using lk::emu_test::NoLeaks;
using lk::emu_test::Quiet;
namespace et = lk::emu_test;

namespace {

constexpr int kN = 300;

struct Stream {
  cudaStream_t s = nullptr;
  Stream() { REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess); }
  ~Stream() { CHECK(cudaStreamDestroy(s) == cudaSuccess); }
  operator cudaStream_t() const { return s; }
};

// The step a graph holds: acc += x (a launch), x2 = acc (a copy), a memset of
// `tail`, an event record.
cudaError_t step(const int* x, int* acc, int* x2, int* tail, cudaEvent_t done, cudaStream_t s) {
  if (const cudaError_t e = et::add_on(x, acc, kN, s); e != cudaSuccess) return e;
  if (const cudaError_t e = cudaMemcpyAsync(x2, acc, kN * sizeof(int), cudaMemcpyDeviceToDevice, s); e != cudaSuccess)
    return e;
  if (const cudaError_t e = cudaMemsetAsync(tail, 0, kN * sizeof(int), s); e != cudaSuccess) return e;
  return cudaEventRecord(done, s);
}

std::vector<int> iota_ints() {
  std::vector<int> v(kN);
  for (int i = 0; i < kN; ++i) v[static_cast<size_t>(i)] = i + 1;
  return v;
}

}  // namespace

TEST_CASE("emu graphs: a captured step runs only when launched, N replays equal N eager steps", "[emu]") {
  Deferred deferred;
  NoLeaks no_leaks;
  Stream s;
  cudaEvent_t done = nullptr;
  REQUIRE(cudaEventCreateWithFlags(&done, cudaEventDisableTiming) == cudaSuccess);
  const std::vector<int> x_host = iota_ints();
  DeviceBuffer<int> x(x_host), acc(std::vector<int>(kN, 0)), x2(std::vector<int>(kN, -1)),
      tail(std::vector<int>(kN, 5));
  DeviceBuffer<int> eager_acc(std::vector<int>(kN, 0)), eager_x2(kN), eager_tail(kN);

  const lk::simt::ApiCounts c0 = lk::simt::api_counts();
  REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess);
  cudaStreamCaptureStatus st{};
  REQUIRE(cudaStreamIsCapturing(s, &st) == cudaSuccess);
  CHECK(st == cudaStreamCaptureStatusActive);
  REQUIRE(step(x.get(), acc.get(), x2.get(), tail.get(), done, s) == cudaSuccess);
  cudaGraph_t graph = nullptr;
  REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);
  REQUIRE(graph != nullptr);
  CHECK(lk::simt::graph_nodes(graph) == 4);
  REQUIRE(cudaStreamIsCapturing(s, &st) == cudaSuccess);
  CHECK(st == cudaStreamCaptureStatusNone);
  // Nothing ran: the buffers still hold what they held.
  CHECK(acc.download() == std::vector<int>(kN, 0));
  CHECK(x2.download() == std::vector<int>(kN, -1));
  CHECK(tail.download() == std::vector<int>(kN, 5));

  cudaGraphExec_t exec = nullptr;
  REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
  const lk::simt::ApiCounts c1 = lk::simt::api_counts();
  constexpr int kReplays = 3;
  for (int r = 0; r < kReplays; ++r) REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
  REQUIRE(cudaEventSynchronize(done) == cudaSuccess);  // the replayed record completes
  const lk::simt::ApiCounts c2 = lk::simt::api_counts();
  CHECK(c2.graph_launches - c1.graph_launches == kReplays);
  CHECK(c2.launches == c1.launches);  // replayed kernels are not launched again from the host
  CHECK(c1.launches - c0.launches == 1);  // the capture counted its launch once

  for (int r = 0; r < kReplays; ++r)
    REQUIRE(step(x.get(), eager_acc.get(), eager_x2.get(), eager_tail.get(), done, s) == cudaSuccess);
  REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
  CHECK(acc.download() == eager_acc.download());
  CHECK(x2.download() == eager_x2.download());
  CHECK(tail.download() == std::vector<int>(kN, 0));
  std::vector<int> want(kN);
  for (int i = 0; i < kN; ++i) want[static_cast<size_t>(i)] = kReplays * x_host[static_cast<size_t>(i)];
  CHECK(acc.download() == want);

  CHECK(cudaGraphExecDestroy(exec) == cudaSuccess);
  CHECK(cudaGraphDestroy(graph) == cudaSuccess);
  CHECK(cudaGraphDestroy(graph) == cudaErrorInvalidValue);  // not twice
  CHECK(cudaEventDestroy(done) == cudaSuccess);
}

TEST_CASE("emu graphs: calls a capture cannot hold fail as in CUDA and invalidate it", "[emu]") {
  Deferred deferred;
  Quiet quiet;
  NoLeaks no_leaks;
  Stream s;
  DeviceBuffer<int> x(std::vector<int>(kN, 1)), y(std::vector<int>(kN, 0));
  const auto expect_invalidated = [&](const char* what, auto&& call, cudaError_t want) {
    INFO(what);
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess);
    REQUIRE(et::add_on(x.get(), y.get(), kN, s) == cudaSuccess);
    CHECK(call() == want);
    CHECK_THAT(lk::simt::last_message(), Catch::Contains("invalidated"));
    cudaStreamCaptureStatus st{};
    REQUIRE(cudaStreamIsCapturing(s, &st) == cudaSuccess);
    CHECK(st == cudaStreamCaptureStatusInvalidated);
    cudaGraph_t g = reinterpret_cast<cudaGraph_t>(0x1);
    CHECK(cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureInvalidated);
    CHECK(g == nullptr);
    cudaGetLastError();
  };
  void* p = nullptr;
  expect_invalidated("cudaMalloc", [&] { return cudaMalloc(&p, 64); }, cudaErrorStreamCaptureUnsupported);
  CHECK(p == nullptr);
  expect_invalidated("cudaStreamSynchronize", [&] { return cudaStreamSynchronize(s); },
                     cudaErrorStreamCaptureUnsupported);
  expect_invalidated("cudaDeviceSynchronize", [&] { return cudaDeviceSynchronize(); },
                     cudaErrorStreamCaptureUnsupported);
  std::vector<int> host(kN, 3);
  expect_invalidated("pageable copy",
                     [&] { return cudaMemcpyAsync(y.get(), host.data(), kN * sizeof(int), cudaMemcpyHostToDevice, s); },
                     cudaErrorStreamCaptureUnsupported);
  expect_invalidated("blocking copy",
                     [&] { return cudaMemcpy(host.data(), y.get(), kN * sizeof(int), cudaMemcpyDeviceToHost); },
                     cudaErrorStreamCaptureUnsupported);
  cudaEvent_t outside = nullptr;
  REQUIRE(cudaEventCreate(&outside) == cudaSuccess);
  REQUIRE(cudaEventRecord(outside, nullptr) == cudaSuccess);
  expect_invalidated("a wait on an uncaptured event", [&] { return cudaStreamWaitEvent(s, outside, 0); },
                     cudaErrorStreamCaptureIsolation);
  CHECK(cudaEventDestroy(outside) == cudaSuccess);
  // None of the invalidated captures ran anything.
  CHECK(y.download() == std::vector<int>(kN, 0));

  // A relaxed thread may allocate during another capture; the legacy stream
  // cannot be captured; ending a capture that never began is an error.
  REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess);
  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  REQUIRE(cudaThreadExchangeStreamCaptureMode(&mode) == cudaSuccess);
  CHECK(mode == cudaStreamCaptureModeGlobal);
  REQUIRE(cudaMalloc(&p, 64) == cudaSuccess);
  REQUIRE(cudaThreadExchangeStreamCaptureMode(&mode) == cudaSuccess);
  cudaGraph_t g = nullptr;
  REQUIRE(cudaStreamEndCapture(s, &g) == cudaSuccess);
  CHECK(lk::simt::graph_nodes(g) == 0);
  CHECK(cudaGraphDestroy(g) == cudaSuccess);
  CHECK(cudaFree(p) == cudaSuccess);
  CHECK(cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeGlobal) == cudaErrorStreamCaptureUnsupported);
  CHECK(cudaStreamEndCapture(s, &g) == cudaErrorIllegalState);
  cudaGetLastError();
}
