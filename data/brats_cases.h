// BraTS case folders: discovery, loading and validation.
//
// A dataset is a folder of case folders, in either naming:
//   BraTS 2021: BraTS2021_00006/BraTS2021_00006_{flair,t1,t1ce,t2,seg}.nii.gz
//   BraTS 2023: BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t2f,t1n,t1c,t2w,seg}.nii.gz
// (.nii is accepted too). Channels are always ordered FLAIR, T1, T1ce, T2.
// Labels are returned in BraTS 2021 values {0 background, 1 NCR, 2 ED,
// 4 ET}; BraTS 2023 writes ET as 3, which is mapped to 4.
//
// A bad case (a missing or ambiguous modality, modalities of different shape
// or affine, NaN/Inf voxels, labels outside the naming's set, or any NIfTI
// error) throws an error naming the file and the problem; with
// BratsOptions::skip_bad the case is skipped instead, with a warning, and
// listed in BratsDataset::skipped.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/volume.h"

namespace lk::data {

enum class BratsNaming : uint8_t { Brats2021, Brats2023 };

constexpr int kBratsChannels = 4;
// "FLAIR", "T1", "T1ce", "T2": the channel order of every loaded case.
extern const std::array<const char*, kBratsChannels> kBratsChannelNames;

// Thrown for a bad case; what() is "<file or case folder>: <problem>".
class BratsError : public std::runtime_error {
 public:
  BratsError(const std::string& file, const std::string& problem)
      : std::runtime_error(file + ": " + problem), file_(file) {}
  const std::string& file() const { return file_; }

 private:
  std::string file_;
};

struct BratsCase {
  std::string id;                                // the folder name
  std::string dir;                               // the folder
  BratsNaming naming = BratsNaming::Brats2021;
  std::array<std::string, kBratsChannels> images;  // FLAIR, T1, T1ce, T2 paths
  std::string seg;                               // empty when absent (require_seg = false)
};

struct BratsOptions {
  bool skip_bad = false;     // skip bad cases with a warning instead of throwing
  bool require_seg = true;   // a case without a segmentation is bad
  // Receives each warning; by default they go to stderr.
  std::function<void(const std::string&)> warn{};
};

struct SkippedCase {
  std::string id;
  std::string reason;  // the error message
};

struct BratsDataset {
  std::string root;
  std::vector<BratsCase> cases;      // usable cases, sorted by id
  std::vector<SkippedCase> skipped;  // bad cases (only with skip_bad)
};

// One loaded case: all five files on one grid.
struct BratsCaseData {
  BratsCase source;
  Geometry geom;                                        // shared by all files
  std::array<std::vector<float>, kBratsChannels> images;  // FLAIR, T1, T1ce, T2; x fastest
  std::vector<uint8_t> labels;                          // {0, 1, 2, 4}; empty without seg
};

// Lists the case folders under `root` and finds each case's files (no file
// is opened). A subfolder is a case when its name starts with "BraTS" or it
// holds .nii/.nii.gz files; hidden folders are ignored. Throws BratsError
// when root is not a folder or holds no case at all, and for a bad case
// unless opt.skip_bad.
BratsDataset discover_brats_cases(const std::string& root, const BratsOptions& opt = {});

// Reads and checks every file of a case. Throws BratsError or NiftiError.
BratsCaseData load_brats_case(const BratsCase& c);

// The same, but with opt.skip_bad a failure is reported through opt.warn,
// appended to summary.skipped, and nullopt returned.
std::optional<BratsCaseData> load_brats_case(const BratsCase& c, const BratsOptions& opt, BratsDataset& summary);

// discover_brats_cases, then load_brats_case on every case, one at a time
// (nothing is kept), so every problem surfaces now. With skip_bad, cases
// that fail to load move from `cases` to `skipped`.
BratsDataset validate_brats_dataset(const std::string& root, const BratsOptions& opt = {});

}  // namespace lk::data
