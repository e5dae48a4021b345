#include "train/checkpoint.h"

#include <cstdio>
#include <stdexcept>
#include <type_traits>

#include "engine/safetensors.h"

namespace lk {

namespace {
constexpr const char* kWeightsFormat = "lkaseg-weights-1";
constexpr const char* kFormat = "lkaseg-train-state-1";

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
}  // namespace

void save_checkpoint(const std::string& path, const Module& m, const AdamW& opt, const TrainState& s) {
  const std::map<std::string, std::string> meta{{"format", kWeightsFormat}, {"step", std::to_string(s.step)}};
  save_state_dict(path, m, meta);
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
                    {"epoch", std::to_string(s.epoch)},
                    {"adamw_step", std::to_string(opt.steps())},
                    {"lr", g17(s.lr)},
                    {"schedule.base_lr", g17(s.schedule.base_lr)},
                    {"schedule.warmup_epochs", std::to_string(s.schedule.warmup_epochs)},
                    {"schedule.start_factor", g17(s.schedule.start_factor)},
                    {"schedule.decay", g17(s.schedule.decay)},
                    {"schedule.steps_per_epoch", std::to_string(s.schedule.steps_per_epoch)},
                    {"rng", s.rng},
                    {"config", s.config}});
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
  // Check everything before changing anything.
  const auto& params = opt.params();
  for (const Tensor& p : params)
    for (const char* which : {"adamw.m.", "adamw.v."})
      if (!st.has(which + p.name())) fail(st.path, std::string("missing optimiser state '") + which + p.name() + "'");
  const auto meta = load_state_dict(path, m);
  auto step_it = meta.find("step");
  if (step_it == meta.end() || step_it->second != std::to_string(s.step))
    fail(path, "weights and training state are from different steps (interrupted save?)");
  for (size_t i = 0; i < params.size(); ++i) {
    copy_checked(st.path, "adamw.m." + params[i].name(), st.get("adamw.m." + params[i].name()), opt.first_moments()[i]);
    copy_checked(st.path, "adamw.v." + params[i].name(), st.get("adamw.v." + params[i].name()), opt.second_moments()[i]);
  }
  opt.set_steps(meta_int(st, "adamw_step"));
  opt.set_lr(s.lr);
  return s;
}

}  // namespace lk
