// The CUDA runtime API as host code (launcher declarations, backends, tests)
// sees it: the real <cuda_runtime_api.h>, or the SIMT emulator's subset when
// the translation unit belongs to the emulated build (LKASEG_SIMT, set by the
// lkaseg_simt target for everything that links it).
//
// Launcher functions live in namespace lk::cuda, inside an inline namespace
// that names the build (LK_CUDA_NAMESPACE_BEGIN/END): callers write
// lk::cuda::relu_fwd(...) either way, while the emulated and the real
// launchers have different mangled names and can never be mixed up at link
// time.
#pragma once

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#define LK_CUDA_ABI dev
#elif defined(LKASEG_SIMT)
#include "simt/runtime.h"
#define LK_CUDA_ABI emu
#else
#include <cuda_runtime_api.h>
#define LK_CUDA_ABI dev
#endif

#define LK_CUDA_NAMESPACE_BEGIN \
  namespace lk::cuda {          \
  inline namespace LK_CUDA_ABI {
#define LK_CUDA_NAMESPACE_END \
  }                           \
  }
