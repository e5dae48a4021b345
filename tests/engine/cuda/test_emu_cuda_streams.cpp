// Cross-stream use of the CUDA backend's memory under the emulator's
// asynchronous streams (deferred policy: a missing dependency loses the race
// every time): a caching-allocator block another stream still reads, and an
// upload-ring slot whose recycled device block queued compute work still
// reads. Each hazard is shown first as the bug (wrong data), then fixed.
#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "engine/cuda/backend_cuda.h"
#include "engine/cuda/caching_allocator.h"
#include "engine/cuda/cuda_check.h"
#include "simt/runtime.h"
#include "tests/kernels/cuda/emu_util.h"

namespace cu = lk::cuda;
using lk::emu_test::all_equal;
using lk::emu_test::Deferred;
using lk::DType;
using lk::Tensor;

namespace {

const lk::Device kCuda{lk::DeviceType::CUDA, 0};
constexpr int kN = 4096;

}  // namespace

TEST_CASE("caching allocator: a block another stream still reads is not handed out again", "[emu][cuda]") {
  Deferred deferred;
  cudaStream_t home = nullptr, other = nullptr;
  cudaEvent_t ready = nullptr;
  LK_CUDA_CHECK(cudaStreamCreate(&home));
  LK_CUDA_CHECK(cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking));
  LK_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
  {
    cu::CachingAllocator a(0);
    a.set_stream(home);
    const std::vector<int> ones(kN, 1);
    std::vector<int> read(kN, 0);
    // Another stream reads block p (after the upload of ones on the home stream), p is freed,
    // and the home stream's next owner overwrites what it gets.
    auto scenario = [&](bool record) {
      void* p = a.allocate(kN * sizeof(int));
      LK_CUDA_CHECK(cudaMemcpyAsync(p, ones.data(), kN * sizeof(int), cudaMemcpyHostToDevice, home));
      LK_CUDA_CHECK(cudaEventRecord(ready, home));
      LK_CUDA_CHECK(cudaStreamWaitEvent(other, ready, 0));
      if (record) a.record_stream(p, other);
      LK_CUDA_CHECK(cudaMemcpyAsync(read.data(), p, kN * sizeof(int), cudaMemcpyDeviceToHost, other));
      a.deallocate(p, kN * sizeof(int));
      void* q = a.allocate(kN * sizeof(int));
      LK_CUDA_CHECK(cudaMemsetAsync(q, 0, kN * sizeof(int), home));  // the next owner's work
      LK_CUDA_CHECK(cudaStreamSynchronize(other));
      LK_CUDA_CHECK(cudaStreamSynchronize(home));
      a.deallocate(q, kN * sizeof(int));
      return p == q;
    };
    SECTION("planted bug: the other stream is not recorded") {
      CHECK(scenario(false));         // the block came straight back...
      CHECK(all_equal(read, 0));      // ...and the other stream read the next owner's data
      CHECK(a.stats().cross_stream_frees == 0);
    }
    SECTION("fixed: record_stream keeps the block until the other stream's work has run") {
      CHECK_FALSE(scenario(true));
      CHECK(all_equal(read, 1));
      CHECK(a.stats().cross_stream_frees == 1);
      // Once that work has run, the block is reusable again.
      void* again = a.allocate(kN * sizeof(int));
      CHECK(a.stats().pending == 0);
      a.deallocate(again, kN * sizeof(int));
    }
    a.release_cached();
  }
  LK_CUDA_CHECK(cudaEventDestroy(ready));
  LK_CUDA_CHECK(cudaStreamDestroy(other));
  LK_CUDA_CHECK(cudaStreamDestroy(home));
}

TEST_CASE("upload ring: a slot's first upload waits for compute work still reading its recycled block", "[emu][cuda]") {
  Deferred deferred;
  lk::Backend& be = cu::cuda_backend(0);
  const lk::Shape shape{kN};
  Tensor src = Tensor::from_vector(std::vector<double>(kN, 1.0), shape).to(kCuda);  // ones, uploaded and synced
  const void* block = src.raw();
  Tensor out = Tensor::empty(shape, DType::F32, kCuda);
  be.copy(src, out);  // queued on the compute stream: reads src's block
  src = Tensor();     // back to the cache while the copy is still queued
  auto ring = be.make_upload_ring({{shape, DType::F32}}, 1);
  float* host = ring->host(0, 0).data<float>();
  for (int i = 0; i < kN; ++i) host[i] = 2.f;
  ring->upload(0, kN);
  const std::vector<Tensor> dev = ring->acquire(0, kN);
  REQUIRE(dev[0].raw() == block);  // the slot did get the block the copy still reads
  ring->release(0);
  const std::vector<double> got = out.to_vector();
  CHECK(got == std::vector<double>(kN, 1.0));  // the upload waited for the copy
  CHECK(dev[0].to_vector() == std::vector<double>(kN, 2.0));
}
