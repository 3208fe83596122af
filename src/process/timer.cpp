// src/process/timer.cpp: TimerStats and the sequence-locked timer blocks
// behind Skprocess::timer().
#include "process/timer.hpp"

#include <sched.h>
#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>
#include <vector>

#include "os/os.hpp"

namespace inorder {

TimerStats::TimerStats(std::uint64_t count, double total, double sumsq, double min, double max,
                       std::vector<double> samples)
    : count_(count),
      total_(total),
      sumsq_(sumsq),
      min_(min),
      max_(max),
      samples_(std::move(samples)) {
  std::sort(samples_.begin(), samples_.end());
}

double TimerStats::mean() const noexcept {
  return count_ == 0 ? 0.0 : total_ / static_cast<double>(count_);
}

double TimerStats::stdev() const noexcept {
  if (count_ < 2) return 0.0;
  const double n = static_cast<double>(count_);
  const double var = (sumsq_ - total_ * total_ / n) / (n - 1);
  return var > 0 ? std::sqrt(var) : 0.0;
}

double TimerStats::percentile(double p) const {
  if (!(p >= 0 && p <= 100))
    throw std::invalid_argument("inorder::TimerStats::percentile: p must be in [0, 100]");
  if (samples_.empty()) return 0.0;
  const double pos = p / 100.0 * static_cast<double>(samples_.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, samples_.size() - 1);
  return samples_[lo] + (samples_[hi] - samples_[lo]) * (pos - static_cast<double>(lo));
}

namespace detail {
namespace {

std::uint64_t next_random() noexcept {
  static std::uint64_t state = 0;  // per process: a forked child reseeds from its pid
  static pid_t seeded_for = 0;
  if (seeded_for != getpid()) {
    seeded_for = getpid();
    state = now_ns() ^ (static_cast<std::uint64_t>(seeded_for) << 32) ^ 0x9e3779b97f4a7c15ull;
  }
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

}  // namespace

void record_time(TimerBlock& t, std::uint64_t ns) noexcept {
  const std::uint32_t s = t.seq.load(std::memory_order_relaxed);
  t.seq.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);  // odd seq before the fields
  const std::uint64_t n = t.count.load(std::memory_order_relaxed);
  if (n < kTimerSamples) {
    t.samples[n].store(ns, std::memory_order_relaxed);
  } else {
    const std::uint64_t j = next_random() % (n + 1);
    if (j < kTimerSamples) t.samples[j].store(ns, std::memory_order_relaxed);
  }
  t.count.store(n + 1, std::memory_order_relaxed);
  t.total_ns.store(t.total_ns.load(std::memory_order_relaxed) + ns, std::memory_order_relaxed);
  if (ns < t.min_ns.load(std::memory_order_relaxed)) t.min_ns.store(ns, std::memory_order_relaxed);
  if (ns > t.max_ns.load(std::memory_order_relaxed)) t.max_ns.store(ns, std::memory_order_relaxed);
  const double sec = static_cast<double>(ns) * 1e-9;
  t.sumsq.store(t.sumsq.load(std::memory_order_relaxed) + sec * sec, std::memory_order_relaxed);
  t.seq.store(s + 2, std::memory_order_release);  // pairs with the reader's acquire
}

TimerStats read_timer(const TimerBlock& t) {
  std::uint64_t count = 0, total = 0, mn = 0, mx = 0;
  double sumsq = 0;
  std::vector<double> samples;
  for (int tries = 0;; ++tries) {
    const std::uint32_t s1 = t.seq.load(std::memory_order_acquire);  // pairs with record_time
    if ((s1 & 1) != 0 && tries < 100'000) {
      sched_yield();
      continue;
    }
    count = t.count.load(std::memory_order_relaxed);
    total = t.total_ns.load(std::memory_order_relaxed);
    mn = t.min_ns.load(std::memory_order_relaxed);
    mx = t.max_ns.load(std::memory_order_relaxed);
    sumsq = t.sumsq.load(std::memory_order_relaxed);
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(count, kTimerSamples));
    samples.resize(n);
    for (std::size_t k = 0; k < n; ++k)
      samples[k] = static_cast<double>(t.samples[k].load(std::memory_order_relaxed)) * 1e-9;
    std::atomic_thread_fence(std::memory_order_acquire);
    if (t.seq.load(std::memory_order_relaxed) == s1 || tries >= 100'000) break;
  }
  if (count == 0) return TimerStats();
  return TimerStats(count, static_cast<double>(total) * 1e-9, sumsq, static_cast<double>(mn) * 1e-9,
                    static_cast<double>(mx) * 1e-9, std::move(samples));
}

void end_torn_update(TimerBlock& t) noexcept {
  const std::uint32_t s = t.seq.load(std::memory_order_relaxed);
  if ((s & 1) != 0) t.seq.store(s + 1, std::memory_order_release);
}

}  // namespace detail
}  // namespace inorder
