// src/queue/bias.hpp: a word that one thread may write with plain stores
// until a second thread wants to write it.
//
// `emit` is written by every thread that takes results in order, and
// `put_word` by every thread that puts; since several threads may, each write
// is a CAS. A locked instruction waits until every earlier store of its core
// has reached the other cores: for a getter, the release of the slot it just
// took; for a producer, the task it just wrote, whose line the worker or the
// getter holds. On tiny tasks across two CPUs that wait was most of both
// parties' time. Usually one thread does all the getting (and one all the
// putting); a Bias lets that thread, the owner, move the word with a plain
// store, and makes every other writer revoke the bias first, after which all
// writers, the owner included, use the CAS again, for good.
//
// The revocation is an asymmetric Dekker pair, like the asymmetric
// EventCounts (ipc/sync.hpp), with the barrier on the rare side:
//
//   owner:    busy = 1; compiler barrier; if (owner == me) word = new; busy = 0
//   revoker:  owner = kRevoking; membarrier(); wait for busy == 0; owner = kShared
//
// membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) runs a full barrier on every CPU
// running a thread of this (registered) process, and a thread that is not
// running passes a barrier in the context switch. So either the owner's store
// of busy = 1 is visible to the revoker after the barrier, and the revoker
// waits for the owner's plain store to finish; or the owner's later load of
// `owner` sees kRevoking, and it does not store. After the revocation no plain
// store can be in progress or start, and every writer may CAS. The owner's
// own value of the word stays right while biased: nobody else writes it.
//
// Only threads of one process write a biased word: a process that cannot run
// the barrier on the owner's CPU (the supervisor) must never write it. Without
// registered barriers (light_notify_enabled() false) no thread becomes owner.
#pragma once

#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <atomic>
#include <cstdint>

#include "inorder/detail/config.hpp"
#include "ipc/sync.hpp"

namespace inorder::detail {

class alignas(kCacheLine) Bias {
 public:
  /// Runs `store` (the plain store of the word) if the calling thread owns
  /// the word, taking ownership first if no thread ever wrote it; returns
  /// whether it did. On false, call share() and CAS the word (claim() does both).
  template <class Store>
  bool try_store(Store&& store) noexcept {
    const auto me = self();
    std::uintptr_t o = owner_.load(std::memory_order_relaxed);
    if (o != me) {
      if (o != kUnowned || !light_notify_enabled()) return false;
      if (!owner_.compare_exchange_strong(o, me, std::memory_order_acq_rel)) return false;
    }
    busy_.store(1, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);  // the revoker's membarrier orders us
    if (owner_.load(std::memory_order_relaxed) != me) {
      busy_.store(0, std::memory_order_release);
      return false;
    }
    store();
    busy_.store(0, std::memory_order_release);  // pairs with the revoker's wait in share()
    return true;
  }

  /// Claims `word` from `expected` to `desired`: the owner with a plain store
  /// (nobody else writes the word, so it still holds `expected`), any other
  /// thread with share() and a CAS, which may fail as a CAS does.
  template <class T>
  bool claim(std::atomic<T>& word, T& expected, T desired) noexcept {
    if (try_store([&] { word.store(desired, std::memory_order_release); })) return true;
    share();
    return word.compare_exchange_weak(expected, desired, std::memory_order_acq_rel);
  }

  /// Call before any write of the word other than try_store's. Returns once
  /// no plain store is in progress or can start: the word is shared for good.
  void share() noexcept {
    std::uintptr_t o = owner_.load(std::memory_order_acquire);
    for (;;) {
      if (o == kShared) return;
      if (o == kRevoking) {  // another thread revokes: wait until it is done
        for (int k = 0; owner_.load(std::memory_order_acquire) != kShared; ++k) pause(k);
        return;
      }
      if (owner_.compare_exchange_weak(o, kRevoking, std::memory_order_acq_rel,
                                       std::memory_order_acquire))
        break;
    }
    if (o != kUnowned) {  // an owner may be between its check and its store
      // The barrier fails only for want of kernel memory (or if a seccomp
      // filter installed since the registration refuses it): try again for
      // a while, then rely on time. The owner's store of busy_ leaves its
      // core's store buffer within nanoseconds, and at once if its thread is
      // switched out; 10 ms later the load below sees it.
      for (int tries = 0; !heavy_barrier() && tries < 10; ++tries) {
        const timespec ms{0, 1'000'000};
        nanosleep(&ms, nullptr);
      }
      // The owner's critical section is a few instructions, unless it was
      // preempted inside: yield to it.
      for (int k = 0; busy_.load(std::memory_order_acquire) != 0; ++k) pause(k);
    }
    owner_.store(kShared, std::memory_order_release);  // pairs with the loads above
  }

  /// True once the word is shared (tests).
  [[nodiscard]] bool shared() const noexcept {
    return owner_.load(std::memory_order_acquire) == kShared;
  }
  /// True while a thread revokes the bias (tests force interleavings with it).
  [[nodiscard]] bool revoking() const noexcept {
    return owner_.load(std::memory_order_acquire) == kRevoking;
  }

 private:
  // Values of owner_ that are not a thread: a thread pointer is never 0, 1 or 2.
  static constexpr std::uintptr_t kUnowned = 0;
  static constexpr std::uintptr_t kShared = 1;
  static constexpr std::uintptr_t kRevoking = 2;

  /// The calling thread's identity: its thread pointer (unique among live
  /// threads, and in glibc the value of pthread_self()), read without a call.
  static std::uintptr_t self() noexcept {
#if defined(__has_builtin) && __has_builtin(__builtin_thread_pointer)
    return reinterpret_cast<std::uintptr_t>(__builtin_thread_pointer());
#else
    return static_cast<std::uintptr_t>(pthread_self());
#endif
  }
  static void pause(int k) noexcept {
    if (k < 16)
      cpu_relax();
    else
      sched_yield();
  }

  /// kUnowned, kShared, kRevoking, or the owner's self(). Written
  /// once by the CAS that takes ownership, then by revokers; the owner reads
  /// it around each plain store.
  std::atomic<std::uintptr_t> owner_{kUnowned};
  /// 1 while the owner is between its check of owner_ and the end of its
  /// plain store; written only by the owner (release at the end), read by a
  /// revoker after its barrier (acquire).
  std::atomic<std::uint32_t> busy_{0};
};

static_assert(std::atomic<std::uintptr_t>::is_always_lock_free,
              "the owner word is read on every plain store");
static_assert(sizeof(pthread_t) <= sizeof(std::uintptr_t), "a thread fits the owner word");

}  // namespace inorder::detail
