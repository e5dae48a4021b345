#include "engine/tensor.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <sstream>
#include <stdexcept>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "engine/autograd.h"
#include "engine/backend.h"

namespace lk {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I32: return 4;
    case DType::BF16: return 2;
    case DType::F16: return 2;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::I32: return "int32";
    case DType::BF16: return "bfloat16";
    case DType::F16: return "float16";
  }
  return "?";
}

bool is_float(DType t) { return t != DType::I32; }
bool is_reduced(DType t) { return t == DType::BF16 || t == DType::F16; }

std::string Device::str() const {
  if (type == DeviceType::CPU) return "cpu";
  return "cuda:" + std::to_string(index);
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return {};
  if (s == "cuda") return {DeviceType::CUDA, 0};
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5) {
    size_t used = 0;
    int idx = -1;
    try {
      idx = std::stoi(s.substr(5), &used);
    } catch (const std::exception&) {
    }
    if (idx >= 0 && used == s.size() - 5) return {DeviceType::CUDA, idx};
  }
  throw std::invalid_argument("unknown device '" + s + "' (expected cpu, cuda or cuda:N)");
}

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << '[';
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << ']';
  return o.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) throw std::invalid_argument("negative dimension in shape " + shape_str(s));
    n *= d;
  }
  return n;
}

void shape_error(const std::string& op, const std::string& what, const Shape& a, const Shape& b) {
  std::string msg = op + ": " + what + " (shape " + shape_str(a);
  if (!b.empty()) msg += " and " + shape_str(b);
  throw std::invalid_argument(msg + ")");
}

void check_dtype_match(const std::string& op, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype())
    throw std::invalid_argument(op + ": dtype mismatch (" + dtype_name(a.dtype()) + " vs " +
                                dtype_name(b.dtype()) + ")");
  if (!(a.device() == b.device()))
    throw std::invalid_argument(op + ": device mismatch (" + a.device().str() + " vs " +
                                b.device().str() + ")");
}

// ------------------------------------------------------------------ allocator
namespace {
std::atomic<bool> g_poison{[] {
  const char* e = std::getenv("LKASEG_POISON");
  return e && e[0] == '1';
}()};

std::atomic<size_t> g_current{0}, g_peak{0};
std::atomic<uint64_t> g_allocations{0};
std::atomic<bool> g_cpu_allocator_closed{false};  // set at exit: the cache is gone, frees go to the system

// Freed buffers are kept by size and handed to the next request of that
// size (a training step asks for the same sizes every step), so after the
// first step no buffer comes from the system and none is page-faulted in
// again; at most kCacheBytes are kept, beyond that a freed buffer goes back.
class CpuAllocator final : public Allocator {
 public:
  ~CpuAllocator() override { close(); }
  // Frees the cached buffers (LeakSanitizer sees them otherwise); later
  // frees go straight back to the system.
  void close() {
    std::lock_guard<std::mutex> lock(m_);
    g_cpu_allocator_closed.store(true);
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    cached_ = 0;
  }
  void* allocate(size_t bytes) override {
    const size_t rounded = bytes ? (bytes + 63) / 64 * 64 : 64;
    void* p = take(rounded);
    if (!p) {
      p = std::aligned_alloc(64, rounded);
      if (!p) throw std::bad_alloc();
      g_allocations.fetch_add(1, std::memory_order_relaxed);
    }
    if (g_poison.load(std::memory_order_relaxed)) std::memset(p, 0xFF, rounded);
    const size_t now = g_current.fetch_add(bytes) + bytes;
    size_t peak = g_peak.load();
    while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
    }
    return p;
  }
  void deallocate(void* p, size_t bytes) override {
    g_current.fetch_sub(bytes);
    const size_t rounded = bytes ? (bytes + 63) / 64 * 64 : 64;
    if (!g_cpu_allocator_closed.load()) {
      std::lock_guard<std::mutex> lock(m_);
      if (!g_cpu_allocator_closed.load() && cached_ + rounded <= kCacheBytes) {
        free_[rounded].push_back(p);
        cached_ += rounded;
        return;
      }
    }
    std::free(p);
  }
  Device device() const override { return cpu_device(); }

 private:
  static constexpr size_t kCacheBytes = size_t{4} << 30;
  void* take(size_t rounded) {
    std::lock_guard<std::mutex> lock(m_);
    auto it = free_.find(rounded);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    cached_ -= rounded;
    return p;
  }
  std::mutex m_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
};
}  // namespace

// The allocator itself is never destroyed (a tensor freed during static
// destruction still finds it); its cache is freed at exit (LeakSanitizer
// reported each cached block as a leak otherwise), after which frees go
// straight to the system (g_cpu_allocator_closed).
Allocator& cpu_allocator() {
  static CpuAllocator* a = new CpuAllocator;
  static const struct Closer {
    ~Closer() { a->close(); }
  } closer;
  return *a;
}
void set_poison_allocations(bool on) { g_poison.store(on); }
MemoryStats cpu_memory_stats() { return {g_current.load(), g_peak.load(), g_allocations.load()}; }
void reset_cpu_memory_peak() { g_peak.store(g_current.load()); }
bool poison_allocations() { return g_poison.load(); }

Storage::Storage(size_t n, Allocator& a) : bytes(n), alloc(&a) { data = a.allocate(n); }
Storage::Storage(void* p, size_t n, std::shared_ptr<Storage> b) : data(p), bytes(n), base(std::move(b)) {}
Storage::~Storage() {
  if (data && alloc) alloc->deallocate(data, bytes);
}

// ------------------------------------------------------------------ tensor
static Allocator& allocator_for(Device dev) {
  if (dev.type == DeviceType::CPU) return cpu_allocator();
  return backend(dev).allocator();  // throws when no backend is registered
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device dev) { return empty_in(shape, dtype, allocator_for(dev)); }

Tensor Tensor::empty_in(const Shape& shape, DType dtype, Allocator& alloc) {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = dtype;
  impl->storage = std::make_shared<Storage>(shape_numel(shape) * dtype_size(dtype), alloc);
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device dev) {
  return full(shape, 0.0, dtype, dev);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device dev) {
  Tensor t = empty(shape, dtype, dev);
  t.fill_(value);
  return t;
}

Tensor Tensor::from_vector(const std::vector<double>& v, const Shape& shape, DType dtype) {
  if (static_cast<int64_t>(v.size()) != shape_numel(shape))
    throw std::invalid_argument("from_vector: " + std::to_string(v.size()) +
                                " values for shape " + shape_str(shape));
  Tensor t = empty(shape, dtype);
  for (size_t i = 0; i < v.size(); ++i) {
    switch (dtype) {
      case DType::F32: t.data<float>()[i] = static_cast<float>(v[i]); break;
      case DType::F64: t.data<double>()[i] = v[i]; break;
      case DType::I32: t.data<int32_t>()[i] = static_cast<int32_t>(v[i]); break;
      case DType::BF16: t.data<bf16>()[i] = bf16(static_cast<float>(v[i])); break;
      case DType::F16: t.data<f16>()[i] = f16(static_cast<float>(v[i])); break;
    }
  }
  return t;
}

Tensor Tensor::from_labels(const std::vector<int32_t>& v, const Shape& shape) {
  if (static_cast<int64_t>(v.size()) != shape_numel(shape))
    throw std::invalid_argument("from_labels: " + std::to_string(v.size()) +
                                " values for shape " + shape_str(shape));
  Tensor t = empty(shape, DType::I32);
  std::memcpy(t.raw(), v.data(), v.size() * sizeof(int32_t));
  return t;
}

static const TensorImpl& need(const std::shared_ptr<TensorImpl>& p) {
  if (!p) throw std::logic_error("use of an undefined tensor");
  return *p;
}

const Shape& Tensor::shape() const { return need(impl_).shape; }
DType Tensor::dtype() const { return need(impl_).dtype; }
Device Tensor::device() const {
  const Storage* s = need(impl_).storage.get();
  while (!s->alloc) s = s->base.get();  // a slice: the storage it lies in
  return s->alloc->device();
}
void* Tensor::raw() const { return need(impl_).storage->data; }

int64_t Tensor::size(int dim) const {
  int n = ndim();
  int d = dim < 0 ? dim + n : dim;
  if (d < 0 || d >= n)
    throw std::out_of_range("dim " + std::to_string(dim) + " out of range for shape " +
                            shape_str(shape()));
  return shape()[d];
}

template <typename T>
T* Tensor::data() const {
  if (dtype() != dtype_of<T>())
    throw std::invalid_argument(std::string("data<") + dtype_name(dtype_of<T>()) +
                                ">() on a " + dtype_name(dtype()) + " tensor");
  return static_cast<T*>(raw());
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template int32_t* Tensor::data<int32_t>() const;
template bf16* Tensor::data<bf16>() const;
template f16* Tensor::data<f16>() const;

bool Tensor::requires_grad() const { return need(impl_).requires_grad; }
Tensor& Tensor::set_requires_grad(bool on) {
  if (on && dtype() == DType::I32) throw std::invalid_argument("integer tensors cannot require grad");
  impl_->requires_grad = on;
  return *this;
}
Tensor Tensor::grad() const { return Tensor(need(impl_).grad); }
void Tensor::zero_grad() { need(impl_), impl_->grad.reset(); }
bool Tensor::is_leaf() const { return need(impl_).grad_fn == nullptr; }
const std::string& Tensor::name() const { return need(impl_).name; }
Tensor& Tensor::set_name(std::string n) {
  need(impl_), impl_->name = std::move(n);
  return *this;
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = need(impl_).storage;
  impl->shape = impl_->shape;
  impl->dtype = impl_->dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::view(const Shape& s) const {
  if (shape_numel(s) != numel()) shape_error("view", "element count differs", shape(), s);
  Tensor t = detach();
  t.impl_->shape = s;
  return t;
}

Tensor Tensor::head(int64_t rows) const {
  if (ndim() < 1 || rows < 0 || rows > size(0)) {
    Shape want = shape();
    if (!want.empty()) want[0] = rows;
    shape_error("head", "needs 0 <= rows <= size(0)", shape(), want);
  }
  Tensor t = detach();
  t.impl_->shape[0] = rows;
  return t;
}

Tensor Tensor::slice_as(int64_t offset, const Shape& s) const {
  const int64_t n = shape_numel(s);
  if (offset < 0 || offset + n > numel()) shape_error("slice_as", "the slice runs past the tensor", shape(), s);
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = s;
  impl->dtype = dtype();
  const size_t esize = dtype_size(dtype());
  impl->storage = std::make_shared<Storage>(static_cast<char*>(raw()) + offset * esize, n * esize, impl_->storage);
  return Tensor(std::move(impl));
}

Tensor Tensor::clone() const { return to(dtype()); }

Tensor Tensor::to(Device dev) const {
  Tensor t = empty(shape(), dtype(), dev);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(DType dt) const {
  Tensor t = empty(shape(), dt, device());
  t.copy_from(*this);
  return t;
}

namespace {
// Element conversion; to and from the 16-bit types through float (they
// round from float once, as the kernels do).
template <typename D, typename S>
D convert_one(S v) {
  if constexpr (std::is_same_v<D, bf16> || std::is_same_v<D, f16>)
    return D(static_cast<float>(v));
  else if constexpr (std::is_same_v<S, bf16> || std::is_same_v<S, f16>)
    return static_cast<D>(static_cast<float>(v));
  else
    return static_cast<D>(v);
}
template <typename D, typename S>
void convert(D* d, const S* s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) d[i] = convert_one<D>(s[i]);
}
template <typename D>
void convert_from(D* d, const Tensor& src) {
  switch (src.dtype()) {
    case DType::F32: convert(d, src.data<float>(), src.numel()); break;
    case DType::F64: convert(d, src.data<double>(), src.numel()); break;
    case DType::I32: convert(d, src.data<int32_t>(), src.numel()); break;
    case DType::BF16: convert(d, src.data<bf16>(), src.numel()); break;
    case DType::F16: convert(d, src.data<f16>(), src.numel()); break;
  }
}
}  // namespace

void Tensor::copy_from(const Tensor& src) const {
  if (src.numel() != numel()) shape_error("copy_from", "element count differs", src.shape(), shape());
  const bool host = device().type == DeviceType::CPU && src.device().type == DeviceType::CPU;
  if (!host) {
    if (src.dtype() == dtype()) {
      // The device side's backend moves the bytes (host<->device or on device).
      backend(device().type != DeviceType::CPU ? device() : src.device()).copy(src, *this);
      return;
    }
    copy_from(src.to(cpu_device()).to(dtype()));  // convert on the host, then move
    return;
  }
  if (src.dtype() == dtype()) {
    std::memcpy(raw(), src.raw(), nbytes());
    return;
  }
  switch (dtype()) {
    case DType::F32: convert_from(data<float>(), src); break;
    case DType::F64: convert_from(data<double>(), src); break;
    case DType::I32: convert_from(data<int32_t>(), src); break;
    case DType::BF16: convert_from(data<bf16>(), src); break;
    case DType::F16: convert_from(data<f16>(), src); break;
  }
}

void Tensor::fill_(double v) const {
  if (device().type != DeviceType::CPU) {
    backend(device()).fill(*this, v);
    return;
  }
  int64_t n = numel();
  switch (dtype()) {
    case DType::F32: std::fill_n(data<float>(), n, static_cast<float>(v)); break;
    case DType::F64: std::fill_n(data<double>(), n, v); break;
    case DType::I32: std::fill_n(data<int32_t>(), n, static_cast<int32_t>(v)); break;
    case DType::BF16: std::fill_n(data<bf16>(), n, bf16(static_cast<float>(v))); break;
    case DType::F16: std::fill_n(data<f16>(), n, f16(static_cast<float>(v))); break;
  }
}

std::vector<double> Tensor::to_vector() const {
  if (device().type != DeviceType::CPU) return to(cpu_device()).to_vector();
  std::vector<double> v(numel());
  convert_from(v.data(), *this);
  return v;
}

double Tensor::item() const {
  if (numel() != 1) shape_error("item", "tensor has more than one element", shape());
  return to_vector()[0];
}

}  // namespace lk
