// Building the slice cache of a BraTS folder (data/slice_cache.h:
// build_slice_cache, ensure_slice_cache, format_cache_summary): discovery,
// fingerprints, the preprocessing pool (reusing unchanged cases of the
// previous cache), the writer, the summary. The file format, the writer and
// the reader are in slice_cache.cpp.
#include "data/slice_cache.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>

#include "data/nifti_validate.h"
#include "data/preprocess_pool.h"
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

std::invalid_argument not_a_cache(const std::string& path) {
  return std::invalid_argument(path + ": exists and is not a slice cache (it does not start with the cache's "
                                      "magic); not overwriting it: name another cache file, or move this one away");
}

// Discovery restricted to b.only (when given): only those cases are
// examined, and every named case must exist (MissingCaseError).
BratsDataset discover_selected(const std::string& cases_root, BratsOptions bo, const CacheBuildOptions& b) {
  bo.only = b.only;
  return discover_brats_cases(cases_root, bo);
}

// The fingerprint of a case, or one without files when a file cannot be
// read (the case then fails to load, and any later readable state differs).
CaseFingerprint fingerprint_or_empty(const BratsCase& c) {
  try {
    return fingerprint_case(c);
  } catch (const std::exception&) {
    CaseFingerprint fp;
    fp.id = c.id;
    return fp;
  }
}

// The cache's size from the volumes' headers, before anything is
// preprocessed: refused when --size is more than 4x the largest volume's
// in-plane extent (slices upsampled that much hold no more information, only
// bytes) or the cache cannot fit the folder's free space; a warning above 2x.
void check_size(const std::string& path, const std::vector<BratsCase>& cases, const PreprocessOptions& o,
                const std::function<void(const std::string&)>& warn) {
  uint64_t slices = 0;
  int64_t widest = 0;
  for (const BratsCase& c : cases) {
    try {
      const NiftiHeader h = read_nifti_header(c.images[0]);
      slices += static_cast<uint64_t>(std::max<int64_t>(h.dim[3], 1));
      widest = std::max({widest, h.dim[1], h.dim[2]});
    } catch (const std::exception&) {  // a bad case: it fails (or is skipped) when loaded
    }
  }
  const double bytes = static_cast<double>(slices) * static_cast<double>(o.size * o.size) * (4 * sizeof(float) + 1);
  const std::string what = "--size " + std::to_string(o.size) + " on volumes of at most " + std::to_string(widest) +
                           " voxels across: the cache of " + std::to_string(cases.size()) + " case(s) would take up to " +
                           mb(static_cast<uint64_t>(bytes)) + " (" + std::to_string(slices) + " slices)";
  if (widest > 0 && o.size > 4 * widest)
    throw std::invalid_argument(path + ": " + what + "; a slice side above 4x the volume's only adds bytes (use at most " +
                                std::to_string(4 * widest) + ")");
  std::error_code ec;
  const std::filesystem::path dir = std::filesystem::absolute(path).parent_path();
  const std::filesystem::space_info sp = std::filesystem::space(dir, ec);
  if (!ec && bytes > static_cast<double>(sp.available))
    throw std::invalid_argument(path + ": " + what + ", but " + dir.string() + " has " + mb(sp.available) + " free");
  if (widest > 0 && o.size > 2 * widest) warn(what + " (upsampled)");
}

// A previous cache of the same options: its cases whose files did not change
// are copied from it instead of being read and preprocessed again.
struct Reuse {
  const SliceCache* cache = nullptr;
  std::map<std::string, CaseFingerprint> fingerprints;
  std::map<std::string, int64_t> index;
  std::map<std::string, std::string> skipped;

  explicit Reuse(const SliceCache* sc) : cache(sc) {
    if (!sc) return;
    for (const CaseFingerprint& f : sc->fingerprints()) fingerprints[f.id] = f;
    for (int64_t c = 0; c < sc->num_cases(); ++c) index[sc->case_info(c).id] = c;
    for (const SkippedCase& k : sc->skipped()) skipped[k.id] = k.reason;
  }
  bool unchanged(const CaseFingerprint& now) const {
    const auto it = fingerprints.find(now.id);
    return !now.files.empty() && it != fingerprints.end() && fingerprint_change(it->second, now).empty();
  }
};

CacheBuildSummary build(const std::string& path, const std::string& cases_root, const PreprocessOptions& o,
                        const CacheBuildOptions& b, const SliceCache* previous) {
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
  // Taken before any case is read: a file changed while the build runs
  // shows up as a change next time.
  std::vector<CaseFingerprint> fps;
  for (const BratsCase& c : ds.cases) fps.push_back(fingerprint_or_empty(c));
  const Reuse reuse(previous);

  Progress progress("preprocess", static_cast<int64_t>(ds.cases.size()), "cases", b.progress);
  // Warnings print with the progress lines (or go to the log without them).
  auto warn = [&](const std::string& w) {
    if (b.progress) progress.note("warning: " + w);
    else if (b.log) b.log("warning: " + w);
  };
  for (const std::string& w : discovery_warnings) warn(w);
  check_size(path, ds.cases, o, warn);

  SliceCacheWriter writer(path, o);
  PoolOptions po;
  po.threads = b.threads;
  po.window = b.window;
  // A case that fails to load is always set aside and the others go on, so
  // their work is kept in the cache even when the build then fails.
  po.skip_bad = true;
  std::atomic<int64_t> reused{0};
  std::vector<SkippedCase> failed;
  const auto produce = [&](size_t i) -> PreprocessedCase {
    const BratsCase& c = ds.cases[i];
    if (reuse.unchanged(fps[i])) {
      if (const auto it = reuse.index.find(c.id); it != reuse.index.end()) {
        ++reused;
        return reuse.cache->load_case(it->second);
      }
      if (const auto it = reuse.skipped.find(c.id); it != reuse.skipped.end()) throw std::runtime_error(it->second);
    }
    const BratsCaseData data = load_brats_case(c);  // its errors name the file
    try {
      return preprocess_case(data, o);
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception& e) {
      if (std::string(e.what()).rfind(c.dir, 0) == 0) throw;
      throw std::runtime_error(c.dir + ": " + e.what());
    }
  };
  const PoolStats ps = run_in_order(
      ds.cases.size(), po, produce,
      [&](size_t, PreprocessedCase&& c) {
        writer.add(c);
        progress.advance();
      },
      [&](size_t i, const std::string& reason) {
        failed.push_back({ds.cases[i].id, reason});
        warn(b.skip_bad ? "skipping case " + ds.cases[i].id + ": " + reason
                        : "case " + ds.cases[i].id + " is bad: " + reason + " (going on with the others)");
        progress.advance();
      });
  if (writer.cases() == 0)
    throw BratsError(cases_root, "no usable case: all " + std::to_string(skipped.size() + failed.size()) +
                                     " failed" + (failed.empty() ? "" : " (first: " + failed.front().reason + ")"));
  skipped.insert(skipped.end(), failed.begin(), failed.end());
  std::stable_sort(skipped.begin(), skipped.end(), [](const SkippedCase& a, const SkippedCase& c) { return a.id < c.id; });
  for (const SkippedCase& k : skipped) writer.add_skipped(k);
  for (const CaseFingerprint& f : fps) writer.add_fingerprint(f);
  sum.bytes = writer.finish();
  progress.finish();
  if (reused > 0 && b.log) b.log("reused " + std::to_string(reused.load()) + " unchanged case(s) of the previous cache");
  if (!b.skip_bad && !failed.empty()) {
    std::string ids;
    for (const SkippedCase& k : failed) ids += (ids.empty() ? "" : ", ") + k.id;
    throw BratsError(path, std::to_string(failed.size()) + " case(s) failed to load (" + ids + "; first: " +
                               failed.front().reason + "); the other " + std::to_string(writer.cases()) +
                               " are preprocessed and kept in this cache: fix the bad case(s), or run again with "
                               "--skip-bad to leave them out (unchanged cases are reused either way)");
  }
  sum.cases = writer.cases();
  sum.slices = writer.slices();
  sum.skipped = std::move(skipped);
  sum.threads = ps.threads;
  sum.window = ps.window;
  sum.max_held = ps.max_held;
  sum.seconds = since(t0);
  return sum;
}

}  // namespace

CacheBuildSummary build_slice_cache(const std::string& path, const std::string& cases_root,
                                    const PreprocessOptions& o, const CacheBuildOptions& b) {
  if (!is_slice_cache_file(path)) throw not_a_cache(path);
  return build(path, cases_root, o, b, nullptr);
}

SliceCache ensure_slice_cache(const std::string& path, const std::string& cases_root, const PreprocessOptions& o,
                              const CacheBuildOptions& b, CacheBuildSummary* summary) {
  const auto t0 = std::chrono::steady_clock::now();
  if (!is_slice_cache_file(path)) throw not_a_cache(path);
  std::string reason = "no cache yet";
  std::optional<SliceCache> previous;
  if (b.force) {
    reason = "rebuild forced";
  } else if (std::filesystem::exists(path)) {
    try {
      previous = open_slice_cache(path, o);
      const SliceCache& sc = *previous;
      std::set<std::string> cached, found;
      for (const CachedCase& c : sc.cases()) cached.insert(c.id);
      for (const SkippedCase& c : sc.skipped()) cached.insert(c.id);
      BratsOptions quiet;
      quiet.skip_bad = b.skip_bad;
      quiet.warn = [](const std::string&) {};  // the cache lists the skipped cases
      const BratsDataset ds = discover_selected(cases_root, quiet, b);
      for (const BratsCase& c : ds.cases) found.insert(c.id);
      for (const SkippedCase& c : ds.skipped) found.insert(c.id);
      // A case bad now must have been skipped then.
      std::set<std::string> skipped_then;
      for (const SkippedCase& c : sc.skipped()) skipped_then.insert(c.id);
      const auto bad_now = std::find_if(ds.skipped.begin(), ds.skipped.end(),
                                        [&](const SkippedCase& c) { return skipped_then.count(c.id) == 0; });
      // Every case file as it was read then (size, time, content hash).
      std::string changed;
      int n_changed = 0;
      const Reuse then(&sc);
      for (const BratsCase& c : ds.cases) {
        const CaseFingerprint now = fingerprint_or_empty(c);
        const auto it = then.fingerprints.find(c.id);
        const std::string what = it == then.fingerprints.end() ? "not fingerprinted when it was cached"
                                 : now.files.empty()           ? "a file cannot be read"
                                                               : fingerprint_change(it->second, now);
        if (what.empty()) continue;
        if (n_changed++ == 0) changed = c.id + " (" + what + ")";
      }
      if (cached != found) {
        reason = path + ": holds other cases than " + (b.only.empty() ? cases_root : "the selection");
      } else if (bad_now != ds.skipped.end()) {
        reason = path + ": holds case " + bad_now->id + ", which is bad now";
      } else if (n_changed > 0) {
        reason = "case " + changed + (n_changed > 1 ? " and " + std::to_string(n_changed - 1) + " more" : "") +
                 " changed since " + path + " was built";
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
        return std::move(*previous);
      }
    } catch (const SliceCacheError& e) {
      reason = e.what();
      previous.reset();
    }
  }
  const std::string msg = "building the slice cache " + path + " (" + reason + ")";
  if (b.log) b.log(msg);
  else if (b.progress) std::fprintf(b.progress, "%s\n", msg.c_str());
  CacheBuildSummary s = build(path, cases_root, o, b, previous ? &*previous : nullptr);
  previous.reset();
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
