// src/queue/region.hpp: the queue's shared mappings as every process of a
// queue sees them, and the entry points of the processes the queue forks.
#pragma once

#include <sys/types.h>
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

  [[nodiscard]] SlotHeader& slot(std::uint32_t seq) const noexcept {
    return *reinterpret_cast<SlotHeader*>(slots + (seq & ctl->mask) * ctl->slot_stride);
  }
  [[nodiscard]] std::byte* task_area(SlotHeader& h) const noexcept {
    return reinterpret_cast<std::byte*>(&h) + sizeof(SlotHeader);
  }
  [[nodiscard]] std::byte* result_area(SlotHeader& h) const noexcept {
    return task_area(h) + ctl->inline_bytes;
  }
  [[nodiscard]] std::byte* spill_area(std::uint32_t seq) const noexcept {
    return spill + (seq & ctl->mask) * ctl->spill_bytes;
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
