// Checked CUDA calls: every runtime call and every launch goes through these,
// and a failure throws naming the call, the file and the line. Works against
// the real runtime and the SIMT emulator's (kernels/cuda/runtime_api.h).
#pragma once

#include "kernels/cuda/runtime_api.h"

LK_CUDA_NAMESPACE_BEGIN

// Throws std::runtime_error "CUDA error <name> (<text>) in <expr> at <file>:<line>".
void check(cudaError_t err, const char* expr, const char* file, int line);

LK_CUDA_NAMESPACE_END

#define LK_CUDA_CHECK(expr) ::lk::cuda::check((expr), #expr, __FILE__, __LINE__)
// After a launch (LK_LAUNCH returns cudaGetLastError(); a raw <<<>>> is
// followed by this): launch-configuration errors surface here.
#define LK_CUDA_CHECK_LAUNCH(name) ::lk::cuda::check(cudaGetLastError(), "launch of " name, __FILE__, __LINE__)
