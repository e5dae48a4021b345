// lkaseg info: what this build can run on (backends, threads, CUDA devices).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "engine/backend.h"
#include "tools/cli/commands.h"
#ifdef LKASEG_HAVE_CUDA
#include "engine/cuda/device_info.h"
#endif

namespace lk::cli {

namespace {

int cmd_info() {
  std::printf("%s\ncpu backend: %s\n", version_line().c_str(), backend(cpu_device()).describe().c_str());
#ifdef LKASEG_HAVE_CUDA
  const int n = cuda::device_count();
  if (n == 0) std::printf("cuda: built for this toolkit, no device (%s)\n", cuda::why_none().c_str());
  for (int i = 0; i < n; ++i) std::printf("cuda:%d %s\n", i, cuda::describe(i).c_str());
#else
  std::printf("cuda: not built (-DLKASEG_CUDA=OFF or no nvcc)\n");
#endif
  return 0;
}

}  // namespace

std::string version_line() {
#ifdef LKASEG_HAVE_CUDA
  const char* cuda = "with CUDA";
#else
  const char* cuda = "CPU only";
#endif
  return std::string("lkaseg ") + LKASEG_VERSION + " (" + cuda + ")";
}

Subcommand add_info(CLI::App& app) {
  return {app.add_subcommand("info", "show backends and devices"), cmd_info};
}

}  // namespace lk::cli
