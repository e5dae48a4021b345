#include "data/loader.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <stdexcept>
#include <tuple>

#include "engine/ops.h"
#include "kernels/augment.h"
#include "kernels/philox.h"

namespace lk::data {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Philox block for (position, epoch, stream) under the seed.
Philox4x32 draw(uint64_t seed, int64_t epoch, uint32_t stream, int64_t position) {
  return philox4x32_10(static_cast<uint32_t>(position), static_cast<uint32_t>(static_cast<uint64_t>(position) >> 32),
                       static_cast<uint32_t>(epoch), stream, static_cast<uint32_t>(seed),
                       static_cast<uint32_t>(seed >> 32));
}
// Uniform in [0, n) from the first two words (n < 2^32: multiply-shift of a
// 32-bit word refined by the second, bias below 2^-32).
int64_t below(const Philox4x32& r, int64_t n) {
  const uint64_t x = (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
  if (n > 0xFFFFFFFFll) return static_cast<int64_t>(x % static_cast<uint64_t>(n));
  const uint64_t hi = (x >> 32) * static_cast<uint64_t>(n), lo = (x & 0xFFFFFFFFu) * static_cast<uint64_t>(n);
  return static_cast<int64_t>((hi + (lo >> 32)) >> 32);
}

constexpr uint32_t kShuffleStream = 2, kOversampleStream = 3;

}  // namespace

const char* augment_on_name(AugmentOn a) {
  switch (a) {
    case AugmentOn::Auto: return "auto";
    case AugmentOn::Cpu: return "cpu";
    case AugmentOn::Device: return "device";
  }
  return "?";
}

AugmentOn parse_augment_on(const std::string& s) {
  if (s == "auto") return AugmentOn::Auto;
  if (s == "cpu") return AugmentOn::Cpu;
  if (s == "device" || s == "gpu") return AugmentOn::Device;
  throw std::invalid_argument("augmentation place '" + s + "': expected auto, cpu or device");
}

Loader::Loader(const SliceCache& cache, std::vector<int64_t> slices, const LoaderOptions& o, int64_t start_epoch,
               int64_t start_index)
    : cache_(cache), slices_(std::move(slices)), o_(o) {
  const auto bad = [](const std::string& what) { throw std::invalid_argument("Loader: " + what); };
  if (o_.batch_size < 1) bad("batch size " + std::to_string(o_.batch_size) + " must be >= 1");
  if (o_.prefetch < 2) bad("prefetch " + std::to_string(o_.prefetch) + " must be >= 2");
  if (o_.workers < 0) bad("workers " + std::to_string(o_.workers) + " must be >= 0");
  if (!(o_.tumour_fraction >= 0.0 && o_.tumour_fraction <= 1.0))
    bad("tumour fraction " + std::to_string(o_.tumour_fraction) + " must lie in [0, 1]");
  if (start_epoch < 0 || start_index < 0) bad("start epoch and index must be >= 0");
  if (o_.ranks < 1 || o_.rank < 0 || o_.rank >= o_.ranks)
    bad("rank " + std::to_string(o_.rank) + " of " + std::to_string(o_.ranks) + " ranks");
  if (o_.ranks > 1 && !o_.drop_last) bad("a rank's share of a global batch needs drop_last");
  if (slices_.empty()) bad("no slices to load");
  for (int64_t s : slices_)
    if (s < 0 || s >= cache_.slices())
      bad("slice " + std::to_string(s) + " is outside the cache " + cache_.path() + " (" +
          std::to_string(cache_.slices()) + " slices)");
  side_in_ = cache_.side();
  if (o_.augment) {
    if (o_.out_side < 1 || o_.pad < 0 || o_.out_side > side_in_ + 2 * o_.pad)
      bad("augmentation crop " + std::to_string(o_.out_side) + " with pad " + std::to_string(o_.pad) +
          " does not fit slices of side " + std::to_string(side_in_));
    side_out_ = o_.out_side;
    on_device_ = o_.augment_on == AugmentOn::Device ||
                 (o_.augment_on == AugmentOn::Auto && o_.device.type != DeviceType::CPU);
  } else {
    side_out_ = side_in_;
  }
  const int64_t n = size(), B = o_.batch_size, G = global_batch();
  batches_per_epoch_ = o_.drop_last ? n / G : (n + B - 1) / B;
  if (batches_per_epoch_ == 0)
    bad(std::to_string(n) + " slices make no full batch of " + std::to_string(G) +
        (o_.ranks > 1 ? " (" + std::to_string(o_.ranks) + " ranks x " + std::to_string(B) + ")" : "") +
        " (drop_last)");
  if (o_.tumour_fraction > 0) {
    std::vector<int64_t> mine = slices_;
    std::sort(mine.begin(), mine.end());
    mine.erase(std::unique(mine.begin(), mine.end()), mine.end());
    const auto given = [&](const std::vector<int64_t>& all) {
      std::vector<int64_t> out;
      std::set_intersection(mine.begin(), mine.end(), all.begin(), all.end(), std::back_inserter(out));
      if (!out.empty()) pools_.push_back(std::move(out));
    };
    if (o_.oversample_by_class)
      for (uint8_t cls = 1; cls <= 3; ++cls) given(cache_.slices_with_class(cls));
    else
      given(cache_.tumour_slices());
  }

  // Ring parts: raw slices + draws for device augmentation, else finished batches.
  std::vector<std::pair<Shape, DType>> parts;
  const int64_t S = on_device_ ? side_in_ : side_out_;
  parts.push_back({{B, kAugChannels, S, S}, DType::F32});
  parts.push_back({{B, S, S}, DType::I32});
  if (on_device_) parts.push_back({{B, kAugDrawWords}, DType::I32});
  ring_ = backend(o_.device).make_upload_ring(parts, o_.prefetch);
  slot_.resize(static_cast<size_t>(o_.prefetch));

  if (start_index >= batches_per_epoch_)
    bad("start batch " + std::to_string(start_index) + " of " + std::to_string(batches_per_epoch_) + " per epoch");
  next_produce_ = next_deliver_ = start_epoch * batches_per_epoch_ + start_index;
  int w = o_.workers;
  if (w == 0) {
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    w = on_device_ || !o_.augment ? 1 : std::clamp(hw / 2, 1, 4);
  }
  w = std::min(w, o_.prefetch);  // more could never run at once
  for (int i = 0; i < w; ++i) threads_.emplace_back([this] { worker_main(); });
}

Loader::~Loader() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_work_.notify_all();
  for (std::thread& t : threads_) t.join();
  // ring_ goes next: it waits for its copies in flight.
}

std::vector<int64_t> Loader::epoch_order(int64_t epoch) const { return *shared_order(epoch); }

// The epoch's order, drawn once and shared: every batch reads its few
// entries without copying the whole list.
std::shared_ptr<const std::vector<int64_t>> Loader::shared_order(int64_t epoch) const {
  {
    std::lock_guard lk(order_mu_);
    for (const auto& [e, order] : order_cache_)
      if (e == epoch) return order;
  }
  auto made = std::make_shared<std::vector<int64_t>>(slices_);
  std::vector<int64_t>& order = *made;
  if (o_.shuffle)
    for (int64_t i = static_cast<int64_t>(order.size()) - 1; i > 0; --i)
      std::swap(order[static_cast<size_t>(i)],
                order[static_cast<size_t>(below(draw(o_.seed, epoch, kShuffleStream, i), i + 1))]);
  if (o_.tumour_fraction > 0 && !pools_.empty())
    for (size_t p = 0; p < order.size(); ++p) {
      const Philox4x32 r = draw(o_.seed, epoch, kOversampleStream, static_cast<int64_t>(p));
      if (static_cast<double>(r.v[2]) * (1.0 / 4294967296.0) < o_.tumour_fraction) {
        // The pool from the fourth word (always 0 with one pool), the slice from the first two.
        const size_t k = static_cast<size_t>((static_cast<uint64_t>(r.v[3]) * pools_.size()) >> 32);
        const std::vector<int64_t>& pool = pools_[k];
        order[p] = pool[static_cast<size_t>(below(r, static_cast<int64_t>(pool.size())))];
      }
    }
  std::lock_guard lk(order_mu_);
  order_cache_.emplace_back(epoch, made);
  if (order_cache_.size() > 3) order_cache_.erase(order_cache_.begin());
  return made;
}

int64_t Loader::rows_of(int64_t index) const {
  return std::min(o_.batch_size, size() - index * o_.batch_size);
}

std::vector<int64_t> Loader::batch_slices(int64_t epoch, int64_t index) const {
  if (epoch < 0 || index < 0 || index >= batches_per_epoch_)
    throw std::out_of_range("Loader::batch_slices: batch " + std::to_string(index) + " of epoch " +
                            std::to_string(epoch) + " (" + std::to_string(batches_per_epoch_) + " per epoch)");
  const std::shared_ptr<const std::vector<int64_t>> order = shared_order(epoch);
  const auto first = order->begin() + first_position(index);
  return {first, first + rows_of(index)};
}

void Loader::worker_main() {
  for (;;) {
    int64_t g;
    {
      std::unique_lock lk(mu_);
      cv_work_.wait(lk, [&] { return stop_ || next_produce_ < next_deliver_ + o_.prefetch; });
      if (stop_) return;
      g = next_produce_++;
    }
    const int slot = static_cast<int>(g % o_.prefetch);
    const auto t0 = Clock::now();
    std::exception_ptr err;
    try {
      produce(g, slot);
    } catch (...) {
      err = std::current_exception();
    }
    const double dt = seconds_since(t0);
    {
      std::lock_guard lk(mu_);
      SlotState& s = slot_[static_cast<size_t>(slot)];
      s.batch = g;
      s.ready = true;
      s.error = err;
      s.rows = rows_of(g % batches_per_epoch_);
      stats_.produce_seconds += dt;
    }
    cv_ready_.notify_all();
  }
}

void Loader::produce(int64_t g, int slot) {
  const int64_t epoch = g / batches_per_epoch_, index = g % batches_per_epoch_;
  const std::vector<int64_t> slices = batch_slices(epoch, index);
  const int64_t rows = static_cast<int64_t>(slices.size());
  const int64_t Si = side_in_, So = on_device_ ? side_in_ : side_out_;
  const int64_t px_in = Si * Si, px_out = So * So;

  ring_->wait_writable(slot);  // the slot's previous upload has left the host buffers
  float* img = ring_->host(slot, 0).data<float>();
  int32_t* lab = ring_->host(slot, 1).data<int32_t>();
  std::vector<int32_t> lab_in(o_.augment && !on_device_ ? static_cast<size_t>(px_in) : 0);
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t s = slices[static_cast<size_t>(i)];
    const float* src_img = cache_.images(s);
    const uint8_t* src_lab = cache_.labels(s);
    const int64_t position = first_position(index) + i;
    if (o_.augment && !on_device_) {
      std::copy(src_lab, src_lab + px_in, lab_in.begin());
      augment_cpu(draw_augmentation(o_.seed, static_cast<uint32_t>(epoch), position), src_img, lab_in.data(), Si,
                  img + i * kAugChannels * px_out, lab + i * px_out, So, o_.pad);
    } else {
      std::memcpy(img + i * kAugChannels * px_in, src_img, static_cast<size_t>(kAugChannels * px_in) * sizeof(float));
      std::copy(src_lab, src_lab + px_in, lab + i * px_in);
    }
    if (on_device_) {
      const AugmentDraw d = draw_augmentation(o_.seed, static_cast<uint32_t>(epoch), position);
      pack_augment_draws(&d, 1, ring_->host(slot, 2).data<int32_t>() + i * kAugDrawWords);
    }
  }
  ring_->upload(slot, rows);
}

Batch Loader::next() {
  const int64_t g = next_deliver_;
  const int slot = static_cast<int>(g % o_.prefetch);
  const auto t0 = Clock::now();
  int64_t rows;
  {
    std::unique_lock lk(mu_);
    SlotState& s = slot_[static_cast<size_t>(slot)];
    cv_ready_.wait(lk, [&] { return s.ready && s.batch == g; });
    const double waited = seconds_since(t0);
    stats_.wait_seconds += waited;
    stats_.last_wait_seconds = waited;
    if (s.error) {
      // The batch stays failed: the caller may retry and get the same error.
      std::rethrow_exception(s.error);
    }
    rows = s.rows;
  }

  Batch b;
  b.epoch = g / batches_per_epoch_;
  b.index = g % batches_per_epoch_;
  b.slices = batch_slices(b.epoch, b.index);
  const std::vector<Tensor> parts = ring_->acquire(slot, rows);
  try {
    if (on_device_) {
      std::tie(b.images, b.labels) = augment_batch(parts[2], parts[0], parts[1], side_out_, o_.pad);
    } else {
      Backend& be = backend(o_.device);
      b.images = Tensor::empty(parts[0].shape(), DType::F32, o_.device);
      b.labels = Tensor::empty(parts[1].shape(), DType::I32, o_.device);
      be.copy(parts[0], b.images);
      be.copy(parts[1], b.labels);
    }
  } catch (...) {
    ring_->release(slot);
    throw;
  }
  ring_->release(slot);

  {
    std::lock_guard lk(mu_);
    slot_[static_cast<size_t>(slot)].ready = false;
    ++next_deliver_;
    ++stats_.batches;
  }
  cv_work_.notify_all();
  return b;
}

LoaderStats Loader::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

void Loader::reset_stats() {
  std::lock_guard lk(mu_);
  stats_ = {};
}

}  // namespace lk::data
