#include "engine/safetensors.h"

#include "util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace lk {

namespace {
using json = nlohmann::json;
constexpr uint64_t kMaxHeader = 100u << 20;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}

struct DtypeInfo {
  const char* name;
  size_t size;
};
bool parse_dtype(const std::string& s, DtypeInfo& out) {
  static const DtypeInfo known[] = {{"F32", 4}, {"F64", 8}, {"I32", 4}, {"I64", 8}};
  for (const auto& k : known)
    if (s == k.name) {
      out = k;
      return true;
    }
  return false;
}
const char* st_dtype(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::I32: return "I32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
  }
  return "?";
}
}  // namespace

bool SafeTensors::has(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return true;
  return false;
}

const Tensor& SafeTensors::get(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  fail(path, "no tensor named '" + name + "'");
}

const std::string& SafeTensors::meta(const std::string& key) const {
  auto it = metadata.find(key);
  if (it == metadata.end()) fail(path, "no metadata key '" + key + "'");
  return it->second;
}

SafeTensors load_safetensors(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) fail(path, std::string("cannot open: ") + std::strerror(errno));
  const uint64_t file_size = static_cast<uint64_t>(f.tellg());
  f.seekg(0);
  if (file_size < 8) fail(path, "truncated: " + std::to_string(file_size) + " bytes, no header size");
  unsigned char len_bytes[8];
  f.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | len_bytes[i];
  if (hlen > kMaxHeader || hlen > file_size - 8)
    fail(path, "header size " + std::to_string(hlen) + " exceeds the file (" + std::to_string(file_size) + " bytes)");
  std::string header(hlen, '\0');
  f.read(header.data(), static_cast<std::streamsize>(hlen));
  if (!f) fail(path, "read error in header");
  const uint64_t data_size = file_size - 8 - hlen;

  json j;
  try {
    j = json::parse(header);
  } catch (const json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(path, "header is not a JSON object");

  SafeTensors st;
  st.path = path;
  struct Entry {
    std::string name;
    DtypeInfo dt;
    Shape shape;
    uint64_t begin, end;
  };
  std::vector<Entry> entries;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) fail(path, "__metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) fail(path, "metadata '" + m.key() + "' is not a string");
        st.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const std::string& name = it.key();
    const json& e = *it;
    Entry en{name, {}, {}, 0, 0};
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      fail(path, "tensor '" + name + "' lacks dtype, shape or data_offsets");
    if (!e["dtype"].is_string() || !parse_dtype(e["dtype"].get<std::string>(), en.dt))
      fail(path, "tensor '" + name + "' has an unsupported dtype " + e["dtype"].dump());
    if (!e["shape"].is_array() || e["shape"].size() > 8) fail(path, "tensor '" + name + "' has a bad shape");
    uint64_t count = 1;
    for (const json& d : e["shape"]) {
      if (!d.is_number_unsigned()) fail(path, "tensor '" + name + "' has a negative or non-integer dimension");
      const uint64_t v = d.get<uint64_t>();
      if (v != 0 && count > std::numeric_limits<uint64_t>::max() / 16 / v)
        fail(path, "tensor '" + name + "' has an overflowing shape");
      count *= v;
      en.shape.push_back(static_cast<int64_t>(v));
    }
    const json& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(path, "tensor '" + name + "' has bad data_offsets");
    en.begin = off[0].get<uint64_t>();
    en.end = off[1].get<uint64_t>();
    if (en.begin > en.end || en.end > data_size)
      fail(path, "tensor '" + name + "' data [" + std::to_string(en.begin) + ", " + std::to_string(en.end) +
                     ") lies outside the " + std::to_string(data_size) + " data bytes (truncated file?)");
    if (en.end - en.begin != count * en.dt.size)
      fail(path, "tensor '" + name + "' has " + std::to_string(en.end - en.begin) + " bytes for shape " +
                     shape_str(en.shape) + " of " + en.dt.name);
    entries.push_back(std::move(en));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });

  const uint64_t data_start = 8 + hlen;
  for (const Entry& en : entries) {
    std::vector<char> bytes(en.end - en.begin);
    f.seekg(static_cast<std::streamoff>(data_start + en.begin));
    f.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!f) fail(path, "read error in tensor '" + en.name + "'");
    Tensor t;
    if (std::string(en.dt.name) == "F32") t = Tensor::empty(en.shape, DType::F32);
    else if (std::string(en.dt.name) == "F64") t = Tensor::empty(en.shape, DType::F64);
    else t = Tensor::empty(en.shape, DType::I32);
    if (std::string(en.dt.name) == "I64") {
      int32_t* dst = t.data<int32_t>();
      for (size_t i = 0; i < bytes.size() / 8; ++i) {
        int64_t v;
        std::memcpy(&v, bytes.data() + 8 * i, 8);
        if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
          fail(path, "tensor '" + en.name + "' holds an int64 value outside int32");
        dst[i] = static_cast<int32_t>(v);
      }
    } else if (!bytes.empty()) {
      std::memcpy(t.raw(), bytes.data(), bytes.size());
    }
    st.tensors.emplace_back(en.name, t);
  }
  return st;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t off = 0;
  for (const auto& [name, t] : tensors) {
    if (t.device().type != DeviceType::CPU) fail(path, "tensor '" + name + "' is not on the host");
    h[name] = {{"dtype", st_dtype(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {off, off + t.nbytes()}}};
    off += t.nbytes();
  }
  std::string header = h.dump();
  header.append((8 - (8 + header.size()) % 8) % 8, ' ');

  AtomicFile f(path);
  unsigned char len_bytes[8];
  const uint64_t hl = header.size();
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(hl >> (8 * i));
  f.write(len_bytes, 8);
  f.write(header.data(), header.size());
  for (const auto& [name, t] : tensors) f.write(t.raw(), t.nbytes());
  f.commit();
}

}  // namespace lk
