#include "train/run_log.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "util/atomic_file.h"

namespace lk::train {

using json = nlohmann::json;

std::string run_log_line(const EpochLog& e) {
  json j = {{"epoch", e.epoch}, {"steps", e.steps}, {"loss", e.loss}, {"lr", e.lr},
            {"seconds", e.seconds}, {"wait_ms", e.wait_ms}};
  if (e.val)
    j["val"] = {{"dice_ncr", e.val->dice[0]}, {"dice_et", e.val->dice[1]}, {"dice_ed", e.val->dice[2]},
                {"mean", e.val->mean}, {"cases", e.val->cases}};
  return j.dump();
}

void write_run_log(const std::string& path, const std::vector<EpochLog>& log) {
  std::string s;
  for (const EpochLog& e : log) s += run_log_line(e) + "\n";
  write_file_atomically(path, s);
}

namespace {

// One line's object; `where` is "line N: ".
EpochLog parse_line(const json& j, const std::string& path, const std::string& where) {
  if (!j.is_object()) throw RunLogError(path, where + "not a JSON object");
  const auto number = [&](const json& o, const char* key, const std::string& ctx, std::optional<double> absent) {
    if (!o.contains(key)) {
      if (absent) return *absent;
      throw RunLogError(path, where + ctx + "\"" + key + "\" is missing");
    }
    const json& v = o.at(key);
    if (!v.is_number() || !std::isfinite(v.get<double>()))
      throw RunLogError(path, where + ctx + "\"" + key + "\" is not a finite number: " + v.dump());
    return v.get<double>();
  };
  const auto count = [&](const json& o, const char* key, const std::string& ctx) -> int64_t {
    if (!o.contains(key)) return 0;
    const json& v = o.at(key);
    if (!v.is_number_integer() || v.get<int64_t>() < 0)
      throw RunLogError(path, where + ctx + "\"" + key + "\" must be an integer >= 0, got " + v.dump());
    return v.get<int64_t>();
  };
  EpochLog e;
  if (!j.contains("epoch") || !j.at("epoch").is_number_integer() || j.at("epoch").get<int64_t>() < 1)
    throw RunLogError(path, where + "\"epoch\" must be an integer >= 1" +
                                (j.contains("epoch") ? ", got " + j.at("epoch").dump() : std::string(", missing")));
  e.epoch = j.at("epoch").get<int64_t>();
  e.loss = number(j, "loss", "", std::nullopt);
  e.lr = number(j, "lr", "", std::nullopt);
  e.steps = count(j, "steps", "");
  e.seconds = number(j, "seconds", "", 0.0);
  e.wait_ms = number(j, "wait_ms", "", 0.0);
  if (j.contains("val") && !j.at("val").is_null()) {
    const json& v = j.at("val");
    if (!v.is_object()) throw RunLogError(path, where + "\"val\" is not an object");
    ValidationResult r;
    const char* keys[4] = {"dice_ncr", "dice_et", "dice_ed", "mean"};
    for (size_t k = 0; k < 4; ++k) {
      const double d = number(v, keys[k], "val.", std::nullopt);
      if (d < 0 || d > 1) {
        char b[64];
        std::snprintf(b, sizeof b, "%g", d);
        throw RunLogError(path, where + "val.\"" + keys[k] + "\" = " + b + " is outside [0, 1]");
      }
      (k < 3 ? r.dice[k] : r.mean) = d;
    }
    r.cases = count(v, "cases", "val.");
    e.val = r;
  }
  return e;
}

}  // namespace

std::vector<EpochLog> read_run_log(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw RunLogError(path, "cannot open the run log");
  std::vector<EpochLog> out;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    const std::string where = "line " + std::to_string(n) + ": ";
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const std::exception& e) {
      throw RunLogError(path, where + "not JSON (" + e.what() + ")");
    }
    EpochLog e = parse_line(j, path, where);
    if (!out.empty() && e.epoch <= out.back().epoch)
      throw RunLogError(path, where + "epoch " + std::to_string(e.epoch) + " after epoch " +
                                  std::to_string(out.back().epoch) + " (epochs must increase)");
    out.push_back(std::move(e));
  }
  if (in.bad()) throw RunLogError(path, "read error after line " + std::to_string(n));
  return out;
}

}  // namespace lk::train
