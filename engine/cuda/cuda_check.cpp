#include "engine/cuda/cuda_check.h"

#include <stdexcept>
#include <string>

LK_CUDA_NAMESPACE_BEGIN

void check(cudaError_t err, const char* expr, const char* file, int line) {
  if (err == cudaSuccess) return;
  throw std::runtime_error(std::string("CUDA error ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) +
                           ") in " + expr + " at " + file + ":" + std::to_string(line));
}

LK_CUDA_NAMESPACE_END
