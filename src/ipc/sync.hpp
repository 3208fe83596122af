// src/ipc/sync.hpp: sleeping and waking across processes.
//
// C++20 std::atomic::wait/notify cannot be used here: libstdc++ 12 skips the
// wake system call unless it finds a waiter in a table private to the calling
// process, so a forked process sleeping on MAP_SHARED memory is never woken.
// EventCount is the replacement: a 32-bit epoch used as a shared futex word
// (no FUTEX_PRIVATE_FLAG) plus a count of sleepers in the same shared memory,
// so that a notifier makes the wake system call only when someone sleeps.
//
// Protocol (a Dekker pair; both sides use sequentially consistent operations):
//   waiter:    sleepers += 1; e = epoch; if (!cond()) futex_wait(epoch, e); sleepers -= 1
//   notifier:  make cond() true; full fence; if (sleepers > 0) { epoch += 1; futex_wake }
// Either the notifier sees the waiter's increment and wakes it (a wake between
// the waiter's epoch read and its futex_wait makes futex_wait return at once
// because the epoch changed), or the waiter's cond() sees the notifier's store.
//
// The notifier's fence is the expensive half: it stalls until the notifier's
// earlier stores (the slot it just published) reach other cores, and the
// notifier runs once per task. On Linux the cost can be moved to the waiter,
// which is about to make a futex system call anyway: membarrier(2) with
// MEMBARRIER_CMD_GLOBAL_EXPEDITED executes a full barrier on every CPU that
// runs a thread of a registered process. With it (an "asymmetric" EventCount):
//   waiter:    sleepers += 1; membarrier(); e = epoch; if (!cond()) futex_wait ...
//   notifier:  make cond() true; compiler barrier; if (sleepers > 0) wake
// If the notifier's load of sleepers ran before the waiter's membarrier, that
// barrier drained the notifier's store first, so the waiter's cond() sees it;
// if it ran after, it sees the increment. A notifier may skip its fence only
// in a process that registered itself (light_notify_enabled()); registration
// does not survive fork, so every forked process registers again. A waiter
// whose membarrier call fails falls back to short timed sleeps.
#pragma once

#include <sched.h>
#include <atomic>
#include <cstdint>
#include <limits>

#include "inorder/detail/config.hpp"
#include "inorder/detail/deadline.hpp"

namespace inorder::detail {

/// Sleeps until *word != expected, a wake, or `deadline` (kForever: no limit).
/// Returns false only when the deadline passed. Spurious returns are allowed.
bool futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected, Deadline deadline);
/// A futex_wake count meaning "every sleeper": more than processes can exist.
inline constexpr int kWakeAll = 1 << 30;

/// Wakes up to `count` processes sleeping on `word`.
void futex_wake(std::atomic<std::uint32_t>& word, int count) noexcept;

/// Registers this process for MEMBARRIER_CMD_GLOBAL_EXPEDITED barriers; after
/// that, asymmetric EventCounts notified from this process skip the fence.
/// Returns false where the kernel (or a seccomp filter) refuses. Call in every
/// process that notifies: a forked child starts unregistered.
bool enable_light_notify() noexcept;
/// True once this process registered (false again in a forked child).
bool light_notify_enabled() noexcept;
/// The waiter's half: a full barrier on every CPU running a registered
/// process. False if the system call failed.
bool heavy_barrier() noexcept;

/// CPU hint inside spin loops.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

struct alignas(kCacheLine) EventCount {
  /// Futex word. Incremented (seq_cst) by a notifier that saw sleepers; read by
  /// a waiter before its final check of the condition.
  std::atomic<std::uint32_t> epoch{0};
  /// Processes between "about to sleep" and "woke up". Incremented before the
  /// waiter's final condition check; read by notifiers after their store.
  std::atomic<std::uint32_t> sleepers{0};
  /// Set once before any process waits here (make_asymmetric): waiters issue
  /// heavy_barrier(), so registered notifiers may skip their fence.
  std::uint32_t asymmetric = 0;

  /// Makes this EventCount asymmetric if this process could register. Call
  /// before the EventCount is used by more than one process.
  void make_asymmetric() noexcept { asymmetric = enable_light_notify() ? 1 : 0; }

  /// Call after making a waiter's condition true. Costs one load of a line
  /// nobody writes while no one sleeps, and (unless asymmetric and this
  /// process registered) one fence.
  void notify(int count) noexcept {
    if (asymmetric != 0 && light_notify_enabled())
      std::atomic_signal_fence(std::memory_order_seq_cst);  // the waiter's membarrier orders us
    else
      std::atomic_thread_fence(std::memory_order_seq_cst);
    if (sleepers.load(std::memory_order_relaxed) != 0) {
      epoch.fetch_add(1, std::memory_order_seq_cst);
      futex_wake(epoch, count);
    }
  }
  void notify_one() noexcept { notify(1); }
  void notify_all() noexcept { notify(kWakeAll); }

  /// Waits until cond() is true or `deadline` passes; returns cond()'s last
  /// value. Spins briefly, then yields, then sleeps on the futex.
  template <class Cond>
  bool await(Cond&& cond, Deadline deadline) {
    if (cond()) return true;
    if (deadline == kNoWait) return false;
    for (int i = 0; i < kSpins; ++i) {
      cpu_relax();
      if (cond()) return true;
    }
    // Yield phase: on a machine with fewer cores than runnable threads, the
    // process we wait for is often runnable but not running; yielding hands it
    // the core for a fraction of a futex round trip. Bounded, so an idle queue
    // reaches the futex sleep within tens of microseconds.
    for (int i = 0; i < kYields; ++i) {
      sched_yield();
      if (cond()) return true;
      // The clock is read on every 8th yield only: it would otherwise cost
      // more than the yield itself (parent-side waits always have a deadline).
      if (deadline != kForever && (i & 7) == 7 && Clock::now() >= deadline) return cond();
    }
    for (;;) {
      sleepers.fetch_add(1, std::memory_order_seq_cst);
      // A failed barrier leaves a notifier's skipped fence unpaired: sleep
      // at most a millisecond at a time and look again.
      Deadline until = deadline;
      if (asymmetric != 0 && !heavy_barrier())
        until = std::min(deadline, Clock::now() + std::chrono::milliseconds(1));
      const std::uint32_t e = epoch.load(std::memory_order_seq_cst);
      if (cond()) {
        sleepers.fetch_sub(1, std::memory_order_relaxed);
        return true;
      }
      const bool slept_in_time = futex_wait(epoch, e, until);
      const bool in_time = slept_in_time || until != deadline;
      sleepers.fetch_sub(1, std::memory_order_relaxed);
      if (cond()) return true;
      if (!in_time) return false;
    }
  }

  /// Iterations of the spin phase: a few hundred nanoseconds (a PAUSE is
  /// ~25-40 ns on current x86 cores), enough to catch a hand-off from another
  /// core (a cache line moves in 50-150 ns) and short because spinning is pure
  /// loss when the party we wait for shares our CPU: the scheduler often puts
  /// a process woken by a futex next to its waker, and then every hand-off
  /// needs a yield. Measured on 2 vCPUs with the pair on one CPU, put -> get
  /// back to back: 5.2 us at 64 spins, 3.7 at 32, 3.1 at 16 (a pipe round
  /// trip: 3.9 us); tiny-task throughput did not drop (docs/benchmarks.md).
  static constexpr int kSpins = 16;
  /// sched_yield calls before sleeping (~0.6 us each when nothing else runs).
  static constexpr int kYields = 32;
};

static_assert(std::atomic<std::uint32_t>::is_always_lock_free,
              "futex words must be lock-free: an emulated atomic is not shared across processes");
static_assert(sizeof(std::atomic<std::uint32_t>) == 4, "a futex word is exactly 32 bits");

}  // namespace inorder::detail
