// src/queue/worker.cpp: the loop every worker process runs after fork.
//
// A worker repeatedly: waits until the task at `dispatch` is inside the
// window (shortened after large results, see run_ahead_after), claims it
// with one CAS on the slot's state (kReady -> kRunning with its own index;
// a store when it is the queue's only worker, see Worker::sole_),
// runs it, writes the result into the slot and publishes kDone with a
// release store. It touches no lock and no shared state other than the slot
// it owns, the dispatch hint and its own WorkerRecord.
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <exception>

#include "inorder/errors.hpp"
#include "queue/error_record.hpp"
#include "queue/region.hpp"

namespace inorder::detail {
namespace {

/// Detach the child from what it must not share with the parent.
void prepare_child(pid_t parent, const std::vector<int>& fds_to_close) {
  // Die with the parent. PR_SET_PDEATHSIG fires when the forking *thread*
  // exits and cannot see a parent that died before the call, hence the check.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(0);
  // Ctrl-C goes to the whole foreground process group; the parent decides.
  signal(SIGINT, SIG_IGN);
  // Notify without fences where the kernel allows (see sync.hpp).
  enable_light_notify();
  for (const int fd : fds_to_close)
    if (fd >= 0) close(fd);
}

class Worker {
 public:
  Worker(const Region& r, unsigned index)
      : r_(r), c_(*r.ctl), rec_(r.records[index]), index_(index) {}

  void set_init_error(std::string type, std::string message) {
    init_failed_ = true;
    init_type_ = std::move(type);
    init_message_ = std::move(message);
  }

  /// The worker loop: returns false at shutdown, or once stopped with every
  /// task dispatched; true when this process leaves to be recycled between
  /// tasks (Options::max_tasks_per_worker / max_worker_rss).
  bool run() {
    span_ = c_.window;
    emit_seen_ = c_.emit.load(std::memory_order_acquire);
    busy_since_ = now_ns();
    for (;;) {
      if (c_.shutdown.load(std::memory_order_relaxed)) break;
      const std::uint32_t d = c_.dispatch.load(std::memory_order_acquire);
      if (!inside_window(d)) {
        if (!wait_at_gate(d)) break;
        continue;
      }
      SlotHeader& h = r_.slot(d);
      const std::uint64_t st = h.state.load(std::memory_order_acquire);  // pairs with commit_put
      if (st == make_state(d, kReady)) {
        if (claim_and_run(d, h, st) && due_for_recycling()) {
          flush_busy_time();
          rec_.recycling.store(1, std::memory_order_release);  // pairs with the supervisor's reap
          return true;
        }
      } else if (already_taken(d, st)) {
        step_over(d);
      } else if (!wait_for_task(d, h, st)) {
        break;
      }
    }
    if (!idle_) flush_busy_time();
    return false;
  }

 private:
  /// Between tasks: has this process run its quota of tasks, or grown past
  /// its memory limit? (Peak RSS from getrusage: for a process that leaks,
  /// peak and current are the same; one system call, made only when a limit
  /// is set.)
  bool due_for_recycling() noexcept {
    ++tasks_run_;
    if (c_.max_tasks_per_worker != 0 && tasks_run_ >= c_.max_tasks_per_worker) return true;
    if (c_.max_worker_rss != 0) {
      rusage ru{};
      if (getrusage(RUSAGE_SELF, &ru) == 0 &&
          static_cast<std::uint64_t>(ru.ru_maxrss) * 1024 > c_.max_worker_rss)
        return true;
    }
    return false;
  }

  /// The window gate: d may start only if d < emit + span_ (span_ <=
  /// window). emit is re-read only when d reaches the cached limit; so is
  /// `closed`, which widens span_ to the whole window once the queue is
  /// stopped (see run_ahead_after) and is the value wait_at_gate waits on.
  bool inside_window(std::uint32_t d) noexcept {
    if (before(d, emit_seen_ + span_)) return true;
    closed_seen_ = c_.closed.load(std::memory_order_acquire);
    if (closed_seen_ != 0) span_ = c_.window;
    emit_seen_ = c_.emit.load(std::memory_order_acquire);
    return before(d, emit_seen_ + span_);
  }

  /// How far ahead of emit this worker starts tasks after a result of
  /// `bytes`: the whole window after an inline result; after a larger one,
  /// kRunAheadBytes worth of such results, but never fewer than 2 x workers
  /// positions (every worker busy, with one task of slack each). Results that
  /// leave the slot use the result areas, most recently freed first: a short
  /// run-ahead keeps cycling through a few areas that are still in cache,
  /// where a long one streams through cold memory (docs/design.md, "Results
  /// of any size"). The task at emit is always inside, so this never stalls.
  /// Once the queue is stopped the whole window applies again: join() before
  /// get() then finishes every task the window admits, as with small results.
  std::uint32_t run_ahead_after(std::size_t bytes) const noexcept {
    if (bytes <= c_.inline_bytes || closed_seen_ != 0) return c_.window;
    const std::size_t floor = std::min<std::size_t>(2 * std::size_t{c_.workers}, c_.window);
    return static_cast<std::uint32_t>(
        std::clamp<std::size_t>(kRunAheadBytes / bytes, floor, c_.window));
  }

  /// Gated at d, right after inside_window(d) said no: sleeps until emit
  /// moves (or dispatch, stop, shutdown). False if stopped with every task
  /// dispatched: leave now rather than wait for a getter that may never come
  /// (join() waits for us). It waits on the `closed` inside_window read, so a
  /// stop() since then wakes it at once and the gate is widened.
  bool wait_at_gate(std::uint32_t d) {
    const std::uint32_t closed = closed_seen_;
    if (stopped_and_drained(d, closed)) return false;
    mark_idle();
    c_.progress_ec.await(
        [&] {
          return before(d, c_.emit.load(std::memory_order_acquire) + span_) ||
                 c_.dispatch.load(std::memory_order_acquire) != d ||
                 c_.closed.load(std::memory_order_acquire) != closed ||
                 c_.shutdown.load(std::memory_order_relaxed) != 0;
        },
        kForever);
    return true;
  }

  /// Claims kReady(d) with one CAS (losing it to another worker is fine),
  /// moves the dispatch hint on and runs the task. True if it ran the task.
  /// A sole worker (see sole_) claims and moves the hint with plain stores.
  bool claim_and_run(std::uint32_t d, SlotHeader& h, std::uint64_t st) {
    if (sole_) {
      // Release: the supervisor's acquire of kRunning, after this process
      // died, sees the producer's fields this worker acquired with kReady.
      h.state.store(make_state(d, kRunning, index_), std::memory_order_release);
      // Relaxed: moving the hint forward publishes nothing (see Control::dispatch).
      c_.dispatch.store(d + 1, std::memory_order_relaxed);
    } else {
      if (!h.state.compare_exchange_strong(st, make_state(d, kRunning, index_),
                                           std::memory_order_acq_rel))
        return false;
      std::uint32_t expected = d;
      // Relaxed: moving the hint forward publishes nothing (see Control::dispatch).
      c_.dispatch.compare_exchange_strong(expected, d + 1, std::memory_order_relaxed);
    }
    mark_busy();
    publish_running(d, h);
    run_one(d, h);
    if (++tasks_since_flush_ == 1024) {
      flush_busy_time();
      busy_since_ = now_ns();
    }
    return true;
  }

  /// With a time limit in force, publishes what runs since when, for the
  /// supervisor's timeout check (see WorkerRecord: since is zeroed first, so a
  /// pair read across a change is never taken for the new task's start).
  void publish_running(std::uint32_t d, const SlotHeader& h) noexcept {
    const std::uint64_t limit =
        h.timeout_ms != 0 ? std::uint64_t{h.timeout_ms} * 1'000'000 : c_.task_timeout_ns;
    if (limit == 0) return;
    rec_.running_since_ns.store(0, std::memory_order_release);
    rec_.running_seq.store(d, std::memory_order_release);
    rec_.running_timeout_ns.store(limit, std::memory_order_release);
    rec_.running_since_ns.store(now_ns(), std::memory_order_release);
    // Without a queue-wide timeout the supervisor sleeps untimed: wake it.
    if (c_.task_timeout_ns == 0) eventfd_signal(c_.wake_fd);
  }

  /// Slot d is past kReady for sequence d: claimed by another worker, a
  /// pass-through value, or already emitted and the slot reused for a later
  /// lap (a value can be taken by get() before any worker looked at its slot).
  static bool already_taken(std::uint32_t d, std::uint64_t st) noexcept {
    const std::uint32_t at = state_seq(st);
    return (at == d && state_phase(st) != kFree) || before(d, at);
  }

  /// Moves the dispatch hint past d (helping: see Control::dispatch).
  void step_over(std::uint32_t d) noexcept {
    std::uint32_t expected = d;
    c_.dispatch.compare_exchange_strong(expected, d + 1, std::memory_order_relaxed);
  }

  /// Nothing to run at d yet: kFree(d), not put yet or claimed by a producer
  /// that has not published. Sleeps until the slot changes. False if stopped
  /// with every task dispatched.
  bool wait_for_task(std::uint32_t d, SlotHeader& h, std::uint64_t st) {
    const std::uint32_t closed = c_.closed.load(std::memory_order_acquire);
    if (stopped_and_drained(d, closed)) return false;
    mark_idle();
    c_.task_ec.await(
        [&] {
          return h.state.load(std::memory_order_acquire) != st ||
                 c_.dispatch.load(std::memory_order_acquire) != d ||
                 c_.closed.load(std::memory_order_acquire) != closed ||
                 c_.shutdown.load(std::memory_order_relaxed) != 0;
        },
        kForever);
    return true;
  }

  /// Busy time is accounted per streak of back-to-back tasks, so a stream of
  /// tiny tasks costs no clock reads.
  void flush_busy_time() noexcept {
    rec_.busy_ns.fetch_add(now_ns() - busy_since_, std::memory_order_relaxed);
    tasks_since_flush_ = 0;
  }
  void mark_idle() noexcept {
    if (idle_) return;
    flush_busy_time();
    idle_ = true;
  }
  void mark_busy() noexcept {
    if (!idle_) return;
    busy_since_ = now_ns();
    idle_ = false;
  }

  /// Stopped, and every task put was dispatched: nothing can arrive for us.
  /// `closed` is Control::closed as the caller read it before deciding to
  /// wait, and waits on: put_word, the producers' hottest line, is read only
  /// once it is set. A stop() after that read changes `closed` and wakes the
  /// wait; one before it shows in put_word (close_puts sets put_word first).
  bool stopped_and_drained(std::uint32_t d, std::uint32_t closed) const noexcept {
    if (closed == 0) return false;
    const std::uint64_t pw = c_.put_word.load(std::memory_order_acquire);
    return (pw & kClosedBit) && static_cast<std::uint32_t>(pw) == d;
  }

  void run_one(std::uint32_t d, SlotHeader& h) {
    ResultSink sink;
    sink.head_area = h.head_result;
    sink.inline_area = r_.result_area(h);
    sink.inline_bytes = c_.inline_bytes;
    const std::size_t off = h.task_spilled ? spill_result_offset(h.task_len) : 0;
    sink.spill_area = r_.spill_area(d) + off;
    sink.spill_bytes = off < c_.spill_bytes ? c_.spill_bytes - off : 0;
    sink.region = &r_;
    sink.area_bytes = c_.spill_bytes;
    const std::byte* task = h.task_spilled ? r_.spill_area(d) : r_.task_bytes(h, h.task_len);

    bool error = true;
    if (init_failed_) {
      write_error(sink, init_type_, init_message_);
    } else {
      try {
        h.invoker(task, h.task_len, sink);
        error = false;
      } catch (const ResultTooLarge& e) {
        write_error(sink, "inorder::ResultTooLarge",
                    "result encodes to " + std::to_string(e.wanted) +
                        " bytes; this slot's spill area holds " + std::to_string(e.limit) +
                        " (raise Options::max_spill_bytes)");
      } catch (const std::exception& e) {
        if (retry(d, h, sink)) return;
        write_error(sink, demangle(typeid(e)), e.what());
      } catch (...) {
        if (retry(d, h, sink)) return;
        write_error(sink, current_exception_type_name(), "");
      }
    }
    // A result area taken for a result that then went elsewhere (an error
    // record written after a failed encode) goes back to the free list.
    if (sink.area != kNoArea && !sink.in_area) r_.push_area(sink.area);
    store_if_changed(h.result_area, sink.in_area ? sink.area + 1 : 0);
    h.result_len = sink.reserved;
    h.result_spilled = sink.spilled;
    h.result_error = error;
    store_if_changed(h.result_pid, pid_);
    span_ = run_ahead_after(sink.reserved);
    h.state.store(make_state(d, kDone), std::memory_order_release);  // pairs with begin_get
    c_.result_ec.notify_all();
    // This process is the record's only writer: a plain increment, not a
    // locked one (which would wait for the slot's stores to drain first).
    rec_.tasks.store(rec_.tasks.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  /// With Options::retry_exceptions, a task that threw and has retries left goes
  /// back to kReady and the dispatch hint is lowered so a worker finds it.
  bool retry(std::uint32_t d, SlotHeader& h, const ResultSink& sink) {
    if (!c_.retry_exceptions || h.attempts >= c_.retries) return false;
    if (sink.area != kNoArea) r_.push_area(sink.area);
    h.attempts = static_cast<std::uint16_t>(h.attempts + 1);
    h.state.store(make_state(d, kReady), std::memory_order_release);
    std::uint32_t cur = c_.dispatch.load(std::memory_order_relaxed);
    // Release: a worker that reads the lowered hint (acquire) sees kReady(d).
    while (before(d, cur) && !c_.dispatch.compare_exchange_weak(cur, d, std::memory_order_release,
                                                                std::memory_order_relaxed)) {
    }
    c_.task_ec.notify_all();
    return true;
  }

  const Region& r_;
  Control& c_;
  WorkerRecord& rec_;
  std::uint32_t index_;
  /// The queue has one worker (Options::workers == 1), so this process is the
  /// only one that writes a kReady slot's state or the dispatch hint while it
  /// lives: producers write a slot only while it is kFree, getters only once
  /// it is kDone, and the supervisor changes kRunning slots and lowers the
  /// hint only after reaping this process, before forking the next. Its claim
  /// then needs no CAS: a locked instruction per task waits for every store
  /// of the previous task to leave this core, which is most of a tiny task's
  /// cost in the worker (docs/benchmarks.md, "where the three parties run").
  const bool sole_ = c_.workers == 1;
  pid_t pid_ = getpid();
  bool init_failed_ = false;
  std::string init_type_;
  std::string init_message_;
  std::uint32_t span_ = 0;         ///< positions ahead of emit this worker may start (<= window)
  std::uint32_t emit_seen_ = 0;    ///< emit as last read by inside_window
  std::uint32_t closed_seen_ = 0;  ///< Control::closed as last read by inside_window
  std::uint64_t busy_since_ = 0;   ///< start of the current busy streak (ns)
  std::uint64_t tasks_since_flush_ = 0;  ///< tasks since busy time was last added
  std::uint64_t tasks_run_ = 0;          ///< tasks this process has run (for recycling)
  bool idle_ = false;                    ///< between busy streaks
};

}  // namespace

std::byte* ResultSink::reserve(std::size_t n) {
  static_assert(decltype(ResultSink::area){0xFFFFFFFF} == kNoArea,
                "ResultSink's 'no area' is the region's kNoArea");
  in_area = false;
  if (n <= kHeadResultBytes) {  // the same choice as Region::result_bytes
    reserved = n;
    spilled = false;
    return head_area;
  }
  if (n <= inline_bytes) {
    reserved = n;
    spilled = false;
    return inline_area;
  }
  if (region != nullptr && n <= area_bytes) {
    const Region& r = *static_cast<const Region*>(region);
    if (area == kNoArea) area = r.pop_area();
    if (area != kNoArea) {
      reserved = n;
      spilled = true;
      in_area = true;
      return r.area(area);
    }
  }
  if (n <= spill_bytes) {
    reserved = n;
    spilled = true;
    return spill_area;
  }
  throw ResultTooLarge{n, spill_bytes};
}

void worker_main(const Region& region, unsigned index, const Options& opts, pid_t parent,
                 const std::vector<int>& fds_to_close) {
  prepare_child(parent, fds_to_close);
  Worker w(region, index);
  if (opts.worker_init) {
    try {
      opts.worker_init(index);
    } catch (const std::exception& e) {
      w.set_init_error("inorder::WorkerInitFailed", demangle(typeid(e)) + ": " + e.what());
    } catch (...) {
      w.set_init_error("inorder::WorkerInitFailed", "worker_init threw a non-std exception");
    }
  }
  const bool recycle = w.run();
  _exit(recycle ? kRecycleStatus : 0);
}

}  // namespace inorder::detail
