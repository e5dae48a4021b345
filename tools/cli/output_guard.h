// Where lkaseg writes, it writes only over its own files: an output folder
// that holds anything else (a folder of real cases given as `synth --out`, a
// data folder given as a run folder) is refused unless --force, and a file
// that is not ours is never overwritten, --force or not.
//
// "Ours" is decided by content where the content says it: NIfTI files by
// their description (written by synth, predict), safetensors files by their
// "format" metadata ("lkaseg-..."), the slice cache by its magic; the files
// of a run folder by name. Temporaries of a killed run
// ("<file>.tmp.lkaseg-<pid>.XXXXXX", util/interrupt.h) are ours too: the checks
// remove them and say so.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "util/atomic_file.h"

namespace lk::cli {

// Accepts an entry of an output folder as one lkaseg wrote.
using OwnsEntry = std::function<bool(const std::filesystem::directory_entry&)>;

// Creates `dir` when absent. When it exists: removes stale temporaries
// (printing them), then throws std::invalid_argument naming up to three
// entries `ours` does not accept, unless `force` (then a note names them).
// `what` names the folder in messages ("run folder", "--out folder").
void check_output_folder(const std::string& dir, const OwnsEntry& ours, bool force, const std::string& what);

// Removes the temporaries a killed run left directly in `dir`
// (util/interrupt.h), naming each on stderr.
void clean_stale_temps(const std::string& dir);

// check_replaceable (util/atomic_file.h): a file that is not ours is never
// overwritten.

// The folder of `path` exists (else std::invalid_argument naming it and `flag`).
void check_parent_exists(const std::string& path, const std::string& flag);

// The description of a NIfTI file starts with `prefix` (false when it cannot
// be read as NIfTI).
bool nifti_described(const std::string& path, const std::string& prefix);
// A safetensors file whose metadata "format" starts with "lkaseg-".
bool is_lkaseg_safetensors(const std::string& path);
// A temporary of util/interrupt.h's naming.
bool is_temp_name(const std::string& name);

// The description of the masks `lkaseg predict` writes.
inline constexpr const char* kPredictionDescription = "lkaseg prediction";

}  // namespace lk::cli
