// lkaseg cv: every fold of the paper's protocol (resumable; data-parallel
// under mpirun / srun, or several folds at once with --parallel-folds /
// --devices), the validation summary over folds, then each selected case
// predicted by the fold that held it out, in its original grid, and
// evaluated (Table 3 beside the paper's).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "eval/metrics.h"
#include "tools/cli/commands.h"
#include "eval/evaluate.h"
#include "tools/cli/run.h"
#include "util/atomic_file.h"
#include "util/interrupt.h"
#include "util/progress.h"

namespace lk::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// After cv: every selected case predicted by the fold that validated it, in
// its original geometry (RUN/predictions/<id>.nii.gz; a prediction newer
// than its model is kept), then Dice/HD95 over the cases
// (RUN/evaluation.csv, .json, the Table 3 layout on stdout).
int evaluate_cv(const RunOptions& o, const Prepared& p, Device dev) {
  const std::string pred_dir = (fs::path(o.out) / "predictions").string();
  prepare_prediction_folder(pred_dir, o.force);
  data::BratsOptions bo;
  bo.skip_bad = o.skip_bad;
  const data::BratsDataset ds = data::discover_brats_cases(o.data, bo);
  std::printf("\npredicting each fold's validation cases in the original geometry -> %s\n", pred_dir.c_str());
  std::fflush(stdout);
  Progress progress("predict", static_cast<int64_t>(p.split.selected.size()), "cases");
  const StopScope stoppable("the current case");
  for (size_t k = 0; k < p.split.folds.size(); ++k) {
    const fs::path model_path = fs::path(o.out) / ("fold_" + std::to_string(k)) / "best.safetensors";
    std::unique_ptr<LoadedModel> m;
    for (const std::string& id : p.split.folds[k].val) {
      const fs::path out = fs::path(pred_dir) / (id + ".nii.gz");
      if (!(fs::exists(out) && fs::last_write_time(out) >= fs::last_write_time(model_path))) {
        if (!m) m = std::make_unique<LoadedModel>(load_model(model_path.string(), dev));
        const auto it = std::find_if(ds.cases.begin(), ds.cases.end(), [&](const data::BratsCase& c) { return c.id == id; });
        if (it == ds.cases.end()) throw std::invalid_argument(o.data + ": case " + id + " of the split is not there");
        predict_case_file(*m->net, m->preprocess, *it, pred_dir, o.batch * 2, dev);
      }
      progress.advance();
      if (stop_requested()) {
        progress.finish(false);
        std::printf("stopped: %lld of %zu predictions in %s; run the same command again to go on\n",
                    static_cast<long long>(progress.done()), p.split.selected.size(), pred_dir.c_str());
        return 130;
      }
    }
  }
  progress.finish();
  eval::EvaluateOptions e;
  e.pred = pred_dir;
  e.gt = o.data;
  e.cases = p.split.selected;
  e.out = (fs::path(o.out) / "evaluation.csv").string();
  e.json = (fs::path(o.out) / "evaluation.json").string();
  std::printf("\nDice and HD95 in the original voxel grid, over the %zu cases (each predicted by the fold that "
              "held it out):\n", p.split.selected.size());
  std::fflush(stdout);
  const eval::EvaluationResult er = eval::evaluate_and_report(e);

  // The paper's Table 3: per fold the mean over its validation cases, then
  // mean +- std over the folds (sample std), beside the paper's numbers.
  std::vector<std::array<eval::RegionSummary, eval::kNumRegions>> per_fold;
  for (const data::Fold& f : p.split.folds) {
    std::vector<eval::CaseMetrics> cs;
    for (const eval::CaseMetrics& c : er.cases)
      if (std::find(f.val.begin(), f.val.end(), c.id) != f.val.end()) cs.push_back(c);
    per_fold.push_back(eval::aggregate(cs));
  }
  struct Paper {
    eval::Region r;
    double dice, dice_sd, hd, hd_sd;
  };
  const Paper paper[] = {{eval::Region::NCR, 85.72, 3.81, 4.38, 1.34},
                         {eval::Region::ET, 82.56, 3.53, 6.08, 1.11},
                         {eval::Region::ED, 78.62, 4.58, 7.50, 1.62}};
  std::printf("\nover folds (mean +- sample std of the fold means; paper: 5 folds, 10%% of BraTS 2021):\n");
  std::printf("%-5s %-20s %-20s %-20s %-20s\n", "", "Dice % (ours)", "Dice % (paper)", "HD95 mm (ours)",
              "HD95 mm (paper)");
  json table = json::object();
  for (const Paper& pp : paper) {
    std::vector<double> d, h;
    for (const auto& f : per_fold) {
      const eval::RegionSummary& rs = f[static_cast<size_t>(pp.r)];
      if (rs.n > 0 && std::isfinite(rs.dice_mean)) d.push_back(rs.dice_mean * 100), h.push_back(rs.hd95_mean);
    }
    const auto ms = [](const std::vector<double>& v) {
      double m = 0, s = 0;
      for (double x : v) m += x / static_cast<double>(v.size());
      for (double x : v) s += (x - m) * (x - m);
      return std::pair{m, v.size() > 1 ? std::sqrt(s / static_cast<double>(v.size() - 1)) : 0.0};
    };
    const auto [dm, dsd] = ms(d);
    const auto [hm, hs] = ms(h);
    char a[32], b[32], c[32], e2[32];
    std::snprintf(a, sizeof a, "%.2f +- %.2f", dm, dsd);
    std::snprintf(b, sizeof b, "%.2f +- %.2f", pp.dice, pp.dice_sd);
    std::snprintf(c, sizeof c, "%.2f +- %.2f", hm, hs);
    std::snprintf(e2, sizeof e2, "%.2f +- %.2f", pp.hd, pp.hd_sd);
    std::printf("%-5s %-20s %-20s %-20s %-20s  (%zu folds)\n", eval::region_name(pp.r), a, b, c, e2, d.size());
    table[eval::region_name(pp.r)] = {{"dice_mean", dm}, {"dice_std", dsd}, {"hd95_mean", hm}, {"hd95_std", hs},
                                      {"folds", d.size()}};
  }
  const std::string path = (fs::path(o.out) / "table3.json").string();
  write_file_atomically(path, table.dump(2) + "\n");
  std::printf("wrote %s\n", path.c_str());
  return 0;
}

}  // namespace

Subcommand add_cv(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* cv = app.add_subcommand("cv", "train every fold (resumable) and summarise the validation Dice");
  add_run_options(cv, *o, false);
  cv->add_flag("--no-eval", o->no_eval,
               "skip predicting the validation cases and evaluating them in the original grid (Dice, HD95)");
  cv->add_option("--parallel-folds", o->parallel_folds,
                 "train this many folds at once, one process each with its share of the cores")
      ->check(CLI::Range(1, 64));
  cv->add_option("--devices", o->devices, "train folds at once, one process per device listed (e.g. 0,1,2,3)")
      ->delimiter(',');
  return {cv, [o] {
            return run_on_ranks(*o, [&](Ranks& r) {
              const Prepared p = prepare_all(*o, r);
              install_stop_handlers();
              if (o->parallel_folds > 0 || !o->devices.empty())
                if (const int rc = train_folds_in_parallel(*o, p); rc != 0) return rc;
              if (const int rc = train_folds(*o, p, true, r.device, r.comm.get()); rc != 0) return rc;
              return o->no_eval || !r.lead() ? 0 : evaluate_cv(*o, p, r.device);
            });
          }};
}

}  // namespace lk::cli
