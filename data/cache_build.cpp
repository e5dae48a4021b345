// Building the slice cache of a BraTS folder (data/slice_cache.h:
// build_slice_cache, ensure_slice_cache, format_cache_summary): discovery,
// the preprocessing pool, the writer, the summary. The file format, the
// writer and the reader are in slice_cache.cpp.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>
#include <stdexcept>

#include "data/preprocess_pool.h"
#include "data/slice_cache.h"
#include "util/progress.h"

namespace lk::data {

namespace {

std::string mb(uint64_t bytes) {
  char b[64];
  std::snprintf(b, sizeof b, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return b;
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// Discovery restricted to b.only (when given): every named case must exist.
static BratsDataset discover_selected(const std::string& cases_root, const BratsOptions& bo, const CacheBuildOptions& b) {
  BratsDataset ds = discover_brats_cases(cases_root, bo);
  if (b.only.empty()) return ds;
  const std::set<std::string> want(b.only.begin(), b.only.end());
  std::set<std::string> seen;
  std::erase_if(ds.cases, [&](const BratsCase& c) { return want.count(c.id) == 0; });
  std::erase_if(ds.skipped, [&](const SkippedCase& c) { return want.count(c.id) == 0; });
  for (const BratsCase& c : ds.cases) seen.insert(c.id);
  for (const SkippedCase& c : ds.skipped) seen.insert(c.id);
  for (const std::string& id : want)
    if (seen.count(id) == 0) throw std::invalid_argument(cases_root + ": selected case " + id + " is not there");
  return ds;
}

CacheBuildSummary build_slice_cache(const std::string& path, const std::string& cases_root,
                                    const PreprocessOptions& o, const CacheBuildOptions& b) {
  const auto t0 = std::chrono::steady_clock::now();
  CacheBuildSummary sum;
  sum.path = path;
  sum.built = true;
  std::vector<std::string> discovery_warnings;
  BratsOptions bo;
  bo.skip_bad = b.skip_bad;
  bo.warn = [&](const std::string& w) { discovery_warnings.push_back(w); };
  const BratsDataset ds = discover_selected(cases_root, bo, b);
  std::vector<SkippedCase> skipped = ds.skipped;

  Progress progress("preprocess", static_cast<int64_t>(ds.cases.size()), "cases", b.progress);
  // Warnings print with the progress lines (or go to the log without them).
  auto warn = [&](const std::string& w) {
    if (b.progress) progress.note("warning: " + w);
    else if (b.log) b.log("warning: " + w);
  };
  for (const std::string& w : discovery_warnings) warn(w);

  SliceCacheWriter writer(path, o);
  PoolOptions po;
  po.threads = b.threads;
  po.window = b.window;
  po.skip_bad = b.skip_bad;
  const PoolStats ps = preprocess_in_order(
      ds.cases, o, po,
      [&](size_t, PreprocessedCase&& c) {
        writer.add(c);
        progress.advance();
      },
      [&](size_t i, const std::string& reason) {
        skipped.push_back({ds.cases[i].id, reason});
        warn("skipping case " + ds.cases[i].id + ": " + reason);
        progress.advance();
      });
  if (writer.cases() == 0)
    throw BratsError(cases_root, "no usable case: all " + std::to_string(skipped.size()) + " were skipped");
  std::stable_sort(skipped.begin(), skipped.end(), [](const SkippedCase& a, const SkippedCase& c) { return a.id < c.id; });
  for (const SkippedCase& k : skipped) writer.add_skipped(k);
  sum.bytes = writer.finish();
  progress.finish();
  sum.cases = writer.cases();
  sum.slices = writer.slices();
  sum.skipped = std::move(skipped);
  sum.threads = ps.threads;
  sum.window = ps.window;
  sum.max_held = ps.max_held;
  sum.seconds = since(t0);
  return sum;
}

SliceCache ensure_slice_cache(const std::string& path, const std::string& cases_root, const PreprocessOptions& o,
                              const CacheBuildOptions& b, CacheBuildSummary* summary) {
  const auto t0 = std::chrono::steady_clock::now();
  std::string reason = "no cache yet";
  if (b.force) {
    reason = "rebuild forced";
  } else if (std::filesystem::exists(path)) {
    try {
      SliceCache sc = open_slice_cache(path, o);
      std::set<std::string> cached, found;
      for (const CachedCase& c : sc.cases()) cached.insert(c.id);
      for (const SkippedCase& c : sc.skipped()) cached.insert(c.id);
      BratsOptions quiet;
      quiet.skip_bad = b.skip_bad;
      quiet.warn = [](const std::string&) {};  // the cache lists the skipped cases
      const BratsDataset ds = discover_selected(cases_root, quiet, b);
      for (const BratsCase& c : ds.cases) found.insert(c.id);
      for (const SkippedCase& c : ds.skipped) found.insert(c.id);
      // A case bad now must have been skipped then (one skipped while
      // loading is not re-read: the cache does not track file contents).
      std::set<std::string> skipped_then;
      for (const SkippedCase& c : sc.skipped()) skipped_then.insert(c.id);
      const auto bad_now = std::find_if(ds.skipped.begin(), ds.skipped.end(),
                                        [&](const SkippedCase& c) { return skipped_then.count(c.id) == 0; });
      if (cached != found) {
        reason = path + ": holds other cases than " + (b.only.empty() ? cases_root : "the selection");
      } else if (bad_now != ds.skipped.end()) {
        reason = path + ": holds case " + bad_now->id + ", which is bad now";
      } else if (!b.skip_bad && !sc.skipped().empty()) {
        reason = path + ": built with " + std::to_string(sc.skipped().size()) +
                 " bad case(s) skipped, and skipping was not asked for";
      } else {
        if (summary) {
          *summary = CacheBuildSummary{};
          summary->path = path;
          summary->cases = sc.num_cases();
          summary->slices = sc.slices();
          summary->skipped = sc.skipped();
          summary->bytes = sc.file_bytes();
          summary->seconds = since(t0);
        }
        return sc;
      }
    } catch (const SliceCacheError& e) {
      reason = e.what();
    }
  }
  const std::string msg = "building the slice cache " + path + " (" + reason + ")";
  if (b.log) b.log(msg);
  else if (b.progress) std::fprintf(b.progress, "%s\n", msg.c_str());
  CacheBuildSummary s = build_slice_cache(path, cases_root, o, b);
  s.reason = reason;
  SliceCache sc = open_slice_cache(path, o);
  if (summary) *summary = std::move(s);
  return sc;
}

SliceCache ensure_slice_cache(const std::string& path, const std::string& cases_root, const PreprocessOptions& o,
                              const std::function<void(const std::string&)>& log) {
  CacheBuildOptions b;
  b.log = log;
  CacheBuildSummary s;
  SliceCache sc = ensure_slice_cache(path, cases_root, o, b, &s);
  if (log && s.built)
    for (const std::string& line : format_cache_summary(s)) log(line);
  return sc;
}

std::vector<std::string> format_cache_summary(const CacheBuildSummary& s) {
  std::vector<std::string> out;
  char b[256];
  if (s.built) {
    std::snprintf(b, sizeof b, ": %lld cases, %lld slices, built in %s (%.2f cases/s, %d thread%s), %s written",
                  static_cast<long long>(s.cases), static_cast<long long>(s.slices),
                  Progress::duration(s.seconds).c_str(),
                  s.seconds > 0 ? static_cast<double>(s.cases + static_cast<int64_t>(s.skipped.size())) / s.seconds : 0.0,
                  s.threads, s.threads == 1 ? "" : "s", mb(s.bytes).c_str());
  } else {
    std::snprintf(b, sizeof b, ": %lld cases, %lld slices, valid and reused (%s, checked in %s)",
                  static_cast<long long>(s.cases), static_cast<long long>(s.slices), mb(s.bytes).c_str(),
                  Progress::duration(s.seconds).c_str());
  }
  out.push_back(s.path + b);
  if (!s.skipped.empty()) {
    out.push_back("skipped " + std::to_string(s.skipped.size()) + (s.skipped.size() == 1 ? " case:" : " cases:"));
    for (const SkippedCase& k : s.skipped) out.push_back("  " + k.id + ": " + k.reason);
  }
  return out;
}

}  // namespace lk::data
