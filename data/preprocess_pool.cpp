#include "data/preprocess_pool.h"

#include <omp.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <thread>

namespace lk::data {

int resolve_threads(int threads) {
  if (threads > 0) return threads;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

namespace {

struct Slot {
  PreprocessedCase c;
  bool skipped = false;
  std::string reason;
  std::exception_ptr error;
};

}  // namespace

PoolStats run_in_order(size_t n, const PoolOptions& opt, const std::function<PreprocessedCase(size_t)>& produce,
                       const std::function<void(size_t, PreprocessedCase&&)>& on_case,
                       const std::function<void(size_t, const std::string&)>& on_skip) {
  PoolStats st;
  st.threads = static_cast<int>(std::min<size_t>(static_cast<size_t>(resolve_threads(opt.threads)), std::max<size_t>(n, 1)));
  st.window = opt.window > 0 ? opt.window : st.threads + 2;
  if (n == 0) return st;
  const size_t window = static_cast<size_t>(st.window);

  std::mutex m;
  std::condition_variable cv_claim, cv_ready;
  size_t next_claim = 0, next_consume = 0;
  bool stop = false;
  std::map<size_t, Slot> ready;  // the reordering queue: finished cases not yet consumed

  auto worker = [&] {
    omp_set_num_threads(1);  // one level of parallelism: across cases
    for (;;) {
      size_t i = 0;
      {
        std::unique_lock<std::mutex> l(m);
        cv_claim.wait(l, [&] { return stop || next_claim >= n || next_claim < next_consume + window; });
        if (stop || next_claim >= n) return;
        i = next_claim++;
        st.max_held = std::max(st.max_held, static_cast<int>(next_claim - next_consume));
      }
      Slot s;
      try {
        s.c = produce(i);
      } catch (const std::bad_alloc&) {
        s.error = std::current_exception();
      } catch (const std::exception& e) {
        if (opt.skip_bad) {
          s.skipped = true;
          s.reason = e.what();
        } else {
          s.error = std::current_exception();
        }
      } catch (...) {
        s.error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> l(m);
        if (s.error) stop = true;  // claim nothing more; the consumer rethrows in order
        ready.emplace(i, std::move(s));
      }
      cv_ready.notify_one();
      cv_claim.notify_all();
    }
  };

  std::vector<std::thread> pool;
  // Stops and joins the workers however this function is left.
  struct Joiner {
    std::vector<std::thread>& pool;
    std::mutex& m;
    bool& stop;
    std::condition_variable& cv;
    ~Joiner() {
      {
        std::lock_guard<std::mutex> l(m);
        stop = true;
      }
      cv.notify_all();
      for (std::thread& t : pool)
        if (t.joinable()) t.join();
    }
  } joiner{pool, m, stop, cv_claim};
  for (int t = 0; t < st.threads; ++t) pool.emplace_back(worker);

  for (size_t i = 0; i < n; ++i) {
    Slot s;
    {
      std::unique_lock<std::mutex> l(m);
      cv_ready.wait(l, [&] { return ready.count(i) != 0; });
      auto it = ready.find(i);
      s = std::move(it->second);
      ready.erase(it);
    }
    if (s.error) std::rethrow_exception(s.error);
    if (s.skipped) {
      if (on_skip) on_skip(i, s.reason);
    } else {
      on_case(i, std::move(s.c));
    }
    s = Slot{};  // release the case before another may be claimed
    {
      std::lock_guard<std::mutex> l(m);
      next_consume = i + 1;
    }
    cv_claim.notify_all();
  }
  std::lock_guard<std::mutex> l(m);
  return st;
}

PoolStats preprocess_in_order(const std::vector<BratsCase>& cases, const PreprocessOptions& o, const PoolOptions& opt,
                              const std::function<void(size_t, PreprocessedCase&&)>& on_case,
                              const std::function<void(size_t, const std::string&)>& on_skip) {
  auto produce = [&](size_t i) {
    const BratsCaseData data = load_brats_case(cases[i]);  // its errors name the file
    try {
      return preprocess_case(data, o);
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception& e) {
      const std::string& dir = cases[i].dir;
      if (std::string(e.what()).rfind(dir, 0) == 0) throw;
      throw std::runtime_error(dir + ": " + e.what());
    }
  };
  return run_in_order(cases.size(), opt, produce, on_case, on_skip);
}

}  // namespace lk::data
