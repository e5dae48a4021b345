// Fuzz targets for every reader of untrusted bytes: NIfTI (.nii, .nii.gz),
// the slice cache, safetensors (checkpoints), the split JSON and the
// training configuration. Each target feeds the bytes to the reader as a
// user would (a file for the file readers) and returns normally when the
// reader either accepted them or refused them with a std::exception; any
// other outcome (a crash, a sanitizer report, a non-std exception, a hang)
// is a bug. Used by
//   * tests/fuzz/test_fuzz_replay.cpp (ctest, label cpu): the seeds of each
//     target and thousands of deterministic mutations of them, in CI;
//   * tools/fuzz.sh: libFuzzer binaries (clang, ASan + UBSan on the whole
//     program) for open-ended fuzzing from the same seeds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lk::fuzz {

struct Target {
  const char* name;
  // Runs the reader on the bytes; throws only what the reader threw.
  void (*run)(const uint8_t* data, size_t size);
  // Valid inputs to start from.
  std::vector<std::string> (*seeds)();
};

const std::vector<Target>& targets();
const Target& target(const std::string& name);  // throws std::invalid_argument for an unknown name

// A per-process scratch folder for the files the targets write.
const std::string& scratch_dir();

}  // namespace lk::fuzz
