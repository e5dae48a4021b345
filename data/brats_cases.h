// BraTS case folders: discovery, loading and validation.
//
// A dataset is one of these layouts (each file .nii.gz or .nii):
//   BraTS 2021: BraTS2021_00006/BraTS2021_00006_{flair,t1,t1ce,t2,seg}.nii.gz
//   BraTS 2017-2020: the same keys, e.g. BraTS20_Training_001/BraTS20_Training_001_flair.nii
//               or Brats18_2013_0_1/Brats18_2013_0_1_t1ce.nii.gz; the case folders may sit
//               one level down in grade folders (HGG/, LGG/), as in BraTS 2017-2019
//   BraTS 2023: BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t2f,t1n,t1c,t2w,seg}.nii.gz
//   MSD (the Medical Segmentation Decathlon's Task01_BrainTumour): a task folder
//               with imagesTr/<id>.nii.gz (4-D: x, y, z and the channels FLAIR,
//               T1w, T1gd, T2w), labelsTr/<id>.nii.gz, imagesTs/<id>.nii.gz (no
//               labels; listed only when require_seg is false); `root` may also be
//               the imagesTr or imagesTs folder itself. A dataset.json beside them,
//               when present, must name those four modalities in that order.
// Channels are always ordered FLAIR, T1, T1ce, T2. Labels are returned in
// BraTS 2021 values {0 background, 1 NCR, 2 ED, 4 ET}; each naming's own
// coding (label_values) is mapped: 2017-2021 {0, 1 NCR, 2 ED, 4 ET} as is,
// 2023 {0, 1 NCR, 2 ED, 3 ET}, MSD {0, 1 edema, 2 non-enhancing tumour,
// 3 enhancing tumour} (non-enhancing → NCR, as BraTS 2017+ merged them).
// Predictions go back to each case's own coding (from_brats2021_label).
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

// The file naming and label coding of a case. Brats2021 also covers the
// 2017-2020 releases (same file keys, same labels).
enum class BratsNaming : uint8_t { Brats2021, Brats2023, Msd };

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

// Thrown by discovery for an id of BratsOptions::only that is not under the
// root; what() is "<root>: case <id> is not there (<n> cases: a, b, c, ...)".
class MissingCaseError : public BratsError {
 public:
  using BratsError::BratsError;
};

struct BratsCase {
  std::string id;                                // the folder name (MSD: the file name without extension)
  std::string dir;                               // the folder (MSD: the images folder)
  BratsNaming naming = BratsNaming::Brats2021;
  std::array<std::string, kBratsChannels> images;  // FLAIR, T1, T1ce, T2 paths (MSD: four times the 4-D file)
  std::string seg;                               // empty when absent (require_seg = false)
};

struct BratsOptions {
  bool skip_bad = false;     // skip bad cases with a warning instead of throwing
  bool require_seg = true;   // a case without a segmentation is bad
  // Receives each warning; by default they go to stderr.
  std::function<void(const std::string&)> warn{};
  // When not empty: only the cases of these ids (the ids discovery reports:
  // folder names, MSD file names without extension) are examined; the
  // others are ignored as if absent (a bad one is no error). An id not there
  // throws MissingCaseError.
  std::vector<std::string> only{};
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

// Lists the cases under `root` and finds each case's files (no image is
// opened). A subfolder is a case when its name starts with "BraTS"/"Brats"
// or it holds .nii/.nii.gz files; a subfolder that is not one but holds case
// folders (HGG/, LGG/) contributes those; hidden folders and files are
// ignored. MSD when root holds imagesTr/ or imagesTs/ (or is one). Throws
// BratsError when root is not a folder, holds no case at all or two cases of
// one id, and for a bad case unless opt.skip_bad; MissingCaseError for an id
// of opt.only that is not there.
BratsDataset discover_brats_cases(const std::string& root, const BratsOptions& opt = {});

// Reads and checks every file of a case. Throws BratsError or NiftiError.
BratsCaseData load_brats_case(const BratsCase& c);

// One image channel (0 FLAIR, 1 T1, 2 T1ce, 3 T2) of a case, as read_nifti
// gives it (MSD: that volume of the 4-D file).
Volume load_brats_channel(const BratsCase& c, int channel);

// ---- label codings -------------------------------------------------------

// The label values of a naming's segmentation files, ascending: 2021
// {0, 1, 2, 4}, 2023 {0, 1, 2, 3}, MSD {0, 1, 2, 3}.
std::array<uint8_t, 4> label_values(BratsNaming n);
// "{0, 1, 2, 4} (BraTS 2021)", for messages.
std::string label_coding_name(BratsNaming n);
// A file value of naming n as a BraTS 2021 label (0, 1, 2, 4), or -1 when it
// is not a label of n.
int to_brats2021_label(BratsNaming n, float value);
// A BraTS 2021 label (0, 1, 2, 4) in naming n's coding.
uint8_t from_brats2021_label(BratsNaming n, uint8_t label);
// Label voxels (as read) → BraTS 2021 labels. Any other value (one outside
// the coding's set, a fraction, NaN) throws BratsError "<path>: label values
// outside {0, 1, 2, 4} (BraTS 2021): 3 (12 voxels), ..." naming up to five
// values with their counts.
std::vector<uint8_t> labels_to_brats2021(const std::vector<float>& voxels, BratsNaming n, const std::string& path);

// The same, but with opt.skip_bad a failure is reported through opt.warn,
// appended to summary.skipped, and nullopt returned.
std::optional<BratsCaseData> load_brats_case(const BratsCase& c, const BratsOptions& opt, BratsDataset& summary);

// discover_brats_cases, then load_brats_case on every case, one at a time
// (nothing is kept), so every problem surfaces now. With skip_bad, cases
// that fail to load move from `cases` to `skipped`.
BratsDataset validate_brats_dataset(const std::string& root, const BratsOptions& opt = {});

}  // namespace lk::data
