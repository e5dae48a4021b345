// The CUDA backend's host side against the emulated runtime: checked calls
// name the call, file and line; the caching allocator stops calling the
// driver after warm-up, reports out-of-memory with requested, free and total
// bytes, and returns everything it cached; pinned host buffers.
#include <catch2/catch.hpp>
#include <vector>

#include "engine/cuda/caching_allocator.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/device_info.h"
#include "simt/runtime.h"

using Catch::Matchers::Contains;
namespace cu = lk::cuda;

TEST_CASE("checked CUDA calls name the call, the file and the line", "[emu][cuda]") {
  lk::simt::set_quiet(true);
  int* bogus = reinterpret_cast<int*>(0x1234);
  CHECK_THROWS_WITH(LK_CUDA_CHECK(cudaFree(bogus)),
                    Contains("cudaFree(bogus)") && Contains("test_emu_cuda_host.cpp:") && Contains("cudaErrorInvalidValue"));
  CHECK_NOTHROW(LK_CUDA_CHECK(cudaDeviceSynchronize()));
  lk::simt::set_quiet(false);
  CHECK(cu::device_count() >= 1);
  CHECK(cu::why_none().empty());
  CHECK_THAT(cu::describe(0), Contains("emulator"));
}

TEST_CASE("the caching allocator reuses blocks: no driver calls after warm-up", "[emu][cuda]") {
  const size_t live_before = lk::simt::live_allocations();
  {
    cu::CachingAllocator a(0);
    CHECK(a.device() == (lk::Device{lk::DeviceType::CUDA, 0}));
    const std::vector<size_t> step = {4096, 100, 1 << 20, 4096, 77777, 3 << 20};  // one "training step"
    auto run_step = [&] {
      std::vector<void*> ptrs;
      for (size_t s : step) {
        void* p = a.allocate(s);
        REQUIRE(p != nullptr);
        LK_CUDA_CHECK(cudaMemset(p, 0, s));  // the whole requested size is usable
        ptrs.push_back(p);
      }
      for (size_t i = 0; i < ptrs.size(); ++i) a.deallocate(ptrs[i], step[i]);
    };
    run_step();
    const cu::CacheStats warm = a.stats();
    CHECK(warm.driver_allocs == step.size());
    CHECK(warm.in_use == 0);
    for (int i = 0; i < 5; ++i) run_step();
    const cu::CacheStats after = a.stats();
    CHECK(after.driver_allocs == warm.driver_allocs);  // nothing new from the driver
    CHECK(after.cache_hits == 5 * step.size());
    CHECK(after.peak_in_use == warm.peak_in_use);
    // A much smaller request does not take a huge cached block.
    void* small = a.allocate(1500);  // the cached 4096 B blocks are more than twice 1536
    CHECK(a.stats().driver_allocs == warm.driver_allocs + 1);
    a.deallocate(small, 1500);
    a.release_cached();
    CHECK(a.stats().cached == 0);
    CHECK(lk::simt::live_allocations() == live_before);
  }
  CHECK(lk::simt::live_allocations() == live_before);
}

TEST_CASE("out of memory says requested, free and total bytes, after freeing the cache", "[emu][cuda]") {
  lk::simt::set_quiet(true);
  const size_t live_before = lk::simt::live_allocation_bytes();
  lk::simt::set_device_capacity(live_before + (8 << 20));  // an 8 MiB card
  {
    cu::CachingAllocator a(0);
    void* p = a.allocate(6 << 20);
    a.deallocate(p, 6 << 20);  // cached: only the cache release lets the next one fit
    void* q = a.allocate(7 << 20);
    CHECK(a.stats().driver_frees == 1);
    CHECK_THROWS_WITH(a.allocate(5 << 20), Contains("out of memory on cuda:0") && Contains("requested 5242880 bytes") &&
                                               Contains("free") && Contains("of total") && Contains("in use"));
    a.deallocate(q, 7 << 20);
  }
  lk::simt::set_device_capacity(size_t(8) << 30);
  lk::simt::set_quiet(false);
  CHECK(lk::simt::live_allocation_bytes() == live_before);
}

TEST_CASE("pinned host buffers come from cudaMallocHost and are cached", "[emu][cuda]") {
  cu::CachingAllocator pinned(0, true);
  CHECK(pinned.device() == lk::cpu_device());
  auto* p = static_cast<float*>(pinned.allocate(1000 * sizeof(float)));
  for (int i = 0; i < 1000; ++i) p[i] = static_cast<float>(i);  // host-writable
  CHECK(p[999] == 999.f);
  pinned.deallocate(p, 1000 * sizeof(float));
  void* again = pinned.allocate(900 * sizeof(float));
  CHECK(again == p);
  CHECK(pinned.stats().driver_allocs == 1);
  pinned.deallocate(again, 900 * sizeof(float));
}
