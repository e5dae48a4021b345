#include "eval/figures.h"

#include "util/atomic_file.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <stdexcept>

#include "data/brats_cases.h"
#include "eval/evaluate.h"  // prediction_files

namespace lk::eval {

using namespace lk::data;

namespace fs = std::filesystem;

namespace {

void say(const FiguresOptions& cmd, const std::string& line) {
  if (cmd.report) {
    std::fprintf(cmd.report, "%s\n", line.c_str());
    std::fflush(cmd.report);
  }
}

}  // namespace

std::vector<std::string> default_model_names(const std::vector<std::string>& pred_dirs) {
  std::vector<std::string> names;
  for (const std::string& d : pred_dirs) {
    fs::path p = fs::path(d).lexically_normal();
    if (!p.has_filename()) p = p.parent_path();
    std::string name = p.filename().string();
    if (name == "predictions") {
      const std::string parent = fs::absolute(p).parent_path().filename().string();
      if (!parent.empty()) name = parent;
    }
    names.push_back(name.empty() ? d : name);
  }
  return names;
}

std::vector<std::string> make_figures(const FiguresOptions& cmd) {
  if (cmd.data.empty() && (!cmd.preds.empty() || !cmd.names.empty() || !cmd.cases.empty() || cmd.slice >= 0))
    throw std::invalid_argument("figures: --pred, --names, --cases and --slice need --data");
  if (cmd.data.empty() && cmd.run.empty())
    throw std::invalid_argument("figures: give --data (with --pred: overlay figures) and/or --run (training curves)");
  if (cmd.out.empty()) throw std::invalid_argument("figures: --out is required");
  if (!cmd.names.empty() && cmd.names.size() != cmd.preds.size())
    throw std::invalid_argument("figures: " + std::to_string(cmd.names.size()) + " --names for " +
                                std::to_string(cmd.preds.size()) + " --pred folders (give one name per folder)");
  if (!cmd.data.empty() && cmd.preds.empty() && cmd.cases.empty())
    throw std::invalid_argument("figures: --data needs --pred folders, or --cases to show the ground truth alone");
  if (cmd.zoom < 1 || cmd.zoom > 8) throw std::invalid_argument("figures: --zoom must be 1..8");
  if (!(cmd.alpha >= 0 && cmd.alpha <= 1)) throw std::invalid_argument("figures: --alpha must be in [0, 1]");
  const bool auto_coding = cmd.pred_labels == "auto";  // each case's own coding
  const BratsNaming pred_coding = auto_coding ? BratsNaming::Brats2021 : parse_label_coding(cmd.pred_labels);

  // Everything is paired and checked before the first figure is drawn.
  struct Job {
    BratsCase c;
    std::vector<std::string> preds;
  };
  std::vector<Job> jobs;
  if (!cmd.data.empty()) {
    BratsOptions bo;
    bo.warn = cmd.warn;
    const BratsDataset ds = discover_brats_cases(cmd.data, bo);
    std::map<std::string, const BratsCase*> by_id;
    for (const BratsCase& c : ds.cases) by_id[c.id] = &c;
    std::vector<std::map<std::string, std::string>> pred_maps;
    for (const std::string& d : cmd.preds) pred_maps.push_back(prediction_files(d));
    std::vector<std::string> ids = cmd.cases;
    if (ids.empty()) {
      for (const auto& [id, path] : pred_maps[0]) {
        if (!by_id.count(id))
          throw FigureError(path, "a prediction for case " + id + ", which is not in " + cmd.data);
        ids.push_back(id);
      }
      if (ids.empty()) throw FigureError(cmd.preds[0], "no prediction files (<case id>.nii.gz)");
    }
    for (const std::string& id : ids) {
      const auto it = by_id.find(id);
      if (it == by_id.end()) throw FigureError(cmd.data, "case " + id + " (--cases) is not there");
      Job j{*it->second, {}};
      for (size_t p = 0; p < cmd.preds.size(); ++p) {
        const auto f = pred_maps[p].find(id);
        if (f == pred_maps[p].end())
          throw FigureError((fs::path(cmd.preds[p]) / (id + ".nii.gz")).string(),
                            "missing: no prediction for case " + id + " in this folder");
        j.preds.push_back(f->second);
      }
      jobs.push_back(std::move(j));
    }
  }
  std::vector<FoldLog> folds;
  if (!cmd.run.empty()) folds = find_fold_logs(cmd.run, cmd.warn);

  std::error_code ec;
  fs::create_directories(cmd.out, ec);
  if (!fs::is_directory(cmd.out))
    throw FigureError(cmd.out, "cannot create the --out folder" + (ec ? " (" + ec.message() + ")" : std::string()));

  // Every file this call will write, checked before any is: only PNGs that
  // lkaseg wrote are replaced.
  const auto out_path = [&](const std::string& name) { return (fs::path(cmd.out) / (name + ".png")).string(); };
  std::vector<std::string> planned;
  for (const Job& j : jobs) planned.push_back(out_path(j.c.id));
  for (const FoldLog& f : folds) planned.push_back(out_path("curves_fold_" + std::to_string(f.fold)));
  if (!folds.empty()) planned.push_back(out_path("curves"));
  for (const std::string& p : planned) check_replaceable(p, is_lkaseg_png(p), "not a figure written by lkaseg");

  std::vector<std::string> written;
  OverlayOptions oo;
  oo.names = cmd.names.empty() ? default_model_names(cmd.preds) : cmd.names;
  oo.slice = cmd.slice;
  oo.coronal = !cmd.no_coronal;
  oo.zoom = cmd.zoom;
  oo.style.alpha = cmd.alpha;
  for (const Job& j : jobs) {
    const OverlayCase oc = load_overlay_case(j.c, j.preds, auto_coding ? j.c.naming : pred_coding);
    const OverlayFigure fig = render_overlay(oc, oo);
    const std::string path = out_path(j.c.id);
    write_png(path, fig.image);
    written.push_back(path);
    say(cmd, "wrote " + path + " (axial slice " + std::to_string(fig.axial_slice) +
                 (fig.coronal_slice >= 0 ? ", coronal slice " + std::to_string(fig.coronal_slice) : std::string()) +
                 ")");
  }
  for (const FoldLog& f : folds) {
    const std::string path = out_path("curves_fold_" + std::to_string(f.fold));
    write_png(path, render_fold_curves(f));
    written.push_back(path);
    say(cmd, "wrote " + path + " (" + std::to_string(f.epochs.size()) + " epochs from " + f.path + ")");
  }
  if (!folds.empty()) {
    const std::string path = out_path("curves");
    write_png(path, render_run_curves(folds));
    written.push_back(path);
    say(cmd, "wrote " + path + " (" + std::to_string(folds.size()) + " fold" + (folds.size() == 1 ? "" : "s") + ")");
  }
  return written;
}

}  // namespace lk::eval
