// safetensors files: the format of our golden fixtures and of our
// checkpoints, readable by PyTorch users. Layout: u64 little-endian header
// size N, N bytes of JSON {name: {dtype, shape, data_offsets}, "__metadata__":
// {str: str}}, then the raw little-endian tensor bytes.
//
// The reader trusts nothing: sizes, offsets, dtypes and shapes are checked
// against the file before anything is allocated; every error names the file.
// The writer is atomic: temp file in the same directory, fsync, rename,
// fsync of the directory. A failed write (full disk) leaves the old file.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace lk {

struct SafeTensors {
  std::string path;
  std::map<std::string, std::string> metadata;
  std::vector<std::pair<std::string, Tensor>> tensors;  // in file order

  bool has(const std::string& name) const;
  const Tensor& get(const std::string& name) const;  // throws naming file and key
  const std::string& meta(const std::string& key) const;
};

// F32, F64 and I32 are read as such, I64 is narrowed to I32 (range-checked).
SafeTensors load_safetensors(const std::string& path);

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace lk
