// src/queue/supervisor.cpp: the process that forks, watches and replaces workers.
//
// Forked once by the queue's constructor, the supervisor is single-threaded
// for its whole life, so every fork it makes is safe whatever the parent's
// other threads hold (malloc arenas, stdio locks, user mutexes): a replacement
// worker is a copy of the supervisor, i.e. of the parent at construction time,
// exactly like the first workers. The supervisor sleeps in poll() on:
//   - one pidfd per worker: readable the moment that worker exits;
//   - a pidfd of the parent: readable when the parent dies (SIGKILL included),
//     so no PR_SET_PDEATHSIG is needed here (that one follows the forking
//     *thread* and would fire if the thread that built the queue exited);
//   - an eventfd the parent writes on stop() and in its destructor.
// With a task timeout set it also wakes every quarter of the timeout to look
// at what each worker runs. Otherwise it uses no CPU.
//
// When a worker dies, the supervisor finds the one slot that names it in
// kRunning(s, w) (a claim is a single CAS that records the owner, so no other
// trace is needed), and either makes the task kReady again and lowers the
// dispatch hint (a retry is left) or writes an error record and publishes
// kDone(s). Then it forks a replacement into the same worker index, unless
// the restart cap is reached, in which case the queue becomes Broken.
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "queue/error_record.hpp"
#include "queue/region.hpp"

namespace inorder::detail {
namespace {

class Supervisor {
 public:
  Supervisor(const Region& r, const Options& opts, pid_t parent, int parent_fd, int wake_fd)
      : r_(r),
        c_(*r.ctl),
        opts_(opts),
        parent_(parent),
        wake_fd_(wake_fd),
        parent_fd_(parent_fd),
        pids_(c_.workers, 0),
        pidfds_(c_.workers, -1),
        timed_out_(c_.workers, 0),
        timed_out_valid_(c_.workers, false) {}

  [[noreturn]] void run() {
    // parent_fd_ was opened by the parent before the fork (one system call
    // less on the path to the first worker); a parent that is already gone
    // shows as a readable pidfd in the first poll below.
    if (getppid() != parent_) _exit(0);

    for (unsigned w = 0; w < c_.workers; ++w) {
      // Destroyed before it started: no point forking the rest.
      if (c_.shutdown.load(std::memory_order_acquire) != 0) break;
      if (!spawn(w)) {
        // Nobody waits for this synchronously: break the queue, so every
        // put() and get() fails at once with the reason (broken_reason()).
        c_.start_errno.store(errno, std::memory_order_relaxed);
        c_.started.store(kStartFailed, std::memory_order_release);
        futex_wake(c_.started, kWakeAll);
        // Broken, not closed: put_word belongs to the parent's threads (its
        // producer may be writing it with plain stores, queue/bias.hpp); the
        // parent closes it when it sees `broken`.
        c_.broken.store(kBrokenByStart, std::memory_order_seq_cst);
        c_.result_ec.notify_all();
        c_.progress_ec.notify_all();
        kill_all_and_reap();
        _exit(1);
      }
    }
    c_.started.store(kStartOk, std::memory_order_release);  // pairs with Impl::await_start
    futex_wake(c_.started, kWakeAll);

    for (;;) {
      const int tick = tick_ms();
      const WatchEvents ev = watch_children(parent_fd_, wake_fd_, pidfds_,
                                            tick < 0 ? -1 : std::int64_t{tick} * 1'000'000);
      if (ev.failed) _exit(2);
      if (ev.parent_gone) {  // the parent died: nobody will read results
        kill_all_and_reap();
        _exit(0);
      }
      if (c_.shutdown.load(std::memory_order_acquire) != 0) shut_down();  // never returns

      for (unsigned w = 0; w < c_.workers; ++w)
        if (ev.ended[w] != 0) reap(w);
      check_timeouts();

      const bool closed = (c_.put_word.load(std::memory_order_acquire) & kClosedBit) != 0;
      if (!any_worker_alive() && (closed || c_.broken.load(std::memory_order_acquire) != 0))
        _exit(0);
    }
  }

 private:
  [[nodiscard]] bool any_worker_alive() const noexcept {
    for (const int fd : pidfds_)
      if (fd >= 0) return true;
    return false;
  }

  bool spawn(unsigned w) {
    const pid_t me = getpid();
    // The worker keeps wake_fd: it writes it when a task with its own
    // timeout starts.
    std::vector<int> close_in_child{parent_fd_};
    for (const int fd : pidfds_)
      if (fd >= 0) close_in_child.push_back(fd);
    const pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) worker_main(r_, w, opts_, me, close_in_child);  // never returns
    const int fd = pidfd_open(pid);
    if (fd < 0) {
      kill_and_reap(pid);
      return false;
    }
    pids_[w] = pid;
    pidfds_[w] = fd;
    timed_out_valid_[w] = false;
    r_.records[w].pid.store(pid, std::memory_order_relaxed);
    r_.records[w].alive.store(1, std::memory_order_release);
    return true;
  }

  /// Worker w's pidfd is readable: collect its status and deal with its task.
  void reap(unsigned w) {
    int status = 0;
    if (!try_reap(pids_[w], &status)) return;  // spurious
    close(pidfds_[w]);
    pidfds_[w] = -1;
    r_.records[w].alive.store(0, std::memory_order_release);
    // Killed by check_timeouts(): the outcome of a time limit the user set,
    // not a sign that workers cannot run.
    const bool killed_for_timeout =
        timed_out_valid_[w] && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    const bool had_task = recover_slot(w, pids_[w], status);
    // The worker's flag first, then the status: see WorkerRecord::recycling.
    const bool flagged = r_.records[w].recycling.exchange(0, std::memory_order_acquire) != 0;
    if (!had_task && WIFEXITED(status) && WEXITSTATUS(status) == 0) return;  // a normal exit
    if (c_.broken.load(std::memory_order_acquire) != 0) return;
    if (c_.shutdown.load(std::memory_order_acquire) != 0) return;
    if (flagged && !had_task && WIFEXITED(status) && WEXITSTATUS(status) == kRecycleStatus) {
      // Recycled between tasks (max_tasks_per_worker / max_worker_rss): a
      // planned replacement, not a failure, so the restart cap ignores it.
      c_.recycled.fetch_add(1, std::memory_order_relaxed);
      if (!spawn(w)) go_broken();
      return;
    }
    // A worker that died outside a task (e.g. killed while idle) is replaced
    // too: the queue keeps its worker count. The restart cap counts every
    // death but timeout kills: it exists to stop a crash loop (a task or a
    // worker_init that kills every worker), and each timeout costs an item
    // (or one of its lives), so timeouts cannot loop without new input.
    if (!killed_for_timeout) {
      const std::uint64_t now = now_ns();
      restart_times_.push_back(now);
      while (!restart_times_.empty() && now - restart_times_.front() > c_.restart_window_ns)
        restart_times_.pop_front();
      if (restart_times_.size() > c_.max_restarts) {
        go_broken();
        return;
      }
    }
    c_.restarts.fetch_add(1, std::memory_order_relaxed);
    r_.records[w].restarts.fetch_add(1, std::memory_order_relaxed);
    if (!spawn(w)) {
      // Cannot fork: without workers nothing can finish, so fail loudly.
      go_broken();
    }
  }

  /// Finds the slot worker w was running, if any, and retries or fails it.
  bool recover_slot(unsigned w, pid_t pid, int status) {
    for (std::uint32_t k = 0; k < c_.capacity; ++k) {
      SlotHeader& h = *reinterpret_cast<SlotHeader*>(r_.slots + k * c_.slot_stride);
      std::uint64_t st = h.state.load(std::memory_order_acquire);
      if (state_phase(st) != kRunning || state_worker(st) != w) continue;
      const std::uint32_t s = state_seq(st);
      const bool timed_out = timed_out_valid_[w] && timed_out_[w] == s;
      h.attempts = static_cast<std::uint16_t>(h.attempts + 1);
      const unsigned attempts = h.attempts;
      if (attempts <= c_.retries && c_.broken.load(std::memory_order_acquire) == 0) {
        h.state.store(make_state(s, kReady), std::memory_order_release);
        lower_dispatch(s);
        c_.task_ec.notify_all();
        return true;
      }
      std::string type;
      std::string msg;
      if (timed_out) {
        type = "inorder::TaskTimeout";
        const std::uint64_t limit_ms =
            h.timeout_ms != 0 ? h.timeout_ms : c_.task_timeout_ns / 1'000'000;
        msg = "task ran longer than its timeout (" + std::to_string(limit_ms) + " ms); worker " +
              std::to_string(pid) + " was killed";
      } else {
        type = "inorder::WorkerCrashed";
        msg = describe_wait_status("worker " + std::to_string(pid), status) +
              " while running this task";
      }
      if (c_.retries > 0) msg += " (after " + std::to_string(attempts) + " attempts)";
      ResultSink sink;
      sink.head_area = h.head_result;
      sink.inline_area = r_.result_area(h);
      sink.inline_bytes = c_.inline_bytes;
      write_error(sink, type, msg);
      h.result_len = sink.reserved;
      h.result_spilled = 0;
      h.result_area = 0;
      h.result_error = 1;
      h.result_pid = pid;
      h.state.store(make_state(s, kDone), std::memory_order_release);  // pairs with begin_get
      c_.result_ec.notify_all();
      return true;
    }
    return false;
  }

  void lower_dispatch(std::uint32_t s) {
    std::uint32_t cur = c_.dispatch.load(std::memory_order_relaxed);
    // Release: a worker that reads the lowered hint (acquire) sees kReady(s).
    while (before(s, cur) && !c_.dispatch.compare_exchange_weak(cur, s, std::memory_order_release,
                                                                std::memory_order_relaxed)) {
    }
  }

  /// poll() timeout: a quarter of the shortest limit in force (the queue-wide
  /// one, or that of a running task with its own), or none at all.
  int tick_ms() const {
    std::uint64_t shortest = c_.task_timeout_ns;
    for (unsigned w = 0; w < c_.workers; ++w) {
      if (pidfds_[w] < 0) continue;
      const WorkerRecord& rec = r_.records[w];
      const std::uint32_t seq = rec.running_seq.load(std::memory_order_acquire);
      const std::uint64_t limit = rec.running_timeout_ns.load(std::memory_order_acquire);
      if (limit == 0 || rec.running_since_ns.load(std::memory_order_acquire) == 0) continue;
      if (r_.slot(seq).state.load(std::memory_order_acquire) != make_state(seq, kRunning, w))
        continue;
      if (shortest == 0 || limit < shortest) shortest = limit;
    }
    if (shortest == 0) return -1;
    return static_cast<int>(std::max<std::uint64_t>(1, shortest / 4'000'000));
  }

  void check_timeouts() {
    const std::uint64_t now = now_ns();
    for (unsigned w = 0; w < c_.workers; ++w) {
      if (pidfds_[w] < 0) continue;
      const WorkerRecord& rec = r_.records[w];
      const std::uint32_t seq = rec.running_seq.load(std::memory_order_acquire);
      const std::uint64_t since = rec.running_since_ns.load(std::memory_order_acquire);
      const std::uint64_t limit = rec.running_timeout_ns.load(std::memory_order_acquire);
      if (since == 0 || limit == 0 || rec.running_seq.load(std::memory_order_acquire) != seq)
        continue;
      if (now < since || now - since <= limit) continue;
      if (r_.slot(seq).state.load(std::memory_order_acquire) != make_state(seq, kRunning, w))
        continue;
      if (timed_out_valid_[w] && timed_out_[w] == seq) continue;  // already killed
      timed_out_[w] = seq;
      timed_out_valid_[w] = true;
      kill(pids_[w], SIGKILL);
    }
  }

  void go_broken() {
    // Not close_puts: see the start failure in run().
    c_.broken.store(kBrokenByRestarts, std::memory_order_seq_cst);
    for (unsigned w = 0; w < c_.workers; ++w)
      if (pidfds_[w] >= 0) kill(pids_[w], SIGKILL);
    c_.result_ec.notify_all();
    c_.progress_ec.notify_all();
    c_.task_ec.notify_all();
  }

  [[noreturn]] void shut_down() {
    // The parent has woken every sleeping worker; idle ones leave at once,
    // busy ones get the grace period, then SIGKILL.
    const std::uint64_t deadline = now_ns() + c_.grace_ns;
    for (;;) {
      if (!any_worker_alive()) _exit(0);
      const std::uint64_t now = now_ns();
      if (now >= deadline) break;
      const WatchEvents ev =
          watch_children(-1, -1, pidfds_, static_cast<std::int64_t>(deadline - now));
      if (ev.failed) break;
      for (unsigned w = 0; w < c_.workers; ++w) {
        if (ev.ended[w] == 0) continue;
        if (!try_reap(pids_[w])) continue;
        close(pidfds_[w]);
        pidfds_[w] = -1;
        r_.records[w].alive.store(0, std::memory_order_release);
      }
    }
    kill_all_and_reap();
    _exit(0);
  }

  void kill_all_and_reap() {
    for (unsigned w = 0; w < c_.workers; ++w)
      if (pidfds_[w] >= 0) kill(pids_[w], SIGKILL);
    for (unsigned w = 0; w < c_.workers; ++w) {
      if (pidfds_[w] < 0) continue;
      detail::reap(pids_[w]);
      close(pidfds_[w]);
      pidfds_[w] = -1;
      r_.records[w].alive.store(0, std::memory_order_release);
    }
  }

  const Region& r_;
  Control& c_;
  const Options& opts_;
  pid_t parent_;
  int wake_fd_;
  int parent_fd_;
  std::vector<pid_t> pids_;
  std::vector<int> pidfds_;               ///< -1: no live process in this worker slot
  std::vector<std::uint32_t> timed_out_;  ///< sequence killed for its timeout
  std::vector<bool> timed_out_valid_;
  std::deque<std::uint64_t> restart_times_;
};

}  // namespace

void supervisor_main(const Region& region, const Options& opts, pid_t parent, int parent_fd,
                     int wake_fd) {
  signal(SIGINT, SIG_IGN);  // Ctrl-C is the parent's decision
  prctl(PR_SET_NAME, "inorder-super", 0, 0, 0);
  enable_light_notify();  // it notifies when it fails or retries a task (sync.hpp)
  Supervisor s(region, opts, parent, parent_fd, wake_fd);
  s.run();
}

}  // namespace inorder::detail
