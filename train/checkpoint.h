// Checkpoints.
//
// One checkpoint is a pair of safetensors files:
//   <path>          the model's state_dict (parameters and buffers under
//                   their PyTorch keys): `model.load_state_dict(
//                   safetensors.torch.load_file(path))` works (strict); its
//                   metadata: format tag, step, generation, and what the
//                   caller adds (the trainer: what `lkaseg predict` needs)
//   <path>.state    training state: AdamW moments per key ("adamw.m.<key>",
//                   "adamw.v.<key>"), and metadata: format tag, step, epoch,
//                   generation, learning rate, the LR schedule, RNG state,
//                   the run's config.
// Each file is written atomically (util/atomic_file.h); both carry the step
// and a random generation id, and loading refuses a pair whose ids differ.
//
// A run keeps its checkpoints as generations in a folder (Checkpoints):
//   <name>-<step>.safetensors (+ .state)  the pair of one step
//   <name>.json                           names the newest generation: format,
//                                         step, epoch, both files and their
//                                         sizes; written last
// A save writes the new pair, then <name>.json, then removes the other
// generations, all inside a CriticalSection (util/interrupt.h: a second
// Ctrl-C waits for the save). So at every instant the folder holds at least
// one complete generation of one step once the first save completed, and the
// previous one is kept until the new one is complete. Resuming loads the
// newest complete generation (the newest step whose pair loads; a pair
// missing its state file or from two saves is passed over, saying why).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/module.h"
#include "engine/optim.h"
#include "engine/state_dict.h"
#include "train/schedule.h"

namespace lk {

struct TrainState {
  int64_t step = 0;   // optimiser steps taken
  int64_t epoch = 0;  // epochs completed
  double lr = 0;
  LrSchedule schedule;
  std::string rng;     // serialised generator state (e.g. std::mt19937_64 via <<)
  std::string config;  // the run's configuration (JSON)
  // The unfinished epoch so far (a stop mid-epoch): the sum of its steps'
  // losses and their count, so the resumed epoch reports its whole mean.
  double epoch_loss_sum = 0;
  int64_t epoch_loss_steps = 0;
  // The steps of epoch `step / steps_per_epoch` are all taken but its end
  // (validation, log line, best checkpoint) is not: a stop came during the
  // validation. A resume runs that end first.
  bool epoch_open = false;
};

// The pair <path> + <path>.state; `weights_meta` is added to the weights
// file's metadata.
void save_checkpoint(const std::string& path, const Module& m, const AdamW& opt, const TrainState& st,
                     const std::map<std::string, std::string>& weights_meta = {});
// Loads weights, buffers and optimiser moments; returns the training state.
// Throws (naming the file) for a damaged, foreign or mismatched pair.
TrainState load_checkpoint(const std::string& path, Module& m, AdamW& opt);

// "'<key>' holds N non-finite values" for the first float tensor with NaN
// or Inf, or "".
std::string nonfinite_tensor(const std::vector<std::pair<std::string, Tensor>>& tensors);

class Checkpoints {
 public:
  enum class Stage { Weights, State, Manifest, Cleanup };

  explicit Checkpoints(std::string dir, std::string name = "last");

  std::string manifest_path() const;
  std::string weights_path(int64_t step) const;  // <dir>/<name>-<step, 8 digits>.safetensors

  // Writes generation st.step (see above). `after` (tests) is called after
  // each stage. Throws (naming the file) when a write fails; the previous
  // generation is then still the newest complete one.
  void save(const Module& m, const AdamW& opt, const TrainState& st,
            const std::map<std::string, std::string>& weights_meta = {},
            const std::function<void(Stage)>& after = {}) const;

  // The newest complete generation, loaded into m and opt; nullopt when the
  // folder holds no checkpoint file at all. Generations passed over are
  // reported through `note`. Throws when checkpoint files exist but none
  // loads (naming them and how to start over).
  std::optional<TrainState> load_newest(Module& m, AdamW& opt,
                                        const std::function<void(const std::string&)>& note = {}) const;

  // Removes every checkpoint file of `name` but generation `keep_step`'s;
  // returns the removed paths.
  std::vector<std::string> remove_others(int64_t keep_step) const;

  // After load_newest: the manifest is made to name generation `st` (a kill
  // between a pair and its manifest leaves the manifest naming the previous
  // one), then the other generations are removed (returned).
  std::vector<std::string> adopt(const TrainState& st) const;

  // Steps of the pairs whose two files are present, newest first.
  std::vector<int64_t> generations() const;

 private:
  void write_manifest(int64_t step, int64_t epoch) const;
  std::string dir_, name_;
};

}  // namespace lk
