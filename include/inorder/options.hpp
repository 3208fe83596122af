// inorder/options.hpp: the knobs of a ParallelQueue, with their defaults.
//
// A plain aggregate: set what you need with designated initializers and leave
// the rest at the documented default, e.g.
//     inorder::ParallelQueue<int> q({.workers = 4, .window = 64});
// The queue validates the Options when it is constructed and throws
// std::invalid_argument naming the offending field; nothing is clamped silently
// except `capacity`, which is rounded up to a power of two (see below).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <thread>

namespace inorder {

/// Default worker count: one per hardware thread, at least one.
[[nodiscard]] inline unsigned default_workers() noexcept {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1U : n;
}

// The implicit copy and move of Options copy the deprecated field `lives`;
// only a user's own use of it should warn, so the definition is exempt.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
struct Options {
  /// Worker processes forked at construction. Default: hardware threads.
  /// Must be >= 1.
  unsigned workers = default_workers();

  /// Reorder window: no worker starts (and so none publishes) a task more than
  /// `window - 1` positions ahead of the next result to be emitted. Bounds how
  /// many finished results can wait behind a slow one. Default: 1024, but at
  /// most `capacity` when that is set. A shallow
  /// window stops the workers every few tasks when tasks are tiny (1.7x slower
  /// at 256 than at 1024, docs/tuning.md). Must be >= workers and <= capacity.
  std::optional<std::size_t> window{};

  /// In-flight capacity: tasks put and not yet taken by get(). put() blocks
  /// (backpressure) when this many are outstanding, so it also bounds the
  /// memory held by results: at most `capacity` results exist at once.
  /// Rounded up to a power of two. Default: the larger of 64 and 2 x window
  /// (2048 with the default window). Must be >= 1 and >= window.
  std::optional<std::size_t> capacity{};

  /// Pending stage: tasks put() keeps in this process, encoded, while the ring
  /// is full, and feeds into the ring (in put order) as get() frees slots.
  /// Default: unbounded (std::nullopt), so put() never waits for results and
  /// one thread may put everything, then get everything (the reference
  /// design's loop; memory grows with what is pending). 0: no pending stage,
  /// put() blocks while `capacity` results are outstanding (backpressure).
  /// N: put() blocks, and try_put() fails, once N tasks are pending. At most
  /// 2^30 tasks are ever pending: past that put() blocks whatever is set.
  std::optional<std::size_t> max_pending{};

  /// Bytes stored inline in a slot for the encoded arguments of a task, and
  /// again for its encoded result. Anything larger goes to the slot's spill
  /// area (slower: page faults). Default 192. Must be >= 64 (room for an error
  /// record); rounded up to a multiple of 64.
  std::size_t inline_bytes = 192;

  /// Per-slot spill area for arguments and results that do not fit inline.
  /// Reserved as address space only (memory is touched only when used and
  /// returned after large results are consumed). A task's encoded arguments
  /// plus its encoded result must fit; a larger result fails its own slot with
  /// TaskError type "inorder::ResultTooLarge", larger arguments make put()
  /// throw inorder::PayloadTooLarge. Default 256 MiB.
  std::size_t max_spill_bytes = std::size_t{256} << 20;

  /// Runs once in every worker right after it is forked, before its first
  /// task, with the worker's index (0-based). Use it to open per-process
  /// resources. If it throws, every task that worker runs fails with
  /// TaskError type "inorder::WorkerInitFailed" (the queue does not hang).
  std::function<void(unsigned worker_index)> worker_init{};

  /// Per-task time limit; zero (the default) means none. A task that runs
  /// longer has its worker SIGKILLed and replaced; its slot fails with
  /// inorder::TaskTimeout (or is retried, see `retries`). Checked every quarter
  /// of the limit, so a task is stopped between 1x and 1.25x the limit.
  std::chrono::milliseconds task_timeout{0};

  /// Retries of a task whose worker crashed or timed out: each retry runs on
  /// a fresh worker, so a task runs at most `retries + 1` times. Default 0:
  /// the first crash fails the slot. At most 1000. (Called `lives` in the
  /// library inorder follows; see the deprecated field below.)
  unsigned retries = 0;

  /// Deprecated spelling of `retries`, kept for one release (it counted
  /// retries too, not attempts). Either field may be set; setting both to
  /// different nonzero values makes the constructor throw
  /// std::invalid_argument.
  [[deprecated(
      "inorder: Options::lives is now Options::retries (the same count)")]] unsigned lives = 0;

  /// Also spend retries on tasks that throw (default false: an exception is
  /// the task's answer and is delivered at once).
  bool retry_exceptions = false;

  /// Worker recycling, for task code that leaks: a worker that has finished
  /// this many tasks exits between tasks and a fresh one takes its place
  /// (Python's maxtasksperchild). 0 (the default): never. A recycled worker
  /// holds no task, loses nothing and does not count toward the restart cap.
  unsigned max_tasks_per_worker = 0;

  /// Worker recycling by memory: a worker whose resident set has grown past
  /// this many bytes exits between tasks and is replaced, as above (Celery's
  /// worker_max_memory_per_child). Checked after each task (one getrusage
  /// call). 0 (the default): never.
  std::size_t max_worker_rss = 0;

  /// Restart cap: more than `max_restarts` worker replacements within
  /// `restart_window` turn the queue Broken: every pending slot and every
  /// later put() fails at once with inorder::QueueBroken, instead of the queue
  /// spinning on a task that kills every worker. Every worker death counts
  /// (crashes, deaths in worker_init or while idle) except the kills for a
  /// task's time limit, which are that task's outcome. Defaults: 100 within 10 s.
  unsigned max_restarts = 100;
  std::chrono::milliseconds restart_window{10'000};

  /// How long the destructor lets busy workers finish their current task
  /// before it SIGKILLs them. Idle workers exit at once. Default 250 ms.
  std::chrono::milliseconds shutdown_grace{250};

  /// First sequence number. Sequence numbers are 32-bit and wrap; this exists
  /// so tests can start next to the wrap point. Leave it at 0.
  std::uint32_t first_sequence = 0;
};
#pragma GCC diagnostic pop

/// Settings for one task, given to ParallelQueue::put_with.
struct TaskOptions {
  /// This task's time limit, overriding Options::task_timeout; zero means the
  /// queue's setting. Past it the worker is killed and replaced and the slot
  /// fails with inorder::TaskTimeout (or is retried, see Options::retries).
  std::chrono::milliseconds timeout{0};
};

}  // namespace inorder
