// The emulator's streams and events: asynchronous, ordered as CUDA orders
// them, and (deferred policy, the default) run so that a missing dependency
// shows every time. Each planted bug - a missing event wait, a copy that
// overwrites what queued work still reads, host memory reused before an
// asynchronous copy read it - must produce wrong data here, and its fixed
// form the right data. Plus the legacy default stream, stream-ordered frees,
// queries, and several devices.
#include <catch2/catch.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "tests/kernels/cuda/emu_util.h"
#include "tests/simt/selftest_kernels.h"

using lk::emu_test::DeviceBuffer;
using lk::emu_test::NoLeaks;
namespace et = lk::emu_test;
using lk::emu_test::all_equal;
using lk::emu_test::Deferred;
using lk::emu_test::Quiet;

namespace {

constexpr int kN = 1000;

struct Stream {
  cudaStream_t s = nullptr;
  explicit Stream(unsigned flags = cudaStreamNonBlocking) { REQUIRE(cudaStreamCreateWithFlags(&s, flags) == cudaSuccess); }
  ~Stream() { CHECK(cudaStreamDestroy(s) == cudaSuccess); }
  operator cudaStream_t() const { return s; }
};

struct Event {
  cudaEvent_t e = nullptr;
  Event() { REQUIRE(cudaEventCreateWithFlags(&e, cudaEventDisableTiming) == cudaSuccess); }
  ~Event() { CHECK(cudaEventDestroy(e) == cudaSuccess); }
  operator cudaEvent_t() const { return e; }
};

// Both policies for the tests of correct programs.
#define LK_FOR_EACH_POLICY()                                                                                \
  const lk::simt::StreamPolicy policy = GENERATE(lk::simt::StreamPolicy::Deferred, lk::simt::StreamPolicy::Eager); \
  lk::simt::set_stream_policy(policy);                                                                      \
  struct ResetPolicy {                                                                                      \
    ~ResetPolicy() { lk::simt::set_stream_policy(std::nullopt); }                                           \
  } reset_policy;                                                                                           \
  INFO("stream policy " << lk::simt::stream_policy_name(policy))

}  // namespace

TEST_CASE("emu streams: a missing event wait reads what the other stream has not written yet", "[emu]") {
  Deferred deferred;
  NoLeaks no_leaks;
  Stream producer, consumer;
  DeviceBuffer<int> buf(std::vector<int>(kN, 0)), out(kN);
  SECTION("planted bug: no wait") {
    REQUIRE(et::fill_on(buf.get(), kN, 7, producer) == cudaSuccess);
    REQUIRE(et::copy_on(buf.get(), out.get(), kN, consumer) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(consumer) == cudaSuccess);
    CHECK(all_equal(out.download(), 0));  // the copy ran first: the race is lost every time
  }
  SECTION("fixed: the consumer waits for an event recorded after the producer's kernel") {
    Event filled;
    REQUIRE(et::fill_on(buf.get(), kN, 7, producer) == cudaSuccess);
    REQUIRE(cudaEventRecord(filled, producer) == cudaSuccess);
    REQUIRE(cudaStreamWaitEvent(consumer, filled, 0) == cudaSuccess);
    REQUIRE(et::copy_on(buf.get(), out.get(), kN, consumer) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(consumer) == cudaSuccess);
    CHECK(all_equal(out.download(), 7));
  }
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

TEST_CASE("emu streams: a copy overwriting memory that queued work still reads is caught", "[emu]") {
  Deferred deferred;
  NoLeaks no_leaks;
  Stream compute, copy;
  DeviceBuffer<int> buf(std::vector<int>(kN, 1)), out(kN);
  const std::vector<int> next(kN, 2);
  Event consumed;
  REQUIRE(et::copy_on(buf.get(), out.get(), kN, compute) == cudaSuccess);  // reads buf
  SECTION("planted bug: the upload does not wait for the reader") {
    REQUIRE(cudaMemcpyAsync(buf.get(), next.data(), kN * sizeof(int), cudaMemcpyHostToDevice, copy) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(compute) == cudaSuccess);
    CHECK(all_equal(out.download(), 2));  // the reader saw the next upload
  }
  SECTION("fixed: the upload waits for an event recorded after the reader") {
    REQUIRE(cudaEventRecord(consumed, compute) == cudaSuccess);
    REQUIRE(cudaStreamWaitEvent(copy, consumed, 0) == cudaSuccess);
    REQUIRE(cudaMemcpyAsync(buf.get(), next.data(), kN * sizeof(int), cudaMemcpyHostToDevice, copy) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(compute) == cudaSuccess);
    CHECK(all_equal(out.download(), 1));
  }
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
  CHECK(all_equal(buf.download(), 2));
}

TEST_CASE("emu streams: host memory reused before an asynchronous copy read it", "[emu]") {
  Deferred deferred;
  NoLeaks no_leaks;
  Stream s;
  DeviceBuffer<int> dev(kN);
  SECTION("planted bug: pinned memory rewritten before the stream ran the copy") {
    int* pinned = nullptr;
    REQUIRE(cudaMallocHost(&pinned, kN * sizeof(int)) == cudaSuccess);
    std::fill(pinned, pinned + kN, 3);
    REQUIRE(cudaMemcpyAsync(dev.get(), pinned, kN * sizeof(int), cudaMemcpyHostToDevice, s) == cudaSuccess);
    std::fill(pinned, pinned + kN, 4);  // the next batch, too early
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    CHECK(all_equal(dev.download(), 4));  // the copy read the buffer when it ran
    CHECK(cudaFreeHost(pinned) == cudaSuccess);
  }
  SECTION("pageable memory is staged when the copy is queued, as CUDA does") {
    std::vector<int> pageable(kN, 3);
    REQUIRE(cudaMemcpyAsync(dev.get(), pageable.data(), kN * sizeof(int), cudaMemcpyHostToDevice, s) == cudaSuccess);
    std::fill(pageable.begin(), pageable.end(), 4);
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    CHECK(all_equal(dev.download(), 3));
  }
  SECTION("a device-to-host copy writes host memory only when it runs") {
    REQUIRE(et::fill_on(dev.get(), kN, 5, s) == cudaSuccess);
    std::vector<int> back(kN, -7);
    REQUIRE(cudaMemcpyAsync(back.data(), dev.get(), kN * sizeof(int), cudaMemcpyDeviceToHost, s) == cudaSuccess);
    CHECK(all_equal(back, -7));  // not yet: read it after a synchronisation
    REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
    CHECK(all_equal(back, 5));
  }
}

TEST_CASE("emu streams: the legacy default stream orders itself with blocking streams only", "[emu]") {
  Deferred deferred;
  NoLeaks no_leaks;
  DeviceBuffer<int> buf(std::vector<int>(kN, 0)), out(kN);
  SECTION("a blocking stream's work comes before later legacy-stream work") {
    Stream blocking(cudaStreamDefault);
    REQUIRE(et::fill_on(buf.get(), kN, 9, blocking) == cudaSuccess);
    REQUIRE(et::copy_on(buf.get(), out.get(), kN, nullptr) == cudaSuccess);
    CHECK(all_equal(out.download(), 9));  // cudaMemcpy waits on the legacy stream
  }
  SECTION("and legacy-stream work comes before the blocking stream's later work") {
    Stream blocking(cudaStreamDefault);
    REQUIRE(et::fill_on(buf.get(), kN, 9, nullptr) == cudaSuccess);
    REQUIRE(et::copy_on(buf.get(), out.get(), kN, blocking) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(blocking) == cudaSuccess);
    CHECK(all_equal(out.download(), 9));
  }
  SECTION("a non-blocking stream is not ordered with it") {
    Stream nonblocking(cudaStreamNonBlocking);
    REQUIRE(et::fill_on(buf.get(), kN, 9, nonblocking) == cudaSuccess);
    REQUIRE(et::copy_on(buf.get(), out.get(), kN, nullptr) == cudaSuccess);
    CHECK(all_equal(out.download(), 0));
    REQUIRE(cudaStreamSynchronize(nonblocking) == cudaSuccess);
  }
}

TEST_CASE("emu streams: correct multi-stream programs give the same result under both policies", "[emu]") {
  LK_FOR_EACH_POLICY();
  NoLeaks no_leaks;
  Stream a, b;
  Event e;
  DeviceBuffer<int> buf(kN), out(kN);
  for (int round = 0; round < 5; ++round) {
    REQUIRE(et::fill_on(buf.get(), kN, round, a) == cudaSuccess);
    REQUIRE(cudaEventRecord(e, a) == cudaSuccess);
    REQUIRE(cudaStreamWaitEvent(b, e, 0) == cudaSuccess);
    REQUIRE(et::copy_on(buf.get(), out.get(), kN, b) == cudaSuccess);
    REQUIRE(cudaEventRecord(e, b) == cudaSuccess);
    REQUIRE(cudaStreamWaitEvent(a, e, 0) == cudaSuccess);  // the next fill after this copy
  }
  REQUIRE(cudaStreamSynchronize(a) == cudaSuccess);
  CHECK(all_equal(out.download(), 4));
}

TEST_CASE("emu streams: queries, events, stream-ordered frees and destruction", "[emu]") {
  NoLeaks no_leaks;
  Quiet quiet;
  Stream s;
  int* p = nullptr;
  REQUIRE(cudaMallocAsync(&p, kN * sizeof(int), s) == cudaSuccess);
  REQUIRE(et::fill_on(p, kN, 1, s) == cudaSuccess);
  cudaEvent_t t0 = nullptr, t1 = nullptr;
  REQUIRE(cudaEventCreate(&t0) == cudaSuccess);
  REQUIRE(cudaEventCreate(&t1) == cudaSuccess);
  CHECK(cudaEventQuery(t0) == cudaSuccess);  // never recorded: complete
  REQUIRE(cudaEventRecord(t0, s) == cudaSuccess);
  REQUIRE(cudaFreeAsync(p, s) == cudaSuccess);  // freed when the stream gets there, after the kernel
  REQUIRE(cudaEventRecord(t1, s) == cudaSuccess);
  float ms = -1.f;
  // A polling loop terminates: a query lets the queued work run.
  int polls = 0;
  while (cudaEventQuery(t1) == cudaErrorNotReady) ++polls;
  CHECK(cudaGetLastError() == cudaSuccess);  // cudaErrorNotReady is not an error
  CHECK(polls >= 0);
  CHECK(cudaStreamQuery(s) == cudaSuccess);
  CHECK(cudaEventElapsedTime(&ms, t0, t1) == cudaSuccess);
  CHECK(ms >= 0.f);
  CHECK(cudaEventDestroy(t0) == cudaSuccess);
  CHECK(cudaEventDestroy(t1) == cudaSuccess);
  CHECK(cudaFree(p) == cudaErrorInvalidValue);  // already freed by the stream
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);

  cudaStream_t gone = nullptr;
  REQUIRE(cudaStreamCreate(&gone) == cudaSuccess);
  DeviceBuffer<int> buf(kN);
  REQUIRE(et::fill_on(buf.get(), kN, 6, gone) == cudaSuccess);
  REQUIRE(cudaStreamDestroy(gone) == cudaSuccess);  // its queued work still runs
  CHECK(all_equal(buf.download(), 6));
  CHECK(et::fill_on(buf.get(), kN, 6, gone) == cudaErrorInvalidResourceHandle);
}

TEST_CASE("emu streams: several devices; a launch on another device's stream fails", "[emu]") {
  lk::simt::set_device_count(2);
  lk::simt::reset_device_contexts();
  int n = 0;
  CHECK(cudaGetDeviceCount(&n) == cudaSuccess);
  CHECK(n == 2);
  REQUIRE(cudaSetDevice(1) == cudaSuccess);
  CHECK(lk::simt::device_contexts() == 2u);  // only device 1 touched so far
  cudaStream_t s1 = nullptr;
  cudaEvent_t e1 = nullptr;
  REQUIRE(cudaStreamCreate(&s1) == cudaSuccess);
  REQUIRE(cudaEventCreate(&e1) == cudaSuccess);
  {
    lk::simt::set_quiet(true);
    DeviceBuffer<int> buf(kN);
    CHECK(et::fill_on(buf.get(), kN, 1, s1) == cudaSuccess);
    REQUIRE(cudaSetDevice(0) == cudaSuccess);
    CHECK(et::fill_on(buf.get(), kN, 2, s1) == cudaErrorInvalidResourceHandle);
    CHECK(lk::simt::last_message().find("stream of device 1 while device 0 is current") != std::string::npos);
    cudaStream_t s0 = nullptr;
    REQUIRE(cudaStreamCreate(&s0) == cudaSuccess);
    CHECK(cudaEventRecord(e1, s0) == cudaErrorInvalidResourceHandle);  // event and stream of different devices
    CHECK(cudaGetLastError() == cudaErrorInvalidResourceHandle);
    CHECK(cudaStreamWaitEvent(s0, e1, 0) == cudaSuccess);  // waiting across devices is allowed
    CHECK(cudaSetDevice(2) == cudaErrorInvalidDevice);
    CHECK(cudaGetLastError() == cudaErrorInvalidDevice);
    CHECK(cudaStreamDestroy(s0) == cudaSuccess);
    lk::simt::set_quiet(false);
    REQUIRE(cudaStreamSynchronize(s1) == cudaSuccess);  // device 0's legacy stream does not wait for device 1
    CHECK(all_equal(buf.download(), 1));
  }
  CHECK(lk::simt::device_contexts() == 3u);
  CHECK(cudaEventDestroy(e1) == cudaSuccess);
  CHECK(cudaStreamDestroy(s1) == cudaSuccess);
  lk::simt::set_device_count(0);
}
