#include <cuda_runtime_api.h>

#include <string>

#include "engine/cuda/cuda_check.h"
#include "engine/cuda/device_info.h"

namespace lk::cuda {

namespace {
cudaError_t probe(int* n) {
  *n = 0;
  const cudaError_t e = cudaGetDeviceCount(n);
  if (e != cudaSuccess) {
    *n = 0;
    (void)cudaGetLastError();  // clear the sticky error of the failed probe
  }
  return e;
}
}  // namespace

int device_count() {
  int n = 0;
  probe(&n);
  return n;
}

std::string why_none() {
  int n = 0;
  const cudaError_t e = probe(&n);
  if (e != cudaSuccess) return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
  return n == 0 ? "no CUDA device found" : "";
}

std::string describe(int device) {
  cudaDeviceProp p{};
  LK_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  return std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " +
         std::to_string(static_cast<double>(p.totalGlobalMem) / (1u << 30)).substr(0, 4) + " GiB)";
}

}  // namespace lk::cuda
