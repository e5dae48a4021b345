#include "train/train_progress.h"

#include <cmath>

namespace lk::train {

TrainProgress::TrainProgress(std::FILE* out, int64_t epochs, int64_t steps_per_epoch, int64_t val_every,
                             int64_t start_step)
    : out_(out),
      epochs_(epochs),
      spe_(steps_per_epoch),
      val_every_(val_every),
      step_(start_step),
      t0_(std::chrono::steady_clock::now()) {}

TrainProgress::~TrainProgress() {
  if (epoch_) epoch_->finish(false);
}

void TrainProgress::begin_epoch(int64_t epoch) {
  if (epoch_) epoch_->finish(false);
  loss_sum_ = 0;
  loss_n_ = 0;
  epoch_ = std::make_unique<Progress>("epoch " + std::to_string(epoch) + "/" + std::to_string(epochs_), spe_, "steps",
                                      out_);
  epoch_->set_bar(true);
  epoch_->start_at(step_ - (epoch - 1) * spe_);
  epoch_->set_detail("run ETA " + run_eta());
}

void TrainProgress::step(double loss) {
  ++step_;
  ++steps_here_;
  if (std::isfinite(loss)) loss_sum_ += loss, ++loss_n_;
  if (!epoch_) return;
  char b[48] = "";
  if (loss_n_ > 0) std::snprintf(b, sizeof b, "loss %.4f, ", loss_sum_ / static_cast<double>(loss_n_));
  epoch_->set_detail(std::string(b) + "run ETA " + run_eta());
  epoch_->advance();
}

void TrainProgress::validated(double seconds) {
  val_seconds_ += seconds;
  ++vals_;
}

void TrainProgress::end_epoch() {
  if (epoch_) epoch_->finish(false);
  epoch_.reset();
}

void TrainProgress::note(const std::string& line) {
  if (epoch_) epoch_->note(line);
  else if (out_) std::fprintf(out_, "%s\n", line.c_str());
}

std::string TrainProgress::run_eta() const {
  if (steps_here_ == 0) return "?";
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count() - val_seconds_;
  const double rate = static_cast<double>(steps_here_) / std::max(secs, 1e-9);
  const int64_t total = epochs_ * spe_;
  const int64_t epoch_now = step_ / spe_;  // epochs completed
  int64_t vals_left = 0;
  for (int64_t e = epoch_now + 1; e <= epochs_; ++e) vals_left += (e % val_every_ == 0 || e == epochs_);
  double left = static_cast<double>(total - step_) / rate;
  if (vals_ > 0) left += static_cast<double>(vals_left) * val_seconds_ / static_cast<double>(vals_);
  return Progress::duration(left);
}

}  // namespace lk::train
