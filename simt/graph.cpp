// SIMT emulator: stream capture and graphs (README.md "Graphs").
//
// While a stream captures, enqueue() hands the operations queued on it here
// (kernel launches, asynchronous copies and memsets: the closures the stream
// would have run) and cudaEventRecord hands its records; nothing runs. The
// graph keeps them in order (a captured stream is a chain: one node after the
// other); cudaGraphLaunch queues them, in that order, on its stream, each
// event node as a fresh record. A launch's closure runs again on each replay
// (execute() starts every run afresh), so N replays do exactly what N eager
// queuings of the same work would.
//
// Calls a capture cannot hold fail as CUDA's do: with a capture in progress
// that concerns the calling thread (its own, not relaxed, or any other
// thread's in global mode; the thread's own mode from
// cudaThreadExchangeStreamCaptureMode), cudaMalloc, cudaFree, pinned-memory
// calls, device synchronisation and blocking copies return
// cudaErrorStreamCaptureUnsupported; so do a synchronisation or query of the
// capturing stream itself, a pageable-memory copy, cudaMallocAsync/FreeAsync
// on it (graph memory nodes are not emulated) and a graph launch into it. Each
// invalidates the capture: its cudaStreamEndCapture returns
// cudaErrorStreamCaptureInvalidated and no graph. Waiting on an event recorded
// outside the capture is cudaErrorStreamCaptureIsolation (also invalidating).
#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "simt/internal.h"

namespace lk::simt {

struct GraphNode {
  detail::StreamFn fn;          // a launch, copy or memset
  cudaEvent_t event = nullptr;  // or an event record
};

struct GraphImpl {
  std::vector<GraphNode> nodes;
};

struct GraphExecImpl {
  std::vector<GraphNode> nodes;
};

namespace detail {
namespace {

struct Capture {
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::thread::id thread;
  std::vector<GraphNode> nodes;
  std::set<cudaEvent_t> events;  // recorded in this capture
  cudaError error = cudaSuccess;  // the first call that invalidated it
  std::string why;
};

std::mutex g_mu;
std::map<cudaStream_t, Capture> g_captures;
std::set<const GraphImpl*> g_graphs;
std::set<const GraphExecImpl*> g_execs;
thread_local cudaStreamCaptureMode t_mode = cudaStreamCaptureModeGlobal;

// Marks c invalid (first reason kept) and reports it (g_mu held).
void invalidate_locked(cudaStream_t s, Capture& c, cudaError e, const std::string& why) {
  if (c.error != cudaSuccess) return;
  c.error = e;
  c.why = why;
  report(strf("stream capture on stream %p invalidated: %s", static_cast<void*>(s), why.c_str()));
}

}  // namespace

bool capture_record(cudaStream_t stream, StreamFn& fn) {
  std::lock_guard lk(g_mu);
  auto it = g_captures.find(stream);
  if (it == g_captures.end()) return false;
  if (it->second.error == cudaSuccess) it->second.nodes.push_back(GraphNode{std::move(fn), nullptr});
  return true;
}

bool stream_capturing(cudaStream_t stream) {
  std::lock_guard lk(g_mu);
  return g_captures.count(stream) > 0;
}

cudaError capture_forbids(const char* call, cudaStream_t stream, bool unsafe) {
  std::lock_guard lk(g_mu);
  if (g_captures.empty()) return cudaSuccess;
  const std::thread::id me = std::this_thread::get_id();
  bool hit = false;
  for (auto& [s, c] : g_captures) {
    const bool own = s == stream;
    const bool concerned = unsafe && t_mode != cudaStreamCaptureModeRelaxed &&
                           ((c.thread == me && c.mode != cudaStreamCaptureModeRelaxed) ||
                            (c.thread != me && c.mode == cudaStreamCaptureModeGlobal));
    if (!own && !concerned) continue;
    hit = true;
    invalidate_locked(s, c, cudaErrorStreamCaptureUnsupported,
                      std::string(call) + (own ? " on the capturing stream" : " during a capture") +
                          " is not permitted");
  }
  return hit ? set_error(cudaErrorStreamCaptureUnsupported) : cudaSuccess;
}

bool capture_event_record(cudaEvent_t event, cudaStream_t stream) {
  std::lock_guard lk(g_mu);
  auto it = g_captures.find(stream);
  if (it == g_captures.end()) return false;
  if (it->second.error == cudaSuccess) {
    it->second.nodes.push_back(GraphNode{{}, event});
    it->second.events.insert(event);
  }
  return true;
}

cudaError capture_wait_event(cudaStream_t stream, cudaEvent_t event, bool* captured) {
  std::lock_guard lk(g_mu);
  auto it = g_captures.find(stream);
  *captured = it != g_captures.end();
  if (!*captured || it->second.events.count(event)) return cudaSuccess;  // same chain: already ordered
  invalidate_locked(stream, it->second, cudaErrorStreamCaptureIsolation,
                    "cudaStreamWaitEvent on an event recorded outside the capture");
  return set_error(cudaErrorStreamCaptureIsolation);
}

}  // namespace detail

using namespace detail;

cudaError cudaStreamBeginCapture(StreamImpl* stream, cudaStreamCaptureMode mode) {
  if (stream == nullptr || stream == cudaStreamLegacy || stream == cudaStreamPerThread)
    return config_error(cudaErrorStreamCaptureUnsupported,
                        "cudaStreamBeginCapture: the legacy default stream cannot be captured");
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
  if (mode < cudaStreamCaptureModeGlobal || mode > cudaStreamCaptureModeRelaxed) return set_error(cudaErrorInvalidValue);
  std::lock_guard lk(g_mu);
  if (g_captures.count(stream))
    return config_error(cudaErrorIllegalState, "cudaStreamBeginCapture: the stream is already capturing");
  Capture& c = g_captures[stream];
  c.mode = mode;
  c.thread = std::this_thread::get_id();
  return cudaSuccess;
}

cudaError cudaStreamEndCapture(StreamImpl* stream, GraphImpl** graph) {
  if (!graph) return set_error(cudaErrorInvalidValue);
  *graph = nullptr;
  std::lock_guard lk(g_mu);
  auto it = g_captures.find(stream);
  if (it == g_captures.end())
    return config_error(cudaErrorIllegalState, "cudaStreamEndCapture: the stream is not capturing");
  Capture& c = it->second;
  if (c.mode != cudaStreamCaptureModeRelaxed && c.thread != std::this_thread::get_id()) {
    invalidate_locked(stream, c, cudaErrorStreamCaptureWrongThread, "cudaStreamEndCapture from another thread");
    g_captures.erase(it);
    return set_error(cudaErrorStreamCaptureWrongThread);
  }
  const cudaError e = c.error;
  if (e == cudaSuccess) {
    *graph = new GraphImpl{std::move(c.nodes)};
    g_graphs.insert(*graph);
  }
  g_captures.erase(it);
  return e == cudaSuccess ? cudaSuccess : set_error(cudaErrorStreamCaptureInvalidated);
}

cudaError cudaStreamIsCapturing(StreamImpl* stream, cudaStreamCaptureStatus* status) {
  if (!status) return set_error(cudaErrorInvalidValue);
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
  std::lock_guard lk(g_mu);
  auto it = g_captures.find(stream);
  *status = it == g_captures.end()           ? cudaStreamCaptureStatusNone
            : it->second.error == cudaSuccess ? cudaStreamCaptureStatusActive
                                              : cudaStreamCaptureStatusInvalidated;
  return cudaSuccess;
}

cudaError cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode* mode) {
  if (!mode || *mode < cudaStreamCaptureModeGlobal || *mode > cudaStreamCaptureModeRelaxed)
    return set_error(cudaErrorInvalidValue);
  std::swap(*mode, t_mode);
  return cudaSuccess;
}

cudaError cudaGraphInstantiate(GraphExecImpl** exec, GraphImpl* graph, unsigned long long) {
  if (!exec) return set_error(cudaErrorInvalidValue);
  std::lock_guard lk(g_mu);
  if (!g_graphs.count(graph)) return set_error(cudaErrorInvalidValue);
  *exec = new GraphExecImpl{graph->nodes};
  g_execs.insert(*exec);
  return cudaSuccess;
}

cudaError cudaGraphLaunch(GraphExecImpl* exec, StreamImpl* stream) {
  touch_context();
  std::vector<GraphNode> nodes;
  {
    std::lock_guard lk(g_mu);
    if (!g_execs.count(exec)) return set_error(cudaErrorInvalidResourceHandle);
    nodes = exec->nodes;
  }
  if (const cudaError e = capture_forbids("cudaGraphLaunch", stream, false); e != cudaSuccess) return e;
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle);
  for (GraphNode& n : nodes) {
    const cudaError e = n.event ? lk::simt::cudaEventRecord(n.event, stream) : enqueue(stream, std::move(n.fn));
    if (e != cudaSuccess) {
      report(strf("cudaGraphLaunch: a node could not be queued (%s)", cudaGetErrorName(e)));
      return set_error(e);
    }
  }
  return cudaSuccess;
}

cudaError cudaGraphDestroy(GraphImpl* graph) {
  std::lock_guard lk(g_mu);
  if (!g_graphs.erase(graph)) return set_error(cudaErrorInvalidValue);
  delete graph;
  return cudaSuccess;
}

// Queued replays hold their own copies of the closures.
cudaError cudaGraphExecDestroy(GraphExecImpl* exec) {
  std::lock_guard lk(g_mu);
  if (!g_execs.erase(exec)) return set_error(cudaErrorInvalidValue);
  delete exec;
  return cudaSuccess;
}

size_t graph_nodes(const GraphImpl* graph) {
  std::lock_guard lk(g_mu);
  return g_graphs.count(graph) ? graph->nodes.size() : 0;
}

}  // namespace lk::simt
