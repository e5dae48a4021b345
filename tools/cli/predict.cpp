// lkaseg predict: NIfTI masks in the original geometry of each case, from one
// trained model or the mean of several (train/predict.h), with optional
// mirrored views (--tta), the post-processing chosen by cv, and probability
// maps.
//
//   lkaseg predict (--model CKPT [--model CKPT ...] | --run RUN [--checkpoint selected|best|last])
//                  --data DIR --out DIR [--tta] [--postprocess FILE | --no-postprocess]
//                  [--save-probabilities] [--cases ID ...] [--batch N] [--device D] [--skip-bad] [--force]
//
// CKPT: any checkpoint a run wrote (fold_k/best.safetensors, fold_k/last.json
// or the weights it names, or a fold folder: its best). --run: every fold of
// a cv run, each with the checkpoint cv selected (fold_k/selected.json; best
// without one), and RUN/postprocessing.json when it exists, unless
// --no-postprocess or --postprocess FILE says otherwise.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tools/cli/commands.h"
#include "tools/cli/run.h"
#include "util/progress.h"

namespace lk::cli {

namespace {

namespace fs = std::filesystem;

struct PredictOptions {
  std::vector<std::string> models;
  std::string run, checkpoint = "selected", data, out, device = "auto", postprocess;
  std::vector<std::string> cases;
  int64_t batch = 0;
  bool tta = false, no_postprocess = false, save_probabilities = false, skip_bad = false, force = false;
};

int cmd_predict(const PredictOptions& o) {
  if (o.models.empty() == o.run.empty()) throw std::invalid_argument("give either --model (one or more) or --run");
  const Device dev = resolve_device(o.device);
  const std::vector<std::string> paths = o.run.empty() ? o.models : train::run_checkpoints(o.run, o.checkpoint);
  std::vector<LoadedModel> models;
  for (const std::string& p : paths) {
    models.push_back(load_model(p, dev));
    std::printf("model %s (epoch %lld)\n", models.back().path.c_str(), static_cast<long long>(models.back().epoch));
  }
  const std::vector<model::SegNet*> nets = train::ensemble_nets(models);

  std::string pp_path = o.postprocess;
  if (pp_path.empty() && !o.run.empty() && !o.no_postprocess && fs::is_regular_file(fs::path(o.run) / "postprocessing.json"))
    pp_path = (fs::path(o.run) / "postprocessing.json").string();
  train::Postprocessing pp;
  if (!pp_path.empty()) {
    pp = train::read_postprocessing(pp_path);
    std::printf("post-processing %s: %s\n", pp_path.c_str(), pp.rules.empty() ? "no rule (none helped)" : "");
    for (const train::PpRule& r : pp.rules) std::printf("  %s\n", r.str().c_str());
  }

  data::BratsOptions bo;
  bo.skip_bad = o.skip_bad;
  bo.require_seg = false;
  bo.only = o.cases;
  const data::BratsDataset ds = data::discover_brats_cases(o.data, bo);
  prepare_prediction_folder(o.out, o.force);

  train::CasePredictOptions co;
  co.predict.batch = o.batch > 0 ? o.batch : (dev.type == DeviceType::CPU ? 16 : 64);
  co.predict.device = dev;
  co.tta = o.tta;
  co.postprocess = pp_path.empty() ? nullptr : &pp;
  co.save_probabilities = o.save_probabilities;
  std::printf("predicting %zu case(s) with %zu model(s)%s on %s, %lld images per forward pass\n", ds.cases.size(),
              models.size(), o.tta ? " x 2 views (left-right mirror)" : "", dev.str().c_str(),
              static_cast<long long>(co.predict.batch));
  std::fflush(stdout);
  Progress progress("predict", static_cast<int64_t>(ds.cases.size()), "cases");
  int failed = 0;
  double seconds = 0;
  for (const data::BratsCase& bc : ds.cases) {
    try {
      const train::CasePrediction r = cli::predict_case_file(nets, models.front().preprocess, bc, o.out, co);
      seconds += r.seconds;
      char line[256];
      std::snprintf(line, sizeof line, "%s: %.1f s%s", bc.id.c_str(), r.seconds,
                    co.postprocess ? (", post-processing changed " + std::to_string(r.postprocessed) + " voxels").c_str()
                                   : "");
      progress.note(line);
    } catch (const std::exception& e) {
      if (!o.skip_bad) throw;
      ++failed;
      progress.note("skipping " + bc.id + ": " + e.what());
    }
    progress.advance();
  }
  progress.finish();
  const size_t done = ds.cases.size() - static_cast<size_t>(failed);
  std::printf("wrote %zu prediction(s) to %s%s; %.1f s per case\n", done, o.out.c_str(),
              failed ? (" (" + std::to_string(failed) + " case(s) skipped)").c_str() : "",
              done ? seconds / static_cast<double>(done) : 0.0);
  return 0;
}

}  // namespace

Subcommand add_predict(CLI::App& app) {
  auto o = std::make_shared<PredictOptions>();
  CLI::App* p = app.add_subcommand(
      "predict", "segment BraTS/MSD cases with trained models (one, or the mean of several): NIfTI masks in the "
                 "original geometry and the input's label coding");
  p->add_option("--model", o->models,
                "a checkpoint written by train/cv (fold_k/best.safetensors, fold_k/last.json or its weights file, or a "
                "fold folder: its best); repeat for an ensemble (softmax probabilities averaged)");
  p->add_option("--run", o->run, "a cv run folder: all its folds as one ensemble, and RUN/postprocessing.json")
      ->check(CLI::ExistingDirectory);
  p->add_option("--checkpoint", o->checkpoint, "with --run: selected (cv's choice), best or last")
      ->check(CLI::IsMember({"selected", "best", "last"}))
      ->capture_default_str();
  p->add_option("--data", o->data, "folder of BraTS case folders or an MSD task folder (segmentations not needed)")
      ->required()
      ->check(CLI::ExistingDirectory);
  p->add_option("--out", o->out, "output folder: <case id>.nii.gz per case")->required();
  p->add_flag("--tta", o->tta, "also predict the left-right mirrored slices and average (2 views)");
  p->add_option("--postprocess", o->postprocess, "post-processing rules (a postprocessing.json written by cv)")
      ->check(CLI::ExistingFile);
  p->add_flag("--no-postprocess", o->no_postprocess, "with --run: do not apply RUN/postprocessing.json");
  p->add_flag("--save-probabilities", o->save_probabilities,
              "also write <out>/probabilities/<case id>.nii.gz: 4-D float32, one volume per label value of the "
              "input's coding, ascending");
  p->add_option("--cases", o->cases, "only these case ids");
  p->add_option("--batch", o->batch, "images per forward pass, views included (0: 16 on the CPU, 64 on a GPU)")
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  p->add_option("--device", o->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  p->add_flag("--skip-bad", o->skip_bad, "skip cases that fail (listed) instead of stopping");
  p->add_flag("--force", o->force, "write into an --out folder that holds other files (never over them)");
  p->get_option("--postprocess")->excludes("--no-postprocess");
  p->get_option("--model")->excludes("--run");
  return {p, [o] { return cmd_predict(*o); }};
}

}  // namespace lk::cli
