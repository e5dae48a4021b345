// SIMT emulator: devices, streams and events. Every stream (and each
// device's legacy default stream) has a worker thread that runs its queue in
// order; an operation also waits for what CUDA orders it after (event waits,
// the legacy default stream's implicit barriers). Deferred policy (default):
// nothing runs until the host waits for something, then the newest runnable
// operation runs first, one at a time - so a missing dependency between
// streams, or host memory reused before an asynchronous copy read it, fails
// every time instead of once in a while. README.md "Streams and events".
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "simt/internal.h"

namespace lk::simt {

namespace detail {

struct Dep {
  std::shared_ptr<StreamState> st;
  uint64_t seq;
};

struct Op {
  uint64_t seq = 0, order = 0;
  std::vector<Dep> deps;
  StreamFn fn;  // empty for markers (event records, waits)
};

struct StreamState {
  int device = 0;
  bool legacy = false, blocking = true;
  std::deque<Op> queue;                // not started yet
  uint64_t enqueued = 0, completed = 0;  // sequence numbers: last queued, last finished
  bool quit = false;
  std::thread worker;
};

}  // namespace detail

struct StreamImpl {
  std::shared_ptr<detail::StreamState> st;
  unsigned flags = 0;
};

// One cudaEventRecord: where it sits, and when it ran (for elapsed time).
struct EventRecord {
  std::shared_ptr<detail::StreamState> st;
  uint64_t seq = 0;
  bool ran = false;
  std::chrono::steady_clock::time_point when{};
};

struct EventImpl {
  int device = 0;
  unsigned flags = 0;
  std::shared_ptr<EventRecord> rec;  // the last record; null until recorded
};

namespace detail {
namespace {

struct Scheduler {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t order = 0;     // operations queued so far, over all streams
  uint64_t released = 0;  // deferred: operations up to this order may run
  bool busy = false;      // deferred: an operation is running
  std::vector<std::shared_ptr<StreamState>> streams;  // live ones, legacy included
  std::vector<std::shared_ptr<StreamState>> legacy;   // per device, made on first use
  std::set<const StreamImpl*> handles;
  std::set<const EventImpl*> events;
};

// Never destroyed: detached legacy workers may still wait on it at exit.
Scheduler& sched() {
  static Scheduler* s = new Scheduler;
  return *s;
}

std::atomic<int> g_policy_override{-1};
std::atomic<int> g_devices{0};  // 0: LKASEG_SIMT_DEVICES, else 1
std::atomic<unsigned> g_contexts{0};
thread_local int t_device = 0;

StreamPolicy policy() {
  const int o = g_policy_override.load();
  if (o >= 0) return static_cast<StreamPolicy>(o);
  static const StreamPolicy env = env_string("LKASEG_SIMT_STREAMS") == "eager" ? StreamPolicy::Eager
                                                                                : StreamPolicy::Deferred;
  return env;
}

bool deps_met(const Op& op) {
  for (const Dep& d : op.deps)
    if (d.st->completed < d.seq) return false;
  return true;
}

// Whether the head of S may start now (g.mu held).
bool may_run(Scheduler& g, const StreamState& S, bool deferred) {
  const Op& h = S.queue.front();
  if (!deps_met(h)) return false;
  if (!deferred) return true;
  if (g.busy || h.order > g.released) return false;
  // The newest runnable head goes first.
  for (const auto& T : g.streams) {
    if (T.get() == &S || T->queue.empty()) continue;
    const Op& t = T->queue.front();
    if (t.order > h.order && t.order <= g.released && deps_met(t)) return false;
  }
  return true;
}

void worker_main(StreamState* S) {
  Scheduler& g = sched();
  std::unique_lock lk(g.mu);
  for (;;) {
    bool deferred = false;
    g.cv.wait(lk, [&] {
      if (S->queue.empty()) return S->quit;
      deferred = policy() == StreamPolicy::Deferred;
      return may_run(g, *S, deferred);
    });
    if (S->queue.empty()) return;
    Op op = std::move(S->queue.front());
    S->queue.pop_front();
    if (deferred) g.busy = true;
    lk.unlock();
    if (op.fn) op.fn();
    op.fn = nullptr;  // whatever the operation holds goes before it counts as done
    lk.lock();
    S->completed = op.seq;
    if (deferred) g.busy = false;
    g.cv.notify_all();
  }
}

std::shared_ptr<StreamState> new_stream_locked(Scheduler& g, int device, bool legacy, bool blocking) {
  auto st = std::make_shared<StreamState>();
  st->device = device;
  st->legacy = legacy;
  st->blocking = blocking;
  st->worker = std::thread(worker_main, st.get());
  g.streams.push_back(st);
  return st;
}

StreamState* legacy_locked(Scheduler& g, int device) {
  if (g.legacy.size() <= static_cast<size_t>(device)) g.legacy.resize(static_cast<size_t>(device) + 1);
  auto& L = g.legacy[static_cast<size_t>(device)];
  if (!L) {
    L = new_stream_locked(g, device, true, true);
    L->worker.detach();  // lives as long as the process
  }
  return L.get();
}

// The state behind a handle (nullptr: no such stream). The special handles
// name the current device's legacy default stream (per-thread default
// streams are not emulated: cudaStreamPerThread is the legacy stream here).
std::shared_ptr<StreamState> resolve_locked(Scheduler& g, cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) {
    legacy_locked(g, t_device);
    return g.legacy[static_cast<size_t>(t_device)];
  }
  if (!g.handles.count(s)) return nullptr;
  return s->st;
}

// Queues op on S with the implicit dependencies of the legacy default
// stream: it waits for all earlier work of the device's blocking streams,
// and their later work waits for it (g.mu held).
Ticket push_locked(Scheduler& g, const std::shared_ptr<StreamState>& S, Op op) {
  if (S->legacy) {
    for (const auto& T : g.streams)
      if (T != S && T->device == S->device && T->blocking && T->completed < T->enqueued)
        op.deps.push_back({T, T->enqueued});
  } else if (S->blocking) {
    StreamState* L = legacy_locked(g, S->device);
    if (L->completed < L->enqueued) op.deps.push_back({g.legacy[static_cast<size_t>(S->device)], L->enqueued});
  }
  op.seq = ++S->enqueued;
  op.order = ++g.order;
  const Ticket t{S, op.seq};
  S->queue.push_back(std::move(op));
  if (policy() == StreamPolicy::Eager) g.cv.notify_all();
  return t;
}

// Lets everything queued so far run and waits (g.mu held) until done().
template <class Done>
void wait_locked(Scheduler& g, std::unique_lock<std::mutex>& lk, Done done) {
  g.released = g.order;
  g.cv.notify_all();
  g.cv.wait(lk, done);
}

bool ticket_done(const Ticket& t) { return t.st->completed >= t.seq; }

bool stream_idle(const StreamState& S) { return S.completed == S.enqueued; }

}  // namespace

int device_count() {
  int n = g_devices.load();
  if (n <= 0) n = static_cast<int>(std::clamp(env_long("LKASEG_SIMT_DEVICES", 1), 1L, 16L));
  return n;
}

void touch_context() { g_contexts.fetch_or(1u << t_device); }

cudaError enqueue(cudaStream_t stream, StreamFn fn, Ticket* ticket) {
  if (capture_record(stream, fn)) return cudaSuccess;  // recorded, not run (graph.cpp)
  Scheduler& g = sched();
  std::lock_guard lk(g.mu);
  const std::shared_ptr<StreamState> S = resolve_locked(g, stream);
  if (!S) return cudaErrorInvalidResourceHandle;
  Op op;
  op.fn = std::move(fn);
  const Ticket t = push_locked(g, S, std::move(op));
  if (ticket) *ticket = t;
  return cudaSuccess;
}

cudaError stream_device(cudaStream_t stream, int* device) {
  Scheduler& g = sched();
  std::lock_guard lk(g.mu);
  const std::shared_ptr<StreamState> S = resolve_locked(g, stream);
  if (!S) return cudaErrorInvalidResourceHandle;
  *device = S->device;
  return cudaSuccess;
}

int current_device() { return t_device; }

void wait_ticket(const Ticket& t) {
  Scheduler& g = sched();
  std::unique_lock lk(g.mu);
  wait_locked(g, lk, [&] { return ticket_done(t); });
}

void wait_all_streams() {
  Scheduler& g = sched();
  std::unique_lock lk(g.mu);
  wait_locked(g, lk, [&] {
    return std::all_of(g.streams.begin(), g.streams.end(), [](const auto& S) { return stream_idle(*S); });
  });
}

bool valid_stream(cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return true;
  Scheduler& g = sched();
  std::lock_guard lk(g.mu);
  return g.handles.count(s) != 0;
}

bool valid_event(cudaEvent_t e) {
  Scheduler& g = sched();
  std::lock_guard lk(g.mu);
  return e && g.events.count(e) != 0;
}

}  // namespace detail

using namespace detail;

// ================================================================= devices

cudaError cudaGetDeviceCount(int* n) {
  if (!n) return set_error(cudaErrorInvalidValue);
  *n = device_count();
  return cudaSuccess;
}

cudaError cudaSetDevice(int device) {
  if (device < 0 || device >= device_count())
    return config_error(cudaErrorInvalidDevice,
                        strf("cudaSetDevice(%d): the emulator has %d device(s) (LKASEG_SIMT_DEVICES)", device,
                             device_count()));
  t_device = device;
  touch_context();  // since CUDA 12 cudaSetDevice initialises the device's primary context
  return cudaSuccess;
}

cudaError cudaGetDevice(int* device) {
  if (!device) return set_error(cudaErrorInvalidValue);
  *device = t_device;
  return cudaSuccess;
}

cudaError cudaDeviceSynchronize() {
  touch_context();
  if (const cudaError e = capture_forbids("cudaDeviceSynchronize", nullptr, true); e != cudaSuccess) return e;
  Scheduler& g = sched();
  {
    std::unique_lock lk(g.mu);
    const int dev = t_device;
    wait_locked(g, lk, [&] {
      return std::all_of(g.streams.begin(), g.streams.end(),
                         [&](const auto& S) { return S->device != dev || stream_idle(*S); });
    });
  }
  return synchronize("cudaDeviceSynchronize");
}

// ================================================================= streams

cudaError cudaStreamCreate(StreamImpl** stream) { return cudaStreamCreateWithFlags(stream, 0); }

cudaError cudaStreamCreateWithFlags(StreamImpl** stream, unsigned flags) {
  if (!stream) return set_error(cudaErrorInvalidValue);
  touch_context();
  Scheduler& g = sched();
  std::lock_guard lk(g.mu);
  auto* s = new StreamImpl{new_stream_locked(g, t_device, false, (flags & cudaStreamNonBlocking) == 0), flags};
  g.handles.insert(s);
  *stream = s;
  return cudaSuccess;
}

// Waits for the stream's work (the GPU would finish it after the call
// returns; waiting changes no result), then ends its worker.
cudaError cudaStreamDestroy(StreamImpl* stream) {
  Scheduler& g = sched();
  std::shared_ptr<StreamState> S;
  {
    std::unique_lock lk(g.mu);
    if (!stream || !g.handles.count(stream)) return set_error(cudaErrorInvalidResourceHandle);
    g.handles.erase(stream);
    S = stream->st;
    wait_locked(g, lk, [&] { return stream_idle(*S); });
    S->quit = true;
    g.streams.erase(std::find(g.streams.begin(), g.streams.end(), S));
    g.cv.notify_all();
  }
  S->worker.join();
  delete stream;
  return cudaSuccess;
}

cudaError cudaStreamSynchronize(StreamImpl* stream) {
  touch_context();
  if (const cudaError e = capture_forbids("cudaStreamSynchronize", stream,
                                         stream == nullptr || stream == cudaStreamLegacy);
      e != cudaSuccess)
    return e;
  Scheduler& g = sched();
  {
    std::unique_lock lk(g.mu);
    const std::shared_ptr<StreamState> S = resolve_locked(g, stream);
    if (!S) return set_error(cudaErrorInvalidResourceHandle);
    const Ticket t{S, S->enqueued};
    wait_locked(g, lk, [&] { return ticket_done(t); });
  }
  return synchronize("cudaStreamSynchronize");
}

cudaError cudaStreamQuery(StreamImpl* stream) {
  touch_context();
  if (const cudaError e = capture_forbids("cudaStreamQuery", stream, false); e != cudaSuccess) return e;
  Scheduler& g = sched();
  std::lock_guard lk(g.mu);
  const std::shared_ptr<StreamState> S = resolve_locked(g, stream);
  if (!S) return set_error(cudaErrorInvalidResourceHandle);
  g.released = g.order;  // a polling loop must see the work finish
  g.cv.notify_all();
  return stream_idle(*S) ? cudaSuccess : cudaErrorNotReady;  // not an error: the last error stays
}

cudaError cudaStreamWaitEvent(StreamImpl* stream, EventImpl* event, unsigned) {
  touch_context();
  bool captured = false;
  if (const cudaError e = capture_wait_event(stream, event, &captured); e != cudaSuccess || captured) return e;
  Scheduler& g = sched();
  std::lock_guard lk(g.mu);
  const std::shared_ptr<StreamState> S = resolve_locked(g, stream);
  if (!S || !event || !g.events.count(event)) return set_error(cudaErrorInvalidResourceHandle);
  if (!event->rec) return cudaSuccess;  // never recorded: nothing to wait for, as in CUDA
  Op op;
  op.deps.push_back({event->rec->st, event->rec->seq});
  push_locked(g, S, std::move(op));
  return cudaSuccess;
}

// ================================================================= events

cudaError cudaEventCreate(EventImpl** event) { return cudaEventCreateWithFlags(event, 0); }

cudaError cudaEventCreateWithFlags(EventImpl** event, unsigned flags) {
  if (!event) return set_error(cudaErrorInvalidValue);
  touch_context();
  Scheduler& g = sched();
  std::lock_guard lk(g.mu);
  *event = new EventImpl{t_device, flags, nullptr};
  g.events.insert(*event);
  return cudaSuccess;
}

// A record still queued completes as usual (it holds its own EventRecord).
cudaError cudaEventDestroy(EventImpl* event) {
  Scheduler& g = sched();
  {
    std::lock_guard lk(g.mu);
    if (!event || !g.events.erase(event)) return set_error(cudaErrorInvalidResourceHandle);
  }
  delete event;
  return cudaSuccess;
}

cudaError cudaEventRecord(EventImpl* event, StreamImpl* stream) {
  touch_context();
  if (valid_event(event) && capture_event_record(event, stream)) return cudaSuccess;  // a graph node
  Scheduler& g = sched();
  std::lock_guard lk(g.mu);
  const std::shared_ptr<StreamState> S = resolve_locked(g, stream);
  if (!S || !event || !g.events.count(event)) return set_error(cudaErrorInvalidResourceHandle);
  if (S->device != event->device) {
    report(strf("cudaEventRecord: the event belongs to device %d, the stream to device %d", event->device,
                S->device));
    return set_error(cudaErrorInvalidResourceHandle);
  }
  auto rec = std::make_shared<EventRecord>();
  Op op;
  op.fn = [rec] {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lk2(sched().mu);
    rec->when = now;
    rec->ran = true;
  };
  const Ticket t = push_locked(g, S, std::move(op));
  rec->st = t.st;
  rec->seq = t.seq;
  event->rec = std::move(rec);
  return cudaSuccess;
}

cudaError cudaEventSynchronize(EventImpl* event) {
  touch_context();
  Scheduler& g = sched();
  {
    std::unique_lock lk(g.mu);
    if (!event || !g.events.count(event)) return set_error(cudaErrorInvalidResourceHandle);
    if (const std::shared_ptr<EventRecord> rec = event->rec)
      wait_locked(g, lk, [&] { return rec->st->completed >= rec->seq; });
  }
  return synchronize("cudaEventSynchronize");
}

cudaError cudaEventQuery(EventImpl* event) {
  touch_context();
  Scheduler& g = sched();
  std::lock_guard lk(g.mu);
  if (!event || !g.events.count(event)) return set_error(cudaErrorInvalidResourceHandle);
  g.released = g.order;  // a polling loop must see the work finish
  g.cv.notify_all();
  return !event->rec || event->rec->st->completed >= event->rec->seq ? cudaSuccess : cudaErrorNotReady;
}

cudaError cudaEventElapsedTime(float* ms, EventImpl* start, EventImpl* end) {
  if (!ms) return set_error(cudaErrorInvalidValue);
  Scheduler& g = sched();
  std::lock_guard lk(g.mu);
  if (!start || !end || !g.events.count(start) || !g.events.count(end))
    return set_error(cudaErrorInvalidResourceHandle);
  if (!start->rec || !end->rec || (start->flags | end->flags) & cudaEventDisableTiming)
    return set_error(cudaErrorInvalidResourceHandle);
  if (!start->rec->ran || !end->rec->ran) return set_error(cudaErrorNotReady);
  *ms = std::chrono::duration<float, std::milli>(end->rec->when - start->rec->when).count();
  return cudaSuccess;
}

// ================================================================= controls

StreamPolicy stream_policy() { return policy(); }

void set_stream_policy(std::optional<StreamPolicy> p) {
  wait_all_streams();  // switch between operations, not in the middle of a queue
  g_policy_override.store(p ? static_cast<int>(*p) : -1);
  std::lock_guard lk(sched().mu);
  sched().cv.notify_all();
}

const char* stream_policy_name(StreamPolicy p) { return p == StreamPolicy::Eager ? "eager" : "deferred"; }

void set_device_count(int n) { g_devices.store(std::clamp(n, 0, 16)); }

unsigned device_contexts() { return g_contexts.load(); }
void reset_device_contexts() { g_contexts.store(0); }

}  // namespace lk::simt
