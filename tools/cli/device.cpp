// --device for every subcommand that computes (tools/cli/commands.h).
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>

#include "engine/backend.h"
#include "tools/cli/commands.h"
#ifdef LKASEG_HAVE_CUDA
#include "engine/cuda/backend_cuda.h"
#include "engine/cuda/device_info.h"
#endif

namespace lk::cli {

Device resolve_device(const std::string& want) {
  if (want == "cpu") return cpu_device();
  if (want == "auto") {
#ifdef LKASEG_HAVE_CUDA
    if (cuda::device_count() > 0) {
      try {
        cuda::cuda_backend(0);
        return {DeviceType::CUDA, 0};
      } catch (const std::exception& e) {
        std::fprintf(stderr, "lkaseg: cuda:0 unusable (%s), running on the CPU\n", e.what());
        return cpu_device();
      }
    }
    std::fprintf(stderr, "lkaseg: no usable GPU (%s), running on the CPU\n", cuda::why_none().c_str());
#else
    std::fprintf(stderr, "lkaseg: built without CUDA, running on the CPU\n");
#endif
    return cpu_device();
  }
  const Device d = Device::parse(want);  // throws on a malformed name
#ifdef LKASEG_HAVE_CUDA
  cuda::cuda_backend(d.index);  // throws naming the device and why it is unusable
  return d;
#else
  throw std::runtime_error("device " + d.str() + " requested, but this build has no CUDA backend (-DLKASEG_CUDA=OFF)");
#endif
}

void set_fast_nondeterministic(bool on) {
#ifdef LKASEG_HAVE_CUDA
  cuda::set_deterministic(!on);
#else
  (void)on;
#endif
}

void set_tf32(bool on) {
#ifdef LKASEG_HAVE_CUDA
  cuda::set_tf32(on);
#else
  (void)on;
#endif
}

}  // namespace lk::cli
