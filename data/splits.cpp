#include "data/splits.h"

#include "util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

namespace lk::data {

namespace {

using json = nlohmann::json;

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw SplitError(path.empty() ? problem : path + ": " + problem);
}

// Uniform in [0, n) without modulo bias.
uint64_t below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;  // accept [0, limit)
  uint64_t r;
  do r = rng();
  while (r >= limit);
  return r % n;
}

std::vector<std::string> id_list(const std::string& path, const json& j, const std::string& what) {
  if (!j.is_array()) fail(path, what + " is not an array");
  std::vector<std::string> out;
  for (const json& e : j) {
    if (!e.is_string()) fail(path, what + " holds a non-string entry " + e.dump());
    out.push_back(e.get<std::string>());
  }
  std::vector<std::string> sorted = out;
  std::sort(sorted.begin(), sorted.end());
  const auto dup = std::adjacent_find(sorted.begin(), sorted.end());
  if (dup != sorted.end()) fail(path, what + " lists case '" + *dup + "' twice");
  return sorted;
}

}  // namespace

Split make_split(const std::vector<std::string>& case_ids, double fraction, uint64_t seed, int folds) {
  if (folds < 2) fail("", "make_split: need at least 2 folds, got " + std::to_string(folds));
  if (!(fraction > 0.0 && fraction <= 1.0)) fail("", "make_split: fraction must be in (0, 1], got " + std::to_string(fraction));
  std::vector<std::string> ids = case_ids;
  std::sort(ids.begin(), ids.end());
  const auto dup = std::adjacent_find(ids.begin(), ids.end());
  if (dup != ids.end()) fail("", "make_split: case id '" + *dup + "' given twice");
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n < folds)
    fail("", "make_split: " + std::to_string(n) + " cases cannot make " + std::to_string(folds) +
                 " folds (need at least one validation case per fold)");
  int64_t k = std::llround(fraction * static_cast<double>(n));
  k = std::clamp<int64_t>(k, folds, n);

  std::mt19937_64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates
    const uint64_t j = below(rng, static_cast<uint64_t>(i) + 1);
    std::swap(ids[static_cast<size_t>(i)], ids[static_cast<size_t>(j)]);
  }
  ids.resize(static_cast<size_t>(k));  // the drawn cases, in draw order

  Split s;
  s.seed = seed;
  s.fraction = fraction;
  s.folds.resize(static_cast<size_t>(folds));
  for (int64_t i = 0; i < k; ++i) s.folds[static_cast<size_t>(i % folds)].val.push_back(ids[static_cast<size_t>(i)]);
  s.selected = ids;
  std::sort(s.selected.begin(), s.selected.end());
  for (Fold& f : s.folds) {
    std::sort(f.val.begin(), f.val.end());
    std::set_difference(s.selected.begin(), s.selected.end(), f.val.begin(), f.val.end(), std::back_inserter(f.train));
  }
  return s;
}

void write_split_json(const std::string& path, const Split& split) {
  json j;
  j["version"] = 1;
  j["seed"] = split.seed;
  j["fraction"] = split.fraction;
  j["selected"] = split.selected;
  j["folds"] = json::array();
  for (const Fold& f : split.folds) j["folds"].push_back({{"train", f.train}, {"val", f.val}});
  lk::write_file_atomically(path, j.dump(2) + "\n");
}

Split read_split_json(const std::string& path, const std::vector<std::string>& available_ids) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot open: ") + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const json::exception& e) {
    fail(path, std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(path, "expected a JSON object at the top level");
  for (const char* key : {"version", "seed", "fraction", "selected", "folds"})
    if (!j.contains(key)) fail(path, std::string("missing key \"") + key + "\"");
  if (!j["version"].is_number_integer() || j["version"].get<int64_t>() != 1)
    fail(path, "unsupported version " + j["version"].dump() + " (this build reads version 1)");
  if (!j["seed"].is_number_unsigned() && !(j["seed"].is_number_integer() && j["seed"].get<int64_t>() >= 0))
    fail(path, "\"seed\" must be a non-negative integer, got " + j["seed"].dump());
  if (!j["fraction"].is_number()) fail(path, "\"fraction\" must be a number, got " + j["fraction"].dump());

  Split s;
  s.seed = j["seed"].get<uint64_t>();
  s.fraction = j["fraction"].get<double>();
  s.selected = id_list(path, j["selected"], "\"selected\"");
  if (s.selected.empty()) fail(path, "\"selected\" is empty");
  const std::set<std::string> available(available_ids.begin(), available_ids.end());
  for (const std::string& id : s.selected)
    if (!available.count(id)) fail(path, "selected case '" + id + "' is not among the available cases");
  const std::set<std::string> selected(s.selected.begin(), s.selected.end());

  const json& jf = j["folds"];
  if (!jf.is_array() || jf.empty()) fail(path, "\"folds\" must be a non-empty array");
  std::map<std::string, size_t> val_fold;
  for (size_t k = 0; k < jf.size(); ++k) {
    const std::string where = "fold " + std::to_string(k);
    if (!jf[k].is_object() || !jf[k].contains("train") || !jf[k].contains("val"))
      fail(path, where + " must be an object with \"train\" and \"val\"");
    Fold f;
    f.train = id_list(path, jf[k]["train"], where + " \"train\"");
    f.val = id_list(path, jf[k]["val"], where + " \"val\"");
    if (f.val.empty()) fail(path, where + " has an empty validation set");
    if (f.train.empty()) fail(path, where + " has an empty training set");
    for (const auto* list : {&f.train, &f.val})
      for (const std::string& id : *list) {
        if (!available.count(id)) fail(path, where + ": case '" + id + "' is not among the available cases");
        if (!selected.count(id)) fail(path, where + ": case '" + id + "' is not in \"selected\"");
      }
    std::vector<std::string> both;
    std::set_intersection(f.train.begin(), f.train.end(), f.val.begin(), f.val.end(), std::back_inserter(both));
    if (!both.empty()) fail(path, where + ": case '" + both.front() + "' is in both its training and validation sets");
    for (const std::string& id : f.val) {
      const auto [it, fresh] = val_fold.emplace(id, k);
      if (!fresh)
        fail(path, "case '" + id + "' is in the validation sets of folds " + std::to_string(it->second) + " and " +
                       std::to_string(k));
    }
    s.folds.push_back(std::move(f));
  }
  return s;
}

}  // namespace lk::data
