// src/process/skprocess.cpp: the process machinery behind Skprocess.
//
// Processes: the parent (which called start()) forks one watcher; the watcher
// forks the child that runs the hooks, and forks a replacement from its own
// copy of the object (the parent's object as it was at start()) when a child
// crashes or is killed for a timeout. The watcher is single-threaded, so its
// forks are safe whatever threads the parent runs. It sleeps in ppoll on the
// child's pidfd, the parent's pidfd and an eventfd the child writes when it
// arms a hook deadline; the poll's timeout is the armed deadline.
//
// Everything the three processes share is one ProcessControl in anonymous
// MAP_SHARED memory, mapped by start() before the first fork, followed by the
// result area. The error record and the result are written by one process
// and read by another only across a fork or a waitpid, which order them.

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "inorder/reconnect.hpp"
#include "inorder/skprocess.hpp"
#include "os/os.hpp"
#include "process/timer.hpp"

namespace inorder {

const char* hook_name(Hook h) noexcept {
  static constexpr const char* kNames[kHookCount] = {"prerun", "run",   "postrun",  "onfinish",
                                                     "result", "error", "iteration"};
  const auto i = static_cast<std::size_t>(h);
  return i < kHookCount ? kNames[i] : "unknown";
}

namespace detail {

enum : std::uint32_t { kProcRunning = 0, kProcDone = 1, kProcFailed = 2 };
enum : std::uint32_t { kLoop = 0, kFinishing = 1, kResultPhase = 2, kErrorPhase = 3 };

/// Ordering: every atomic here uses the default, sequentially consistent,
/// on purpose. This is a cold path (a few operations per hook call, against a
/// hook that does real work), `kill` and `child_pid` need seq_cst as a Dekker
/// pair, and one rule for the whole struct is easier to check than a named
/// ordering per access. The timers are the exception: they are written per
/// hook call and name their orderings (see process/timer.hpp).
struct ProcessControl {
  // Configuration, written by start() before the first fork; read-only after.
  std::uint64_t runs = 0;
  std::uint32_t has_runs = 0;
  std::uint64_t join_in_ns = 0;
  std::uint64_t start_ns = 0;
  std::uint64_t timeout_ns[kTimedHookCount] = {};  // per hook prerun..onfinish; 0: none
  std::uint64_t max_result = 0;
  std::uint32_t forked = 0;  // 0: run_here (no watcher, no deadlines)

  /// kProcRunning until the child stores kProcDone (result written) or kProcFailed; the
  /// watcher stores kProcFailed for a kill or a failed error hook. Read by the
  /// parent after the watcher was reaped.
  std::atomic<std::uint32_t> state{kProcRunning};
  /// Set by stop() from either side; read by the child between hooks.
  std::atomic<std::uint32_t> stop{0};
  /// Set (seq_cst) by kill() before it reads child_pid; read by the watcher
  /// after it stores child_pid: one of them sees the other (Dekker).
  std::atomic<std::uint32_t> kill{0};
  /// kLoop, kFinishing, kResultPhase or kErrorPhase: where a replacement
  /// child resumes (on_finish runs once even if the child dies after it).
  std::atomic<std::uint32_t> phase{kLoop};
  /// The hook the child is in or last entered; names a timeout or a crash.
  std::atomic<std::uint32_t> hook{0};
  /// Attempts left; decremented by the child (exception) or the watcher.
  std::atomic<std::uint32_t> attempts_left{1};
  /// Runs completed; the run a replacement child resumes at.
  std::atomic<std::uint64_t> current_run{0};
  /// Absolute CLOCK_MONOTONIC ns by which the current hook must end; 0: none.
  /// Stored by the child before the hook (then the eventfd is written) and
  /// cleared after it; read by the watcher after each wake-up.
  std::atomic<std::uint64_t> deadline_ns{0};
  /// The child process running now (0: none); see `kill`.
  std::atomic<std::int32_t> child_pid{0};

  // The last failure: written by the child or the watcher, read after a fork
  // or a waitpid (which order the accesses).
  std::uint32_t has_error = 0;
  std::uint32_t err_kind = 0;
  std::uint32_t err_hook = 0;
  std::uint64_t err_run = 0;
  char err_type[256] = {};
  char err_message[1024] = {};

  std::uint64_t result_size = 0;
  TimerBlock timers[kHookCount];
};

static_assert(
    std::atomic<std::uint64_t>::is_always_lock_free && std::atomic<double>::is_always_lock_free,
    "control fields must be lock-free: an emulated atomic is not shared across processes");

namespace {

/// Bytes of the mapping before the result area: the control block, in whole pages.
std::size_t control_bytes() noexcept { return round_up(sizeof(ProcessControl), page_size()); }

std::byte* result_area(ProcessControl* c) {
  return reinterpret_cast<std::byte*>(c) + control_bytes();
}

void copy_text(char* dst, std::size_t cap, const std::string& s) {
  const std::size_t n = std::min(cap - 1, s.size());
  std::memcpy(dst, s.data(), n);
  dst[n] = '\0';
}

void record_error(ProcessControl* c, ProcessError::Kind kind, Hook hook, std::uint64_t run,
                  const std::string& type, const std::string& message) {
  c->err_kind = static_cast<std::uint32_t>(kind);
  c->err_hook = static_cast<std::uint32_t>(hook);
  c->err_run = run;
  copy_text(c->err_type, sizeof c->err_type, type);
  copy_text(c->err_message, sizeof c->err_message, message);
  c->has_error = 1;
}

ProcessError make_error(const ProcessControl* c) {
  if (c->has_error == 0)
    return ProcessError(ProcessError::Kind::kCrashed, "run", c->current_run.load(),
                        "inorder::ProcessCrashed", "the process ended without a result");
  return ProcessError(static_cast<ProcessError::Kind>(c->err_kind),
                      hook_name(static_cast<Hook>(c->err_hook)), c->err_run, c->err_type,
                      c->err_message);
}

/// Records the exception being handled (call inside a catch block).
void record_current_exception(ProcessControl* c, Hook hook, std::uint64_t run) {
  try {
    throw;
  } catch (const std::exception& e) {
    record_error(c, ProcessError::Kind::kThrew, hook, run, demangle(typeid(e)), e.what());
  } catch (...) {
    record_error(c, ProcessError::Kind::kThrew, hook, run, current_exception_type_name(), "");
  }
}

/// ProcessConfig::attempts, or its deprecated spelling ProcessConfig::lives.
unsigned attempts_of(const ProcessConfig& cfg) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  const unsigned old_spelling = cfg.lives;
#pragma GCC diagnostic pop
  return renamed_setting(
      cfg.attempts, old_spelling, 1,
      "inorder::Skprocess: config.lives is the deprecated name of config.attempts; set only one");
}

bool stopping(const ProcessControl* c) noexcept {
  if (c->stop.load() != 0) return true;
  return c->join_in_ns != 0 && now_ns() - c->start_ns >= c->join_in_ns;
}

std::string describe_status(pid_t pid, int status) {
  std::string s = describe_wait_status("the process (pid " + std::to_string(pid) + ")", status);
  if (WIFEXITED(status)) s += " before it finished";
  return s;
}

}  // namespace

class ProcessEngine {
 public:
  enum class Outcome { kOk, kRetry, kExhausted };

  /// Runs one hook call: arms its deadline, times it, turns an exception into
  /// a spent life. `fn` returns nothing and may throw.
  template <class Fn>
  static Outcome attempt(ProcessBase& p, ProcessControl* c, Hook h, std::uint64_t run, Fn&& fn) {
    c->hook.store(static_cast<std::uint32_t>(h));
    const auto i = static_cast<std::size_t>(h);
    const std::uint64_t limit = (c->forked != 0 && i < kTimedHookCount) ? c->timeout_ns[i] : 0;
    const std::uint64_t t0 = now_ns();
    if (limit != 0) {
      c->deadline_ns.store(t0 + limit);
      eventfd_signal(p.event_fd_);  // wake the watcher
    }
    try {
      fn();
    } catch (...) {
      if (limit != 0) c->deadline_ns.store(0);
      record_current_exception(c, h, run);
      return c->attempts_left.fetch_sub(1) > 1 ? Outcome::kRetry : Outcome::kExhausted;
    }
    if (limit != 0) c->deadline_ns.store(0);
    record_time(c->timers[i], now_ns() - t0);
    return Outcome::kOk;
  }

  /// The attempts are spent: on_error decides the result.
  static void error_phase(ProcessBase& p, ProcessControl* c) {
    c->phase.store(kErrorPhase);
    c->hook.store(static_cast<std::uint32_t>(Hook::kError));
    const ProcessError e = make_error(c);
    const std::uint64_t t0 = now_ns();
    try {
      c->result_size = p.produce_error_result_(e, result_area(c), c->max_result);
      record_time(c->timers[static_cast<std::size_t>(Hook::kError)], now_ns() - t0);
      c->state.store(kProcDone);
    } catch (const ProcessError&) {
      c->state.store(kProcFailed);  // rethrown (the default): the record stands
    } catch (...) {
      record_current_exception(c, Hook::kError, c->current_run.load());
      c->state.store(kProcFailed);
    }
  }

  /// The lifecycle, from wherever `c` says this attempt resumes.
  static void lifecycle(ProcessBase& p, ProcessControl* c) {
    if (c->phase.load() == kErrorPhase) return error_phase(p, c);
    if (c->phase.load() == kLoop) {
      std::uint64_t run = c->current_run.load();
      while (!(c->has_runs != 0 && run >= c->runs) && !stopping(c)) {
        const std::uint64_t t0 = now_ns();
        bool cut = false, retry = false;
        for (Hook h : {Hook::kPrerun, Hook::kRun, Hook::kPostrun}) {
          if (h != Hook::kPrerun && stopping(c)) {
            cut = true;
            break;
          }
          const Outcome o = attempt(p, c, h, run, [&p, h] { p.call_hook_(h); });
          if (o == Outcome::kExhausted) return error_phase(p, c);
          if (o == Outcome::kRetry) {
            retry = true;
            break;
          }
        }
        if (cut) break;
        if (retry) continue;  // the same run again, from on_prerun
        record_time(c->timers[static_cast<std::size_t>(Hook::kIteration)], now_ns() - t0);
        c->current_run.store(++run);
      }
      c->phase.store(kFinishing);
    }
    const std::uint64_t run = c->current_run.load();
    while (c->phase.load() == kFinishing) {  // a replacement after on_finish skips it
      const Outcome o =
          attempt(p, c, Hook::kOnFinish, run, [&p] { p.call_hook_(Hook::kOnFinish); });
      if (o == Outcome::kOk) c->phase.store(kResultPhase);
      if (o == Outcome::kExhausted) return error_phase(p, c);
    }
    for (;;) {
      const Outcome o = attempt(p, c, Hook::kResult, run, [&p, c] {
        c->result_size = p.produce_result_(result_area(c), c->max_result);
      });
      if (o == Outcome::kOk) break;
      if (o == Outcome::kExhausted) return error_phase(p, c);
    }
    c->state.store(kProcDone);
  }

  [[noreturn]] static void child_main(ProcessBase& p, pid_t watcher) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != watcher) _exit(1);  // the watcher died before PDEATHSIG was set
    signal(SIGINT, SIG_IGN);
    lifecycle(p, p.ctl_);
    std::fflush(nullptr);  // the parent flushed before forking: this is the child's output
    close_reconnects();
    _exit(0);
  }

  [[noreturn]] static void watcher_main(ProcessBase& p, int parent_fd) {
    signal(SIGINT, SIG_IGN);  // Ctrl-C is the parent's decision
    prctl(PR_SET_NAME, "inorder-skproc", 0, 0, 0);
    ProcessControl* c = p.ctl_;
    p.channel_pair_->point.claim();  // the parent's peer for tell/listen: lives as long as we do
    const pid_t me = getpid();
    for (;;) {
      const pid_t kid = fork();
      if (kid < 0) {
        record_error(c, ProcessError::Kind::kCrashed, static_cast<Hook>(c->hook.load()),
                     c->current_run.load(), "inorder::ForkFailed", std::strerror(errno));
        c->state.store(kProcFailed);
        _exit(0);
      }
      if (kid == 0) child_main(p, me);
      c->child_pid.store(kid);
      if (c->kill.load() != 0) ::kill(kid, SIGKILL);
      const int cfd = pidfd_open(kid);
      bool timed_out = false;
      while (cfd >= 0) {
        std::int64_t timeout_ns = -1;  // the armed hook deadline, if any
        if (const std::uint64_t d = c->deadline_ns.load(); d != 0) {
          const std::uint64_t now = now_ns();
          timeout_ns = static_cast<std::int64_t>(d > now ? d - now : 0);
        }
        const int kids[1] = {cfd};
        const WatchEvents ev = watch_children(parent_fd, p.event_fd_, kids, timeout_ns);
        if (ev.failed) break;
        if (ev.parent_gone) {  // the parent is gone: so are we
          kill_and_reap(kid);
          _exit(0);
        }
        if (ev.ended[0] != 0) break;
        const std::uint64_t d = c->deadline_ns.load();
        if (d != 0 && now_ns() >= d) {
          timed_out = true;
          const auto h = static_cast<Hook>(c->hook.load());
          const auto ms = c->timeout_ns[static_cast<std::size_t>(h)] / 1'000'000u;
          record_error(
              c, ProcessError::Kind::kTimedOut, h, c->current_run.load(), "inorder::HookTimeout",
              "ran past its timeout of " + std::to_string(ms) + " ms; the process was killed");
          ::kill(kid, SIGKILL);
          break;
        }
      }
      const int status = reap(kid);
      if (cfd >= 0) close(cfd);
      c->child_pid.store(0);
      c->deadline_ns.store(0);
      for (TimerBlock& t : c->timers) end_torn_update(t);  // a child killed inside record_time
      const std::uint32_t st = c->state.load();
      if (!timed_out && st != kProcRunning && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        _exit(0);
      if (c->kill.load() != 0) {
        record_error(c, ProcessError::Kind::kKilled, static_cast<Hook>(c->hook.load()),
                     c->current_run.load(), "inorder::Killed", "kill() was called from the parent");
        c->state.store(kProcFailed);
        _exit(0);
      }
      if (!timed_out)
        record_error(c, ProcessError::Kind::kCrashed, static_cast<Hook>(c->hook.load()),
                     c->current_run.load(), "inorder::ProcessCrashed",
                     describe_status(kid, status));
      if (c->phase.load() == kErrorPhase) {  // the error hook's own process failed
        c->state.store(kProcFailed);
        _exit(0);
      }
      if (c->attempts_left.fetch_sub(1) <= 1) c->phase.store(kErrorPhase);
      // Loop: a replacement (or the error hook's process), forked from our copy.
    }
  }

  static void init_control(ProcessBase& p, ProcessControl* c, bool forked) {
    const ProcessConfig& cfg = p.config;
    c->has_runs = cfg.runs ? 1 : 0;
    c->runs = cfg.runs.value_or(0);
    c->join_in_ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(cfg.join_in).count());
    const std::chrono::milliseconds t[kTimedHookCount] = {
        cfg.timeouts.prerun, cfg.timeouts.run, cfg.timeouts.postrun, cfg.timeouts.onfinish};
    for (std::size_t i = 0; i < kTimedHookCount; ++i)
      c->timeout_ns[i] = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(t[i]).count());
    c->max_result = cfg.max_result_bytes;
    c->forked = forked ? 1 : 0;
    c->attempts_left.store(attempts_of(cfg));
    c->start_ns = now_ns();
  }

  static void validate(const ProcessConfig& cfg) {
    auto bad = [](const char* field) {
      throw std::invalid_argument(std::string("inorder::Skprocess: config.") + field +
                                  " must not be negative");
    };
    if (attempts_of(cfg) < 1)
      throw std::invalid_argument("inorder::Skprocess: config.attempts must be >= 1");
    if (cfg.join_in.count() < 0) bad("join_in");
    if (cfg.timeouts.prerun.count() < 0) bad("timeouts.prerun");
    if (cfg.timeouts.run.count() < 0) bad("timeouts.run");
    if (cfg.timeouts.postrun.count() < 0) bad("timeouts.postrun");
    if (cfg.timeouts.onfinish.count() < 0) bad("timeouts.onfinish");
    if (cfg.message_capacity < 64)
      throw std::invalid_argument("inorder::Skprocess: config.message_capacity must be >= 64");
  }

  static ProcessControl* map_control(std::size_t bytes) {
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw_errno("inorder::Skprocess: mmap");
    return new (m) ProcessControl();
  }
};

}  // namespace detail

using detail::ProcessControl;
using detail::ProcessEngine;

ProcessBase::~ProcessBase() {
  if (started_ && getpid() == parent_ && watcher_ != 0) {
    try {
      kill();
    } catch (...) {
    }
  }
  if (!started_ || getpid() == parent_) release_();
}

void ProcessBase::release_() noexcept {
  if (watcher_fd_ >= 0) close(watcher_fd_);
  watcher_fd_ = -1;
  channel_pair_.reset();
  if (ctl_ != nullptr) {
    ctl_->~ProcessControl();
    munmap(ctl_, ctl_bytes_);
  }
  ctl_ = nullptr;
}

void ProcessBase::start() {
  if (started_) throw std::logic_error("inorder::Skprocess::start: already started");
  ProcessEngine::validate(config);
  ctl_bytes_ = detail::control_bytes() + config.max_result_bytes;
  if (ctl_ != nullptr) release_();  // left by run_here()
  ctl_ = ProcessEngine::map_control(ctl_bytes_);
  ProcessEngine::init_control(*this, ctl_, true);
  try {
    channel_pair_.emplace(Pipe::pair(false, config.message_capacity));
    event_fd_ = detail::eventfd_create("inorder::Skprocess: eventfd");
    parent_ = getpid();
    const int self_fd = detail::pidfd_open(parent_);
    if (self_fd < 0) detail::throw_errno("inorder::Skprocess: pidfd_open");
    std::fflush(nullptr);  // or the children would print the parent's buffered output again
    started_ = true;
    const pid_t w = fork();
    if (w == 0) ProcessEngine::watcher_main(*this, self_fd);
    const int err = errno;
    close(self_fd);
    close(event_fd_);
    event_fd_ = -1;
    if (w < 0) {
      started_ = false;
      detail::throw_errno(err, "inorder::Skprocess: fork");
    }
    watcher_ = w;
    watcher_fd_ = detail::pidfd_open(w);
    if (watcher_fd_ < 0) {
      const int e = errno;
      detail::kill_and_reap(w);
      watcher_ = 0;
      detail::throw_errno(e, "inorder::Skprocess: pidfd_open");
    }
  } catch (...) {
    if (event_fd_ >= 0) close(event_fd_);
    event_fd_ = -1;
    if (!started_) release_();
    throw;
  }
}

void ProcessBase::stop() {
  if (ctl_ == nullptr) throw NotStarted("inorder::Skprocess::stop: not started");
  ctl_->stop.store(1);
}

void ProcessBase::kill() {
  if (!started_) throw NotStarted("inorder::Skprocess::kill: not started");
  if (in_child_()) throw std::logic_error("inorder::Skprocess::kill: call it from the parent");
  if (watcher_ == 0) return;
  ctl_->kill.store(1);  // seq_cst: see ProcessControl::kill
  if (const pid_t kid = ctl_->child_pid.load(); kid > 0) ::kill(kid, SIGKILL);
  if (!wait_for_ns_(2'000'000'000)) {  // the watcher reacts in microseconds; never hang
    ::kill(watcher_, SIGKILL);
    wait_for_ns_(-1);
  }
}

bool ProcessBase::wait_for_ns_(std::int64_t ns) {
  if (!started_) throw NotStarted("inorder::Skprocess::wait: not started");
  if (in_child_()) throw std::logic_error("inorder::Skprocess::wait: call it from the parent");
  if (watcher_ == 0) return true;
  const detail::Deadline deadline =
      ns < 0 ? detail::kForever : detail::Clock::now() + std::chrono::nanoseconds(ns);
  if (!detail::await_pidfd(watcher_fd_, ns == 0 ? detail::kNoWait : deadline)) return false;
  detail::reap(watcher_);
  watcher_ = 0;
  close(watcher_fd_);
  watcher_fd_ = -1;
  return true;
}

bool ProcessBase::is_alive() {
  if (!started_ || in_child_()) return started_;
  return !wait_for_ns_(0);
}

std::uint64_t ProcessBase::current_run() const noexcept {
  return ctl_ == nullptr ? 0 : ctl_->current_run.load();
}

TimerStats ProcessBase::timer(Hook h) const {
  if (ctl_ == nullptr) throw NotStarted("inorder::Skprocess::timer: not started");
  const auto i = static_cast<std::size_t>(h);
  if (i >= kHookCount) throw std::invalid_argument("inorder::Skprocess::timer: unknown hook");
  return detail::read_timer(ctl_->timers[i]);
}

Pipe::Pair& ProcessBase::channel_() {
  if (!started_ || !channel_pair_)
    throw NotStarted("inorder::Skprocess: tell()/listen() need a started process");
  return *channel_pair_;
}

const std::byte* ProcessBase::finished_result_(std::size_t& size) {
  if (!started_) throw NotStarted("inorder::Skprocess::result: not started");
  wait_for_ns_(-1);
  if (ctl_->state.load() != detail::kProcDone) throw detail::make_error(ctl_);
  size = static_cast<std::size_t>(ctl_->result_size);
  return detail::result_area(ctl_);
}

const std::byte* ProcessBase::run_here_bytes_(std::size_t& size) {
  if (started_) throw std::logic_error("inorder::Skprocess::run_here: already started");
  ProcessEngine::validate(config);
  if (ctl_ != nullptr) release_();
  ctl_bytes_ = detail::control_bytes() + config.max_result_bytes;
  ctl_ = ProcessEngine::map_control(ctl_bytes_);
  ProcessEngine::init_control(*this, ctl_, false);
  ProcessEngine::lifecycle(*this, ctl_);
  if (ctl_->state.load() != detail::kProcDone) throw detail::make_error(ctl_);
  size = static_cast<std::size_t>(ctl_->result_size);
  return detail::result_area(ctl_);
}

void ProcessBase::throw_too_large_(std::size_t need, std::size_t cap) {
  throw std::length_error("inorder::Skprocess: the result encodes to " + std::to_string(need) +
                          " bytes; config.max_result_bytes is " + std::to_string(cap));
}

}  // namespace inorder
