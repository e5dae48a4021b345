// The emulator fails where a GPU would: the thread order is a seeded choice
// (so an order-dependent shared-memory race fails under some order), a
// __syncthreads reached from different call sites or by part of a block is
// an error naming the kernel, a launch over __launch_bounds__ or over the
// shared memory of a block without the opt-in fails with CUDA's error code.
// Each planted bug must be reported.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "tests/kernels/cuda/emu_util.h"
#include "tests/simt/selftest_kernels.h"

using lk::emu_test::DeviceBuffer;
using lk::emu_test::NoLeaks;
using lk::simt::Mode;
using lk::simt::Order;
using lk::simt::ThreadOrder;
namespace et = lk::emu_test;
using lk::emu_test::contains;
using lk::emu_test::Quiet;
using lk::emu_test::ran;

namespace {

std::vector<int> tickets_under(ThreadOrder o, int blocks, int threads) {
  const lk::simt::ScopedOrder order(o);
  DeviceBuffer<int> next(std::vector<int>(1, 0)), tickets(size_t(blocks) * threads);
  REQUIRE(et::arrival_order(blocks, threads, next.get(), tickets.get()) == cudaSuccess);
  return tickets.download();
}

}  // namespace

TEST_CASE("emu order: the threads and blocks run in the chosen order (fibers)", "[emu]") {
  const lk::simt::ScopedMode fibers(Mode::Fibers);
  lk::simt::set_workers(1);  // one block at a time: the tickets show the block order too
  NoLeaks no_leaks;
  const int blocks = 3, threads = 64, n = blocks * threads;
  const std::vector<int> fwd = tickets_under({Order::Forward, 0}, blocks, threads);
  const std::vector<int> rev = tickets_under({Order::Reverse, 0}, blocks, threads);
  const std::vector<int> sh1 = tickets_under({Order::Shuffle, 1}, blocks, threads);
  const std::vector<int> sh1b = tickets_under({Order::Shuffle, 1}, blocks, threads);
  const std::vector<int> sh2 = tickets_under({Order::Shuffle, 2}, blocks, threads);
  lk::simt::set_workers(0);
  REQUIRE(fwd.size() == size_t(n));
  for (int i = 0; i < n; ++i) {
    CHECK(fwd[i] == i);
    CHECK(rev[i] == n - 1 - i);
  }
  // A shuffle is a permutation, different from both, and a function of the seed
  // (and of the launch's place in the run: sh1b is the next launch).
  std::vector<int> sorted = sh1;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int> iota(n);
  std::iota(iota.begin(), iota.end(), 0);
  CHECK(sorted == iota);
  CHECK(sh1 != fwd);
  CHECK(sh1 != rev);
  CHECK(sh1 != sh2);
  CHECK(sh1 != sh1b);
  CHECK(lk::simt::parse_thread_order("shuffle:42")->seed == 42u);
  CHECK(lk::simt::parse_thread_order("reverse")->order == Order::Reverse);
  CHECK(!lk::simt::parse_thread_order("backwards"));
  CHECK(lk::simt::thread_order_name({Order::Shuffle, 7}) == "shuffle:7");
}

TEST_CASE("emu order: a missing __syncthreads hidden by one order fails under another", "[emu]") {
  const lk::simt::ScopedMode fibers(Mode::Fibers);
  NoLeaks no_leaks;
  std::vector<float> x(256);
  std::iota(x.begin(), x.end(), 1.f);
  DeviceBuffer<float> dx(x), out(256);
  auto run = [&](ThreadOrder o, bool missing_sync) {
    const lk::simt::ScopedOrder order(o);
    REQUIRE((missing_sync ? et::neighbour_sum_missing_sync : et::neighbour_sum)(dx.get(), out.get()) == cudaSuccess);
    const std::vector<float> got = out.download();
    int bad = 0;
    for (int t = 0; t < 256; ++t) bad += !(got[t] == (t > 0 ? x[t - 1] : x[0]) + 1.f);
    return bad;
  };
  for (ThreadOrder o : {ThreadOrder{Order::Forward, 0}, ThreadOrder{Order::Reverse, 0}, ThreadOrder{Order::Shuffle, 5}}) {
    INFO("order " << lk::simt::thread_order_name(o));
    CHECK(run(o, false) == 0);
  }
  // Thread t reads what thread t - 1 wrote: in forward order t - 1 has always
  // run first, so the bug hides; in reverse order every read is too early.
  CHECK(run({Order::Forward, 0}, true) == 0);
  CHECK(run({Order::Reverse, 0}, true) == 255);
  CHECK(run({Order::Shuffle, 5}, true) > 0);
}

TEST_CASE("emu barriers: __syncthreads from different call sites is an error naming the kernel", "[emu]") {
  const Mode mode = GENERATE(Mode::Fibers, Mode::Threads);
  const lk::simt::ScopedMode scoped(mode);
  INFO("mode " << lk::simt::mode_name(mode));
  Quiet quiet;
  CHECK(ran(et::divergent_barrier()) == cudaErrorLaunchFailure);
  std::string msg = lk::simt::last_message();
  CAPTURE(msg);
  CHECK(contains(msg, "kernel 'divergent_barrier_kernel'"));
  CHECK(contains(msg, "divergent __syncthreads"));
  CHECK(contains(msg, "selftest_kernels.cu:"));
  // A barrier in a loop whose trip count differs between warps: the second
  // round finds warp 0 in the loop and warp 1 at the barrier after it.
  CHECK(ran(et::uneven_barrier_loop()) == cudaErrorLaunchFailure);
  msg = lk::simt::last_message();
  CHECK(contains(msg, "kernel 'uneven_barrier_loop_kernel'"));
  CHECK(contains(msg, "divergent __syncthreads"));
}

TEST_CASE("emu barriers: a __syncthreads reached by part of the block is an error naming it", "[emu]") {
  const Mode mode = GENERATE(Mode::Fibers, Mode::Threads);
  const lk::simt::ScopedMode scoped(mode);
  INFO("mode " << lk::simt::mode_name(mode));
  Quiet quiet;
  // Thread 0 at __syncthreads, the rest of its warp in __syncwarp waiting for it.
  CHECK(ran(et::deadlock()) == cudaErrorLaunchFailure);
  const std::string msg = lk::simt::last_message();
  CAPTURE(msg);
  CHECK(contains(msg, "deadlock in kernel 'deadlock_kernel'"));
  CHECK(contains(msg, "1 threads wait at __syncthreads (selftest_kernels.cu:"));
  CHECK(contains(msg, "reached by part of the block"));
  // Threads that have exited do not count (the Volta rule): legal.
  NoLeaks no_leaks;
  DeviceBuffer<int> out(std::vector<int>(64, -1));
  CHECK(ran(et::early_exit_barrier(out.get())) == cudaSuccess);
  const std::vector<int> got = out.download();
  for (int t = 0; t < 64; ++t) CHECK(got[t] == (t < 32 ? t : -1));
}

TEST_CASE("emu launch: over __launch_bounds__ fails with cudaErrorLaunchOutOfResources", "[emu]") {
  NoLeaks no_leaks;
  Quiet quiet;
  CHECK(lk::simt::launch_bound(et::bounded64_kernel_ptr()) == 64u);
  CHECK(lk::simt::launch_bound(et::bounded96_kernel_ptr()) == 96u);
  CHECK(lk::simt::launch_bound(et::unbounded_kernel_ptr()) == lk::simt::kMaxThreadsPerBlock);
  DeviceBuffer<int> out(std::vector<int>(1024, 0));
  CHECK(ran(et::bounded64(64, out.get())) == cudaSuccess);
  CHECK(et::bounded64(65, out.get()) == cudaErrorLaunchOutOfResources);
  CHECK(contains(lk::simt::last_message(), "launch of 'bounded64_kernel' with 65 threads per block"));
  CHECK(contains(lk::simt::last_message(), "__launch_bounds__ allow at most 64"));
  CHECK(ran(et::bounded96(et::kBoundedThreads, out.get())) == cudaSuccess);
  CHECK(et::bounded96(128, out.get()) == cudaErrorLaunchOutOfResources);
  CHECK(cudaGetLastError() == cudaSuccess);  // the launch helper read it
  const std::vector<int> got = out.download();
  CHECK(std::count(got.begin(), got.end(), 1) == et::kBoundedThreads);  // nothing ran for the refused launches
}

TEST_CASE("emu launch: static plus dynamic shared memory over 48 KiB needs the opt-in", "[emu]") {
  NoLeaks no_leaks;
  Quiet quiet;
  DeviceBuffer<int> out(1);
  CHECK(ran(et::static_plus_dynamic_smem(4 * 1024, false, out.get())) == cudaSuccess);  // 44 KiB
  CHECK(out.download()[0] == 64);
  // 40 KiB static + 16 KiB dynamic: the static size is known from the run
  // above, so the launch itself fails, as the driver's does.
  CHECK(et::static_plus_dynamic_smem(16 * 1024, false, out.get()) == cudaErrorInvalidValue);
  CHECK(contains(lk::simt::last_message(), "static plus"));
  CHECK(contains(lk::simt::last_message(), "cudaFuncAttributeMaxDynamicSharedMemorySize"));
  CHECK(ran(et::static_plus_dynamic_smem(16 * 1024, true, out.get())) == cudaSuccess);
  CHECK(out.download()[0] == 64);
  // Above the opt-in maximum (99 KiB with the static part) it fails again.
  CHECK(et::static_plus_dynamic_smem(60 * 1024, true, out.get()) == cudaErrorInvalidValue);
}
