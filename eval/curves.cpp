// Training curves (eval/curves.h) from a run's log.jsonl files.
#include "eval/curves.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>

namespace lk::eval {

namespace fs = std::filesystem;

namespace {

// k of a folder named fold_<k>; -1 otherwise.
int fold_number(const std::string& name) {
  if (name.rfind("fold_", 0) != 0 || name.size() == 5 || name.size() > 12) return -1;
  for (size_t i = 5; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return -1;
  return std::stoi(name.substr(5));
}

}  // namespace

std::vector<FoldLog> find_fold_logs(const std::string& run, const std::function<void(const std::string&)>& warn) {
  const auto say = [&](const std::string& m) {
    if (warn)
      warn(m);
    else
      std::fprintf(stderr, "lkaseg: warning: %s\n", m.c_str());
  };
  std::error_code ec;
  if (!fs::is_directory(run, ec)) throw FigureError(run, "not a folder (--run wants a run folder with fold_<k>/)");
  std::vector<FoldLog> folds;
  const fs::path own = fs::path(run) / "log.jsonl";
  if (fs::exists(own, ec)) {  // a fold folder itself
    FoldLog f;
    const fs::path norm = fs::path(run).lexically_normal();
    const std::string name = norm.has_filename() ? norm.filename().string() : norm.parent_path().filename().string();
    f.fold = std::max(0, fold_number(name));
    f.path = own.string();
    f.epochs = train::read_run_log(f.path);
    if (f.epochs.empty()) throw FigureError(f.path, "no epoch logged yet");
    folds.push_back(std::move(f));
    return folds;
  }
  std::map<int, fs::path> dirs;
  for (const auto& e : fs::directory_iterator(run))
    if (e.is_directory())
      if (const int k = fold_number(e.path().filename().string()); k >= 0) dirs[k] = e.path();
  for (const auto& [k, dir] : dirs) {
    const fs::path log = dir / "log.jsonl";
    if (!fs::exists(log)) {
      say(dir.string() + ": no log.jsonl yet; fold " + std::to_string(k) + " left out of the curves");
      continue;
    }
    FoldLog f;
    f.fold = k;
    f.path = log.string();
    f.epochs = train::read_run_log(f.path);
    if (f.epochs.empty()) {
      say(f.path + ": no epoch logged yet; fold " + std::to_string(k) + " left out of the curves");
      continue;
    }
    folds.push_back(std::move(f));
  }
  if (folds.empty()) throw FigureError(run, "no fold_<k>/log.jsonl with a logged epoch");
  return folds;
}

Rgb fold_colour(int k) {
  static constexpr Rgb kPalette[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},   {214, 39, 40},
                                     {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
                                     {188, 189, 34},  {23, 190, 207}};
  constexpr int n = static_cast<int>(sizeof kPalette / sizeof kPalette[0]);
  return kPalette[((k % n) + n) % n];
}

namespace {

constexpr Rgb kCurveNcr{200, 30, 30}, kCurveEt{205, 150, 0}, kCurveEd{30, 150, 30};

Image side_by_side(const Image& a, const Image& b) {
  Image out(a.width + b.width, std::max(a.height, b.height), kWhite);
  blit(out, a, 0, 0);
  blit(out, b, a.width, 0);
  return out;
}

PlotSeries loss_series(const FoldLog& f, const std::string& label, Rgb c) {
  PlotSeries s{label, c, {}, false, 2};
  for (const train::EpochLog& p : f.epochs) s.points.emplace_back(static_cast<double>(p.epoch), p.loss);
  return s;
}

PlotSeries dice_series(const FoldLog& f, size_t k, const std::string& label, Rgb c) {
  PlotSeries s{label, c, {}, true, 2};
  for (const train::EpochLog& p : f.epochs)
    if (p.val) s.points.emplace_back(static_cast<double>(p.epoch), k < 3 ? p.val->dice[k] : p.val->mean);
  return s;
}

}  // namespace

Image render_fold_curves(const FoldLog& fold) {
  const std::string name = "FOLD " + std::to_string(fold.fold);
  PlotSpec loss;
  loss.title = name + ": TRAINING LOSS";
  loss.xlabel = "EPOCH";
  loss.series.push_back(loss_series(fold, "LOSS", fold_colour(0)));
  PlotSpec dice;
  dice.title = name + ": VALIDATION DICE";
  dice.xlabel = "EPOCH";
  dice.ymax = 1;
  dice.series.push_back(dice_series(fold, 0, "NCR", kCurveNcr));
  dice.series.push_back(dice_series(fold, 1, "ET", kCurveEt));
  dice.series.push_back(dice_series(fold, 2, "ED", kCurveEd));
  dice.series.push_back(dice_series(fold, 3, "MEAN", kBlack));
  // Both plots share the epoch axis.
  dice.xmax = plot_frame(loss).xmax;
  return side_by_side(render_plot(loss), render_plot(dice));
}

Image render_run_curves(const std::vector<FoldLog>& folds) {
  PlotSpec loss;
  loss.title = "TRAINING LOSS, " + std::to_string(folds.size()) + (folds.size() == 1 ? " FOLD" : " FOLDS");
  loss.xlabel = "EPOCH";
  PlotSpec dice;
  dice.title = "VALIDATION DICE, MEAN OF NCR ET ED";
  dice.xlabel = "EPOCH";
  dice.ymax = 1;
  for (const FoldLog& f : folds) {
    const std::string name = "FOLD " + std::to_string(f.fold);
    loss.series.push_back(loss_series(f, name, fold_colour(f.fold)));
    dice.series.push_back(dice_series(f, 3, name, fold_colour(f.fold)));
  }
  dice.xmax = plot_frame(loss).xmax;
  return side_by_side(render_plot(loss), render_plot(dice));
}


}  // namespace lk::eval
