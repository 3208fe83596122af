// src/queue/core.cpp: the parent side of a queue: set-up, producers, getters,
// lifecycle. The worker side is in worker.cpp; the layout in shared.hpp.
#include <sys/mman.h>
#include <unistd.h>
#include <algorithm>
#include <bit>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "inorder/detail/core.hpp"
#include "inorder/errors.hpp"
#include "queue/bias.hpp"
#include "queue/error_record.hpp"
#include "queue/region.hpp"

namespace inorder::detail {
namespace {

/// Payloads in a slot's own spill area (tasks, and results when no result
/// area was free) at least this large have their pages returned to the system
/// when their slot is freed; smaller ones stay mapped for reuse, so the memory
/// those areas keep is bounded by capacity x this threshold x 2.
constexpr std::size_t kReleaseThreshold = std::size_t{256} << 10;
/// Result areas keep their pages (warm: no page fault, no zeroing on the next
/// use) while all of them together hold at most this much; an area freed
/// past it is returned to the system. Areas are reused last-freed first, so a
/// steady stream of large results cycles through as few areas as are in use.
constexpr std::size_t kWarmResultBytes = std::size_t{64} << 20;
/// Upper bound of the spill reservation (address space, not memory).
constexpr std::size_t kMaxSpillReservation = std::size_t{1} << 46;

/// The default window (see Options::window).
constexpr std::size_t kDefaultWindow = 1024;

/// With Options::max_pending unset, a put() that finds the ring full waits
/// for a slot while results are being taken, and stages its task once no
/// result has been taken for this long: the ring's consumer is then this
/// thread, or gone. A thread that puts everything before it gets pays this
/// once, not per put.
constexpr auto kStageAfterIdle = std::chrono::milliseconds(5);

/// Hard bound of the pending stage: live sequence numbers must stay within
/// 2^31 of each other (shared.hpp), so claims never run further ahead.
constexpr std::size_t kMaxPending = std::size_t{1} << 30;

struct Validated {
  unsigned workers;
  unsigned retries;
  std::size_t slot_stride;  ///< header + task area + result area
  std::size_t window;
  std::size_t capacity;
  std::size_t inline_bytes;
  std::size_t spill_bytes;
  std::size_t max_pending;
};

/// Options::retries, or its deprecated spelling Options::lives.
unsigned retries_of(const Options& o) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  const unsigned old_spelling = o.lives;
#pragma GCC diagnostic pop
  return renamed_setting(
      o.retries, old_spelling, 0,
      "inorder: Options::lives is the deprecated name of Options::retries; set only one");
}

Validated validate(const Options& o) {
  Validated v{};
  if (o.workers < 1 || o.workers > 1024)
    throw std::invalid_argument("inorder: Options::workers must be between 1 and 1024, got " +
                                std::to_string(o.workers));
  v.workers = o.workers;
  // Default: deep enough that tiny tasks stream without the gate stopping
  // workers every few tasks (docs/tuning.md has the curve; it is also at
  // least the workers, which are at most 1024); never above a capacity the
  // user set.
  static_assert(kDefaultWindow >= 1024, "the default window covers the most workers allowed");
  v.window = o.window.value_or(kDefaultWindow);
  if (!o.window && o.capacity && *o.capacity >= o.workers)
    v.window = std::min(v.window, *o.capacity);
  if (o.window && *o.window < o.workers)
    throw std::invalid_argument("inorder: Options::window (" + std::to_string(*o.window) +
                                ") must be >= Options::workers (" + std::to_string(o.workers) +
                                "): a smaller window leaves workers idle forever");
  if (v.window > kMaxCapacity)
    throw std::invalid_argument("inorder: Options::window must be <= " +
                                std::to_string(kMaxCapacity));
  if (o.capacity) {
    if (*o.capacity == 0) throw std::invalid_argument("inorder: Options::capacity must be >= 1");
    if (*o.capacity < v.window)
      throw std::invalid_argument("inorder: Options::capacity (" + std::to_string(*o.capacity) +
                                  ") must be >= Options::window (" + std::to_string(v.window) +
                                  ")");
    if (*o.capacity > kMaxCapacity)
      throw std::invalid_argument("inorder: Options::capacity must be <= " +
                                  std::to_string(kMaxCapacity));
    v.capacity = std::bit_ceil(*o.capacity);
  } else {
    v.capacity = std::bit_ceil(std::max<std::size_t>(64, 2 * v.window));
  }
  if (o.inline_bytes < 64 || o.inline_bytes > (std::size_t{1} << 20))
    throw std::invalid_argument("inorder: Options::inline_bytes must be between 64 and 1 MiB");
  v.inline_bytes = round_up(o.inline_bytes, kCacheLine);
  v.slot_stride = sizeof(SlotHeader) + 2 * v.inline_bytes;
  if (o.max_spill_bytes < v.inline_bytes)
    throw std::invalid_argument("inorder: Options::max_spill_bytes must be >= inline_bytes");
  v.spill_bytes = round_up(o.max_spill_bytes, page_size());
  if (v.spill_bytes > kMaxSpillReservation / (2 * v.capacity))
    throw std::invalid_argument(
        "inorder: Options::max_spill_bytes x capacity x 2 exceeds the 64 TiB address-space "
        "budget");
  if (o.task_timeout.count() < 0)
    throw std::invalid_argument("inorder: Options::task_timeout must not be negative");
  if (o.restart_window.count() <= 0)
    throw std::invalid_argument("inorder: Options::restart_window must be positive");
  v.retries = retries_of(o);
  if (v.retries > 1000) throw std::invalid_argument("inorder: Options::retries must be <= 1000");
  if (o.shutdown_grace.count() < 0)
    throw std::invalid_argument("inorder: Options::shutdown_grace must not be negative");
  v.max_pending = std::min(o.max_pending.value_or(kMaxPending), kMaxPending);
  return v;
}

std::string broken_reason(const Control& c) {
  const std::uint32_t why = c.broken.load(std::memory_order_acquire);
  if (why == kBrokenBySupervisor)
    return "inorder: the queue is broken: its supervisor process vanished (killed from "
           "outside?), so no task can finish";
  if (why == kBrokenByStart)
    return std::string(
               "inorder: the queue is broken: its supervisor could not fork the worker "
               "processes (fork: ") +
           std::strerror(c.start_errno.load(std::memory_order_relaxed)) + ")";
  return "inorder: the queue is broken: more than " + std::to_string(c.max_restarts) +
         " worker restarts within " + std::to_string(c.restart_window_ns / 1'000'000) +
         " ms (Options::max_restarts / restart_window); every unfinished task fails";
}

}  // namespace

/// Parent-side waits sleep at most this long before checking the supervisor.
constexpr auto kLivenessCheck = std::chrono::milliseconds(100);
/// How long past shutdown_grace the destructor waits for the supervisor's exit.
constexpr auto kSupervisorExitMargin = std::chrono::seconds(10);

/// A task (or pass-through value) claimed while its ring slot still held an
/// earlier lap: its encoded bytes wait here, in the parent, until the getter
/// that frees the slot (or the producer's own commit, if the slot is free by
/// then) moves them in. Lives in Impl::pending, keyed by sequence number.
struct Pending {
  std::vector<std::byte> bytes;  ///< at least one byte, so data() is never null
  std::size_t len = 0;           ///< bytes of payload (commit_put's `bytes`)
  Invoker invoker = nullptr;     ///< null: a pass-through value
  std::uint32_t timeout_ms = 0;  ///< the task's own time limit, as commit_put got it
  bool committed = false;        ///< commit_put has run: the bytes are complete
};
/// Keyed by sequence number (only looked up, never walked in order, so the
/// wrap of sequence numbers does not matter). A std::map because a node can
/// be made before a claim and inserted after it without allocating: nothing
/// between a claim and its commit may throw, or the claimed position would
/// never be filled.
using PendingMap = std::map<std::uint32_t, Pending>;

struct Core::Impl {
  Options opts;
  Region r;
  std::size_t max_pending = 0;  ///< Validated::max_pending
  /// One fact in one word: a put gave up waiting for a taker when `emit` was
  /// at the low 32 bits (kGaveUpBit set; 0 = no put ever gave up). While emit
  /// stays there, puts that find the ring full stage at once. Producers only,
  /// paired with nothing: it is a hint read next to an acquire load of emit,
  /// and a stale value only makes a put wait one more slice or stage one
  /// slice early, so relaxed is enough.
  static constexpr std::uint64_t kGaveUpBit = std::uint64_t{1} << 32;
  std::atomic<std::uint64_t> gave_up_at{0};

  /// The pending stage (Options::max_pending). An entry exists for sequence
  /// s from the producer's claim of s until s is moved into its slot; the
  /// slot of s is freed only by end_get of s - capacity, and both end_get and
  /// commit_put look for the entry under pending_mu after their own store, so
  /// whichever of the two comes second moves it (never both, never neither).
  std::mutex pending_mu;
  PendingMap pending;  ///< guarded by pending_mu
  /// Entries in `pending` plus claims being staged: reserved by a producer
  /// (CAS, never past max_pending) before its claim, released when the entry
  /// is moved into the ring. Zero means "no entry", so the common path of
  /// commit_put and end_get costs one relaxed load. A check that misses an
  /// entry by a race is caught by the getters' backstop (move_stuck()).
  std::atomic<std::size_t> staged{0};

  /// Moves entry `it` into its slot if the slot is free for it; returns
  /// whether it did. Caller holds pending_mu; the entry is committed.
  bool move_in_if_free(PendingMap::iterator it) noexcept {
    const std::uint32_t s = it->first;
    SlotHeader& h = r.slot(s);
    // Pairs with end_get's release of the previous lap.
    if (h.state.load(std::memory_order_acquire) != make_state(s, kFree)) return false;
    Pending& e = it->second;
    std::byte* dst = e.len > r.ctl->inline_bytes ? r.spill_area(s)
                     : e.invoker != nullptr      ? r.task_bytes(h, e.len)
                                                 : r.result_bytes(h, e.len);
    std::memcpy(dst, e.bytes.data(), e.len);
    publish(s, e.invoker, e.len, e.timeout_ms);
    pending.erase(it);
    staged.fetch_sub(1, std::memory_order_relaxed);
    return true;
  }

  /// Returns result area i, whose last result was `len` bytes, to the free
  /// list. Its pages stay mapped (warm) unless the warm areas together pass
  /// kWarmResultBytes; then this one is returned to the system first.
  void free_area(std::uint32_t i, std::size_t len) noexcept {
    std::size_t& warm = area_warm[i];
    const std::size_t used = round_up(len, page_size());
    if (used > warm) {
      warm_total.fetch_add(used - warm, std::memory_order_relaxed);
      warm = used;
    }
    if (warm_total.load(std::memory_order_relaxed) > kWarmResultBytes) {
      // MADV_REMOVE frees shared anonymous memory; MADV_DONTNEED would only
      // unmap it from this process.
      madvise(r.area(i), warm, MADV_REMOVE);
      warm_total.fetch_sub(warm, std::memory_order_relaxed);
      warm = 0;
    }
    r.push_area(i);
  }

  /// If sequence `s` waits in the pending stage, committed, and its slot is
  /// free: moves it in. Wakes producers held back by max_pending.
  void try_move(std::uint32_t s) noexcept {
    if (staged.load(std::memory_order_relaxed) == 0) return;
    if (r.slot(s).state.load(std::memory_order_acquire) != make_state(s, kFree)) return;
    bool moved = false;
    {
      std::lock_guard lock(pending_mu);
      const auto it = pending.find(s);
      if (it != pending.end() && it->second.committed) moved = move_in_if_free(it);
    }
    if (moved) r.ctl->progress_ec.notify_all();
  }

  /// The getters' backstop: moves every committed entry among the next
  /// `capacity` positions whose slot is free. end_get and commit_put each
  /// look for the other after their own store, ordered by a fence and a
  /// membarrier; this covers a membarrier that failed. An in-order getter
  /// calls try_move() for its own position before it sleeps; a completion-order
  /// getter calls this when its wait reaches the liveness check.
  void move_stuck() noexcept {
    if (staged.load(std::memory_order_relaxed) == 0) return;
    const std::uint32_t from = r.ctl->emit.load(std::memory_order_acquire);
    for (std::uint32_t k = 0; k < r.ctl->capacity; ++k) try_move(from + k);
  }

  /// Publishes a slot whose payload is written: kReady for a task (a worker
  /// claims it), kDone for a pass-through value.
  void publish(std::uint32_t seq, Invoker invoker, std::size_t bytes,
               std::uint32_t timeout_ms) noexcept {
    Control& c = *r.ctl;
    SlotHeader& h = r.slot(seq);
    const bool spilled = bytes > c.inline_bytes;
    h.invoker = invoker;
    h.attempts = 0;
    store_if_changed(h.timeout_ms, timeout_ms);
    if (invoker != nullptr) {
      h.task_len = bytes;
      h.task_spilled = spilled;
      h.state.store(make_state(seq, kReady),
                    std::memory_order_release);  // pairs with the worker's claim
      c.task_ec.notify_one();
    } else {
      // A pass-through value: finished at once, no worker involved.
      h.task_len = 0;
      h.task_spilled = 0;
      h.result_len = bytes;
      h.result_spilled = spilled;
      store_if_changed(h.result_area, std::uint32_t{0});
      h.result_error = 0;
      store_if_changed(h.result_pid, pid_t{0});
      h.state.store(make_state(seq, kDone), std::memory_order_release);  // pairs with begin_get
      c.result_ec.notify_all();
      c.task_ec.notify_all();  // a worker parked on this slot must step over it
    }
  }
  void* main_map = nullptr;
  std::size_t main_bytes = 0;
  /// Bytes (whole pages) each result area keeps mapped, and their sum
  /// (kWarmResultBytes). Written by the getter that frees the area: an area
  /// has one owner at a time (the free list's release and acquire order the
  /// owners), and warm_total is shared by concurrent getters.
  std::vector<std::size_t> area_warm;
  std::atomic<std::size_t> warm_total{0};
  /// Set by the first begin_get_any; never cleared. Until then every result
  /// was taken in order by begin_get, which moves emit itself, so end_get
  /// skips advance_emit and its read of the next slot (a line the worker is
  /// still writing: reading it early costs a second transfer). Relaxed: it is
  /// set by the thread that then calls end_get for that view.
  std::atomic<bool> completion_order_used{false};
  /// The biases of put_word and emit (queue/bias.hpp): the one thread that
  /// puts (gets) claims with a plain store until another thread claims too.
  /// Every other write of put_word (close_puts here) and of emit (the CAS
  /// paths) calls share() first. The supervisor never writes either.
  Bias put_bias;
  Bias get_bias;
  void* spill_map = nullptr;
  std::size_t spill_total = 0;

  std::mutex proc_mu;      ///< guards the supervisor fields below
  pid_t supervisor = 0;    ///< forks, watches and replaces the workers
  int supervisor_fd = -1;  ///< its pidfd; -1 once reaped
  int wake_fd = -1;        ///< eventfd the supervisor polls: stop / shutdown

  explicit Impl(const Options& o) : opts(o) {}

  // Construction, in three steps (Core::Core).
  void map_region(const Validated& v);
  void init_control(const Validated& v);
  void start_supervisor();

  ~Impl() {
    if (wake_fd >= 0) close(wake_fd);
    if (spill_map) munmap(spill_map, spill_total);
    if (main_map) munmap(main_map, main_bytes);
  }

  void wake_supervisor() noexcept { eventfd_signal(wake_fd); }

  /// Reaps the supervisor if it has exited. Caller holds proc_mu.
  bool try_reap() {
    if (supervisor_fd < 0) return true;
    if (detail::try_reap(supervisor)) {
      close(supervisor_fd);
      supervisor_fd = -1;
      return true;
    }
    return false;
  }

  /// Waits until the supervisor (and so every worker) has exited, or
  /// `deadline`. Caller holds proc_mu.
  bool wait_exit(Deadline deadline) {
    for (;;) {
      if (try_reap()) return true;
      if (!await_pidfd(supervisor_fd, deadline)) return false;
    }
  }

  /// Called when a wait has lasted a while: if the supervisor is gone (killed
  /// from outside), no worker will ever finish anything, so the queue breaks
  /// instead of letting callers wait forever.
  void check_supervisor() {
    std::lock_guard lock(proc_mu);
    if (r.ctl->broken.load(std::memory_order_acquire) != 0) return;
    if (!try_reap()) return;
    const std::uint64_t pw = r.ctl->put_word.load(std::memory_order_acquire);
    // A supervisor that exited on its own after stop() with all work done is fine.
    if ((pw & kClosedBit) &&
        r.ctl->dispatch.load(std::memory_order_acquire) == static_cast<std::uint32_t>(pw))
      return;
    r.ctl->broken.store(kBrokenBySupervisor, std::memory_order_seq_cst);
    close_queue();
    wake_everyone();
  }

  /// Closes puts from a thread of this process (put_word is biased).
  void close_queue() noexcept {
    put_bias.share();
    close_puts(*r.ctl);
  }

  /// Claims sequence p for a put: put_word from pw (p, not closed) to p + 1,
  /// which keeps the closed bit clear; the sequence wraps in 32 bits.
  bool claim_put(std::uint64_t& pw, std::uint32_t p) noexcept {
    return put_bias.claim(r.ctl->put_word, pw, std::uint64_t{static_cast<std::uint32_t>(p + 1)});
  }

  /// Waits until the supervisor has forked the first workers (or failed to,
  /// or vanished). Construction does not wait: only callers that read the
  /// workers' records (stats()) do.
  void await_start() {
    Control& c = *r.ctl;
    for (;;) {
      const std::uint32_t st = c.started.load(std::memory_order_acquire);  // pairs with run()
      if (st != 0) return;
      futex_wait(c.started, st, Clock::now() + kLivenessCheck);
      if (c.started.load(std::memory_order_acquire) != 0) return;
      check_supervisor();
      if (c.broken.load(std::memory_order_acquire) != 0) return;
    }
  }

  /// Waits on `ec` until `cond()` or `deadline`, checking every
  /// kLivenessCheck that the supervisor still exists (check_supervisor breaks
  /// the queue otherwise, which every caller's condition sees). False only
  /// when the deadline passed.
  template <class Cond>
  bool await_live(EventCount& ec, Deadline deadline, Cond&& cond) {
    return wait_in_slices(
        deadline, kLivenessCheck, [&](Deadline until) { return ec.await(cond, until); },
        [&] {
          check_supervisor();
          return true;
        });
  }

  void wake_everyone() noexcept {
    r.ctl->task_ec.notify_all();
    r.ctl->result_ec.notify_all();
    r.ctl->progress_ec.notify_all();
  }
};

Core::Core(const Options& opts) : impl_(std::make_unique<Impl>(opts)) {
  const Validated v = validate(opts);
  impl_->max_pending = v.max_pending;
  impl_->map_region(v);
  impl_->init_control(v);
  impl_->start_supervisor();
}

/// Maps the ring and the spill reservation and places the shared structures.
void Core::Impl::map_region(const Validated& v) {
  Impl& m = *this;
  // One mapping for control, worker records and slots; anonymous and shared,
  // so it is inherited by fork and has no name anywhere.
  const std::size_t stride = v.slot_stride;
  const std::size_t records_off = round_up(sizeof(Control), kCacheLine);
  const std::size_t slots_off =
      round_up(records_off + v.workers * sizeof(WorkerRecord), page_size());
  const std::size_t links_off = slots_off + v.capacity * stride;
  m.main_bytes = round_up(links_off + v.capacity * sizeof(std::atomic<std::uint32_t>), page_size());
  m.main_map =
      mmap(nullptr, m.main_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m.main_map == MAP_FAILED) {
    m.main_map = nullptr;
    throw_errno("inorder: mmap of the shared ring");
  }
  // The ring is written whole right below (every slot made kFree): one
  // populate call instead of a write fault per page, which cost about 1 us
  // per slot here (2 ms of a queue's construction at the default capacity).
  // Older kernels refuse the advice; the writes below then fault as before.
  (void)madvise(m.main_map, m.main_bytes, MADV_POPULATE_WRITE);
  // The spill reservation is address space only: MAP_NORESERVE, touched on
  // demand. The slots' own areas, then the result areas (shared.hpp).
  m.spill_total = 2 * v.capacity * v.spill_bytes;
  m.spill_map = mmap(nullptr, m.spill_total, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m.spill_map == MAP_FAILED) {
    m.spill_map = nullptr;
    throw_errno("inorder: mmap of the spill reservation (lower Options::max_spill_bytes)");
  }

  auto* base = static_cast<std::byte*>(m.main_map);
  m.r.ctl = new (base) Control();
  // Before any fork: every process sees the same setting (sync.hpp).
  m.r.ctl->task_ec.make_asymmetric();
  m.r.ctl->result_ec.make_asymmetric();
  m.r.ctl->progress_ec.make_asymmetric();
  m.r.records = reinterpret_cast<WorkerRecord*>(base + records_off);
  for (unsigned i = 0; i < v.workers; ++i) new (&m.r.records[i]) WorkerRecord();
  m.r.slots = base + slots_off;
  m.r.area_next = reinterpret_cast<std::atomic<std::uint32_t>*>(base + links_off);
  m.r.spill = static_cast<std::byte*>(m.spill_map);
}

/// Fills the read-only part of Control and makes every slot kFree.
void Core::Impl::init_control(const Validated& v) {
  Impl& m = *this;
  Control& c = *m.r.ctl;
  c.capacity = static_cast<std::uint32_t>(v.capacity);
  c.mask = static_cast<std::uint32_t>(v.capacity - 1);
  c.window = static_cast<std::uint32_t>(v.window);
  c.workers = v.workers;
  c.inline_bytes = v.inline_bytes;
  c.slot_stride = v.slot_stride;
  c.spill_bytes = v.spill_bytes;
  const std::uint32_t first = opts.first_sequence;
  c.put_word.store(first, std::memory_order_relaxed);
  c.dispatch.store(first, std::memory_order_relaxed);
  c.emit.store(first, std::memory_order_relaxed);
  // Constructing every slot also pre-faults the ring, so no worker pays a
  // first-write page fault (~4 us each here) on its first laps.
  for (std::size_t k = 0; k < v.capacity; ++k) {
    const auto seq = static_cast<std::uint32_t>(first + k);
    auto* h = new (&m.r.slot(seq)) SlotHeader();
    h->state.store(make_state(seq, kFree), std::memory_order_relaxed);
  }
  // Every result area free, area 0 on top: below area k lies area k + 1.
  for (std::size_t k = 0; k < v.capacity; ++k)
    new (&m.r.area_next[k])
        std::atomic<std::uint32_t>(k + 1 < v.capacity ? static_cast<std::uint32_t>(k + 2) : 0U);
  c.free_areas.store(1, std::memory_order_relaxed);
  m.area_warm.assign(v.capacity, 0);

  c.retries = v.retries;
  c.retry_exceptions = opts.retry_exceptions ? 1 : 0;
  c.task_timeout_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(opts.task_timeout).count());
  c.max_restarts = opts.max_restarts;
  c.restart_window_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(opts.restart_window).count());
  c.grace_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(opts.shutdown_grace).count());
  c.max_tasks_per_worker = opts.max_tasks_per_worker;
  c.max_worker_rss = opts.max_worker_rss;
}

/// Forks the supervisor, which forks the workers (the constructor does not wait).
void Core::Impl::start_supervisor() {
  Impl& m = *this;
  Control& c = *m.r.ctl;
  m.wake_fd = eventfd_create("inorder: eventfd");
  c.wake_fd = m.wake_fd;

  // The supervisor forks the workers (and later their replacements) from a
  // single-threaded process; see src/queue/supervisor.cpp. The constructor
  // does not wait for those forks: the chain fork -> supervisor runs -> fork ->
  // worker runs costs milliseconds (docs/benchmarks.md, "Queue lifetime"), and
  // puts need no worker to exist. A fork that fails there breaks the queue
  // (kBrokenByStart): the next put() or get() throws QueueBroken saying why.
  // The supervisor watches the parent through a pidfd opened here, so that it
  // does not spend a system call on it before its first fork.
  const pid_t parent = getpid();
  const int parent_fd = pidfd_open(parent);
  if (parent_fd < 0) throw_errno("inorder: pidfd_open");
  const pid_t pid = fork();
  if (pid == 0) supervisor_main(m.r, m.opts, parent, parent_fd, m.wake_fd);  // never returns
  const int fork_errno = errno;
  close(parent_fd);
  if (pid < 0) {
    errno = fork_errno;
    throw_errno("inorder: fork of the supervisor");
  }
  m.supervisor = pid;
  m.supervisor_fd = pidfd_open(pid);
  if (m.supervisor_fd < 0) {
    const int err = errno;
    kill_and_reap(pid);
    throw_errno(err, "inorder: pidfd_open");
  }
}

Core::~Core() {
  Impl& m = *impl_;
  if (!m.r.ctl) return;
  m.close_queue();
  m.r.ctl->shutdown.store(1, std::memory_order_seq_cst);
  m.wake_everyone();
  m.wake_supervisor();
  std::lock_guard lock(m.proc_mu);
  if (m.supervisor_fd < 0) return;
  // The supervisor gives busy workers the grace period, then SIGKILLs them,
  // reaps them and exits; allow it that long plus a margin before killing it
  // too. That last resort leaves its workers (killed by PR_SET_PDEATHSIG) to
  // be reaped by init, so the margin is generous: it is for a supervisor that
  // is wedged, not for one that is slow on a machine with many more runnable
  // processes than cores (there a few forks and exits take seconds).
  try {
    if (m.wait_exit(Clock::now() + m.opts.shutdown_grace + kSupervisorExitMargin)) return;
  } catch (...) {
  }
  kill_and_reap(m.supervisor);
  close(m.supervisor_fd);
  m.supervisor_fd = -1;
}

std::byte* Core::begin_put(std::size_t bytes, bool is_value, Deadline deadline,
                           std::uint32_t& seq) {
  Impl& m = *impl_;
  const Region& r = m.r;
  Control& c = *r.ctl;
  if (bytes > c.spill_bytes)
    throw PayloadTooLarge("inorder: put(): payload encodes to " + std::to_string(bytes) +
                          " bytes, above Options::max_spill_bytes (" +
                          std::to_string(c.spill_bytes) + ")");
  PendingMap spare;           // the pending entry, made before a staged claim (see PendingMap)
  bool stop_waiting = false;  // stage if the ring is still full (see below)
  for (;;) {
    std::uint64_t pw = c.put_word.load(std::memory_order_acquire);
    // The supervisor breaks the queue without closing it (it may not write
    // put_word): the first thread here to see it closes puts.
    if (c.broken.load(std::memory_order_acquire) != 0) {
      m.close_queue();
      throw QueueBroken(broken_reason(c));
    }
    if (pw & kClosedBit) throw QueueClosed();
    const auto p = static_cast<std::uint32_t>(pw);
    SlotHeader& h = r.slot(p);
    const std::uint64_t st =
        h.state.load(std::memory_order_acquire);  // pairs with end_get's release
    if (st == make_state(p, kFree)) {
      if (m.claim_put(pw, p)) {
        seq = p;
        if (bytes > c.inline_bytes) return r.spill_area(p);
        return is_value ? r.result_bytes(h, bytes) : r.task_bytes(h, bytes);
      }
      continue;
    }
    // Slot p still holds the result of an earlier lap. With the stage
    // unbounded by default, wait for the slot while another thread is
    // taking results (a producer beside a consumer gets backpressure, and
    // pays nothing for staging); stage when nobody has taken one for
    // kStageAfterIdle, or never has (this thread puts everything first).
    if (!m.opts.max_pending && deadline != kNoWait && !stop_waiting) {
      const std::uint32_t e0 = c.emit.load(std::memory_order_acquire);
      const bool never_taken = e0 == m.opts.first_sequence;
      const bool idle_since_giving_up =
          m.gave_up_at.load(std::memory_order_relaxed) == (Impl::kGaveUpBit | e0);
      if (!never_taken && !idle_since_giving_up) {
        std::uint32_t seen = e0;
        for (;;) {
          const Deadline slice = std::min(deadline, Clock::now() + kStageAfterIdle);
          if (m.await_live(c.progress_ec, slice, [&] {
                return c.put_word.load(std::memory_order_acquire) != pw ||
                       h.state.load(std::memory_order_acquire) != st ||
                       c.broken.load(std::memory_order_acquire) != 0;
              }))
            break;  // the slot or the claim moved: look again
          const std::uint32_t e = c.emit.load(std::memory_order_acquire);
          if (e == seen) {  // nothing taken for a whole slice: stage from now on
            m.gave_up_at.store(Impl::kGaveUpBit | e, std::memory_order_relaxed);
            stop_waiting = true;
            break;
          }
          if (Clock::now() >= deadline) {  // the caller's bound: stage rather than fail
            stop_waiting = true;
            break;
          }
          seen = e;
        }
        continue;
      }
    }
    // Stage the payload in this process if the pending stage has room
    // (Options::max_pending).
    std::size_t n = m.staged.load(std::memory_order_relaxed);
    while (n < m.max_pending &&
           !m.staged.compare_exchange_weak(n, n + 1, std::memory_order_relaxed)) {
    }
    if (n < m.max_pending) {
      try {
        if (spare.empty())
          spare.try_emplace(0).first->second.bytes.resize(std::max<std::size_t>(bytes, 1));
      } catch (...) {
        m.staged.fetch_sub(1, std::memory_order_relaxed);
        throw;
      }
      if (!m.claim_put(pw, p)) {
        m.staged.fetch_sub(1, std::memory_order_relaxed);
        continue;
      }
      // Claimed: from here to commit_put nothing allocates or throws.
      seq = p;
      auto node = spare.extract(spare.begin());
      node.key() = p;
      node.mapped().len = bytes;
      std::byte* dst = node.mapped().bytes.data();
      std::lock_guard lock(m.pending_mu);
      m.pending.insert(std::move(node));
      return dst;
    }
    // Full, and so is the pending stage: wait for a getter.
    const bool moved = m.await_live(c.progress_ec, deadline, [&] {
      return c.put_word.load(std::memory_order_acquire) != pw ||
             h.state.load(std::memory_order_acquire) != st ||
             m.staged.load(std::memory_order_relaxed) < m.max_pending ||
             c.broken.load(std::memory_order_acquire) != 0;
    });
    if (!moved) return nullptr;
  }
}

void Core::commit_put(std::uint32_t seq, Invoker invoker, std::size_t bytes,
                      std::uint32_t timeout_ms) noexcept {
  Impl& m = *impl_;
  // A relaxed load sees this thread's own reservation: only a staged claim
  // made by some thread leads into the lock.
  if (m.staged.load(std::memory_order_relaxed) != 0) {
    std::lock_guard lock(m.pending_mu);
    const auto it = m.pending.find(seq);
    if (it != m.pending.end()) {
      Pending& e = it->second;
      e.invoker = invoker;
      e.timeout_ms = timeout_ms;
      e.committed = true;
      // The slot may have been freed since the claim; end_get looks for this
      // entry after its release store and finds it committed only from now.
      // The heavy barrier pairs with the fence in end_get's notify (an
      // asymmetric EventCount: sync.hpp); a miss is caught by move_stuck().
      if (m.r.ctl->progress_ec.asymmetric != 0 && light_notify_enabled())
        heavy_barrier();
      else
        std::atomic_thread_fence(std::memory_order_seq_cst);
      m.move_in_if_free(it);
      return;
    }
  }
  m.publish(seq, invoker, bytes, timeout_ms);
}

namespace {

/// Moves `emit` past results already taken out of order: slot n naming a
/// later sequence means n was taken and released, and the slot moved on to a
/// later lap (kFree, or already claimed again by a producer). A slot naming an
/// earlier sequence is still being decoded by a slow getter of the previous
/// lap: n is not taken yet, so emit stays.
void advance_emit(const Region& r) noexcept {
  Control& c = *r.ctl;
  for (;;) {
    std::uint32_t n = c.emit.load(std::memory_order_acquire);
    // The slot first: in order delivery it always stops here, without reading
    // put_word (a line the producers write on every put).
    if (!before(n, state_seq(r.slot(n).state.load(std::memory_order_acquire)))) return;
    const auto put = static_cast<std::uint32_t>(c.put_word.load(std::memory_order_acquire));
    if (!before(n, put)) return;
    c.emit.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel);
  }
}

void fill_view(const Region& r, SlotHeader& h, std::uint32_t n, ResultView& out) {
  out = ResultView{};
  out.seq = n;
  out.is_error = h.result_error != 0;
  out.len = h.result_len;
  out.pid = h.result_pid;
  if (h.result_area != 0) {
    out.data = r.area(h.result_area - 1);
  } else if (h.result_spilled) {
    const std::size_t off = h.task_spilled ? spill_result_offset(h.task_len) : 0;
    out.data = r.spill_area(n) + off;
  } else {
    out.data = r.result_bytes(h, h.result_len);
  }
}

}  // namespace

GetStatus Core::begin_get(Deadline deadline, ResultView& out) {
  Impl& m = *impl_;
  const Region& r = m.r;
  Control& c = *r.ctl;
  for (;;) {
    std::uint32_t n = c.emit.load(std::memory_order_acquire);
    SlotHeader& h = r.slot(n);
    const std::uint64_t st = h.state.load(std::memory_order_acquire);  // pairs with kDone release
    if (st == make_state(n, kDone)) {
      if (m.get_bias.claim(c.emit, n, n + 1)) {
        fill_view(r, h, n, out);
        return GetStatus::kReady;
      }
      continue;
    }
    // Task n exists (put and not yet finished): it will finish or the queue
    // breaks. Otherwise n may never be put: look at put_word for the end.
    const bool put_already = state_seq(st) == n && state_phase(st) != kFree;
    // Read before put_word: a stop() after this read changes `closed` and
    // wakes the wait below, one before it is seen in put_word (close_puts
    // sets put_word first). Until then put_word, the producers' hottest
    // line, is not read at all.
    const std::uint32_t closed = c.closed.load(std::memory_order_acquire);
    if (!put_already && closed != 0) {
      const std::uint64_t pw = c.put_word.load(std::memory_order_acquire);
      if ((pw & kClosedBit) && static_cast<std::uint32_t>(pw) == n) return GetStatus::kEnd;
    }
    if (c.broken.load(std::memory_order_acquire) != 0) {
      // The supervisor broke the queue without closing it (it may not write
      // put_word): close, so that the end of the stream can show.
      if ((c.put_word.load(std::memory_order_acquire) & kClosedBit) == 0) {
        m.close_queue();
        continue;
      }
      // Being delivered by a completion-order getter: not ours to fail.
      if (st == make_state(n, kTaken)) {
        sched_yield();
        continue;
      }
      // Broken: this task will never finish. Fail its position at once.
      m.get_bias.share();
      if (c.emit.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel)) {
        out = ResultView{};
        out.seq = n;
        out.is_error = true;
        out.broken = c.broken.load(std::memory_order_acquire);
        return GetStatus::kReady;
      }
      continue;
    }
    m.try_move(n);  // n may wait in the parent with its slot free (see move_stuck)
    const bool moved = m.await_live(c.result_ec, deadline, [&] {
      // Not put_word: stop() sets `closed` and wakes this EventCount.
      return c.emit.load(std::memory_order_acquire) != n ||
             h.state.load(std::memory_order_acquire) != st ||
             c.closed.load(std::memory_order_acquire) != closed ||
             c.broken.load(std::memory_order_acquire) != 0;
    });
    if (!moved) return GetStatus::kTimeout;
  }
}

GetStatus Core::begin_get_any(Deadline deadline, ResultView& out) {
  const Region& r = impl_->r;
  Control& c = *r.ctl;
  if (!impl_->completion_order_used.load(std::memory_order_relaxed))
    impl_->completion_order_used.store(true, std::memory_order_relaxed);
  impl_->get_bias.share();  // advance_emit moves emit by CAS
  for (;;) {
    advance_emit(r);
    const std::uint32_t n = c.emit.load(std::memory_order_acquire);
    const std::uint64_t pw = c.put_word.load(std::memory_order_acquire);
    const auto put = static_cast<std::uint32_t>(pw);
    if ((pw & kClosedBit) && put == n) return GetStatus::kEnd;
    if (c.broken.load(std::memory_order_acquire) != 0) return begin_get(deadline, out);
    // Oldest finished first, so a result is never overtaken forever. Only
    // the ring can hold finished results: positions past n + capacity are
    // still in the pending stage.
    const std::uint32_t ring_end = before(n + c.capacity, put) ? n + c.capacity : put;
    for (std::uint32_t s = n; before(s, ring_end); ++s) {
      SlotHeader& h = r.slot(s);
      std::uint64_t st = h.state.load(std::memory_order_acquire);
      if (st != make_state(s, kDone)) continue;
      if (h.state.compare_exchange_strong(st, make_state(s, kTaken), std::memory_order_acq_rel)) {
        fill_view(r, h, s, out);
        return GetStatus::kReady;
      }
    }
    auto any_done = [&] {
      const std::uint32_t e = c.emit.load(std::memory_order_acquire);
      const std::uint32_t end = before(e + c.capacity, put) ? e + c.capacity : put;
      for (std::uint32_t s = e; before(s, end); ++s)
        if (r.slot(s).state.load(std::memory_order_acquire) == make_state(s, kDone)) return true;
      return c.put_word.load(std::memory_order_acquire) != pw ||
             c.broken.load(std::memory_order_acquire) != 0;
    };
    const bool done = wait_in_slices(
        deadline, kLivenessCheck,
        [&](Deadline until) { return c.result_ec.await(any_done, until); },
        [&] {
          impl_->move_stuck();
          impl_->check_supervisor();
          return true;
        });
    if (!done) {
      impl_->move_stuck();
      return GetStatus::kTimeout;
    }
  }
}

void Core::end_get(const ResultView& view) noexcept {
  if (view.broken != 0) return;  // synthesized: the slot was never finished
  const Region& r = impl_->r;
  Control& c = *r.ctl;
  SlotHeader& h = r.slot(view.seq);
  // Return the pages of large spilled payloads (MADV_REMOVE frees shared
  // anonymous memory; MADV_DONTNEED would only unmap it from this process).
  std::size_t touched = 0;
  if (h.task_spilled) touched = h.task_len;
  if (h.result_spilled && h.result_area == 0)
    touched = (h.task_spilled ? spill_result_offset(h.task_len) : 0) + h.result_len;
  if (touched >= kReleaseThreshold)
    madvise(r.spill_area(view.seq), round_up(touched, page_size()), MADV_REMOVE);
  if (h.result_area != 0) impl_->free_area(h.result_area - 1, h.result_len);
  h.state.store(make_state(view.seq + c.capacity, kFree),
                std::memory_order_release);  // pairs with begin_put's acquire
  // Only results taken out of order leave emit behind (see completion_order_used).
  if (impl_->completion_order_used.load(std::memory_order_relaxed)) {
    impl_->get_bias.share();
    advance_emit(r);
  }
  c.progress_ec.notify_all();  // its fence also orders the store above before try_move's load
  impl_->try_move(view.seq + c.capacity);  // the next lap of this slot may wait in the parent
}

void Core::stop() noexcept {
  Impl& m = *impl_;
  m.close_queue();
  m.wake_everyone();
  m.wake_supervisor();
}

namespace {
/// No put can succeed: closed, or broken (the supervisor breaks the queue
/// without setting the closed bit, which the next put() or get() sets).
bool puts_over(const Control& c, std::uint64_t pw) noexcept {
  return (pw & kClosedBit) != 0 || c.broken.load(std::memory_order_acquire) != 0;
}
}  // namespace

bool Core::stopped() const noexcept {
  const Control& c = *impl_->r.ctl;
  return puts_over(c, c.put_word.load(std::memory_order_acquire));
}

bool Core::exhausted() const noexcept {
  const Control& c = *impl_->r.ctl;
  const std::uint64_t pw = c.put_word.load(std::memory_order_acquire);
  return puts_over(c, pw) &&
         c.emit.load(std::memory_order_acquire) == static_cast<std::uint32_t>(pw);
}

void Core::throw_task_error(const ResultView& view) const {
  if (view.broken != 0) throw QueueBroken(broken_reason(*impl_->r.ctl));
  throw_recorded_error(view);
}

bool Core::join(Deadline deadline) {
  stop();
  std::lock_guard lock(impl_->proc_mu);
  return impl_->wait_exit(deadline);
}

bool Core::is_alive() {
  std::lock_guard lock(impl_->proc_mu);
  return !impl_->try_reap();
}

Stats Core::stats() {
  Impl& m = *impl_;
  Control& c = *m.r.ctl;
  m.await_start();  // the workers' records are filled in by the supervisor
  Stats s;
  s.capacity = c.capacity;
  s.window = c.window;
  s.restarts = c.restarts.load(std::memory_order_relaxed);
  s.broken = c.broken.load(std::memory_order_acquire) != 0;
  const std::uint32_t emit = c.emit.load(std::memory_order_acquire);
  const auto put = static_cast<std::uint32_t>(c.put_word.load(std::memory_order_acquire));
  s.in_flight = before(emit, put) ? put - emit : 0;
  s.pending = std::min(m.staged.load(std::memory_order_relaxed), s.in_flight);
  s.recycled = c.recycled.load(std::memory_order_relaxed);
  const std::size_t in_ring = std::min<std::size_t>(s.in_flight, c.capacity);
  for (std::uint32_t k = 0; k < in_ring; ++k) {
    const std::uint32_t seq = emit + k;
    if (m.r.slot(seq).state.load(std::memory_order_acquire) == make_state(seq, kDone))
      ++s.waiting_in_window;
  }
  for (std::uint32_t i = 0; i < c.workers; ++i) {
    const WorkerRecord& rec = m.r.records[i];
    WorkerStats w;
    w.pid = rec.pid.load(std::memory_order_relaxed);
    w.tasks = rec.tasks.load(std::memory_order_relaxed);
    w.busy = std::chrono::nanoseconds(rec.busy_ns.load(std::memory_order_relaxed));
    w.alive = rec.alive.load(std::memory_order_acquire) != 0;
    w.restarts = rec.restarts.load(std::memory_order_relaxed);
    s.workers.push_back(w);
  }
  return s;
}

std::size_t Core::inline_bytes() const noexcept { return impl_->r.ctl->inline_bytes; }

}  // namespace inorder::detail
