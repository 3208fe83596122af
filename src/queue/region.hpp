// src/queue/region.hpp: the queue's shared mappings as every process of a
// queue sees them, and the entry points of the processes the queue forks.
#pragma once

#include <sys/types.h>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "inorder/options.hpp"
#include "os/os.hpp"
#include "queue/shared.hpp"

namespace inorder::detail {

/// Pointers into the shared mappings, identical in the parent and the workers.
struct Region {
  Control* ctl = nullptr;
  WorkerRecord* records = nullptr;
  std::byte* slots = nullptr;
  std::byte* spill = nullptr;
  /// Links of the result-area free list: area_next[i] is index + 1 of the
  /// area below area i on the stack (0: none). Written by a pusher before
  /// its release CAS, read by a popper after its acquire load.
  std::atomic<std::uint32_t>* area_next = nullptr;

  [[nodiscard]] SlotHeader& slot(std::uint32_t seq) const noexcept {
    return *reinterpret_cast<SlotHeader*>(slots + (seq & ctl->mask) * ctl->slot_stride);
  }
  [[nodiscard]] std::byte* task_area(SlotHeader& h) const noexcept {
    return reinterpret_cast<std::byte*>(&h) + sizeof(SlotHeader);
  }
  [[nodiscard]] std::byte* result_area(SlotHeader& h) const noexcept {
    return task_area(h) + ctl->inline_bytes;
  }
  /// Where slot h holds a task of `bytes` that is not spilled: in the
  /// header's first line when it fits there (kHeadTaskBytes), else in the task area.
  [[nodiscard]] std::byte* task_bytes(SlotHeader& h, std::size_t bytes) const noexcept {
    return bytes <= kHeadTaskBytes ? h.head_task : task_area(h);
  }
  /// The same for a result of `bytes` that is neither spilled nor in a result
  /// area (ResultSink::reserve makes the same choice).
  [[nodiscard]] std::byte* result_bytes(SlotHeader& h, std::size_t bytes) const noexcept {
    return bytes <= kHeadResultBytes ? h.head_result : result_area(h);
  }
  [[nodiscard]] std::byte* spill_area(std::uint32_t seq) const noexcept {
    return spill + (seq & ctl->mask) * ctl->spill_bytes;
  }
  /// Result area i (0 <= i < capacity), after the slots' own spill areas.
  [[nodiscard]] std::byte* area(std::uint32_t i) const noexcept {
    return spill + (std::size_t{ctl->capacity} + i) * ctl->spill_bytes;
  }

  /// Takes the result area freed last (its pages are the likeliest to be
  /// mapped and cached), or kNoArea if none is free. A process that dies
  /// between its pop and publishing the result loses that area for the
  /// queue's lifetime; the slot's own spill area is the fallback.
  [[nodiscard]] std::uint32_t pop_area() const noexcept {
    std::uint64_t head = ctl->free_areas.load(std::memory_order_acquire);  // pairs with push_area
    for (;;) {
      const auto top = static_cast<std::uint32_t>(head);
      if (top == 0) return kNoArea;
      const std::uint32_t below = area_next[top - 1].load(std::memory_order_relaxed);
      const std::uint64_t next = (((head >> 32) + 1) << 32) | below;
      if (ctl->free_areas.compare_exchange_weak(head, next, std::memory_order_acquire,
                                                std::memory_order_acquire))
        return top - 1;
    }
  }

  /// Returns result area i to the free list; the caller is done with its bytes.
  void push_area(std::uint32_t i) const noexcept {
    std::uint64_t head = ctl->free_areas.load(std::memory_order_relaxed);
    for (;;) {
      area_next[i].store(static_cast<std::uint32_t>(head), std::memory_order_relaxed);
      const std::uint64_t next = (((head >> 32) + 1) << 32) | (i + 1);
      if (ctl->free_areas.compare_exchange_weak(head, next, std::memory_order_release,
                                                std::memory_order_relaxed))
        return;
    }
  }
};

/// Runs the worker loop of worker `index` in a freshly forked child; never
/// returns (ends with _exit, so the parent's stdio buffers are not flushed twice).
[[noreturn]] void worker_main(const Region& region, unsigned index, const Options& opts,
                              pid_t parent, const std::vector<int>& fds_to_close);

/// Runs the supervisor in a freshly forked child of the queue's owner: forks
/// the workers, replaces the ones that die, enforces task timeouts and the
/// restart cap; never returns. `parent_fd` is a pidfd of `parent`, opened
/// by the parent before the fork.
[[noreturn]] void supervisor_main(const Region& region, const Options& opts, pid_t parent,
                                  int parent_fd, int wake_fd);

}  // namespace inorder::detail
