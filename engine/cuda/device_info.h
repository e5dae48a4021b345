// What CUDA devices this process can use. Safe without a GPU or driver:
// device_count() is then 0 and why_none() says why.
#pragma once

#include <string>

#include "kernels/cuda/runtime_api.h"

LK_CUDA_NAMESPACE_BEGIN

int device_count();
std::string why_none();            // empty when device_count() > 0
std::string describe(int device);  // "NVIDIA ... (sm_89, 8.0 GiB)"

LK_CUDA_NAMESPACE_END
