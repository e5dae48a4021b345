// Op-level profiling of a device's Backend (bench/step_profile).
//
// A Profiler registers a decorator in front of a device's Backend for its
// lifetime: every backend op (a Backend method: "conv2d_fwd",
// "batch_norm_bwd", "fill", ...) is counted with the bytes of the tensors it
// reads and writes (an output it adds into counts as read and written: the
// traffic that fusion, fewer fills and lower precision reduce), wrapped in
// an NVTX range with the op's name (so Nsight Systems shows our ops; a no-op
// without the NVTX headers or a tool), and, with a Timeline, marked at its
// start and end in the device's work order for per-op times and a
// Chrome/Perfetto trace. Phases ("forward", "loss", ...) are marked the same
// way by the caller. Not thread-safe: one host thread issues the ops.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"

namespace lk {

// Timestamps in a device's work order: mark() returns an id for "now" (on a
// GPU: an event recorded on the stream), resolve() gives the time of every
// mark since the first, in seconds, once the device got there (it may wait,
// so call it after the profiled work).
class Timeline {
 public:
  virtual ~Timeline() = default;
  virtual int64_t mark() = 0;
  virtual std::vector<double> resolve() = 0;
};
// The host clock: right for the CPU backend (synchronous).
std::unique_ptr<Timeline> make_host_timeline();

// An NVTX range (push in the constructor, pop in the destructor).
class NvtxRange {
 public:
  explicit NvtxRange(const char* name);
  ~NvtxRange();
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};
bool nvtx_available();  // built with the NVTX headers

struct OpStats {
  uint64_t calls = 0, bytes = 0, launches = 0;
  double seconds = 0;  // from the timeline; 0 without one
};

// One trace slice: [begin, end] are Timeline marks. cat: "phase", "op", "kernel".
struct TraceSlice {
  std::string name, cat;
  int64_t begin = 0, end = 0;
};

class Profiler {
 public:
  struct Options {
    bool nvtx = true;               // NVTX ranges around ops and phases
    Timeline* timeline = nullptr;   // marks phases (and ops); null: counts and bytes only
    bool mark_ops = true;           // with a timeline: marks every op (per-op times, op slices)
    std::function<uint64_t()> launches;  // kernel launches so far, for launches per op; may be empty
  };
  Profiler(Device device, Options o);  // installs the decorator in front of the device's backend
  ~Profiler();                         // restores the backend
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  void begin_phase(const std::string& name);
  void end_phase();
  // A slice recorded elsewhere (kernels seen by a launch observer).
  void add_slice(TraceSlice s) { slices_.push_back(std::move(s)); }
  Timeline* timeline() const { return opt_.timeline; }

  // Totals since construction or the last reset().
  uint64_t calls() const { return calls_; }
  uint64_t bytes() const { return bytes_; }
  const std::map<std::string, OpStats>& ops() const { return ops_; }
  const std::vector<TraceSlice>& slices() const { return slices_; }
  void reset();

  // Resolves the timeline (waits for the device): per-op seconds, slice times.
  void finish();
  // After finish(): the Chrome trace event JSON of the slices (one track per
  // category), and a per-op table (time, share, calls, launches, bytes),
  // `per` dividing calls, launches and bytes (e.g. per step).
  std::string trace_json() const;
  std::string table(double per = 1.0) const;

  // Called by the decorator around each op.
  void op_begin(const char* op);
  void op_end(const char* op, uint64_t bytes);

 private:
  class Decorator;
  Device device_;
  Options opt_;
  Backend* inner_;
  std::unique_ptr<Decorator> decorator_;
  uint64_t calls_ = 0, bytes_ = 0;
  std::map<std::string, OpStats> ops_;
  std::vector<TraceSlice> slices_;
  std::vector<std::pair<std::string, int64_t>> phase_stack_;
  int64_t op_mark_ = -1;
  uint64_t op_launches_ = 0;
  std::vector<double> times_;  // resolved marks
};

}  // namespace lk
