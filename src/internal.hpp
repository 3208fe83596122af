// src/internal.hpp: what core.cpp (parent side) and worker.cpp (worker side)
// share beyond the memory layout.
#pragma once

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>
#include <typeinfo>
#include <vector>

#include "inorder/options.hpp"
#include "shared.hpp"

namespace inorder::detail {

/// CLOCK_MONOTONIC in nanoseconds (the clock behind steady_clock).
inline std::uint64_t now_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

/// A pidfd for `pid` (close-on-exec), or -1 with errno set.
inline int pidfd_open(pid_t pid) noexcept {
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

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

/// Readable name of a type ("std::out_of_range" rather than "St12out_of_range").
std::string demangle(const std::type_info& type);

/// Decodes the (type, message) record of an error slot and throws the
/// matching TaskError subclass.
[[noreturn]] void throw_recorded_error(const ResultView& view);

/// Encodes an error record (type name, message) into the slot's result area.
/// Never throws: the message is cut to fit when the spill area refuses it.
void write_error(ResultSink& sink, const std::string& type, const std::string& message) noexcept;

}  // namespace inorder::detail
