// TrainConfig as config.json: writing, reading, comparing a run folder's
// configuration with the one asked for, and the checks made before a run
// starts (train/trainer.h).
#include "train/trainer.h"

#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <stdexcept>
#include <string>

#include "engine/loss_scaler.h"

namespace lk::train {

using namespace lk::model;

using json = nlohmann::json;

namespace {

constexpr const char* kFormat = "lkaseg-train-1";

json net_json(const NetConfig& n) {
  return {{"arch", arch_name(n.arch)},  {"in_channels", n.in_channels}, {"classes", n.classes},
          {"widths", n.widths},         {"deep_supervision", n.deep_supervision}, {"se_ratio", n.se_ratio},
          {"se_min_hidden", n.se_min_hidden}, {"lka_dilation", n.lka_dilation}, {"seed", n.seed}};
}

NetConfig net_from(const json& j) {
  NetConfig n;
  n.arch = parse_arch(j.at("arch").get<std::string>());
  n.in_channels = j.at("in_channels").get<int64_t>();
  n.classes = j.at("classes").get<int64_t>();
  n.widths = j.at("widths").get<std::vector<int64_t>>();
  n.deep_supervision = j.at("deep_supervision").get<bool>();
  n.se_ratio = j.at("se_ratio").get<int64_t>();
  n.se_min_hidden = j.at("se_min_hidden").get<int64_t>();
  n.lka_dilation = j.at("lka_dilation").get<int64_t>();
  n.seed = j.at("seed").get<uint64_t>();
  return n;
}

json config_json(const TrainConfig& c) {
  json j = {{"format", kFormat},
          {"net", net_json(c.net)},
          {"loss",
           {{"class_weights", c.loss.class_weights},
            {"lambdas", c.loss.lambdas},
            {"tversky_alpha_min", c.loss.tversky.alpha_min},
            {"tversky_alpha_max", c.loss.tversky.alpha_max},
            {"tversky_eps", c.loss.tversky.eps},
            {"tversky_detach_alpha", c.loss.tversky.detach_alpha},
            {"bilinear_aux", c.loss.bilinear_aux}}},
          {"epochs", c.epochs},
          {"batch", c.batch},
          {"adamw",
           {{"lr", c.adamw.lr},
            {"beta1", c.adamw.beta1},
            {"beta2", c.adamw.beta2},
            {"eps", c.adamw.eps},
            {"weight_decay", c.adamw.weight_decay}}},
          {"warmup_epochs", c.warmup_epochs},
          {"warmup_start", c.warmup_start},
          {"decay", c.decay},
          {"val_every", c.val_every},
          {"steps_per_epoch", c.steps_per_epoch},
          {"tumour_fraction", c.tumour_fraction},
          {"seed", c.seed},
          {"eval_batch", c.eval_batch}};
  if (c.precision != DType::F32) j["precision"] = precision_name(c.precision);  // fp32 configs read as before
  if (c.precision == DType::F16) j["loss_scale"] = c.loss_scale;
  return j;
}

// Beside config_json: fields that only some runs have, so that existing run
// folders keep their configuration.
void add_optional_fields(json& j, const TrainConfig& c) {
  if (c.dtype != DType::F32) j["dtype"] = dtype_name(c.dtype);
  if (c.oversample_by_class) j["oversample_by"] = "class";
}

// The first field where two configurations differ ("epochs" excepted), or "".
std::string first_difference(const json& a, const json& b, const std::string& at = "") {
  if (a.is_object() && b.is_object()) {
    for (auto it = a.begin(); it != a.end(); ++it) {
      if (at.empty() && it.key() == "epochs") continue;
      const std::string key = at.empty() ? it.key() : at + "." + it.key();
      if (!b.contains(it.key())) return key;
      const std::string d = first_difference(it.value(), b.at(it.key()), key);
      if (!d.empty()) return d;
    }
    for (auto it = b.begin(); it != b.end(); ++it)
      if (!a.contains(it.key())) return at.empty() ? it.key() : at + "." + it.key();
    return "";
  }
  return a == b ? "" : (at.empty() ? "(root)" : at);
}

void check_config(const TrainConfig& c) {
  const auto bad = [](const std::string& what) { throw std::invalid_argument("training configuration: " + what); };
  if (c.epochs < 1) bad("epochs must be >= 1");
  if (c.batch < 1) bad("batch must be >= 1");
  if (c.val_every < 1) bad("val_every must be >= 1");
  if (c.eval_batch < 1) bad("eval_batch must be >= 1");
  if (c.log_every < 0) bad("log_every must be >= 0");
  if (c.steps_per_epoch < 0) bad("steps_per_epoch must be >= 0");
  if (c.warmup_epochs < 0) bad("warmup_epochs must be >= 0");
  if (!(c.adamw.lr > 0) || !std::isfinite(c.adamw.lr)) bad("lr must be a positive number");
  if (!(c.decay > 0 && c.decay <= 1)) bad("decay must lie in (0, 1]");
  if (c.dtype == DType::I32 || (c.dtype == DType::F64 && c.device.type != DeviceType::CPU))
    bad("the dtype must be float32, or float64 on the CPU");
  if (c.oversample_by_class && !(c.tumour_fraction > 0))
    bad("oversampling by class needs an oversampling fraction above 0");
}

// The network fits the slices: widths (SegNet checks them), the slice side
// divisible by 2^(levels-1), and batch norm in training sees more than one
// value per channel at the coarsest level.
void check_fits(const TrainConfig& c, int64_t side) {
  const size_t levels = c.net.widths.size();
  if (levels < 2) throw std::invalid_argument("training configuration: the network needs at least 2 levels (widths)");
  const int64_t stride = int64_t{1} << (levels - 1);
  if (side % stride != 0)
    throw std::invalid_argument("training configuration: slices of " + std::to_string(side) +
                                " px do not divide by 2^(levels - 1) = " + std::to_string(stride) + " for " +
                                std::to_string(levels) + " levels");
  const int64_t coarsest = side / stride;
  if (c.batch * coarsest * coarsest < 2)
    throw std::invalid_argument("training configuration: batch " + std::to_string(c.batch) + " of " +
                                std::to_string(side) + " px slices leaves batch norm one value per channel at the " +
                                std::to_string(coarsest) + "x" + std::to_string(coarsest) +
                                " coarsest level; use a batch of 2 or more, or fewer levels");
}

// The value at a dotted path of a JSON object, for messages ("?" if absent).
std::string value_at(const json& j, const std::string& dotted) {
  const json* at = &j;
  size_t from = 0;
  while (true) {
    const size_t dot = dotted.find('.', from);
    const std::string key = dotted.substr(from, dot == std::string::npos ? std::string::npos : dot - from);
    if (!at->is_object() || !at->contains(key)) return "(none)";
    at = &at->at(key);
    if (dot == std::string::npos) return at->dump();
    from = dot + 1;
  }
}

}  // namespace

std::string config_difference(const std::string& then, const std::string& now) {
  const json a = json::parse(then), b = json::parse(now);
  const std::string d = first_difference(a, b);
  return d.empty() ? "" : "'" + d + "' differs: " + value_at(a, d) + " then, " + value_at(b, d) + " now";
}

void check_trainable(const TrainConfig& c, int64_t side) {
  check_config(c);
  check_fits(c, side);
}

std::string preprocess_to_json(const data::PreprocessOptions& o) {
  return json{{"size", o.size},   {"clip_lo", o.clip_lo},         {"clip_hi", o.clip_hi},
              {"clahe", o.clahe}, {"clahe_clip", o.clahe_clip}, {"clahe_tiles", o.clahe_tiles}}
      .dump();
}

data::PreprocessOptions preprocess_from_json(const std::string& text) {
  try {
    const json j = json::parse(text);
    data::PreprocessOptions o;
    o.size = j.at("size").get<int64_t>();
    o.clip_lo = j.at("clip_lo").get<double>();
    o.clip_hi = j.at("clip_hi").get<double>();
    o.clahe = j.at("clahe").get<bool>();
    o.clahe_clip = j.at("clahe_clip").get<double>();
    o.clahe_tiles = j.at("clahe_tiles").get<int>();
    return o;
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string("preprocessing options: ") + e.what());
  }
}

std::string TrainConfig::to_json() const {
  json j = config_json(*this);
  add_optional_fields(j, *this);
  return j.dump(2);
}

TrainConfig TrainConfig::from_json(const std::string& text) {
  try {
    const json j = json::parse(text);
    if (j.at("format").get<std::string>() != kFormat)
      throw std::runtime_error("format " + j.at("format").dump() + ", expected " + kFormat);
    TrainConfig c;
    c.net = net_from(j.at("net"));
    const json& l = j.at("loss");
    c.loss.class_weights = l.at("class_weights").get<std::vector<double>>();
    c.loss.lambdas = l.at("lambdas").get<std::vector<double>>();
    c.loss.tversky.alpha_min = l.at("tversky_alpha_min").get<double>();
    c.loss.tversky.alpha_max = l.at("tversky_alpha_max").get<double>();
    c.loss.tversky.eps = l.at("tversky_eps").get<double>();
    c.loss.tversky.detach_alpha = l.at("tversky_detach_alpha").get<bool>();
    c.loss.bilinear_aux = l.at("bilinear_aux").get<bool>();
    c.epochs = j.at("epochs").get<int64_t>();
    c.batch = j.at("batch").get<int64_t>();
    const json& a = j.at("adamw");
    c.adamw.lr = a.at("lr").get<double>();
    c.adamw.beta1 = a.at("beta1").get<double>();
    c.adamw.beta2 = a.at("beta2").get<double>();
    c.adamw.eps = a.at("eps").get<double>();
    c.adamw.weight_decay = a.at("weight_decay").get<double>();
    c.warmup_epochs = j.at("warmup_epochs").get<int64_t>();
    c.warmup_start = j.at("warmup_start").get<double>();
    c.decay = j.at("decay").get<double>();
    c.val_every = j.at("val_every").get<int64_t>();
    c.steps_per_epoch = j.at("steps_per_epoch").get<int64_t>();
    c.tumour_fraction = j.at("tumour_fraction").get<double>();
    c.seed = j.at("seed").get<uint64_t>();
    c.eval_batch = j.at("eval_batch").get<int64_t>();
    c.precision = parse_precision(j.value("precision", "fp32"));
    c.loss_scale = j.value("loss_scale", TrainConfig{}.loss_scale);
    c.sync_bn = j.value("sync_bn", false);  // data-parallel runs only
    c.dtype = j.value("dtype", std::string("float32")) == "float64" ? DType::F64 : DType::F32;
    const std::string by = j.value("oversample_by", std::string("tumour"));
    if (by != "tumour" && by != "class")
      throw std::runtime_error("oversample_by '" + by + "': expected tumour or class");
    c.oversample_by_class = by == "class";
    return c;
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string("training configuration: ") + e.what());
  }
}

}  // namespace lk::train
