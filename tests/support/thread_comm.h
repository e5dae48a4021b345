// A communicator over threads of one process (tests only): each thread is a
// rank, so the data-parallel machinery (engine/dist.h, the ops' batch
// statistics hook) is tested without MPI. Sums add the ranks' values in rank
// order, so every rank gets the same bits.
#pragma once

#include <barrier>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "engine/dist.h"

namespace lk::test {

class ThreadGroup {
 public:
  explicit ThreadGroup(int n) : n_(n), bar_(n), slots_(static_cast<size_t>(n)) {}
  int size() const { return n_; }

  void sum(int rank, double* v, int64_t n) {
    slots_[static_cast<size_t>(rank)].assign(v, v + n);
    bar_.arrive_and_wait();
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (const std::vector<double>& slot : slots_) s += slot[static_cast<size_t>(i)];
      v[i] = s;
    }
    bar_.arrive_and_wait();  // the slots may be reused
  }
  void broadcast(int rank, void* data, int64_t bytes, int root) {
    if (rank == root) shared_.assign(static_cast<char*>(data), static_cast<char*>(data) + bytes);
    bar_.arrive_and_wait();
    if (rank != root) std::memcpy(data, shared_.data(), static_cast<size_t>(bytes));
    bar_.arrive_and_wait();
  }
  void barrier() { bar_.arrive_and_wait(); }

 private:
  int n_;
  std::barrier<> bar_;
  std::vector<std::vector<double>> slots_;
  std::vector<char> shared_;
};

class ThreadComm final : public dist::Communicator {
 public:
  ThreadComm(ThreadGroup& g, int rank) : g_(g), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_.size(); }
  std::string describe() const override { return "threads"; }
  void sum_host(double* v, int64_t n) override { g_.sum(rank_, v, n); }
  void broadcast_host(void* data, int64_t bytes, int root) override { g_.broadcast(rank_, data, bytes, root); }
  std::unique_ptr<dist::Pending> start_sum(std::vector<Tensor> ts) override {
    ++started;
    for (const Tensor& t : ts) {
      std::vector<double> v = t.to_vector();
      g_.sum(rank_, v.data(), static_cast<int64_t>(v.size()));
      t.copy_from(Tensor::from_vector(v, t.shape(), t.dtype()));
    }
    struct Done final : dist::Pending {
      void wait() override {}
    };
    return std::make_unique<Done>();
  }
  void broadcast(const Tensor& t, int root) override {
    std::vector<double> v = t.to_vector();
    g_.broadcast(rank_, v.data(), static_cast<int64_t>(v.size() * sizeof(double)), root);
    t.copy_from(Tensor::from_vector(v, t.shape(), t.dtype()));
  }
  void barrier() override { g_.barrier(); }
  [[noreturn]] void abort(int) override { std::abort(); }

  int started = 0;  // start_sum calls

 private:
  ThreadGroup& g_;
  int rank_;
};

// Runs body(rank, comm) on n threads, one rank each; rethrows the first error.
inline void on_thread_ranks(int n, const std::function<void(int, ThreadComm&)>& body) {
  ThreadGroup g(n);
  std::vector<std::thread> ts;
  std::vector<std::exception_ptr> err(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r)
    ts.emplace_back([&, r] {
      ThreadComm c(g, r);
      try {
        body(r, c);
      } catch (...) {
        err[static_cast<size_t>(r)] = std::current_exception();
      }
    });
  for (std::thread& t : ts) t.join();
  for (const std::exception_ptr& e : err)
    if (e) std::rethrow_exception(e);
}

}  // namespace lk::test
