#include "eval/evaluate.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <stdexcept>

#include "data/brats_cases.h"
#include "util/atomic_file.h"
#include "util/csv.h"
#include "util/progress.h"

namespace lk::eval {

using namespace lk::data;

namespace fs = std::filesystem;

// How the files evaluate writes begin: an existing --out/--json is replaced
// only when it begins so (a file that is not ours is never overwritten).
constexpr char kCsvHeader[] = "case,region,dice,hd95_mm,gt_empty,pred_empty\n";
constexpr char kJsonHead[] = "{\n  \"version\": 1,\n  \"conventions\": {\n";

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "a, b, c" (at most `shown`, then "... and N more").
std::string join(const std::vector<std::string>& v, size_t shown = 20) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < shown; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > shown) s += ", ... and " + std::to_string(v.size() - shown) + " more";
  return s;
}

}  // namespace

std::map<std::string, std::string> prediction_files(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw MetricsError(dir + ": --pred is not a folder");
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::map<std::string, std::string> out;
  for (const fs::path& p : files) {
    const std::string name = p.filename().string();
    if (name.empty() || name[0] == '.') continue;
    std::string id;
    if (ends_with(name, ".nii.gz"))
      id = name.substr(0, name.size() - 7);
    else if (ends_with(name, ".nii"))
      id = name.substr(0, name.size() - 4);
    else
      continue;
    if (id.empty()) continue;
    const auto [it, fresh] = out.emplace(id, p.string());
    if (!fresh)
      throw MetricsError(dir + ": two predictions for case " + id + ": " + fs::path(it->second).filename().string() +
                         " and " + name);
  }
  return out;
}

namespace {

void warn(const EvaluateOptions& cmd, const std::string& m) {
  if (cmd.warn)
    cmd.warn(m);
  else
    std::fprintf(stderr, "lkaseg: warning: %s\n", m.c_str());
}

void check_parent(const std::string& path, const char* option) {
  if (path.empty()) return;
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty() && !fs::is_directory(parent))
    throw std::invalid_argument(path + ": " + option + "'s folder " + parent.string() + " does not exist");
  if (fs::is_directory(path)) throw std::invalid_argument(path + ": " + option + " is a folder, not a file");
}

std::string num(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

// A JSON number (%.17g round-trips a double); NaN/Inf → null.
std::string jnum(double v) { return std::isfinite(v) ? num("%.17g", v) : "null"; }

std::string jstr(const std::string& s) {
  std::string o = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\')
      o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
      o += b;
    } else
      o += c;
  }
  return o + "\"";
}

const char* jbool(bool b) { return b ? "true" : "false"; }

}  // namespace

EvaluationResult evaluate_folders(const EvaluateOptions& cmd) {
  // "auto": each prediction in its ground truth's coding (what predict writes).
  const bool auto_coding = cmd.pred_labels == "auto";
  const BratsNaming pred_coding = auto_coding ? BratsNaming::Brats2021 : parse_label_coding(cmd.pred_labels);
  if (cmd.ddof < 0 || cmd.ddof > 1) throw std::invalid_argument("--ddof must be 0 or 1");
  const std::map<std::string, std::string> preds = prediction_files(cmd.pred);
  BratsOptions bo;
  bo.warn = cmd.warn;
  bo.only = cmd.cases;  // only the named ground-truth cases (a missing one: MissingCaseError)
  const BratsDataset gt = discover_brats_cases(cmd.gt, bo);

  EvaluationResult r;
  std::vector<const BratsCase*> todo;
  for (const BratsCase& c : gt.cases) {
    if (preds.count(c.id))
      todo.push_back(&c);
    else
      r.missing.push_back(c.id);
  }
  std::map<std::string, bool> gt_ids;
  for (const BratsCase& c : gt.cases) gt_ids[c.id] = true;
  for (const auto& [id, path] : preds)
    if (!gt_ids.count(id)) r.extra.push_back(id);
  if (!r.missing.empty() || !r.extra.empty()) {
    std::string m;
    if (!r.missing.empty())
      m = std::to_string(r.missing.size()) + " of " + std::to_string(gt.cases.size()) +
          " ground-truth cases have no prediction in " + cmd.pred + " (expected <case id>.nii.gz): " + join(r.missing);
    if (!r.extra.empty())
      m += (m.empty() ? "" : "; ") + std::to_string(r.extra.size()) + " predictions in " + cmd.pred +
           " have no ground-truth case in " + cmd.gt + ": " + join(r.extra);
    if (!cmd.allow_missing) throw MetricsError(m + " (--allow-missing leaves them out)");
    warn(cmd, m + "; left out");
  }
  if (todo.empty()) throw MetricsError(cmd.pred + ": no prediction matches a ground-truth case of " + cmd.gt);

  Progress progress("evaluate", static_cast<int64_t>(todo.size()), "cases", cmd.progress);
  for (const BratsCase* c : todo) {
    CaseMetrics m = evaluate_label_files(preds.at(c->id), auto_coding ? c->naming : pred_coding, c->seg, c->naming);
    m.id = c->id;
    r.cases.push_back(std::move(m));
    progress.advance();
  }
  progress.finish();
  AggregateOptions ao;
  ao.include_gt_empty = cmd.include_empty;
  ao.ddof = cmd.ddof;
  r.summary = aggregate(r.cases, ao);
  return r;
}

std::string format_metrics_csv(const std::vector<CaseMetrics>& cases) {
  std::string s = kCsvHeader;
  for (const CaseMetrics& c : cases)
    for (Region r : kRegions) {
      const MaskMetrics& m = c[r];
      s += csv_field(c.id) + "," + region_name(r) + "," + num("%.6f", m.dice) + "," + num("%.4f", m.hd95_mm) + "," +
           (m.gt_empty ? "1" : "0") + "," + (m.pred_empty ? "1" : "0") + "\n";
    }
  return s;
}

std::string format_metrics_json(const EvaluationResult& r, const AggregateOptions& opt) {
  std::string s = kJsonHead;
  s += "    \"dice\": \"2|P&G| / (|P| + |G|)\",\n";
  s += "    \"hd95\": \"max of the two directed 95th percentiles (numpy linear) of distances in mm between surface "
       "voxels (6-connected, volume border = background), as MONAI compute_hausdorff_distance(percentile=95)\",\n";
  s += "    \"both_empty\": {\"dice\": 1, \"hd95_mm\": 0},\n";
  s += "    \"one_empty\": {\"dice\": 0, \"hd95_mm\": " + jnum(kEmptyHd95Mm) + "},\n";
  s += std::string("    \"include_gt_empty_in_summary\": ") + jbool(opt.include_gt_empty) + ",\n";
  s += "    \"std_ddof\": " + std::to_string(opt.ddof) + "\n  },\n";
  s += "  \"cases\": [";
  for (size_t i = 0; i < r.cases.size(); ++i) {
    const CaseMetrics& c = r.cases[i];
    s += std::string(i ? "," : "") + "\n    {\"case\": " + jstr(c.id) + ", \"regions\": {";
    for (size_t k = 0; k < kRegions.size(); ++k) {
      const MaskMetrics& m = c[kRegions[k]];
      s += std::string(k ? ", " : "") + "\n      " + jstr(region_name(kRegions[k])) + ": {\"dice\": " + jnum(m.dice) +
           ", \"hd95_mm\": " + jnum(m.hd95_mm) + ", \"gt_empty\": " + jbool(m.gt_empty) +
           ", \"pred_empty\": " + jbool(m.pred_empty) + ", \"pred_voxels\": " + std::to_string(m.pred_voxels) +
           ", \"gt_voxels\": " + std::to_string(m.gt_voxels) + ", \"overlap\": " + std::to_string(m.overlap) + "}";
    }
    s += "}}";
  }
  s += "\n  ],\n  \"summary\": {";
  for (size_t k = 0; k < kRegions.size(); ++k) {
    const RegionSummary& m = r.summary[static_cast<size_t>(kRegions[k])];
    s += std::string(k ? "," : "") + "\n    " + jstr(region_name(kRegions[k])) + ": {\"n\": " + std::to_string(m.n) +
         ", \"not_applicable\": " + std::to_string(m.not_applicable) + ", \"dice_mean\": " + jnum(m.dice_mean) +
         ", \"dice_std\": " + jnum(m.dice_std) + ", \"hd95_mean_mm\": " + jnum(m.hd95_mean) +
         ", \"hd95_std_mm\": " + jnum(m.hd95_std) + "}";
  }
  s += "\n  },\n  \"missing\": [";
  for (size_t i = 0; i < r.missing.size(); ++i) s += (i ? ", " : "") + jstr(r.missing[i]);
  s += "],\n  \"extra\": [";
  for (size_t i = 0; i < r.extra.size(); ++i) s += (i ? ", " : "") + jstr(r.extra[i]);
  s += "]\n}\n";
  return s;
}

std::string format_summary_table(const std::array<RegionSummary, kNumRegions>& s, int64_t cases) {
  // Table 3's subregions, then the BraTS regions.
  const std::array<Region, 6> cols = {Region::NCR, Region::ET, Region::ED, Region::WT, Region::TC, Region::ET};
  const auto cell = [](double mean, double sd, double scale) {
    if (!std::isfinite(mean)) return std::string("n/a");
    return num("%.2f", mean * scale) + " ± " + (std::isfinite(sd) ? num("%.2f", sd * scale) : std::string("n/a"));
  };
  const auto pad = [](std::string v, size_t w) {
    // "±" is two bytes and one column.
    const size_t cols_used = v.size() - (v.find("±") != std::string::npos ? 1 : 0);
    if (cols_used < w) v += std::string(w - cols_used, ' ');
    return v;
  };
  constexpr size_t kW = 17;
  std::string out = "evaluated " + std::to_string(cases) + " case" + (cases == 1 ? "" : "s") +
                    ": mean ± std over cases (n/a: ground truth empty, left out)\n";
  std::string head = pad("", 10) + "| ", dice = pad("Dice %", 10) + "| ", hd = pad("HD95 mm", 10) + "| ",
              n = pad("cases", 10) + "| ";
  for (size_t i = 0; i < cols.size(); ++i) {
    if (i == 3) head += "| ", dice += "| ", hd += "| ", n += "| ";
    const RegionSummary& r = s[static_cast<size_t>(cols[i])];
    head += pad(region_name(cols[i]), kW);
    dice += pad(cell(r.dice_mean, r.dice_std, 100.0), kW);
    hd += pad(cell(r.hd95_mean, r.hd95_std, 1.0), kW);
    n += pad(std::to_string(r.n) + (r.not_applicable ? " (n/a " + std::to_string(r.not_applicable) + ")" : ""), kW);
  }
  const auto trim = [](std::string v) {
    while (!v.empty() && v.back() == ' ') v.pop_back();
    return v + "\n";
  };
  return out + trim(head) + trim(dice) + trim(hd) + trim(n);
}

EvaluationResult evaluate_and_report(const EvaluateOptions& o) {
  check_parent(o.out, "--out");
  check_parent(o.json, "--json");
  if (!o.out.empty()) check_replaceable(o.out, file_starts_with(o.out, kCsvHeader), "not a metrics CSV of lkaseg evaluate");
  if (!o.json.empty()) check_replaceable(o.json, file_starts_with(o.json, kJsonHead), "not a metrics JSON of lkaseg evaluate");
  EvaluationResult r = evaluate_folders(o);
  if (!o.out.empty()) write_file_atomically(o.out, format_metrics_csv(r.cases));
  if (!o.json.empty()) {
    AggregateOptions ao;
    ao.include_gt_empty = o.include_empty;
    ao.ddof = o.ddof;
    write_file_atomically(o.json, format_metrics_json(r, ao));
  }
  if (o.report) {
    std::fputs(format_summary_table(r.summary, static_cast<int64_t>(r.cases.size())).c_str(), o.report);
    if (!o.out.empty()) std::fprintf(o.report, "wrote %s\n", o.out.c_str());
    if (!o.json.empty()) std::fprintf(o.report, "wrote %s\n", o.json.c_str());
    std::fflush(o.report);
  }
  return r;
}

}  // namespace lk::eval
