// The training data loader: batches of slice-cache slices, augmented and on
// the training device, assembled in the background while the device computes.
//
//   worker threads                     upload ring (Backend::make_upload_ring)     next()
//   batch g: slices, draws,  ---->  slot g % slots: host tensors (pinned on   ---> acquire on the compute
//   CPU augmentation or a             CUDA) -> copy stream -> device tensors        stream, GPU augmentation
//   plain gather                                                                    or a copy into fresh
//                                                                                   tensors, release
//
// Order and content: epoch e lists the slices in an order drawn from
// (seed, e) (Fisher-Yates over Philox-4x32-10, stream 2), or as given
// without shuffling. With tumour oversampling each position of the list is,
// with probability tumour_fraction (Philox stream 3, keyed by position),
// replaced by a slice drawn uniformly from those of the given slices whose
// labels hold tumour; or, by class (oversample_by_class, nnU-Net's
// class-balanced foreground sampling for slices), a training class (ET, ED,
// NCR) drawn uniformly among those some given slice holds, then a slice
// holding it: a class on few slices (a small necrosis) is shown as often as
// edema, which most tumour slices hold. Batch i of epoch e is positions [i B, (i + 1) B) of the
// list. The augmentation of position p of epoch e is
// draw_augmentation(seed, e, p) (kernels/augment.h): keyed by the position,
// so an oversampled slice shown twice gets two different augmentations.
// Everything is a function of (seed, epoch, batch index): the worker count,
// prefetch depth and timing change nothing, and a run resumed at an epoch
// sees the batches it would have seen.
//
// Data-parallel ranks (LoaderOptions::rank of ranks, train/ with
// engine/dist.h): every rank draws the same epoch list; the global batch i
// is positions [i G, (i + 1) G), G = ranks * batch_size, and rank r takes
// its rows [r B, (r + 1) B) - with their augmentation, keyed by the global
// position. So within an epoch no position goes to two ranks, the ranks'
// shares of batch i together are exactly what one process at batch G draws,
// and the epoch leaves out only the n mod G positions one process would.
//
// Augmentation on the CPU runs in the workers (augment_cpu per slice);
// on the device it is one fused kernel per batch (lk::augment_batch) on the
// compute stream, after the raw slices' upload. Either way next() returns
// fresh tensors the caller owns: the ring slot is free again as soon as the
// compute stream has read it.
//
// Threads: next(), stats() and the destructor are for one consumer thread.
// Worker errors (a bad slice, an allocation) are rethrown by next() for the
// batch that failed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/backend.h"
#include "engine/tensor.h"
#include "data/batch.h"
#include "data/slice_cache.h"
#include "kernels/augment.h"

namespace lk::data {

enum class AugmentOn {
  Auto,    // the device when it is a GPU, else the CPU workers
  Cpu,     // in the worker threads
  Device,  // one kernel per batch on the training device (a CPU device runs augment_cpu over OpenMP)
};
const char* augment_on_name(AugmentOn a);
AugmentOn parse_augment_on(const std::string& s);  // "auto", "cpu", "device"; throws otherwise

struct LoaderOptions {
  int64_t batch_size = 8;
  uint64_t seed = 42;
  bool shuffle = true;
  bool drop_last = true;   // false: a last, smaller batch (validation)
  bool augment = true;     // false: the cached slices as they are (side S)
  AugmentOn augment_on = AugmentOn::Auto;
  double tumour_fraction = 0.0;  // oversampling of tumour slices, in [0, 1]
  bool oversample_by_class = false;  // an oversampled position draws a class first (above)
  int workers = 0;               // 0: automatic (see Loader::workers())
  int prefetch = 3;              // batches in flight, >= 2 (double buffering and more)
  Device device = cpu_device();
  int64_t out_side = kAugOut, pad = kAugPad;  // the augmentation crop
  // This loader's share of a data-parallel global batch (see above):
  // batch_size rows of each global batch of ranks * batch_size; needs drop_last.
  int rank = 0, ranks = 1;
};

struct LoaderStats {
  int64_t batches = 0;             // delivered by next()
  double wait_seconds = 0;         // next() blocked waiting for a batch, in all
  double last_wait_seconds = 0;    // ... for the last batch
  double produce_seconds = 0;      // worker time spent assembling batches, summed over workers
  double mean_wait_ms() const { return batches ? 1e3 * wait_seconds / static_cast<double>(batches) : 0.0; }
};

class Loader {
 public:
  // `slices`: the cache slices to draw from (e.g. a fold's training cases,
  // SliceCache::slices_of). The cache must outlive the loader. Throws
  // std::invalid_argument for bad options, an out-of-range slice, or fewer
  // slices than one batch with drop_last.
  // The first batch is batch `start_index` of `start_epoch` (resuming).
  Loader(const SliceCache& cache, std::vector<int64_t> slices, const LoaderOptions& o, int64_t start_epoch = 0,
         int64_t start_index = 0);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  int64_t size() const { return static_cast<int64_t>(slices_.size()); }
  int workers() const { return static_cast<int>(threads_.size()); }
  bool augments_on_device() const { return on_device_; }
  const LoaderOptions& options() const { return o_; }

  // The next batch: the start batch, then on through the epochs.
  Batch next();
  // What batch `index` of `epoch` holds (no work queued): this rank's share.
  std::vector<int64_t> batch_slices(int64_t epoch, int64_t index) const;
  // The epoch's position list (the order, with oversampling applied).
  std::vector<int64_t> epoch_order(int64_t epoch) const;

  LoaderStats stats() const;
  void reset_stats();

 private:
  struct SlotState {
    int64_t batch = -1;  // the global batch the slot holds when ready
    bool ready = false;
    std::exception_ptr error;
    int64_t rows = 0;
  };
  void worker_main();
  void produce(int64_t g, int slot);
  int64_t rows_of(int64_t index) const;
  int64_t global_batch() const { return o_.batch_size * o_.ranks; }
  int64_t first_position(int64_t index) const { return index * global_batch() + o_.rank * o_.batch_size; }
  std::shared_ptr<const std::vector<int64_t>> shared_order(int64_t epoch) const;

  const SliceCache& cache_;
  std::vector<int64_t> slices_;
  std::vector<std::vector<int64_t>> pools_;  // oversampling: one pool (tumour) or one per class held
  LoaderOptions o_;
  bool on_device_ = false;
  int64_t side_in_ = 0, side_out_ = 0;
  int64_t batches_per_epoch_ = 0;
  std::unique_ptr<UploadRing> ring_;

  mutable std::mutex mu_;
  std::condition_variable cv_work_, cv_ready_;
  bool stop_ = false;
  int64_t next_produce_ = 0;  // global batch numbers: epoch * batches_per_epoch + index
  int64_t next_deliver_ = 0;
  std::vector<SlotState> slot_;
  LoaderStats stats_;
  mutable std::mutex order_mu_;
  mutable std::vector<std::pair<int64_t, std::shared_ptr<const std::vector<int64_t>>>> order_cache_;  // recent epochs

  std::vector<std::thread> threads_;
};

}  // namespace lk::data
