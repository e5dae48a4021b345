#include <string>

#include "engine/cuda/cuda_check.h"
#include "engine/cuda/device_info.h"

LK_CUDA_NAMESPACE_BEGIN

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
#if defined(LKASEG_SIMT)
  return "SIMT emulator (device " + std::to_string(device) + ", sm_89 limits)";
#else
  cudaDeviceProp p{};
  LK_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  return std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " +
         std::to_string(static_cast<double>(p.totalGlobalMem) / (1u << 30)).substr(0, 4) + " GiB)";
#endif
}

LK_CUDA_NAMESPACE_END
