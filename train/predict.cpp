#include "train/predict.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "data/nifti_write.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/safetensors.h"
#include "engine/state_dict.h"
#include "train/checkpoint.h"
#include "util/atomic_file.h"

namespace lk::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::map<std::string, std::string> metadata_of(const fs::path& p) { return load_safetensors(p.string()).metadata; }

std::string meta_or(const std::map<std::string, std::string>& m, const std::string& key) {
  const auto it = m.find(key);
  return it == m.end() ? std::string() : it->second;
}

int64_t to_int(const std::string& s) {
  try {
    return s.empty() ? 0 : std::stoll(s);
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

namespace {

// The weights file a checkpoint manifest (last.json) names.
fs::path manifest_weights(const fs::path& manifest) {
  try {
    return manifest.parent_path() / json::parse(read_text(manifest)).at("weights").get<std::string>();
  } catch (const std::exception& e) {
    throw std::invalid_argument(manifest.string() + ": not a checkpoint manifest (last.json) of a run (" + e.what() + ")");
  }
}

}  // namespace

CheckpointInfo resolve_checkpoint(const std::string& path, const std::string& which) {
  if (which != "best" && which != "last")
    throw std::invalid_argument("checkpoint '" + which + "': expected best or last");
  fs::path weights(path);
  std::error_code ec;
  if (fs::is_directory(weights, ec)) {
    if (fs::is_directory(weights / "fold_0"))
      throw std::invalid_argument(path + ": a run folder (fold_0/, ...): use --run for all its folds, or name one "
                                         "fold's checkpoint");
    if (which == "best") weights /= "best.safetensors";
    else if (fs::is_regular_file(weights / "last.json")) weights = manifest_weights(weights / "last.json");
    else weights /= "last.safetensors";  // an older run
    if (!fs::is_regular_file(weights))
      throw std::invalid_argument(path + ": no " + which + " checkpoint in this folder (not a fold of a run?)");
  } else if (weights.extension() == ".json" && fs::is_regular_file(weights)) {
    weights = manifest_weights(weights);
  }
  if (!fs::is_regular_file(weights, ec)) throw std::invalid_argument(weights.string() + ": the model is not a file");
  const fs::path dir = weights.parent_path();
  CheckpointInfo c;
  c.weights = weights.string();
  const std::map<std::string, std::string> meta = metadata_of(weights);
  c.train_config = meta_or(meta, "lkaseg.train_config");
  c.preprocess = meta_or(meta, "lkaseg.preprocess");
  c.epoch = to_int(meta_or(meta, "lkaseg.epoch"));
  const fs::path state = weights.string() + ".state";
  if ((c.train_config.empty() || c.epoch == 0) && fs::is_regular_file(state)) {
    const std::map<std::string, std::string> sm = metadata_of(state);
    if (c.train_config.empty()) c.train_config = meta_or(sm, "config");
    if (c.epoch == 0) c.epoch = to_int(meta_or(sm, "epoch"));
  }
  if ((c.train_config.empty() || c.preprocess.empty()) && fs::is_regular_file(dir / "config.json")) {
    const json cj = json::parse(read_text(dir / "config.json"), nullptr, false);
    if (cj.is_object()) {
      if (c.preprocess.empty() && cj.contains("preprocess")) c.preprocess = cj.at("preprocess").dump();
      if (c.train_config.empty()) {
        json tc = cj;
        tc.erase("preprocess");
        c.train_config = tc.dump();
      }
    }
  }
  if (c.preprocess.empty() && weights.filename() != "best.safetensors" && fs::is_regular_file(dir / "best.safetensors"))
    c.preprocess = meta_or(metadata_of(dir / "best.safetensors"), "lkaseg.preprocess");
  if (c.train_config.empty() || c.preprocess.empty())
    throw std::invalid_argument(c.weights + ": no lkaseg training " + (c.train_config.empty() ? "configuration" : "preprocessing") +
                                " for these weights (use a checkpoint written by `lkaseg train`/`cv`: "
                                "fold_k/best.safetensors, fold_k/last.json or a fold folder)");
  return c;
}

int64_t min_parameters(const model::NetConfig& cfg) {
  // Every level's block starts with two 3x3 convolutions (model/blocks.h):
  // c_in -> w and w -> w; the rest of the network only adds to this.
  double n = 0;
  double c_in = static_cast<double>(cfg.in_channels);
  for (int64_t w : cfg.widths) {
    n += 9.0 * (c_in * static_cast<double>(w) + static_cast<double>(w) * static_cast<double>(w));
    c_in = static_cast<double>(w);
  }
  return n > 9e18 ? INT64_MAX : static_cast<int64_t>(n);
}

LoadedModel load_model(const std::string& path, Device dev) {
  const CheckpointInfo c = resolve_checkpoint(path);
  LoadedModel m;
  m.config = TrainConfig::from_json(c.train_config);
  m.preprocess = preprocess_from_json(c.preprocess);
  // The metadata is checked against the file before a network is built from it.
  const SafeTensors file = load_safetensors(c.weights);
  int64_t stored = 0;
  for (const auto& [key, t] : file.tensors) stored += t.numel();
  if (const int64_t least = min_parameters(m.config.net); least > stored)
    throw std::invalid_argument(c.weights + ": its metadata describes a network of at least " + std::to_string(least) +
                                " parameters, but the file holds " + std::to_string(stored) +
                                " values: damaged or foreign metadata");
  if (const std::string bad = nonfinite_tensor(file.tensors); !bad.empty())
    throw std::invalid_argument(c.weights + ": " + bad + " (saved from a diverged run?); its predictions would be "
                                "meaningless");
  m.net = std::make_unique<model::SegNet>(m.config.net);
  load_state_dict(c.weights, *m.net);
  m.net->to_device(dev);
  m.path = c.weights;
  m.epoch = c.epoch;
  return m;
}

namespace {

// The weights of a fold's `which` checkpoint, or "" when it has none.
std::string weights_or_empty(const fs::path& fold, const std::string& which) {
  try {
    return resolve_checkpoint(fold.string(), which).weights;
  } catch (const std::invalid_argument&) {
    return "";
  }
}

}  // namespace

std::vector<std::string> run_checkpoints(const std::string& run_dir, const std::string& which) {
  if (which != "best" && which != "last" && which != "selected")
    throw std::invalid_argument("--checkpoint " + which + ": expected selected, best or last");
  std::vector<std::string> out;
  for (int k = 0;; ++k) {
    const fs::path fold = fs::path(run_dir) / ("fold_" + std::to_string(k));
    if (!fs::is_directory(fold)) break;
    std::string pick = which == "last" ? "last" : "best";
    const fs::path sel = fold / "selected.json";
    if (which == "selected" && fs::is_regular_file(sel)) {
      std::string chosen;
      try {
        chosen = json::parse(read_text(sel)).at("checkpoint").get<std::string>();
      } catch (const std::exception& e) {
        throw std::runtime_error(sel.string() + ": " + e.what());
      }
      if (chosen.ends_with(".safetensors")) chosen.resize(chosen.size() - 12);  // older files name the file
      if (chosen != "best" && chosen != "last") throw std::runtime_error(sel.string() + ": checkpoint '" + chosen + "'");
      // Followed while no checkpoint of the fold is newer (trained on since).
      bool fresh = !weights_or_empty(fold, chosen).empty();
      for (const char* w : {"best", "last"}) {
        const std::string f = weights_or_empty(fold, w);
        if (!f.empty() && fs::last_write_time(f) > fs::last_write_time(sel)) fresh = false;
      }
      if (fresh) pick = chosen;
    }
    std::string weights = weights_or_empty(fold, pick);
    if (weights.empty() && which != "last") weights = weights_or_empty(fold, "last");  // not validated yet
    if (weights.empty()) throw std::invalid_argument(fold.string() + ": no " + pick + " checkpoint (is the fold trained?)");
    out.push_back(weights);
  }
  if (out.empty()) throw std::invalid_argument(run_dir + ": no fold_0/ (not a run folder of `lkaseg cv`/`train`)");
  return out;
}

void write_checkpoint_choice(const std::string& fold_dir, const CheckpointChoice& c) {
  const json j = {{"checkpoint", c.checkpoint}, {"epoch", c.epoch}, {"how", c.how}};
  write_file_atomically((fs::path(fold_dir) / "selected.json").string(), j.dump(2) + "\n");
}

// ---- slices -------------------------------------------------------------------

namespace {

// The index in a mirrored slice of pixel (y, x).
inline int64_t mirrored(int64_t y, int64_t x, int64_t side, unsigned view) {
  return ((view & 2) ? side - 1 - y : y) * side + ((view & 1) ? side - 1 - x : x);
}

// Restores a network's training mode on scope exit.
struct EvalMode {
  model::SegNet& net;
  bool was;
  explicit EvalMode(model::SegNet& n) : net(n), was(n.is_training()) { net.train(false); }
  ~EvalMode() { net.train(was); }
  EvalMode(const EvalMode&) = delete;
  EvalMode& operator=(const EvalMode&) = delete;
};

}  // namespace

std::vector<float> predict_probabilities(const std::vector<model::SegNet*>& nets, const float* images, int64_t n,
                                         int64_t side, const PredictOptions& o) {
  if (nets.empty()) throw std::invalid_argument("predict_probabilities: no network");
  if (n < 0 || side < 1 || o.batch < 1 || o.mirror_axes > 3) throw std::invalid_argument("predict_probabilities: bad sizes");
  const int64_t C = nets[0]->config().in_channels, K = nets[0]->config().classes, px = side * side;
  for (const model::SegNet* net : nets)
    if (net->config().in_channels != C || net->config().classes != K)
      throw std::invalid_argument("predict_probabilities: the networks differ in channels or classes");
  std::vector<unsigned> views;
  for (unsigned v = 0; v < 4; ++v)
    if ((v & ~o.mirror_axes) == 0) views.push_back(v);
  const int64_t V = static_cast<int64_t>(views.size()), per = std::max<int64_t>(1, o.batch / V);
  std::vector<float> acc(static_cast<size_t>(n * K * px), 0.0f);
  NoGradGuard ng;
  for (model::SegNet* net : nets) {
    EvalMode mode(*net);
    for (int64_t b0 = 0; b0 < n; b0 += per) {
      const int64_t m = std::min(per, n - b0);
      Tensor x = Tensor::empty({m * V, C, side, side});
      float* xd = x.data<float>();
      for (int64_t v = 0; v < V; ++v)  // image v * m + i: view v of slice b0 + i
        for (int64_t i = 0; i < m; ++i)
          for (int64_t c = 0; c < C; ++c) {
            const float* src = images + ((b0 + i) * C + c) * px;
            float* dst = xd + ((v * m + i) * C + c) * px;
            for (int64_t y = 0; y < side; ++y)
              for (int64_t xx = 0; xx < side; ++xx) dst[y * side + xx] = src[mirrored(y, xx, side, views[static_cast<size_t>(v)])];
          }
      const Tensor probs = softmax(net->forward(x.to(o.device))[0]).to(cpu_device());
      const float* P = probs.data<float>();
      for (int64_t i = 0; i < m; ++i)
        for (int64_t k = 0; k < K; ++k) {
          float* dst = acc.data() + ((b0 + i) * K + k) * px;
          // u(v, p): view v's probability at pixel p, mirrored back.
          const auto u = [&](int64_t v, int64_t y, int64_t xx) {
            return P[((v * m + i) * K + k) * px + mirrored(y, xx, side, views[static_cast<size_t>(v)])];
          };
          for (int64_t y = 0; y < side; ++y)
            for (int64_t xx = 0; xx < side; ++xx) {
              const float s = V == 1 ? u(0, y, xx) : V == 2 ? u(0, y, xx) + u(1, y, xx)
                                                            : (u(0, y, xx) + u(1, y, xx)) + (u(2, y, xx) + u(3, y, xx));
              dst[y * side + xx] += s;
            }
        }
    }
  }
  const float div = static_cast<float>(static_cast<int64_t>(nets.size()) * V);
  for (float& a : acc) a /= div;
  return acc;
}

std::vector<int32_t> argmax_classes(const std::vector<float>& probs, int64_t n, int64_t K, int64_t px) {
  if (static_cast<int64_t>(probs.size()) != n * K * px) throw std::invalid_argument("argmax_classes: bad sizes");
  std::vector<int32_t> out(static_cast<size_t>(n * px));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = 0; p < px; ++p) {
      const float* z = probs.data() + i * K * px + p;
      int32_t best = 0;
      for (int32_t k = 1; k < K; ++k)
        if (z[k * px] > z[best * px]) best = k;
      out[static_cast<size_t>(i * px + p)] = best;
    }
  return out;
}

std::vector<int32_t> predict_classes(model::SegNet& net, const float* images, int64_t n, int64_t side, int64_t batch,
                                     Device dev) {
  if (n < 0 || side < 1 || batch < 1) throw std::invalid_argument("predict_classes: bad sizes");
  EvalMode mode(net);
  NoGradGuard ng;
  const int64_t C = net.config().in_channels, K = net.config().classes, px = side * side;
  std::vector<int32_t> out(static_cast<size_t>(n * px));
  for (int64_t b0 = 0; b0 < n; b0 += batch) {
    const int64_t m = std::min(batch, n - b0);
    Tensor x = Tensor::empty({m, C, side, side});
    std::copy(images + b0 * C * px, images + (b0 + m) * C * px, x.data<float>());
    const DType dt = net.parameters().front().dtype();  // float32, or float64 when trained so (--dtype f64)
    Tensor logits = net.forward((dt == DType::F32 ? x : x.to(dt)).to(dev))[0].to(cpu_device());
    if (dt != DType::F32) logits = logits.to(DType::F32);
    const float* z = logits.data<float>();
    for (int64_t i = 0; i < m; ++i)
      for (int64_t p = 0; p < px; ++p) {
        int32_t best = 0;
        for (int32_t k = 1; k < K; ++k)
          if (z[(i * K + k) * px + p] > z[(i * K + best) * px + p]) best = k;
        out[static_cast<size_t>((b0 + i) * px + p)] = best;
      }
  }
  return out;
}

std::vector<int32_t> predict_cached_case(model::SegNet& net, const data::SliceCache& cache, int64_t c, int64_t batch,
                                         Device dev) {
  const data::CachedCase& cc = cache.case_info(c);
  return predict_classes(net, cache.images(cc.first_slice), cc.slices(), cache.side(), batch, dev);
}

int left_right_axis(const data::Geometry& g) {
  // Direction cosine of each in-plane voxel axis with the world's x (R-L).
  double dir[2];
  for (int a = 0; a < 2; ++a) {
    const double norm = std::sqrt(g.affine[0][a] * g.affine[0][a] + g.affine[1][a] * g.affine[1][a] +
                                  g.affine[2][a] * g.affine[2][a]);
    dir[a] = norm > 0 ? std::fabs(g.affine[0][a]) / norm : 0;
  }
  return dir[1] > dir[0] ? 1 : 0;
}

// ---- cases --------------------------------------------------------------------

std::vector<model::SegNet*> ensemble_nets(const std::vector<LoadedModel>& models) {
  std::vector<model::SegNet*> nets;
  for (const LoadedModel& m : models) {
    const LoadedModel& f = models.front();
    if (preprocess_to_json(m.preprocess) != preprocess_to_json(f.preprocess))
      throw std::invalid_argument(m.path + ": preprocessed otherwise than " + f.path + " (" +
                                  preprocess_to_json(m.preprocess) + " vs " + preprocess_to_json(f.preprocess) +
                                  "); an ensemble averages the same slices");
    if (m.config.net.in_channels != f.config.net.in_channels || m.config.net.classes != f.config.net.classes)
      throw std::invalid_argument(m.path + ": other input channels or classes than " + f.path);
    nets.push_back(m.net.get());
  }
  return nets;
}

void write_case_labels(const std::string& path, const data::Geometry& g, std::vector<uint8_t> labels,
                       data::BratsNaming naming, const std::string& description) {
  for (uint8_t& v : labels) v = data::from_brats2021_label(naming, v);
  data::NiftiWriteOptions wo;
  wo.description = description;
  data::write_nifti(path, g, labels, wo);
}

CasePrediction predict_case_file(const std::vector<model::SegNet*>& nets, const data::PreprocessOptions& po,
                                 const data::BratsCase& bc, const std::string& out_dir, const CasePredictOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const data::BratsCaseData c = data::load_brats_case(bc);
  const data::PreprocessedCase p = data::preprocess_case(c, po);
  PredictOptions pr = o.predict;
  if (o.tta) pr.mirror_axes |= 1u << left_right_axis(c.geom);
  const int64_t K = nets.at(0)->config().classes, px = p.size * p.size;
  const std::vector<float> probs = predict_probabilities(nets, p.images.data(), p.slices(), p.size, pr);
  std::vector<uint8_t> labels = data::map_back_labels(p, argmax_classes(probs, p.slices(), K, px));
  CasePrediction r;
  r.views = 1 << __builtin_popcount(pr.mirror_axes);
  if (o.postprocess) r.postprocessed = apply_postprocessing(labels, c.geom.dims, c.geom.spacing, *o.postprocess);
  r.path = (fs::path(out_dir) / (bc.id + ".nii.gz")).string();
  write_case_labels(r.path, c.geom, std::move(labels), bc.naming);
  if (o.save_probabilities) {
    // Channel of each training class: the rank of its label in the case's coding.
    const std::array<uint8_t, 4> values = data::label_values(bc.naming);
    std::vector<int64_t> channel(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) {
      const uint8_t l = data::from_brats2021_label(bc.naming, static_cast<uint8_t>(data::brats_class_to_label(static_cast<int32_t>(k))));
      channel[static_cast<size_t>(k)] = std::find(values.begin(), values.end(), l) - values.begin();
    }
    const int64_t nv = c.geom.numel();
    std::vector<float> maps(static_cast<size_t>(K * nv), 0.0f);
    std::fill(maps.begin(), maps.begin() + nv, 1.0f);  // background outside the brain box
    data::for_each_mapped_voxel(p, [&](int64_t voxel, int64_t s, int64_t pixel) {
      for (int64_t k = 0; k < K; ++k)
        maps[static_cast<size_t>(channel[static_cast<size_t>(k)] * nv + voxel)] = probs[static_cast<size_t>((s * K + k) * px + pixel)];
    });
    const fs::path dir = fs::path(out_dir) / "probabilities";
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw std::runtime_error(dir.string() + ": cannot create the folder (" + ec.message() + ")");
    data::NiftiWriteOptions pw;
    pw.description = kProbabilitiesDescription;
    pw.frames = static_cast<int>(K);
    pw.gzip_level = 1;
    data::write_nifti((dir / (bc.id + ".nii.gz")).string(), c.geom, maps, pw);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

CasePrediction predict_case_file(model::SegNet& net, const data::PreprocessOptions& po, const data::BratsCase& bc,
                                 const std::string& out_dir, int64_t batch, Device dev) {
  CasePredictOptions o;
  o.predict.batch = batch;
  o.predict.device = dev;
  return predict_case_file(std::vector<model::SegNet*>{&net}, po, bc, out_dir, o);
}

}  // namespace lk::train
