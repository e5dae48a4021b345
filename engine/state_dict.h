// A module's state_dict as a safetensors file: its parameters and buffers
// under their PyTorch keys, so `model.load_state_dict(
// safetensors.torch.load_file(path))` works (strict). Written atomically
// (engine/safetensors.h). Training checkpoints (weights + optimiser state)
// build on this in train/checkpoint.h.
#pragma once

#include <map>
#include <string>

#include "engine/module.h"

namespace lk {

void save_state_dict(const std::string& path, const Module& m, const std::map<std::string, std::string>& meta = {});
// Strict: every key of the module must be in the file with the same shape, and
// the file must hold no other key; a mismatch throws naming the file and keys.
// Returns the file's metadata.
std::map<std::string, std::string> load_state_dict(const std::string& path, Module& m);

// Copies `src` into `dst` after checking shape and integer-ness; an error
// names `path` and `key`.
void copy_checked(const std::string& path, const std::string& key, const Tensor& src, const Tensor& dst);

}  // namespace lk
