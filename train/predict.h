// Prediction with trained models: loading any checkpoint a run wrote, the
// softmax probabilities of one model or the mean of several (an ensemble of
// fold models) with optional mirrored views (test-time augmentation), and
// one case predicted end to end into its original grid.
//
// Ensembles and mirroring (nnU-Net's habits): for every slice, the softmax
// probabilities of the main output are averaged over the models and the
// views before the argmax. A view is the slice mirrored along some in-plane
// axes; its output is mirrored back before it is added. Slices are batched
// (`batch` images per forward pass, views included) on the given device,
// with the softmax there too; only the probabilities come back. Per model,
// the views of a slice are summed pairwise ((v0 + v1) + (v2 + v3)), so a
// slice that is symmetric along a mirrored axis gets exactly symmetric
// probabilities, and the models' sums are added in order, then divided by
// models x views: the mean of two models equals (p1 + p2) / 2 exactly.
//
// Which mirror: the paper's augmentation (SPEC.md Table 1: noise,
// brightness, gamma, scaling, rotation, crop) never mirrors, so no flip is
// "learned". Left-right mirroring is still meaningful: the brain is close to
// bilaterally symmetric and tumours occur in both hemispheres, so a mirrored
// case looks like another real case, whereas an anterior-posterior or
// upside-down brain looks like nothing in the training set. `--tta`
// therefore mirrors along the in-plane voxel axis closest to the world's
// left-right axis (left_right_axis: from the affine, so it is x for BraTS
// and MSD volumes alike); mirror_axes can ask for more.
//
// Probability maps (save_probabilities): <out>/probabilities/<id>.nii.gz, a
// 4-D float32 NIfTI (x, y, z, channel) on the case's grid; channel c is the
// probability of the c-th label value, ascending, of the case's own coding:
// BraTS 2017-2021 (0, 1 NCR, 2 ED, 4 ET), BraTS 2023 (0, 1 NCR, 2 ED, 3 ET),
// MSD (0, 1 edema, 2 non-enhancing, 3 enhancing). Voxels outside the
// cropped brain box or on slices without brain have background 1. They are
// the averaged probabilities (nearest-neighbour back from the slice grid, as
// the labels), before post-processing: their argmax is the label map
// before post-processing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/brats_cases.h"
#include "data/preprocess.h"
#include "data/slice_cache.h"
#include "engine/tensor.h"
#include "model/networks.h"
#include "train/postprocess.h"
#include "train/trainer.h"

namespace lk::train {

// ---- checkpoints ---------------------------------------------------------

// What describes a checkpoint's weights. resolve_checkpoint is the one place
// that knows how a run lays its checkpoints out (train/trainer.h,
// train/checkpoint.h):
//   a weights file with lkaseg metadata (best.safetensors,
//     last-<step>.safetensors): everything is there;
//   a checkpoint manifest (last.json): the weights file it names;
//   a fold folder (RUN/fold_k): its `which` checkpoint ("best", or "last":
//     the one last.json names);
//   a weights file without the metadata (a last.safetensors of an older
//     run): the training configuration from its .state file (else the
//     folder's config.json), the preprocessing from config.json (else
//     best.safetensors' metadata beside it), the epoch from the .state file.
struct CheckpointInfo {
  std::string weights;       // the safetensors file holding the state_dict
  std::string train_config;  // TrainConfig JSON
  std::string preprocess;    // PreprocessOptions JSON (preprocess_to_json)
  int64_t epoch = 0;         // the epoch after which it was saved; 0 unknown
};
CheckpointInfo resolve_checkpoint(const std::string& path, const std::string& which = "best");

// A lower bound of a network's parameter count (the encoder's 3x3
// convolutions), computed without building it.
int64_t min_parameters(const model::NetConfig& cfg);

// A trained model with its preprocessing. load_model refuses, naming the
// file, weights holding NaN/Inf and metadata describing a network larger
// than the file (checked before anything is allocated).
struct LoadedModel {
  TrainConfig config;
  data::PreprocessOptions preprocess;
  std::unique_ptr<model::SegNet> net;
  std::string path;   // the weights file
  int64_t epoch = 0;  // 0: unknown
};
LoadedModel load_model(const std::string& path, Device dev);

// The checkpoints of a run's folds, fold_0, fold_1, ... in order: `which` is
// "best", "last" or "selected" (the one `cv` chose, recorded in
// fold_k/selected.json; best when there is none or it is older than the
// checkpoints). Throws when RUN holds no fold folder.
std::vector<std::string> run_checkpoints(const std::string& run_dir, const std::string& which = "selected");

// cv's choice for one fold: which checkpoint, its epoch and how it was
// chosen (free text), kept in fold_dir/selected.json.
struct CheckpointChoice {
  std::string checkpoint;  // "best" or "last" (resolve_checkpoint's `which`)
  int64_t epoch = 0;
  std::string how;
};
void write_checkpoint_choice(const std::string& fold_dir, const CheckpointChoice& c);

// ---- slices --------------------------------------------------------------

struct PredictOptions {
  int64_t batch = 16;       // images per forward pass, views included
  unsigned mirror_axes = 0; // bit 0: mirror columns (x), bit 1: rows (y); views: every combination
  Device device = cpu_device();
};

// Host slices (n, C, side, side) float32 -> mean softmax probabilities of
// the main output (n, K, side, side) over `nets` and the views (above).
// The networks are run in eval mode without gradients; their modes are
// restored. All must take the same channels and give the same classes.
std::vector<float> predict_probabilities(const std::vector<model::SegNet*>& nets, const float* images, int64_t n,
                                         int64_t side, const PredictOptions& o);

// argmax over the K classes of (n, K, px) probabilities -> (n, px) classes
// (the first of equal maxima).
std::vector<int32_t> argmax_classes(const std::vector<float>& probs, int64_t n, int64_t classes, int64_t px);

// argmax class of the main output of one network (n, side, side), `batch`
// slices at a time on `dev` (validation's path: no softmax).
std::vector<int32_t> predict_classes(model::SegNet& net, const float* images, int64_t n, int64_t side, int64_t batch,
                                     Device dev);
// The slices of cache case `c`, predicted.
std::vector<int32_t> predict_cached_case(model::SegNet& net, const data::SliceCache& cache, int64_t c, int64_t batch,
                                         Device dev);

// 0 or 1: the in-plane voxel axis (x or y; slices are axial, z) whose
// direction is closest to the world's left-right axis.
int left_right_axis(const data::Geometry& g);

// ---- cases ---------------------------------------------------------------

struct CasePredictOptions {
  PredictOptions predict;          // mirror_axes is used as given ...
  bool tta = false;                // ... plus, when set, the left-right axis of each case
  const Postprocessing* postprocess = nullptr;  // applied to the label map when given
  bool save_probabilities = false;
};

struct CasePrediction {
  std::string path;             // <out_dir>/<id>.nii.gz
  double seconds = 0;           // load, preprocess, predict, post-process, write
  int64_t postprocessed = 0;    // voxels the post-processing changed
  int views = 1;
};

// One case: load, preprocess with `po` (as in training), predict (mean over
// `nets` and views), map back to the original grid, post-process, write
// <out_dir>/<id>.nii.gz in the case's own label coding (and the
// probabilities, when asked).
CasePrediction predict_case_file(const std::vector<model::SegNet*>& nets, const data::PreprocessOptions& po,
                                 const data::BratsCase& bc, const std::string& out_dir, const CasePredictOptions& o);
// One network, no views, no post-processing.
CasePrediction predict_case_file(model::SegNet& net, const data::PreprocessOptions& po, const data::BratsCase& bc,
                                 const std::string& out_dir, int64_t batch, Device dev);

// The descriptions of the files predict writes (the NIfTI descrip field).
inline constexpr const char* kPredictionDescription = "lkaseg prediction";
inline constexpr const char* kProbabilitiesDescription = "lkaseg probabilities";

// BraTS 2021 labels (0, 1, 2, 4) written as a uint8 NIfTI on g in the
// label coding of `naming` (what predict writes for a case of that naming).
void write_case_labels(const std::string& path, const data::Geometry& g, std::vector<uint8_t> labels,
                       data::BratsNaming naming, const std::string& description = kPredictionDescription);

// The networks of loaded models, checked to share preprocessing, channels
// and classes (an error names the first model that differs).
std::vector<model::SegNet*> ensemble_nets(const std::vector<LoadedModel>& models);

}  // namespace lk::train
