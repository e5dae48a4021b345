#include "engine/state_dict.h"

#include <cstdio>
#include <set>
#include <stdexcept>

#include "engine/safetensors.h"

namespace lk {

namespace {
// The module's tensors by key: the live ones (to load into), or host
// snapshots (to save).
std::vector<std::pair<std::string, Tensor>> state_of(const Module& m, bool host_copy) {
  auto all = m.named_parameters();
  for (auto& b : m.named_buffers()) all.push_back(b);
  for (auto& [n, t] : all) t = t.device().type == DeviceType::CPU || !host_copy ? t.detach() : t.to(cpu_device());
  return all;
}

[[noreturn]] void fail(const std::string& path, const std::string& what) { throw std::runtime_error(path + ": " + what); }
}  // namespace

void copy_checked(const std::string& path, const std::string& key, const Tensor& src, const Tensor& dst) {
  if (src.shape() != dst.shape())
    fail(path, "'" + key + "' has shape " + shape_str(src.shape()) + ", the model expects " + shape_str(dst.shape()));
  if ((src.dtype() == DType::I32) != (dst.dtype() == DType::I32))
    fail(path, "'" + key + "' is " + dtype_name(src.dtype()) + ", the model expects " + dtype_name(dst.dtype()));
  dst.copy_from(src);
}

void save_state_dict(const std::string& path, const Module& m, const std::map<std::string, std::string>& meta) {
  save_safetensors(path, state_of(m, true), meta);
}

std::map<std::string, std::string> load_state_dict(const std::string& path, Module& m) {
  const SafeTensors st = load_safetensors(path);
  const auto want = state_of(m, false);
  std::set<std::string> expected, missing;
  for (const auto& [k, t] : want) {
    expected.insert(k);
    if (!st.has(k)) missing.insert(k);
  }
  std::string unexpected;
  for (const auto& [k, t] : st.tensors)
    if (!expected.count(k)) unexpected += (unexpected.empty() ? "" : ", ") + k;
  if (!missing.empty() || !unexpected.empty()) {
    std::string msg = "not a state_dict of this model:";
    if (!missing.empty()) {
      msg += " missing " + std::to_string(missing.size()) + " key(s) (first: " + *missing.begin() + ")";
    }
    if (!unexpected.empty()) msg += " unexpected key(s): " + unexpected.substr(0, 200);
    fail(path, msg);
  }
  for (const auto& [k, t] : want) copy_checked(path, k, st.get(k), t);
  return st.metadata;
}

}  // namespace lk
