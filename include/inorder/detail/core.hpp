// inorder/detail/core.hpp: the type-erased engine under ParallelQueue<R>.
//
// Not a public API: ParallelQueue<R> (parallel_queue.hpp) is the interface.
// Core owns the shared-memory ring, the worker processes and every system call;
// it moves bytes and function pointers, never typed values. The templates in
// parallel_queue.hpp encode arguments into the bytes Core hands out, and decode
// the result bytes Core hands back. All of Core is compiled once, in src/.
#pragma once

#include <sys/types.h>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "inorder/detail/deadline.hpp"
#include "inorder/options.hpp"
#include "inorder/stats.hpp"

namespace inorder::detail {

/// Where a worker writes a task's encoded result. Lives in the worker process.
class ResultSink {
 public:
  /// Returns a destination for exactly `n` bytes of encoded result: the slot
  /// header's own bytes if it fits there, else the slot's inline result area, else a result area
  /// taken from the queue's free list, else the slot's own spill area. Throws
  /// detail::ResultTooLarge when `n` does not fit; the worker turns that into an error in the
  /// task's slot.
  std::byte* reserve(std::size_t n);

  // Set by the worker loop; read by reserve().
  /// The result bytes in the slot header's first line (required): a result
  /// that fits there goes there (Region::result_bytes reads it back from the
  /// same place).
  std::byte* head_area = nullptr;
  std::byte* inline_area = nullptr;
  std::size_t inline_bytes = 0;
  std::byte* spill_area = nullptr;
  std::size_t spill_bytes = 0;
  /// The queue's shared region (a type of the compiled library); null: no
  /// result areas, only the inline and spill areas above.
  const void* region = nullptr;
  std::size_t area_bytes = 0;  ///< size of a result area

  // Written by reserve(); read by the worker loop afterwards.
  std::size_t reserved = 0;         ///< bytes the last reserve() handed out
  bool spilled = false;             ///< whether they are outside the inline area
  bool in_area = false;             ///< whether they are in result area `area`
  std::uint32_t area = 0xFFFFFFFF;  ///< result area taken (kept across calls); all ones: none
};

/// Thrown by ResultSink::reserve; caught by the worker loop.
struct ResultTooLarge {
  std::size_t wanted;
  std::size_t limit;
};

/// Runs one task in a worker: decodes the callable and its arguments from
/// `task[0, len)`, calls it, and encodes the result through `sink`. Exceptions
/// propagate to the worker loop, which records them in the task's slot.
/// Instantiated per callable type by the templates; the pointer is valid in the
/// workers because they are forked from the process that instantiated it.
using Invoker = void (*)(const std::byte* task, std::size_t len, ResultSink& sink);

/// A finished slot, as seen by the getter that claimed it.
struct ResultView {
  std::uint32_t seq = 0;
  bool is_error = false;
  const std::byte* data = nullptr;
  std::size_t len = 0;
  pid_t pid = 0;
  std::uint32_t broken = 0;  ///< nonzero: synthesized because the queue broke
};

enum class GetStatus { kReady, kTimeout, kEnd };

class Core {
 public:
  /// Validates `opts` (std::invalid_argument naming the field), maps the shared
  /// region and forks the workers (std::system_error on failure).
  explicit Core(const Options& opts);
  /// Never hangs: see ParallelQueue::~ParallelQueue.
  ~Core();
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  /// Producer side, any thread. Claims the next sequence number and returns
  /// where to write `bytes` of payload: the task area for a task (`is_value`
  /// false) or the result area for a pass-through value. Waits for a free slot
  /// until `deadline`; returns nullptr on timeout. Throws QueueClosed after
  /// stop(), PayloadTooLarge if `bytes` exceeds the spill limit. Every non-null
  /// return must be followed by commit_put with the same `seq`.
  std::byte* begin_put(std::size_t bytes, bool is_value, Deadline deadline, std::uint32_t& seq);
  /// Publishes the slot claimed by begin_put. `invoker` is null for a value.
  /// `timeout_ms` nonzero: this task's own time limit (overrides
  /// Options::task_timeout).
  void commit_put(std::uint32_t seq, Invoker invoker, std::size_t bytes,
                  std::uint32_t timeout_ms = 0) noexcept;

  /// Getter side, any thread. Claims the next result in sequence order, waiting
  /// until `deadline`. kEnd: stopped and everything delivered.
  GetStatus begin_get(Deadline deadline, ResultView& out);
  /// Completion order: claims any finished result in [emit, put), oldest
  /// first, waiting until `deadline`. Not to be mixed with begin_get on one
  /// queue (both could claim the same slot).
  GetStatus begin_get_any(Deadline deadline, ResultView& out);
  /// Returns the slot claimed by begin_get to the producers. Must be called
  /// exactly once after every kReady, after the view's bytes are decoded.
  void end_get(const ResultView& view) noexcept;
  /// Rebuilds the error recorded in an error slot and throws it: TaskError or
  /// its subclasses WorkerCrashed / TaskTimeout, or QueueBroken.
  [[noreturn]] void throw_task_error(const ResultView& view) const;

  void stop() noexcept;
  [[nodiscard]] bool stopped() const noexcept;
  /// Stopped, and every put has been claimed by a getter.
  [[nodiscard]] bool exhausted() const noexcept;
  bool join(Deadline deadline);
  [[nodiscard]] bool is_alive();
  [[nodiscard]] Stats stats();
  [[nodiscard]] std::size_t inline_bytes() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace inorder::detail
