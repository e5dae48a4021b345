// Counters of the runtime-API boundary (api_counts.h, runtime.h).
#include <array>
#include <atomic>

#include "simt/runtime.h"

namespace lk::simt {
namespace {
std::array<std::atomic<uint64_t>, static_cast<size_t>(detail::Counted::kCount)> g_counts{};
uint64_t get(detail::Counted c) { return g_counts[static_cast<size_t>(c)].load(std::memory_order_relaxed); }
}  // namespace

void detail::count(Counted what) { g_counts[static_cast<size_t>(what)].fetch_add(1, std::memory_order_relaxed); }

ApiCounts api_counts() {
  using detail::Counted;
  ApiCounts c;
  c.launches = stats().launches;
  c.syncs = get(Counted::Sync);
  c.mallocs = get(Counted::Malloc);
  c.frees = get(Counted::Free);
  c.copies = get(Counted::Copy);
  c.memsets = get(Counted::Memset);
  c.event_records = get(Counted::EventRecord);
  c.stream_waits = get(Counted::StreamWait);
  c.graph_launches = get(Counted::GraphLaunch);
  return c;
}

}  // namespace lk::simt
