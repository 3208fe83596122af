// src/pool/progress.cpp: the progress bar of Pool calls (PoolView::progress()).
#include <unistd.h>
#include <algorithm>
#include <cstdio>

#include "inorder/pool.hpp"

namespace inorder::detail {

Progress::Progress(const CallSettings& s, std::size_t total)
    : callback_(s.progress),
      bar_(s.progress_bar && isatty(STDERR_FILENO) == 1),
      total_(total),
      start_(std::chrono::steady_clock::now()) {}

void Progress::update(std::size_t done) {
  if (callback_) callback_(done, total_);
  if (!bar_) return;
  const auto now = std::chrono::steady_clock::now();
  if (done != total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  draw(done, now);
}

void Progress::finish(std::size_t done) {
  if (!bar_ || done == 0) return;
  draw(done, std::chrono::steady_clock::now());
  std::fputc('\n', stderr);
}

void Progress::draw(std::size_t done, std::chrono::steady_clock::time_point now) const {
  const double secs = std::chrono::duration<double>(now - start_).count();
  const double rate = secs > 0 ? static_cast<double>(done) / secs : 0.0;
  if (total_ != 0) {
    const double eta = rate > 0 ? static_cast<double>(total_ - std::min(done, total_)) / rate : 0;
    std::fprintf(stderr, "\r%zu/%zu items (%3.0f%%)  %.1f/s  ETA %.1fs   ", done, total_,
                 100.0 * static_cast<double>(done) / static_cast<double>(total_), rate, eta);
  } else {
    std::fprintf(stderr, "\r%zu items  %.1f/s   ", done, rate);
  }
  std::fflush(stderr);
}

}  // namespace inorder::detail
