#include <stdexcept>
#include <string>

#include "engine/cuda/cuda_check.h"

namespace lk::cuda {

void check(cudaError_t err, const char* expr, const char* file, int line) {
  if (err == cudaSuccess) return;
  throw std::runtime_error(std::string("CUDA error ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) +
                           ") in " + expr + " at " + file + ":" + std::to_string(line));
}

}  // namespace lk::cuda
