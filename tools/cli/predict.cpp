// lkaseg predict: NIfTI masks in the original geometry of each case, from a
// trained model (tools/cli/run.h).
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
  std::string model, data, out, device = "auto";
  std::vector<std::string> cases;
  int64_t batch = 16;
  bool skip_bad = false, force = false;
};

int cmd_predict(const PredictOptions& o) {
  const Device dev = resolve_device(o.device);
  LoadedModel m = load_model(o.model, dev);

  data::BratsOptions bo;
  bo.skip_bad = o.skip_bad;
  bo.require_seg = false;
  data::BratsDataset ds = data::discover_brats_cases(o.data, bo);
  if (!o.cases.empty()) {
    std::vector<data::BratsCase> keep;
    for (const std::string& id : o.cases) {
      const auto it = std::find_if(ds.cases.begin(), ds.cases.end(), [&](const data::BratsCase& c) { return c.id == id; });
      if (it == ds.cases.end()) throw std::invalid_argument(o.data + ": case " + id + " (--cases) is not there");
      keep.push_back(*it);
    }
    ds.cases = keep;
  }
  prepare_prediction_folder(o.out, o.force);
  Progress progress("predict", static_cast<int64_t>(ds.cases.size()), "cases");
  int failed = 0;
  for (const data::BratsCase& bc : ds.cases) {
    try {
      predict_case_file(*m.net, m.preprocess, bc, o.out, o.batch, dev);
    } catch (const std::exception& e) {
      if (!o.skip_bad) throw;
      ++failed;
      progress.note("skipping " + bc.id + ": " + e.what());
    }
    progress.advance();
  }
  progress.finish();
  std::printf("wrote %zu prediction(s) to %s%s\n", ds.cases.size() - static_cast<size_t>(failed), o.out.c_str(),
              failed ? (" (" + std::to_string(failed) + " case(s) skipped)").c_str() : "");
  return 0;
}

}  // namespace

Subcommand add_predict(CLI::App& app) {
  auto o = std::make_shared<PredictOptions>();
  CLI::App* p = app.add_subcommand("predict", "segment BraTS cases with a trained model: NIfTI masks in the original geometry");
  p->add_option("--model", o->model, "a best.safetensors written by train/cv (or a fold folder, or its last.json)")
      ->required();
  p->add_option("--data", o->data, "folder of BraTS case folders (segmentations not needed)")
      ->required()
      ->check(CLI::ExistingDirectory);
  p->add_option("--out", o->out, "output folder: <case id>.nii.gz per case")->required();
  p->add_option("--cases", o->cases, "only these case ids");
  p->add_option("--batch", o->batch, "slices per forward pass")->check(CLI::Range(1, 4096))->capture_default_str();
  p->add_option("--device", o->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  p->add_flag("--skip-bad", o->skip_bad, "skip cases that fail (listed) instead of stopping");
  p->add_flag("--force", o->force, "write into an --out folder that holds other files (never over them)");
  return {p, [o] { return cmd_predict(*o); }};
}

}  // namespace lk::cli
