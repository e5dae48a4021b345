#include "train/postprocess.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "data/components.h"

namespace lk::train {

namespace {

using json = nlohmann::json;
constexpr const char* kFormat = "lkaseg-postprocessing-1";

struct TargetInfo {
  PpTarget target;
  const char* name;
  std::array<uint8_t, 3> labels;  // BraTS 2021 values (0: unused slot)
  uint8_t fill;
};
constexpr std::array<TargetInfo, kNumPpTargets> kTargets = {{
    {PpTarget::WT, "WT", {1, 2, 4}, 0},
    {PpTarget::TC, "TC", {1, 4, 0}, 2},
    {PpTarget::ET, "ET", {4, 0, 0}, 1},
    {PpTarget::LabelNCR, "label NCR", {1, 0, 0}, 0},
    {PpTarget::LabelED, "label ED", {2, 0, 0}, 0},
    {PpTarget::LabelET, "label ET", {4, 0, 0}, 0},
}};
constexpr std::array<const char*, 3> kKinds = {"largest_component", "min_component", "relabel_below"};

const TargetInfo& info(PpTarget t) { return kTargets[static_cast<size_t>(t)]; }

// The index of the largest component (the first among equals).
size_t largest(const data::Components& c) {
  size_t best = 0;
  for (size_t k = 1; k < c.size.size(); ++k)
    if (c.size[k] > c.size[best]) best = k;
  return best;
}

// Label l, held by `before` and by nothing in `labels`, gets its largest
// component in `before` back.
void put_back_emptied(std::vector<uint8_t>& labels, const std::vector<uint8_t>& before,
                      const std::array<int64_t, 3>& dims, uint8_t l) {
  if (std::find(labels.begin(), labels.end(), l) != labels.end()) return;
  std::vector<uint8_t> mask(before.size());
  bool held = false;
  for (size_t i = 0; i < before.size(); ++i) held |= (mask[i] = before[i] == l) != 0;
  if (!held) return;
  const data::Components c = data::connected_components(mask, dims);
  const int32_t keep = static_cast<int32_t>(largest(c)) + 1;
  for (size_t i = 0; i < labels.size(); ++i)
    if (c.label[i] == keep) labels[i] = l;
}

}  // namespace

const char* pp_target_name(PpTarget t) { return info(t).name; }
bool pp_target_contains(PpTarget t, uint8_t l) {
  for (uint8_t v : info(t).labels)
    if (v != 0 && v == l) return true;
  return false;
}
uint8_t pp_target_fill(PpTarget t) { return info(t).fill; }
const char* pp_kind_name(PpKind k) { return kKinds[static_cast<size_t>(k)]; }

std::string PpRule::str() const {
  std::string s = std::string(pp_target_name(target)) + ": " + pp_kind_name(kind);
  if (kind != PpKind::LargestComponent) {
    char b[48];
    std::snprintf(b, sizeof b, " < %g mm3", mm3);
    s += b;
  }
  return s;
}

int64_t apply_rule(std::vector<uint8_t>& labels, const std::array<int64_t, 3>& dims,
                   const std::array<double, 3>& spacing, const PpRule& rule) {
  if (static_cast<int64_t>(labels.size()) != dims[0] * dims[1] * dims[2])
    throw std::invalid_argument("apply_rule: " + std::to_string(labels.size()) + " voxels for the grid");
  std::vector<uint8_t> mask(labels.size());
  int64_t total = 0;
  for (size_t i = 0; i < labels.size(); ++i) total += mask[i] = pp_target_contains(rule.target, labels[i]);
  if (total == 0) return 0;
  const double voxel_mm3 = spacing[0] * spacing[1] * spacing[2];
  const uint8_t fill = pp_target_fill(rule.target);
  int64_t changed = 0;
  if (rule.kind == PpKind::RelabelBelow) {
    if (static_cast<double>(total) * voxel_mm3 >= rule.mm3) return 0;
    for (size_t i = 0; i < labels.size(); ++i)
      if (mask[i]) labels[i] = fill, ++changed;
    return changed;
  }
  const data::Components c = data::connected_components(mask, dims);
  // keep[k]: component k + 1 stays.
  std::vector<uint8_t> keep(c.size.size(), 1);
  if (rule.kind == PpKind::LargestComponent) {
    const size_t best = largest(c);
    for (size_t k = 0; k < keep.size(); ++k) keep[k] = k == best;
  } else {
    for (size_t k = 0; k < keep.size(); ++k) keep[k] = static_cast<double>(c.size[k]) * voxel_mm3 >= rule.mm3;
  }
  for (size_t i = 0; i < labels.size(); ++i)
    if (c.label[i] && !keep[static_cast<size_t>(c.label[i] - 1)]) labels[i] = fill, ++changed;
  return changed;
}

void put_back_emptied_labels(std::vector<uint8_t>& labels, const std::vector<uint8_t>& before,
                             const std::array<int64_t, 3>& dims) {
  if (labels.size() != before.size())
    throw std::invalid_argument("put_back_emptied_labels: " + std::to_string(labels.size()) + " and " +
                                std::to_string(before.size()) + " voxels");
  for (uint8_t l : {uint8_t{1}, uint8_t{2}, uint8_t{4}}) put_back_emptied(labels, before, dims, l);
}

int64_t apply_postprocessing(std::vector<uint8_t>& labels, const std::array<int64_t, 3>& dims,
                             const std::array<double, 3>& spacing, const Postprocessing& p) {
  const std::vector<uint8_t> before = labels;
  for (const PpRule& r : p.rules) apply_rule(labels, dims, spacing, r);
  if (p.keep_labels) put_back_emptied_labels(labels, before, dims);
  int64_t n = 0;
  for (size_t i = 0; i < labels.size(); ++i) n += labels[i] != before[i];
  return n;
}

Postprocessing read_postprocessing(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot read the post-processing file");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    const json j = json::parse(ss.str());
    if (!j.contains("format") || j.at("format") != kFormat)
      throw std::runtime_error(std::string("not an lkaseg post-processing file (format is not ") + kFormat + ")");
    Postprocessing p;
    for (const json& r : j.at("rules")) {
      PpRule rule;
      const std::string t = r.at("target").get<std::string>(), k = r.at("rule").get<std::string>();
      const auto target = std::find_if(kTargets.begin(), kTargets.end(), [&](const TargetInfo& ti) { return t == ti.name; });
      if (target == kTargets.end()) throw std::runtime_error("unknown target '" + t + "'");
      rule.target = target->target;
      const auto kind = std::find_if(kKinds.begin(), kKinds.end(), [&](const char* n) { return k == n; });
      if (kind == kKinds.end()) throw std::runtime_error("unknown rule '" + k + "'");
      rule.kind = static_cast<PpKind>(kind - kKinds.begin());
      if (rule.kind != PpKind::LargestComponent) {
        rule.mm3 = r.at("mm3").get<double>();
        if (!(rule.mm3 > 0) || !std::isfinite(rule.mm3))
          throw std::runtime_error("rule '" + k + "' of " + t + ": mm3 must be a positive number");
      }
      p.rules.push_back(rule);
    }
    if (j.contains("keep_labels")) {
      if (!j.at("keep_labels").is_boolean()) throw std::runtime_error("keep_labels must be true or false");
      p.keep_labels = j.at("keep_labels").get<bool>();
    }
    return p;
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

std::string postprocessing_json(const Postprocessing& p, const std::string& report_json) {
  json rules = json::array();
  for (const PpRule& r : p.rules) {
    json o = {{"target", pp_target_name(r.target)}, {"rule", pp_kind_name(r.kind)}};
    if (r.kind != PpKind::LargestComponent) o["mm3"] = r.mm3;
    rules.push_back(o);
  }
  json j = {{"format", kFormat}, {"rules", rules}, {"keep_labels", p.keep_labels}};
  if (!report_json.empty()) j["selection"] = json::parse(report_json);
  return j.dump(2) + "\n";
}

}  // namespace lk::train
