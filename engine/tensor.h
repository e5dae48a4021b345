// Tensor, storage and allocator: the data model of the engine.
//
// A Tensor is a shared handle to a TensorImpl: a contiguous row-major buffer
// (NCHW for images) of one dtype on one device, plus the autograd fields
// (requires_grad, the accumulated gradient, the node that produced it).
// Storage is owned through an Allocator, so a CUDA caching allocator or a
// pinned host allocator plugs in without touching the ops.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/half.h"

namespace lk {

// F32 trains (and holds parameters, statistics, losses and optimiser state in
// every precision); BF16 / F16 store activations under mixed precision
// (kernels/half.h: storage only, arithmetic in float); F64 for gradient
// checks; I32 for labels and pooling indices.
enum class DType : uint8_t { F32, F64, I32, BF16, F16 };
size_t dtype_size(DType t);
const char* dtype_name(DType t);
bool is_float(DType t);      // F32, F64, BF16, F16
bool is_reduced(DType t);    // BF16, F16
template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<bf16>() { return DType::BF16; }
template <> constexpr DType dtype_of<f16>() { return DType::F16; }

enum class DeviceType : uint8_t { CPU, CUDA };
struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  std::string str() const;
  bool operator==(const Device&) const = default;
  // "cpu", "cuda", "cuda:N"; throws on anything else.
  static Device parse(const std::string& s);
};
inline Device cpu_device() { return {}; }

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

// Where the bytes of a tensor come from. Implementations must be thread-safe.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p, size_t bytes) = 0;
  virtual Device device() const = 0;
};
// 64-byte aligned host memory. With poisoning on (tests, LKASEG_POISON=1) every
// new buffer is filled with 0xFF bytes (NaN for floats, -1 for ints), so an op
// that leaves an output element unwritten is caught by the comparisons.
Allocator& cpu_allocator();
void set_poison_allocations(bool on);
bool poison_allocations();

// Bytes held by live host tensors now, the peak since the last reset, and the
// number of host buffers allocated from the system since the program started
// (the CPU allocator keeps freed buffers for the next request of the same
// size, so a steady training step allocates none).
struct MemoryStats {
  size_t current = 0, peak = 0;
  uint64_t allocations = 0;
};
MemoryStats cpu_memory_stats();
void reset_cpu_memory_peak();

struct Storage {
  Storage(size_t bytes, Allocator& alloc);
  // `bytes` at `data` inside `base` (kept alive; nothing is freed here).
  Storage(void* data, size_t bytes, std::shared_ptr<Storage> base);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data = nullptr;
  size_t bytes = 0;
  Allocator* alloc = nullptr;         // null for a slice of another storage
  std::shared_ptr<Storage> base;      // the storage a slice lies in
};

struct Node;
class Tensor;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  DType dtype = DType::F32;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;   // accumulated gradient (same shape/dtype)
  std::shared_ptr<TensorImpl> grad_home;  // where grad_buffer puts it (engine/autograd.h); may be null
  std::shared_ptr<Node> grad_fn;      // producer, null for leaves
  std::string name;                   // parameter name (checkpoint key)
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Uninitialised (poisoned when poisoning is on).
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device dev = cpu_device());
  // Uninitialised, from a given allocator (e.g. pinned host memory).
  static Tensor empty_in(const Shape& shape, DType dtype, Allocator& alloc);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device dev = cpu_device());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32, Device dev = cpu_device());
  static Tensor from_vector(const std::vector<double>& v, const Shape& shape,
                            DType dtype = DType::F32);
  static Tensor from_labels(const std::vector<int32_t>& v, const Shape& shape);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int ndim() const { return static_cast<int>(shape().size()); }
  int64_t size(int dim) const;  // negative dims count from the end
  int64_t numel() const { return shape_numel(shape()); }
  DType dtype() const;
  Device device() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }

  void* raw() const;
  template <typename T> T* data() const;  // checks the dtype

  // Autograd.
  bool requires_grad() const;
  Tensor& set_requires_grad(bool on);
  Tensor grad() const;                // undefined until a backward reached it
  void zero_grad();                   // drops the gradient
  bool is_leaf() const;
  const std::string& name() const;
  Tensor& set_name(std::string n);

  Tensor detach() const;              // shares storage, no history
  Tensor clone() const;               // copies data, no history
  Tensor to(DType dtype) const;       // copies data, no history
  Tensor to(Device device) const;     // copies data to another device, no history
  Tensor view(const Shape& shape) const;  // shares storage, no history
  Tensor head(int64_t rows) const;        // the first rows of dim 0; shares storage, no history
  // numel(shape) elements of this (contiguous) tensor from element `offset`,
  // as a tensor of `shape`; shares storage, no history.
  Tensor slice_as(int64_t offset, const Shape& shape) const;
  void fill_(double value) const;  // writes the data, not the handle
  void copy_from(const Tensor& src) const;  // same element count, any dtype

  std::vector<double> to_vector() const;
  double item() const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // Gradient outputs of backward methods (engine/backend.h): a handle marked
  // first_write stands for a buffer that holds nothing valid yet, so the
  // method overwrites it (beta = 0) instead of adding into it, and must write
  // every element. The mark belongs to this handle (and its copies), not to
  // the storage: grad_buffer hands out one marked handle per new gradient.
  bool first_write() const { return first_write_; }
  Tensor as_first_write() const {
    Tensor t(*this);
    t.first_write_ = true;
    return t;
  }

 private:
  std::shared_ptr<TensorImpl> impl_;
  bool first_write_ = false;
};

// Throws std::invalid_argument "<op>: <what> (shapes [..] and [..])".
[[noreturn]] void shape_error(const std::string& op, const std::string& what,
                              const Shape& a, const Shape& b = {});
void check_dtype_match(const std::string& op, const Tensor& a, const Tensor& b);

}  // namespace lk
