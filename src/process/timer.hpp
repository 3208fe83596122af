// src/process/timer.hpp: the per-hook timers of a Skprocess, kept in the
// shared control block so that any process can read them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "inorder/skprocess.hpp"

namespace inorder::detail {

constexpr std::size_t kTimerSamples = 1024;

/// One hook's timer. Written only by the child that runs the hooks, under a
/// sequence lock; read by any process (ProcessBase::timer).
struct TimerBlock {
  /// Odd while the child updates the fields below. The child stores it
  /// (release) after the update; a reader loads it (acquire) before and after
  /// copying and retries if it changed. The watcher makes it even again if a
  /// child died half way through an update.
  std::atomic<std::uint32_t> seq{0};
  // The statistics. Each is written (relaxed) only by the child between its
  // two stores of `seq`, and read (relaxed) between a reader's two loads of it;
  // atomics only so that a reader racing an update is not a data race.
  std::atomic<std::uint64_t> count{0};                   // successful calls
  std::atomic<std::uint64_t> total_ns{0};                // their summed durations
  std::atomic<std::uint64_t> min_ns{~std::uint64_t{0}};  // shortest (max value: none yet)
  std::atomic<std::uint64_t> max_ns{0};                  // longest
  std::atomic<double> sumsq{0};  // sum of squared durations, in seconds squared
  /// Durations (ns): the first kTimerSamples calls, then a uniform reservoir
  /// sample (call n replaces a random entry with probability kTimerSamples / n).
  std::atomic<std::uint64_t> samples[kTimerSamples];
};

/// Adds one call of `ns` nanoseconds. Called only by the child running the hooks.
void record_time(TimerBlock& t, std::uint64_t ns) noexcept;
/// A consistent copy of `t`'s statistics; any process may call it.
TimerStats read_timer(const TimerBlock& t);
/// Makes `seq` even again after the writer died half way through an update
/// (called by the watcher once the child is reaped).
void end_torn_update(TimerBlock& t) noexcept;

}  // namespace inorder::detail
