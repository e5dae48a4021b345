// Checked CUDA calls: every runtime call and every launch goes through these,
// and a failure throws naming the call, the file and the line.
#pragma once

#include <cuda_runtime_api.h>

namespace lk::cuda {

// Throws std::runtime_error "CUDA error <name> (<text>) in <expr> at <file>:<line>".
void check(cudaError_t err, const char* expr, const char* file, int line);

}  // namespace lk::cuda

#define LK_CUDA_CHECK(expr) ::lk::cuda::check((expr), #expr, __FILE__, __LINE__)
// After a <<<...>>> launch: launch-configuration errors surface here.
#define LK_CUDA_CHECK_LAUNCH(name) ::lk::cuda::check(cudaGetLastError(), "launch of " name, __FILE__, __LINE__)
