#include "train/checkpoint.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <type_traits>

#include "engine/safetensors.h"
#include "util/atomic_file.h"
#include "util/interrupt.h"

namespace lk {

namespace {
constexpr const char* kWeightsFormat = "lkaseg-weights-1";
constexpr const char* kFormat = "lkaseg-train-state-1";
constexpr const char* kManifestFormat = "lkaseg-checkpoint-1";

[[noreturn]] void fail(const std::string& path, const std::string& what) { throw std::runtime_error(path + ": " + what); }

std::string g17(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

// A metadata value parsed whole as a number, or an error naming file and key.
template <typename T>
T meta_number(const SafeTensors& st, const std::string& key) {
  const std::string& v = st.meta(key);
  try {
    size_t used = 0;
    const T x = std::is_integral_v<T> ? static_cast<T>(std::stoll(v, &used)) : static_cast<T>(std::stod(v, &used));
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  fail(st.path, "metadata '" + key + "' is not a number: '" + v + "'");
}
int64_t meta_int(const SafeTensors& st, const std::string& key) { return meta_number<int64_t>(st, key); }
double meta_double(const SafeTensors& st, const std::string& key) { return meta_number<double>(st, key); }

// A random id shared by the two files of one save.
std::string new_generation_id() {
  static std::mt19937_64 rng{std::random_device{}()};
  char b[24];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(rng()));
  return b;
}
}  // namespace

namespace {
// The pair; `between` runs after the weights file, before the state file.
void save_pair(const std::string& path, const Module& m, const AdamW& opt, const TrainState& s,
               const std::map<std::string, std::string>& weights_meta, const std::function<void()>& between) {
  const std::string generation = new_generation_id();
  std::map<std::string, std::string> meta = weights_meta;
  meta["format"] = kWeightsFormat;
  meta["step"] = std::to_string(s.step);
  meta["generation"] = generation;
  save_state_dict(path, m, meta);
  if (between) between();
  std::vector<std::pair<std::string, Tensor>> st;
  const auto& params = opt.params();
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string& key = params[i].name();
    if (key.empty()) throw std::invalid_argument("save_checkpoint: optimiser parameter " + std::to_string(i) + " has no name");
    const auto host = [](const Tensor& t) { return t.device().type == DeviceType::CPU ? t : t.to(cpu_device()); };
    st.emplace_back("adamw.m." + key, host(opt.first_moments()[i]));
    st.emplace_back("adamw.v." + key, host(opt.second_moments()[i]));
  }
  save_safetensors(path + ".state", st,
                   {{"format", kFormat},
                    {"step", std::to_string(s.step)},
                    {"generation", generation},
                    {"epoch", std::to_string(s.epoch)},
                    {"adamw_step", std::to_string(opt.steps())},
                    {"lr", g17(s.lr)},
                    {"schedule.base_lr", g17(s.schedule.base_lr)},
                    {"schedule.warmup_epochs", std::to_string(s.schedule.warmup_epochs)},
                    {"schedule.start_factor", g17(s.schedule.start_factor)},
                    {"schedule.decay", g17(s.schedule.decay)},
                    {"schedule.steps_per_epoch", std::to_string(s.schedule.steps_per_epoch)},
                    {"rng", s.rng},
                    {"config", s.config},
                    {"epoch_loss_sum", g17(s.epoch_loss_sum)},
                    {"epoch_loss_steps", std::to_string(s.epoch_loss_steps)},
                    {"epoch_open", s.epoch_open ? "1" : "0"}});
}
}  // namespace

void save_checkpoint(const std::string& path, const Module& m, const AdamW& opt, const TrainState& s,
                     const std::map<std::string, std::string>& weights_meta) {
  save_pair(path, m, opt, s, weights_meta, {});
}

TrainState load_checkpoint(const std::string& path, Module& m, AdamW& opt) {
  const SafeTensors st = load_safetensors(path + ".state");
  auto it = st.metadata.find("format");
  if (it == st.metadata.end() || it->second != kFormat)
    fail(st.path, "not an lkaseg training state (format tag missing or not " + std::string(kFormat) + ")");
  TrainState s;
  s.step = meta_int(st, "step");
  s.epoch = meta_int(st, "epoch");
  s.lr = meta_double(st, "lr");
  s.schedule.base_lr = meta_double(st, "schedule.base_lr");
  s.schedule.warmup_epochs = meta_int(st, "schedule.warmup_epochs");
  s.schedule.start_factor = meta_double(st, "schedule.start_factor");
  s.schedule.decay = meta_double(st, "schedule.decay");
  s.schedule.steps_per_epoch = meta_int(st, "schedule.steps_per_epoch");
  s.rng = st.meta("rng");
  s.config = st.meta("config");
  if (st.metadata.count("epoch_loss_steps")) {  // absent in checkpoints of older builds
    s.epoch_loss_sum = meta_double(st, "epoch_loss_sum");
    s.epoch_loss_steps = meta_int(st, "epoch_loss_steps");
  }
  if (st.metadata.count("epoch_open")) s.epoch_open = meta_int(st, "epoch_open") != 0;
  // Check everything before changing anything.
  const auto& params = opt.params();
  for (const Tensor& p : params)
    for (const char* which : {"adamw.m.", "adamw.v."})
      if (!st.has(which + p.name())) fail(st.path, std::string("missing optimiser state '") + which + p.name() + "'");
  if (const std::string bad = nonfinite_tensor(st.tensors); !bad.empty())
    fail(st.path, "optimiser state " + bad + " (saved from a diverged run?)");
  const auto meta = load_state_dict(path, m);
  if (const std::string bad = nonfinite_tensor(m.named_parameters()); !bad.empty())
    fail(path, "parameter " + bad + " (saved from a diverged run?)");
  auto step_it = meta.find("step");
  if (step_it == meta.end() || step_it->second != std::to_string(s.step))
    fail(path, "weights and training state are from different steps (interrupted save?)");
  const auto gen_it = meta.find("generation");
  const auto state_gen = st.metadata.find("generation");
  if ((gen_it == meta.end()) != (state_gen == st.metadata.end()) ||
      (gen_it != meta.end() && gen_it->second != state_gen->second))
    fail(path, "weights and training state are from different saves of step " + std::to_string(s.step));
  for (size_t i = 0; i < params.size(); ++i) {
    copy_checked(st.path, "adamw.m." + params[i].name(), st.get("adamw.m." + params[i].name()), opt.first_moments()[i]);
    copy_checked(st.path, "adamw.v." + params[i].name(), st.get("adamw.v." + params[i].name()), opt.second_moments()[i]);
  }
  opt.set_steps(meta_int(st, "adamw_step"));
  opt.set_lr(s.lr);
  return s;
}

std::string nonfinite_tensor(const std::vector<std::pair<std::string, Tensor>>& tensors) {
  for (const auto& [key, t] : tensors) {
    if (t.dtype() == DType::I32) continue;
    const std::vector<double> v = t.to_vector();
    const auto bad = std::count_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); });
    if (bad > 0) return "'" + key + "' holds " + std::to_string(bad) + " non-finite value" + (bad == 1 ? "" : "s");
  }
  return "";
}

namespace fs = std::filesystem;
using json = nlohmann::json;

Checkpoints::Checkpoints(std::string dir, std::string name) : dir_(std::move(dir)), name_(std::move(name)) {}

std::string Checkpoints::manifest_path() const { return (fs::path(dir_) / (name_ + ".json")).string(); }

std::string Checkpoints::weights_path(int64_t step) const {
  char b[32];
  std::snprintf(b, sizeof b, "-%08lld.safetensors", static_cast<long long>(step));
  return (fs::path(dir_) / (name_ + b)).string();
}

namespace {
// The step of "<name>-<digits>.safetensors", or -1.
int64_t step_of(const std::string& file, const std::string& name) {
  const std::string pre = name + "-", post = ".safetensors";
  if (file.size() <= pre.size() + post.size() || file.compare(0, pre.size(), pre) != 0 ||
      file.compare(file.size() - post.size(), post.size(), post) != 0)
    return -1;
  const std::string digits = file.substr(pre.size(), file.size() - pre.size() - post.size());
  if (digits.empty() || digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return -1;
  return std::stoll(digits);
}
}  // namespace

std::vector<int64_t> Checkpoints::generations() const {
  std::vector<int64_t> steps;
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const int64_t s = step_of(it->path().filename().string(), name_);
    if (s >= 0 && fs::exists(weights_path(s) + ".state")) steps.push_back(s);
  }
  std::sort(steps.rbegin(), steps.rend());
  return steps;
}

void Checkpoints::save(const Module& m, const AdamW& opt, const TrainState& st,
                       const std::map<std::string, std::string>& weights_meta,
                       const std::function<void(Stage)>& after) const {
  const CriticalSection critical;  // a second Ctrl-C waits for the generation to be complete
  const auto stage = [&](Stage s) {
    if (after) after(s);
  };
  const std::string weights = weights_path(st.step), state = weights + ".state";
  save_pair(weights, m, opt, st, weights_meta, [&] { stage(Stage::Weights); });
  stage(Stage::State);
  write_manifest(st.step, st.epoch);
  stage(Stage::Manifest);
  remove_others(st.step);
  stage(Stage::Cleanup);
}

void Checkpoints::write_manifest(int64_t step, int64_t epoch) const {
  const std::string weights = weights_path(step), state = weights + ".state";
  const json manifest = {{"format", kManifestFormat},
                         {"step", step},
                         {"epoch", epoch},
                         {"weights", fs::path(weights).filename().string()},
                         {"state", fs::path(state).filename().string()},
                         {"weights_bytes", fs::file_size(weights)},
                         {"state_bytes", fs::file_size(state)}};
  write_file_atomically(manifest_path(), manifest.dump(2) + "\n");
}

std::vector<std::string> Checkpoints::adopt(const TrainState& st) const {
  if (fs::exists(weights_path(st.step) + ".state")) {  // not a legacy single pair
    const CriticalSection critical;
    write_manifest(st.step, st.epoch);
  }
  return remove_others(st.step);
}

std::optional<TrainState> Checkpoints::load_newest(Module& m, AdamW& opt,
                                                   const std::function<void(const std::string&)>& note) const {
  std::vector<std::string> candidates;
  for (int64_t s : generations()) candidates.push_back(weights_path(s));
  const std::string legacy = (fs::path(dir_) / (name_ + ".safetensors")).string();
  if (fs::exists(legacy + ".state")) candidates.push_back(legacy);  // written before generations existed
  std::string why;
  for (const std::string& c : candidates) {
    try {
      return load_checkpoint(c, m, opt);
    } catch (const std::exception& e) {
      if (note) note("passing over checkpoint " + c + ": " + e.what());
      why += std::string(why.empty() ? "" : "; ") + e.what();
    }
  }
  if (!candidates.empty())
    throw std::runtime_error(dir_ + ": no checkpoint there can be loaded (" + why +
                             "); move the folder away (or delete " + name_ + "*) to start this fold over");
  if (fs::exists(manifest_path()))
    throw std::runtime_error(manifest_path() + " names a checkpoint whose files are gone; delete " + manifest_path() +
                             " to start this fold over");
  return std::nullopt;
}

std::vector<std::string> Checkpoints::remove_others(int64_t keep_step) const {
  std::vector<std::string> removed;
  const std::string keep = fs::path(weights_path(keep_step)).filename().string();
  const std::string legacy = name_ + ".safetensors";
  std::error_code ec;
  std::vector<fs::path> doomed;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string f = it->path().filename().string();
    const std::string base = f.size() > 6 && f.compare(f.size() - 6, 6, ".state") == 0 ? f.substr(0, f.size() - 6) : f;
    if (base == keep) continue;
    if (step_of(base, name_) >= 0 || base == legacy) doomed.push_back(it->path());
  }
  for (const fs::path& p : doomed) {
    std::error_code rm;
    if (fs::remove(p, rm)) removed.push_back(p.string());
  }
  return removed;
}

}  // namespace lk
