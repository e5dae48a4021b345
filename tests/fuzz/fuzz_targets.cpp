#include "tests/fuzz/fuzz_targets.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "data/nifti_read.h"
#include "data/nifti_write.h"
#include "data/slice_cache.h"
#include "data/splits.h"
#include "engine/safetensors.h"
#include "train/trainer.h"

namespace lk::fuzz {

namespace fs = std::filesystem;

namespace {

std::string write_bytes(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = (fs::path(scratch_dir()) / name).string();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw std::logic_error("fuzz: cannot write " + path);  // not the reader's fault: make it loud
  if (size > 0 && std::fwrite(data, 1, size, f) != size) {
    std::fclose(f);
    throw std::logic_error("fuzz: short write to " + path);
  }
  std::fclose(f);
  return path;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---------------------------------------------------------------- NIfTI

void run_nifti(const uint8_t* d, size_t n, const char* name) {
  const data::Volume v = data::read_nifti(write_bytes(name, d, n));
  // What was accepted must be consistent.
  if (static_cast<int64_t>(v.data.size()) != v.geom.numel()) throw std::logic_error("fuzz: voxel count mismatch");
}
void run_nii(const uint8_t* d, size_t n) { run_nifti(d, n, "in.nii"); }
void run_nii_gz(const uint8_t* d, size_t n) { run_nifti(d, n, "in.nii.gz"); }

std::vector<std::string> nifti_seeds(const char* ext) {
  std::vector<std::string> out;
  data::Geometry g;
  g.dims = {5, 4, 3};
  g.spacing = {1.0, 1.5, 2.0};
  g.affine[0][3] = -10;
  std::vector<int16_t> i16(static_cast<size_t>(g.numel()));
  std::vector<float> f32(i16.size());
  std::vector<uint8_t> u8(i16.size());
  for (size_t i = 0; i < i16.size(); ++i) {
    i16[i] = static_cast<int16_t>(i * 37 % 1000 - 300);
    f32[i] = static_cast<float>(i) * 0.25f - 3.f;
    u8[i] = static_cast<uint8_t>(i % 5 == 0 ? 4 : i % 3);
  }
  const std::string p = (fs::path(scratch_dir()) / (std::string("seed") + ext)).string();
  data::NiftiWriteOptions o;
  o.gzip_level = 1;
  data::write_nifti(p, g, i16, o);
  out.push_back(read_bytes(p));
  data::write_nifti(p, g, f32, o);
  out.push_back(read_bytes(p));
  data::write_nifti(p, g, u8, o);
  out.push_back(read_bytes(p));
  return out;
}
std::vector<std::string> nii_seeds() { return nifti_seeds(".nii"); }
std::vector<std::string> nii_gz_seeds() { return nifti_seeds(".nii.gz"); }

// ---------------------------------------------------------------- slice cache

data::PreprocessOptions cache_options() {
  data::PreprocessOptions o;
  o.size = 4;
  return o;
}

void run_cache(const uint8_t* d, size_t n) {
  const data::SliceCache sc = data::open_slice_cache(write_bytes("in.lkcache", d, n), cache_options());
  // Touch everything an accepted cache offers.
  volatile float sink = 0;
  for (int64_t s = 0; s < sc.slices(); ++s) sink = sink + sc.images(s)[0] + sc.labels(s)[0];
  for (int64_t c = 0; c < sc.num_cases(); ++c) (void)sc.load_case(c);
}

std::vector<std::string> cache_seeds() {
  std::vector<data::PreprocessedCase> cases(2);
  for (int c = 0; c < 2; ++c) {
    data::PreprocessedCase& p = cases[static_cast<size_t>(c)];
    p.id = "case_" + std::to_string(c);
    p.geom.dims = {6, 6, 3};
    p.box.hi = {6, 6, 3};
    p.size = 4;
    p.z = {0, 2};
    for (int i = 0; i < 2 * 4 * 16; ++i) p.images.push_back(static_cast<float>(i % 7) - 3.f);
    if (c == 0)
      for (int i = 0; i < 2 * 16; ++i) p.labels.push_back(i % 4);
  }
  const std::string p = (fs::path(scratch_dir()) / "seed.lkcache").string();
  data::write_slice_cache(p, cases, cache_options());
  return {read_bytes(p)};
}

// ---------------------------------------------------------------- safetensors

void run_safetensors(const uint8_t* d, size_t n) {
  const SafeTensors st = load_safetensors(write_bytes("in.safetensors", d, n));
  for (const auto& [name, t] : st.tensors)
    if (t.numel() > 0 && t.raw() == nullptr) throw std::logic_error("fuzz: tensor without data: " + name);
}

std::vector<std::string> safetensors_seeds() {
  const std::string p = (fs::path(scratch_dir()) / "seed.safetensors").string();
  Tensor a = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::from_vector({0.5, -1}, {2}, DType::F64);
  Tensor c = Tensor::from_labels({7, 8, 9}, {3});
  save_safetensors(p, {{"enc.0.weight", a}, {"bn.running_var", b}, {"idx", c}}, {{"lkaseg.epoch", "3"}});
  return {read_bytes(p)};
}

// ---------------------------------------------------------------- JSON

const std::vector<std::string>& split_ids() {
  static const std::vector<std::string> ids = {"A", "B", "C", "D", "E", "F"};
  return ids;
}

void run_split(const uint8_t* d, size_t n) { (void)data::read_split_json(write_bytes("split.json", d, n), split_ids()); }

std::vector<std::string> split_seeds() {
  const std::string p = (fs::path(scratch_dir()) / "seed_split.json").string();
  data::write_split_json(p, data::make_split(split_ids(), 1.0, 42, 3));
  return {read_bytes(p)};
}

void run_train_config(const uint8_t* d, size_t n) {
  (void)train::TrainConfig::from_json(std::string(reinterpret_cast<const char*>(d), n));
}

std::vector<std::string> train_config_seeds() {
  train::TrainConfig c;
  c.net.widths = {4, 8};
  return {c.to_json()};
}

}  // namespace

const std::string& scratch_dir() {
  static const std::string dir = [] {
    const fs::path p = fs::temp_directory_path() / ("lkaseg_fuzz_" + std::to_string(::getpid()));
    fs::create_directories(p);
    return p.string();
  }();
  return dir;
}

const std::vector<Target>& targets() {
  static const std::vector<Target> t = {
      {"nifti", run_nii, nii_seeds},
      {"nifti_gz", run_nii_gz, nii_gz_seeds},
      {"slice_cache", run_cache, cache_seeds},
      {"safetensors", run_safetensors, safetensors_seeds},
      {"split_json", run_split, split_seeds},
      {"train_config", run_train_config, train_config_seeds},
  };
  return t;
}

const Target& target(const std::string& name) {
  for (const Target& t : targets())
    if (name == t.name) return t;
  throw std::invalid_argument("fuzz: no target '" + name + "'");
}

}  // namespace lk::fuzz
