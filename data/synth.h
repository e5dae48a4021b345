// Synthetic BraTS-like cases: the project's embedded default dataset.
//
// Each case is a skull-stripped, brain-like head (a noise-perturbed ellipsoid
// with a cortical grey-matter ribbon, sulci, the interhemispheric fissure,
// lateral ventricles, deep grey nuclei and white matter, with texture, a
// smooth bias field, a per-case scanner gain and noise) carrying one or two
// tumours: a lobulated (noise-perturbed, rotated, anisotropic ellipsoid)
// core of necrosis (label 1) inside an enhancing rim (label 4), surrounded by
// irregular edema (label 2) that pushes the anatomy aside (mass effect).
// Cases cycle through four kinds, so any 4 consecutive cases hold each:
//   medium (rim + necrosis), small (rim in half of them, else solid core),
//   large (rim + necrosis), and no enhancing part (label 1 core + edema).
// The four modalities follow MRI contrasts: FLAIR (CSF dark, edema bright),
// T1 (WM > GM > CSF, necrosis dark), T1ce (as T1, enhancing rim bright),
// T2 (CSF, edema, necrosis bright). Intensities are int16 (background 0,
// brain >= 1); spacing isotropic; the affine is BraTS' axis flips (-x, -y, +z)
// centred on the volume.
//
// Deterministic: a case depends only on (seed, index, options); every random
// value comes from a hash of those, so files are bit-identical for the same
// seed whatever the thread count.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "data/volume.h"

namespace lk::data {

struct SynthOptions {
  std::array<int64_t, 3> dims{160, 160, 96};  // voxels (x, y, z); BraTS is 240x240x155
  double spacing = 1.0;                        // mm, isotropic
  int gzip_level = 1;                          // of the written .nii.gz files (1..9)
  int first_id = 0;                            // case i is named BraTS2021_<first_id + i, 5 digits>
};

enum class SynthKind : uint8_t { Medium, Small, Large, NoEnhancing };
const char* synth_kind_name(SynthKind k);
// The kind of case `index` under `seed`: (index + seed) mod 4 over the order above.
SynthKind synth_case_kind(uint64_t seed, int index);

// What was drawn for a case, and the label voxel counts that came out.
struct SynthCaseInfo {
  std::string id;
  SynthKind kind = SynthKind::Medium;
  bool enhancing = true;         // label 4 was drawn (a small rim can still vanish: see voxels)
  int lesions = 1;
  double core_radius_mm = 0;     // of the main lesion
  std::array<int64_t, 5> voxels{};  // count per label value 0..4 (index 3 unused)
};

struct SynthCase {
  SynthCaseInfo info;
  Geometry geom;
  std::array<std::vector<int16_t>, 4> images;  // FLAIR, T1, T1ce, T2; x fastest
  std::vector<uint8_t> labels;                 // {0, 1, 2, 4}
};

// The description in every file written (how `lkaseg synth` tells its own
// cases from real ones).
inline constexpr const char* kSynthDescription = "lkaseg synthetic BraTS-like case";

// The case `index` of the dataset drawn with `seed`, in memory.
SynthCase make_synthetic_case(uint64_t seed, int index, const SynthOptions& opt = {});

// Writes <dir>/<id>/<id>_{flair,t1,t1ce,t2,seg}.nii.gz (BraTS 2021 layout):
// into a temporary folder beside it, renamed into place when complete, so a
// failure (a full disk) or a kill never leaves a half-written case; an
// existing <dir>/<id> is replaced.
void write_synthetic_case(const std::string& dir, const SynthCase& c, const SynthOptions& opt = {});

// Makes and writes cases 0..n_cases-1 into dir (created if needed), plus a
// SYNTHETIC.txt note of the seed and options; returns what each case holds.
// `stop` (may be null) is asked between cases: true ends the loop early
// (the cases written so far are returned).
std::vector<SynthCaseInfo> generate_synthetic_dataset(const std::string& dir, int n_cases, uint64_t seed,
                                                      const SynthOptions& opt = {},
                                                      const std::atomic<bool>* stop = nullptr);

}  // namespace lk::data
