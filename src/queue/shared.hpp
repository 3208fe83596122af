// src/queue/shared.hpp: the layout of the shared-memory region of one queue.
//
// One anonymous MAP_SHARED mapping, created before the workers are forked and
// inherited by them (no name in /dev/shm, nothing another user can open):
//
//   [ Control | WorkerRecord x workers | Slot x capacity | area links x capacity ]
//   [ spill areas: max_spill_bytes x capacity x 2, MAP_NORESERVE ] (a second mapping)
//
// The first `capacity` spill areas belong to the slots (area s & mask): a
// task's bytes that do not fit inline, and a result when no result area is
// free. The other `capacity` are result areas, handed out from a free list
// (Control::free_areas) so that large results reuse warm pages: see
// Region::pop_area.
//
// A slot carries one sequence number through its whole life; the state word
// names the sequence and the phase, so a stale reader can never mistake one lap
// of the ring for another:
//
//   kFree(s) --producer--> kReady(s) --worker--> kRunning(s, w) --worker--> kDone(s)
//   kFree(s) --producer (pass-through value)--------------------------------> kDone(s)
//   kDone(s) --getter--> kFree(s + capacity)
//   kDone(s) --getter in completion order--> kTaken(s) --after decoding--> kFree(s + capacity)
//
// Sequence numbers are 32-bit and wrap; they are compared by signed difference
// (before(a, b) is (int32)(a - b) < 0), which is exact while no two live
// sequence numbers are 2^31 apart; capacity <= 2^20 guarantees that.
#pragma once

#include <sys/types.h>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "inorder/detail/config.hpp"
#include "inorder/detail/core.hpp"
#include "ipc/sync.hpp"
#include "os/os.hpp"

namespace inorder::detail {

inline constexpr std::size_t kMaxCapacity = std::size_t{1} << 20;

/// Phases of a slot (bits 24..31 of the state word).
enum : std::uint32_t { kFree = 0, kReady = 1, kRunning = 2, kDone = 3, kTaken = 4 };

/// Bits [23..0] of a state word: the worker index of a kRunning slot.
inline constexpr std::uint32_t kStateWorkerMask = 0xFFFFFFu;
static_assert(1024 <= kStateWorkerMask, "Options::workers (at most 1024) fits in the worker bits");

/// State word: [63..32] sequence, [31..24] phase, [23..0] worker index (kRunning).
constexpr std::uint64_t make_state(std::uint32_t seq, std::uint32_t phase,
                                   std::uint32_t worker = 0) noexcept {
  return (std::uint64_t{seq} << 32) | (std::uint64_t{phase} << 24) | (worker & kStateWorkerMask);
}
/// The worker index of a kRunning state.
constexpr std::uint32_t state_worker(std::uint64_t st) noexcept {
  return static_cast<std::uint32_t>(st) & kStateWorkerMask;
}
constexpr std::uint32_t state_seq(std::uint64_t st) noexcept {
  return static_cast<std::uint32_t>(st >> 32);
}
constexpr std::uint32_t state_phase(std::uint64_t st) noexcept {
  return static_cast<std::uint32_t>(st >> 24) & 0xFFu;
}
constexpr bool before(std::uint32_t a, std::uint32_t b) noexcept {
  return static_cast<std::int32_t>(a - b) < 0;
}

/// put_word: [31..0] next sequence to hand to a producer, bit 32 closed by stop().
inline constexpr std::uint64_t kClosedBit = std::uint64_t{1} << 32;

struct Control {
  // ---- written by producers (parent threads) ----
  /// Next sequence a producer claims, plus the closed bit. Producers claim by
  /// CAS only after seeing the slot kFree(seq) (acquire, pairs with the
  /// getter's release of that slot); stop() sets kClosedBit with fetch_or, so a
  /// claim and a stop are totally ordered: no task can slip in after stop().
  /// Written by the parent's threads only: a sole producer claims with a plain
  /// store until another thread writes the word (queue/bias.hpp), so the
  /// supervisor never writes it (it sets `broken`; the parent then closes).
  alignas(kCacheLine) std::atomic<std::uint64_t> put_word{0};

  // ---- written by workers ----
  /// Next sequence for a worker to claim. A hint only: the claim itself is the
  /// CAS kReady(s) -> kRunning(s, w) on the slot (with one worker, a store,
  /// and the hint moves by a store too: Worker::sole_). Any worker that sees slot s
  /// already past kReady advances it by CAS (helping), so a worker that dies
  /// right after its claim cannot stall dispatch. Orderings: moving the hint
  /// forward is relaxed (it publishes nothing: the slot's own state word
  /// carries the task); lowering it to a slot made kReady again (a retry) is
  /// a release, paired with the workers' acquire load, so a worker sent back
  /// to that slot sees kReady and does not step over it.
  alignas(kCacheLine) std::atomic<std::uint32_t> dispatch{0};

  // ---- written by getters (parent threads) ----
  /// Next sequence to be emitted. Getters claim a finished slot by CAS
  /// emit s -> s+1 after seeing kDone(s) (acquire, pairs with the worker's
  /// release); a sole getter thread by a plain store (queue/bias.hpp).
  /// Workers read it for the window gate.
  alignas(kCacheLine) std::atomic<std::uint32_t> emit{0};

  /// Set once by the destructor: workers exit as soon as they are between tasks.
  alignas(kCacheLine) std::atomic<std::uint32_t> shutdown{0};
  /// A copy of put_word's closed bit, set right after it (close_puts()) and
  /// never cleared. Spinning waiters watch this flag instead of put_word:
  /// put_word's line is written by every put, this one once, so a waiter
  /// spinning on it does not steal the line the producer is about to write.
  /// A waiter that sees it set re-reads put_word for the authoritative value.
  std::atomic<std::uint32_t> closed{0};
  /// Set once by the supervisor when the restart cap is reached (kBrokenByRestarts)
  /// or it could not fork the first workers (kBrokenByStart), or by the parent
  /// when the supervisor vanished (kBrokenBySupervisor). Every slot not yet
  /// kDone then fails at get(), put() throws QueueBroken. The supervisor does
  /// not close puts itself: the parent's first put() or get() to see this does.
  std::atomic<std::uint32_t> broken{0};
  /// Set by the supervisor once the first workers are forked (futex word):
  /// kStartOk (release, after every worker's pid and alive flag are stored;
  /// stats() acquires it before reading them) or kStartFailed. The
  /// constructor does not wait for it: the forks overlap the caller's puts.
  std::atomic<std::uint32_t> started{0};
  /// errno of the failed fork (written before started = kStartFailed).
  std::atomic<int> start_errno{0};
  /// Workers replaced after a crash or timeout, ever (relaxed, for stats).
  std::atomic<std::uint64_t> restarts{0};
  /// Workers replaced because they reached max_tasks_per_worker or
  /// max_worker_rss, ever (relaxed, for stats). Not restarts: they held no task.
  std::atomic<std::uint64_t> recycled{0};

  /// Free list of result areas, a stack shared by every process of the
  /// queue: [63..32] a tag bumped by every change (so a pop that read an old
  /// top cannot succeed after the top was popped and pushed again), [31..0]
  /// index + 1 of the top area, 0 when empty. Workers pop (acquire: the
  /// getter's reads of the area's previous result happen before the worker
  /// writes), getters push in end_get (release); links in Region::area_next.
  alignas(kCacheLine) std::atomic<std::uint64_t> free_areas{0};

  /// Workers sleep here for a kReady slot at `dispatch`. Producers notify.
  EventCount task_ec;
  /// Getters sleep here for kDone at `emit`. Workers and value producers notify.
  EventCount result_ec;
  /// Producers (slot free) and gated workers (emit moved) sleep here. Getters notify.
  EventCount progress_ec;

  // ---- read-only after construction ----
  alignas(kCacheLine) std::uint32_t capacity = 0;
  std::uint32_t mask = 0;
  std::uint32_t window = 0;
  std::uint32_t workers = 0;
  std::size_t inline_bytes = 0;
  std::size_t slot_stride = 0;
  std::size_t spill_bytes = 0;
  std::uint32_t retries = 0;               ///< Options::retries: after a crash or timeout
  std::uint32_t retry_exceptions = 0;      ///< retries also cover exceptions
  std::uint64_t task_timeout_ns = 0;       ///< 0: no per-task timeout
  std::uint32_t max_restarts = 0;          ///< restart cap: this many ...
  std::uint64_t restart_window_ns = 0;     ///< ... within this long
  std::uint64_t grace_ns = 0;              ///< shutdown grace
  std::uint32_t max_tasks_per_worker = 0;  ///< recycle a worker after this many tasks; 0: never
  std::uint64_t max_worker_rss = 0;  ///< recycle a worker past this peak RSS (bytes); 0: never
  int wake_fd = -1;  ///< eventfd the supervisor polls; written by stop(), the destructor,
                     ///< and a worker starting a task with its own timeout
};

/// Sets the closed bit (no put can claim a sequence after this) and its copy
/// for waiters; callers then wake every EventCount.
inline void close_puts(Control& c) noexcept {
  c.put_word.fetch_or(kClosedBit, std::memory_order_seq_cst);
  c.closed.store(1, std::memory_order_seq_cst);
}

enum : std::uint32_t { kBrokenByRestarts = 1, kBrokenBySupervisor = 2, kBrokenByStart = 3 };
enum : std::uint32_t { kStartOk = 1, kStartFailed = 2 };

/// One per worker, written only by that worker (and by the parent before fork).
struct alignas(kCacheLine) WorkerRecord {
  /// pid of the worker; written by the parent after fork, read for stats.
  std::atomic<pid_t> pid{0};
  /// Tasks finished; relaxed, read only for stats.
  std::atomic<std::uint64_t> tasks{0};
  /// Nanoseconds spent inside tasks; relaxed, read only for stats.
  std::atomic<std::uint64_t> busy_ns{0};
  /// Task being run and when it started (CLOCK_MONOTONIC ns), written by the
  /// worker after each claim when a task timeout is set. The supervisor reads
  /// seq, then since, then seq again, and acts only if the slot still says
  /// kRunning(seq, this worker): a stale pair can never kill the wrong task.
  std::atomic<std::uint32_t> running_seq{0};
  std::atomic<std::uint64_t> running_since_ns{0};
  /// Time limit of the task being run (written before running_since_ns).
  std::atomic<std::uint64_t> running_timeout_ns{0};
  /// 1 while the worker process exists (supervisor writes), for stats.
  std::atomic<std::uint32_t> alive{0};
  /// Times this worker slot was refilled with a new process.
  std::atomic<std::uint32_t> restarts{0};
  /// Set (release) by a worker right before it exits to be recycled, between
  /// tasks; the supervisor reads and clears it (acquire exchange) after
  /// reaping, and only a set flag together with kRecycleStatus counts as a
  /// recycle (an exit status alone could come from user code).
  std::atomic<std::uint32_t> recycling{0};
};

/// Exit status of a worker that leaves to be recycled (see WorkerRecord).
inline constexpr int kRecycleStatus = 75;

/// Bytes of task and of result that fit in the slot's first cache line,
/// beside the state word (SlotHeader::head_task, head_result).
inline constexpr std::size_t kHeadTaskBytes = 16;
inline constexpr std::size_t kHeadResultBytes = 8;

/// Header of a slot: two cache lines, followed by inline_bytes of task area
/// and inline_bytes of result area. Every plain field is written by the party
/// that owns the slot in its current phase, before the release store that ends
/// the phase, and read by the next owner after its acquire load of `state`.
///
/// The first line is all a small task touches: the state, what the worker
/// needs to run the task, and room for a task of up to kHeadTaskBytes and a
/// result of up to kHeadResultBytes. Such a task moves one line between the
/// processes at each hand-off, where the task and result areas would add two
/// more. The second line holds fields that rarely change; their writers
/// store them only when the value differs (store_if_changed), so the line
/// stays shared by every process and costs nothing to read.
struct alignas(kCacheLine) SlotHeader {
  // ---- first line: changes with every task ----
  std::atomic<std::uint64_t> state{0};
  Invoker invoker = nullptr;        ///< producer; null for a pass-through value
  std::uint64_t task_len = 0;       ///< producer: bytes of encoded callable + arguments
  std::uint64_t result_len = 0;     ///< worker (or value producer): bytes of result
  std::uint8_t task_spilled = 0;    ///< task bytes are in the spill area
  std::uint8_t result_spilled = 0;  ///< result bytes are in the spill area
  std::uint8_t result_error = 0;    ///< result bytes encode an error, not an R
  std::uint16_t attempts = 0;       ///< failed attempts so far (producer resets, supervisor counts)
  /// A task of at most kHeadTaskBytes (task_len says so), not spilled.
  alignas(8) std::byte head_task[kHeadTaskBytes];
  /// A result of at most kHeadResultBytes (result_len says so), neither
  /// spilled nor in a result area.
  alignas(8) std::byte head_result[kHeadResultBytes];

  // ---- second line: written only when the value changes ----
  alignas(kCacheLine) pid_t result_pid = 0;  ///< worker that produced the result
  std::uint32_t timeout_ms = 0;  ///< producer: this task's own timeout (0: Options::task_timeout)
  /// Worker: index + 1 of the result area holding the result; 0 when the
  /// result is inline or in the slot's own spill area (result_spilled).
  std::uint32_t result_area = 0;
};

/// Stores `value` into a field of the header's second line unless it holds it
/// already: a load of a line nobody wrote is a hit in every cache, where a
/// store would take the line away from the other processes.
template <class T>
void store_if_changed(T& field, T value) noexcept {
  if (field != value) field = value;
}

static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "slot states must be lock-free: an emulated atomic is not shared across processes");
static_assert(std::atomic<pid_t>::is_always_lock_free, "worker pids are read across processes");
static_assert(offsetof(SlotHeader, head_result) + kHeadResultBytes <= kCacheLine,
              "the state, the fields it publishes and a small task and result share one cache "
              "line: they move between processes together");
static_assert(offsetof(SlotHeader, result_pid) == kCacheLine &&
                  sizeof(SlotHeader) == 2 * kCacheLine,
              "the rarely written fields have a line of their own");
static_assert(alignof(Control) >= kCacheLine && alignof(WorkerRecord) >= kCacheLine,
              "each shared structure starts on its own cache line");
static_assert(std::is_standard_layout_v<Control> && std::is_standard_layout_v<SlotHeader>,
              "shared structures are plain layouts placed in raw shared memory");

/// No result area (Region::pop_area found the free list empty).
inline constexpr std::uint32_t kNoArea = 0xFFFFFFFFu;

/// Offset of the result area inside a slot's spill area: results start on the
/// page after the task's bytes, so a retried task still finds its arguments.
inline std::size_t spill_result_offset(std::size_t task_bytes_in_spill) noexcept {
  return round_up(task_bytes_in_spill, page_size());
}

}  // namespace inorder::detail
