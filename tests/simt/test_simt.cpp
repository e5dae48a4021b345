// Self-tests of the SIMT emulator (kernels/simt): indexing, shared memory,
// barriers, warp intrinsics, atomics, memory poisoning and guards, launch
// validation and device-side faults, in both execution modes.
#include <catch2/catch.hpp>
#include <climits>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "tests/kernels/cuda/emu_util.h"
#include "tests/simt/selftest_kernels.h"

using lk::emu_test::DeviceBuffer;
using lk::simt::Mode;
namespace et = lk::emu_test;
using lk::emu_test::contains;
using lk::emu_test::NoLeaks;
using lk::emu_test::Quiet;
using lk::emu_test::ran;

namespace {

// Runs the rest of the test case once per execution mode.
#define LK_FOR_EACH_MODE()                                 \
  const Mode mode = GENERATE(Mode::Fibers, Mode::Threads); \
  const lk::simt::ScopedMode scoped_mode(mode);            \
  INFO("mode " << lk::simt::mode_name(mode))

std::vector<float> random_floats(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

std::vector<double> chunk_sums(const std::vector<float>& x, size_t chunk, size_t chunks) {
  std::vector<double> s(chunks, 0.0);
  for (size_t i = 0; i < x.size(); ++i) s[i / chunk] += x[i];
  return s;
}

}  // namespace

TEST_CASE("emu: block and grid indices cover every element exactly once", "[emu]") {
  LK_FOR_EACH_MODE();
  NoLeaks no_leaks;
  struct Case {
    dim3 grid, block;
    int nx, ny, nz;
  };
  const std::vector<Case> cases = {
      {dim3(1), dim3(1), 1, 1, 1},
      {dim3(5), dim3(33), 160, 1, 1},             // 1-D, last block partial
      {dim3(3, 2), dim3(16, 8), 45, 13, 1},       // 2-D, partial in x and y
      {dim3(2, 3, 2), dim3(8, 4, 3), 13, 11, 5},  // 3-D, partial everywhere
      {dim3(1, 1, 3), dim3(2, 2, 2), 2, 2, 6},    // z only across blocks
  };
  for (const Case& c : cases) {
    const size_t n = size_t(c.nx) * c.ny * c.nz;
    DeviceBuffer<int> counts(std::vector<int>(n, 0)), bad(std::vector<int>(1, 0));
    REQUIRE(et::index_cover(c.grid, c.block, c.nx, c.ny, c.nz, counts.get(), bad.get()) == cudaSuccess);
    const std::vector<int> got = counts.download();
    CHECK(bad.download()[0] == 0);
    CHECK(std::count(got.begin(), got.end(), 1) == static_cast<long>(n));
  }
  DeviceBuffer<int> counts(std::vector<int>(1000, 0));
  REQUIRE(et::grid_stride_cover(3, 64, 1000, counts.get()) == cudaSuccess);
  const std::vector<int> got = counts.download();
  CHECK(std::count(got.begin(), got.end(), 1) == 1000);
}

TEST_CASE("emu: shared-memory tree reduction with __syncthreads", "[emu]") {
  LK_FOR_EACH_MODE();
  NoLeaks no_leaks;
  const int blocks = 5, n = 256 * blocks - 17;
  const std::vector<float> x = random_floats(n, 1);
  DeviceBuffer<float> dx(x), out(blocks);
  REQUIRE(et::block_sums(blocks, dx.get(), n, out.get()) == cudaSuccess);
  const std::vector<float> got = out.download();
  const std::vector<double> want = chunk_sums(x, 256, blocks);
  for (int b = 0; b < blocks; ++b) CHECK(got[b] == Approx(want[b]).margin(1e-4));
}

TEST_CASE("emu: warp-shuffle reduction", "[emu]") {
  LK_FOR_EACH_MODE();
  NoLeaks no_leaks;
  for (int threads : {32, 96, 256}) {
    const int blocks = 3, n = threads * blocks - 5;
    const std::vector<float> x = random_floats(n, 2);
    DeviceBuffer<float> dx(x), out(blocks);
    REQUIRE(et::warp_sums(blocks, threads, dx.get(), n, out.get()) == cudaSuccess);
    const std::vector<float> got = out.download();
    const std::vector<double> want = chunk_sums(x, threads, blocks);
    for (int b = 0; b < blocks; ++b) CHECK(got[b] == Approx(want[b]).margin(1e-4));
  }
}

TEST_CASE("emu: dynamic shared memory", "[emu]") {
  LK_FOR_EACH_MODE();
  NoLeaks no_leaks;
  const int blocks = 3, chunk = 100;
  std::vector<int> in(blocks * chunk);
  std::iota(in.begin(), in.end(), 0);
  DeviceBuffer<int> din(in), out(in.size()), tag(blocks);
  REQUIRE(et::reverse_chunks(blocks, chunk, din.get(), out.get(), tag.get()) == cudaSuccess);
  const std::vector<int> got = out.download(), tags = tag.download();
  for (int b = 0; b < blocks; ++b) {
    CHECK(tags[b] == 1000 + b);
    for (int t = 0; t < chunk; ++t) CHECK(got[b * chunk + t] == in[b * chunk + chunk - 1 - t]);
  }
}

TEST_CASE("emu: static shared memory is private to each block", "[emu]") {
  LK_FOR_EACH_MODE();
  NoLeaks no_leaks;
  DeviceBuffer<int> mismatches(std::vector<int>(1, 0));
  REQUIRE(et::shared_isolation(16, mismatches.get()) == cudaSuccess);
  CHECK(mismatches.download()[0] == 0);
}

TEST_CASE("emu: warp shuffles (idx, up, down, xor) with widths and masks", "[emu]") {
  LK_FOR_EACH_MODE();
  NoLeaks no_leaks;
  const int threads = 64;
  std::vector<int> in(threads);
  for (int i = 0; i < threads; ++i) in[i] = 1000 + i * 7;
  DeviceBuffer<int> din(in);
  // The lane each lane reads, per the CUDA programming guide.
  auto source = [](et::Shfl op, int lane, int param, int width) {
    switch (op) {
      case et::Shfl::Idx: return lane / width * width + param % width;
      case et::Shfl::Up: return lane % width >= param ? lane - param : lane;
      case et::Shfl::Down: return lane % width + param < width ? lane + param : lane;
      case et::Shfl::Xor: {
        const int s = lane ^ param;
        return s / width > lane / width ? lane : s;
      }
    }
    return -1;
  };
  for (et::Shfl op : {et::Shfl::Idx, et::Shfl::Up, et::Shfl::Down, et::Shfl::Xor})
    for (int width : {32, 16, 8})
      for (int param : {0, 1, 3, 5, 13}) {
        INFO("op " << static_cast<int>(op) << " width " << width << " param " << param);
        DeviceBuffer<int> out(std::vector<int>(threads, -1));
        REQUIRE(et::shuffle(op, threads, param, width, 0xffffffffu, din.get(), out.get()) == cudaSuccess);
        const std::vector<int> got = out.download();
        for (int i = 0; i < threads; ++i) {
          const int lane = i % 32;
          CHECK(got[i] == in[i - lane + source(op, lane, param, width)]);
        }
      }
  // Half a warp shuffling among itself; the other half does not take part.
  DeviceBuffer<int> out(std::vector<int>(threads, -1));
  REQUIRE(et::shuffle(et::Shfl::Xor, threads, 5, 16, 0x0000ffffu, din.get(), out.get()) == cudaSuccess);
  const std::vector<int> got = out.download();
  for (int i = 0; i < threads; ++i) {
    const int lane = i % 32;
    CHECK(got[i] == (lane < 16 ? in[i - lane + (lane ^ 5)] : -1));
  }
}

TEST_CASE("emu: __ballot_sync, __any_sync and __all_sync", "[emu]") {
  LK_FOR_EACH_MODE();
  NoLeaks no_leaks;
  const int threads = 80;  // warps of 32, 32 and 16 lanes
  std::vector<int> pred(threads, 0);
  for (int i = 0; i < 32; ++i) pred[i] = 1;              // warp 0: all
  for (int i = 32; i < 64; ++i) pred[i] = (i % 3 == 0);  // warp 1: some
  for (int i = 64; i < 80; ++i) pred[i] = 5;             // warp 2 (partial): all existing lanes
  DeviceBuffer<int> dpred(pred), any(threads), all(threads);
  DeviceBuffer<unsigned> ballot(threads);
  REQUIRE(et::vote(threads, dpred.get(), ballot.get(), any.get(), all.get()) == cudaSuccess);
  const std::vector<unsigned> b = ballot.download();
  const std::vector<int> an = any.download(), al = all.download();
  unsigned want1 = 0;
  for (int i = 32; i < 64; ++i)
    if (pred[i]) want1 |= 1u << (i - 32);
  for (int i = 0; i < threads; ++i) {
    const int w = i / 32;
    CHECK(b[i] == (w == 0 ? 0xffffffffu : w == 1 ? want1 : 0x0000ffffu));
    CHECK(an[i] == 1);
    CHECK(al[i] == (w == 1 ? 0 : 1));
  }
}

TEST_CASE("emu: __syncthreads_count, _and and _or", "[emu]") {
  LK_FOR_EACH_MODE();
  NoLeaks no_leaks;
  const int threads = 100;
  std::vector<int> pred(threads);
  for (int i = 0; i < threads; ++i) pred[i] = i % 4 == 1;
  DeviceBuffer<int> dpred(pred), count(threads), all(threads), any(threads);
  REQUIRE(et::sync_reductions(threads, dpred.get(), count.get(), all.get(), any.get()) == cudaSuccess);
  const std::vector<int> c = count.download(), al = all.download(), an = any.download();
  for (int i = 0; i < threads; ++i) {
    CHECK(c[i] == 25);
    CHECK(al[i] == 0);
    CHECK(an[i] == 1);
  }
}

TEST_CASE("emu: atomics from many threads", "[emu]") {
  LK_FOR_EACH_MODE();
  NoLeaks no_leaks;
  const int blocks = mode == Mode::Fibers ? 64 : 8, threads = mode == Mode::Fibers ? 256 : 128;
  const int total = blocks * threads;
  et::AtomicCounters init{};
  init.imax = -1;
  init.imin = INT_MAX;
  DeviceBuffer<et::AtomicCounters> c(std::vector<et::AtomicCounters>{init});
  REQUIRE(et::atomics(blocks, threads, c.get()) == cudaSuccess);
  const et::AtomicCounters r = c.download()[0];
  CHECK(r.fsum == float(total));
  CHECK(r.dsum == 0.5 * total);
  CHECK(r.isum == 2 * total);
  CHECK(r.usum == 3u * total);
  CHECK(r.ullsum == static_cast<unsigned long long>(total));
  CHECK(r.imax == total - 1);
  CHECK(r.imin == 0);
  CHECK(r.cas == static_cast<unsigned>(total));
  CHECK(r.inc == static_cast<unsigned>(total % 1000));
  CHECK(r.sub == -total);
}

TEST_CASE("emu: cudaMalloc'd memory reads as NaN until written", "[emu]") {
  LK_FOR_EACH_MODE();
  NoLeaks no_leaks;
  const int n = 300;
  DeviceBuffer<float> x(n), y(n);
  const std::vector<float> raw = x.download();
  REQUIRE(raw.size() == size_t(n));
  for (float v : raw) {
    unsigned bits;
    std::memcpy(&bits, &v, 4);
    CHECK(bits == 0xffffffffu);
    CHECK(std::isnan(v));
  }
  REQUIRE(et::copy(x.get(), y.get(), n) == cudaSuccess);
  for (float v : y.download()) CHECK(std::isnan(v));
  REQUIRE(cudaMemset(x.get(), 0, n * sizeof(float)) == cudaSuccess);
  REQUIRE(et::copy(x.get(), y.get(), n) == cudaSuccess);
  for (float v : y.download()) CHECK(v == 0.f);
}

TEST_CASE("emu: out-of-bounds writes to device memory are detected", "[emu]") {
  LK_FOR_EACH_MODE();
  NoLeaks no_leaks;
  Quiet quiet;
  const int n = 100;
  DeviceBuffer<float> p(n);
  SECTION("past the end, in a kernel") {
    CHECK(et::write_at(p.get(), n) == cudaSuccess);  // queued: the fault shows when it has run
    CHECK(cudaDeviceSynchronize() == cudaErrorIllegalAddress);
    CHECK(cudaGetLastError() == cudaErrorIllegalAddress);  // and stays the last error until read
    const std::string msg = lk::simt::last_message();
    CAPTURE(msg);
    CHECK(contains(msg, "out-of-bounds write"));
    CHECK(contains(msg, "device allocation of 400 bytes"));
    CHECK(contains(msg, "past its end"));
  }
  SECTION("before the start, in a kernel") {
    CHECK(ran(et::write_at(p.get(), -3)) == cudaErrorIllegalAddress);
    CHECK(contains(lk::simt::last_message(), "before its start"));
  }
  SECTION("found by cudaDeviceSynchronize and cudaFree") {
    p.get()[n + 1] = 1.f;  // host write through the (host-backed) device pointer
    CHECK(cudaDeviceSynchronize() == cudaErrorIllegalAddress);
    CHECK(contains(lk::simt::last_message(), "at cudaDeviceSynchronize"));
    CHECK(cudaGetLastError() == cudaErrorIllegalAddress);
    float* q = nullptr;
    REQUIRE(cudaMalloc(&q, 8) == cudaSuccess);
    q[2] = 1.f;
    CHECK(cudaFree(q) == cudaErrorIllegalAddress);
    CHECK(contains(lk::simt::last_message(), "device allocation of 8 bytes"));
    CHECK(cudaGetLastError() == cudaErrorIllegalAddress);
  }
  // Reported once; the guards are re-armed and later work proceeds.
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
  CHECK(lk::simt::check_device_memory());
  CHECK(ran(et::write_at(p.get(), n - 1)) == cudaSuccess);
  CHECK(p.download()[n - 1] == 42.f);
}

TEST_CASE("emu: out-of-bounds writes to shared memory are detected", "[emu]") {
  LK_FOR_EACH_MODE();
  Quiet quiet;
  CHECK(ran(et::shared_write_at(63)) == cudaSuccess);
  CHECK(ran(et::shared_write_at(64)) == cudaErrorIllegalAddress);
  std::string msg = lk::simt::last_message();
  CAPTURE(msg);
  CHECK(contains(msg, "shared memory out-of-bounds write in kernel 'shared_write_kernel' block ("));
  CHECK(contains(msg, "bytes 0..3 past the end of static shared array 'slots' (256 bytes)"));
  CHECK(ran(et::shared_write_at(-1)) == cudaErrorIllegalAddress);
  msg = lk::simt::last_message();
  CHECK(contains(msg, "bytes up to 4 before the start of static shared array 'slots'"));
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

TEST_CASE("emu: invalid launch configurations are reported", "[emu]") {
  NoLeaks no_leaks;
  Quiet quiet;
  CHECK(et::launch_config(dim3(1), dim3(1025), 0) == cudaErrorInvalidConfiguration);
  CHECK(et::launch_config(dim3(1), dim3(32, 32, 2), 0) == cudaErrorInvalidConfiguration);
  CHECK(et::launch_config(dim3(1), dim3(1, 1, 65), 0) == cudaErrorInvalidConfiguration);
  CHECK(et::launch_config(dim3(1), dim3(0), 0) == cudaErrorInvalidConfiguration);
  CHECK(et::launch_config(dim3(0), dim3(32), 0) == cudaErrorInvalidConfiguration);
  CHECK(contains(lk::simt::last_message(), "invalid grid (0,1,1)"));
  CHECK(et::launch_config(dim3(1, 65536), dim3(32), 0) == cudaErrorInvalidConfiguration);
  CHECK(et::launch_config(dim3(1), dim3(32), 48 * 1024 + 1) == cudaErrorInvalidValue);
  CHECK(contains(lk::simt::last_message(), "cudaFuncAttributeMaxDynamicSharedMemorySize"));
  // The last error was consumed by the launch helper.
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(et::launch_config(dim3(2, 2, 2), dim3(1024), 48 * 1024) == cudaSuccess);

  DeviceBuffer<int> out(1);
  CHECK(et::big_dynamic_smem(64 * 1024, false, out.get()) == cudaErrorInvalidValue);
  CHECK(et::big_dynamic_smem(64 * 1024, true, out.get()) == cudaSuccess);
  CHECK(out.download()[0] == static_cast<int>((64 * 1024 - 1) % 256));
  // Above the opt-in maximum: cudaFuncSetAttribute itself fails.
  CHECK(et::big_dynamic_smem(100 * 1024, true, out.get()) == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaSuccess);
}

TEST_CASE("emu: device-side faults fail the launch", "[emu]") {
  LK_FOR_EACH_MODE();
  NoLeaks no_leaks;
  Quiet quiet;
  CHECK(ran(et::deadlock()) == cudaErrorLaunchFailure);
  CHECK(contains(lk::simt::last_message(), "deadlock"));
  CHECK(ran(et::exited_lane_in_mask()) == cudaErrorIllegalInstruction);
  CHECK(contains(lk::simt::last_message(), "exited"));
  CHECK(ran(et::trap()) == cudaErrorLaunchFailure);
  CHECK(contains(lk::simt::last_message(), "__trap()"));
  DeviceBuffer<float> p(4);
  CHECK(ran(et::misaligned_atomic(p.get())) == cudaErrorMisalignedAddress);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
  // A good launch afterwards runs normally.
  DeviceBuffer<int> counts(std::vector<int>(64, 0)), bad(std::vector<int>(1, 0));
  CHECK(ran(et::index_cover(dim3(2), dim3(32), 64, 1, 1, counts.get(), bad.get())) == cudaSuccess);
}

TEST_CASE("emu: a missing __syncthreads reads poisoned shared memory (fibers)", "[emu]") {
  // Fibers run each thread until it blocks, so in forward order thread 0
  // reaches the tree before thread 128 has stored its value: it adds the
  // 0xFF poison (NaN). (The reverse order misses this one and catches the
  // mirror image: test_simt_checks.cpp.)
  const lk::simt::ScopedMode fibers(Mode::Fibers);
  const lk::simt::ScopedOrder forward({lk::simt::Order::Forward, 0});
  NoLeaks no_leaks;
  const std::vector<float> x = random_floats(256, 3);
  DeviceBuffer<float> dx(x), out(1);
  REQUIRE(et::block_sums_missing_sync(1, dx.get(), 256, out.get()) == cudaSuccess);
  CHECK(std::isnan(out.download()[0]));
}

TEST_CASE("emu: runtime API subset", "[emu]") {
  NoLeaks no_leaks;
  Quiet quiet;
  CHECK(std::string(cudaGetErrorName(cudaErrorIllegalAddress)) == "cudaErrorIllegalAddress");
  CHECK(std::string(cudaGetErrorString(cudaErrorInvalidConfiguration)) == "invalid configuration argument");
  int count = 0, dev = -1;
  CHECK(cudaGetDeviceCount(&count) == cudaSuccess);
  CHECK(count == 1);
  CHECK(cudaGetDevice(&dev) == cudaSuccess);
  CHECK(dev == 0);

  cudaStream_t s = nullptr;
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  REQUIRE(cudaStreamCreate(&s) == cudaSuccess);
  REQUIRE(cudaEventCreate(&e0) == cudaSuccess);
  REQUIRE(cudaEventCreate(&e1) == cudaSuccess);
  const std::vector<float> host = random_floats(64, 4);
  std::vector<float> back(64);
  float* d = nullptr;
  REQUIRE(cudaMallocAsync(&d, 64 * sizeof(float), s) == cudaSuccess);
  CHECK(cudaEventRecord(e0, s) == cudaSuccess);
  CHECK(cudaMemcpyAsync(d, host.data(), 64 * sizeof(float), cudaMemcpyHostToDevice, s) == cudaSuccess);
  CHECK(cudaMemsetAsync(d, 0, 16 * sizeof(float), s) == cudaSuccess);
  CHECK(cudaMemcpyAsync(back.data(), d, 64 * sizeof(float), cudaMemcpyDeviceToHost, s) == cudaSuccess);
  CHECK(cudaEventRecord(e1, s) == cudaSuccess);
  CHECK(cudaStreamWaitEvent(s, e1, 0) == cudaSuccess);
  CHECK(cudaStreamSynchronize(s) == cudaSuccess);
  CHECK(cudaEventSynchronize(e1) == cudaSuccess);
  float ms = -1.f;
  CHECK(cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess);
  CHECK(ms >= 0.f);
  for (int i = 0; i < 64; ++i) CHECK(back[i] == (i < 16 ? 0.f : host[i]));

  // Copies must stay inside one allocation; frees must match a cudaMalloc.
  CHECK(cudaMemcpy(d, host.data(), 65 * sizeof(float), cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
  CHECK(cudaMemcpy(back.data(), d + 1, 64 * sizeof(float), cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
  CHECK(cudaMemcpy(back.data(), host.data(), 4, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
  CHECK(cudaMemset(d + 60, 0, 5 * sizeof(float)) == cudaErrorInvalidValue);
  CHECK(cudaFree(d + 1) == cudaErrorInvalidValue);
  CHECK(cudaFreeAsync(d, s) == cudaSuccess);
  CHECK(cudaFree(d) == cudaErrorInvalidValue);  // twice
  CHECK(cudaPeekAtLastError() == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaSuccess);

  CHECK(cudaEventDestroy(e0) == cudaSuccess);
  CHECK(cudaEventDestroy(e1) == cudaSuccess);
  CHECK(cudaStreamDestroy(s) == cudaSuccess);
  CHECK(cudaStreamSynchronize(s) == cudaErrorInvalidResourceHandle);
  // The runtime keeps the last error of any call: the next launch would see it.
  CHECK(cudaGetLastError() == cudaErrorInvalidResourceHandle);
  CHECK(et::launch_config(dim3(1), dim3(32), 0) == cudaSuccess);
  CHECK(cudaGetLastError() == cudaSuccess);
}

// ------------------------------------------------------------------ tools/tsan_check.sh
// Hidden (not run by ctest): run with LKASEG_SIMT_MODE=threads in a
// ThreadSanitizer build. The first must produce a data-race report (in
// block_sums_missing_sync_kernel), the second none.

TEST_CASE("tsan: shared-memory reduction missing a __syncthreads", "[.][tsan]") {
  const std::vector<float> x = random_floats(512, 5);
  DeviceBuffer<float> dx(x), out(2);
  REQUIRE(et::block_sums_missing_sync(2, dx.get(), 512, out.get()) == cudaSuccess);
}

TEST_CASE("tsan: shared-memory reduction", "[.][tsan]") {
  const std::vector<float> x = random_floats(512, 5);
  DeviceBuffer<float> dx(x), out(2);
  REQUIRE(et::block_sums(2, dx.get(), 512, out.get()) == cudaSuccess);
  const std::vector<double> want = chunk_sums(x, 256, 2);
  const std::vector<float> got = out.download();
  CHECK(got[0] == Approx(want[0]).margin(1e-4));
  CHECK(got[1] == Approx(want[1]).margin(1e-4));
}
