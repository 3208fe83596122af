// inorder/skprocess.hpp: a process written as a class, with a lifecycle.
//
// Contract. Derive from Skprocess<R>, override on_run() (every other hook is
// optional) and call start(): the object is copied into a forked process,
// which runs, for each run (iteration) 0, 1, ...,
//     on_prerun() -> on_run() -> on_postrun()
// until `config.runs` runs are done, stop() is called (from either side), or
// `config.join_in` has passed; then on_finish() once and on_result() once,
// whose value result() returns in the parent. stop() and join_in are looked at
// between hooks: a hook in progress is never cut short by them.
//
// Failures cost an attempt (`config.attempts` in all, default 1; the "lives" of
// the library this follows):
//  * a hook that throws is retried in the same process, which keeps its state:
//    the iteration is redone from on_prerun (or on_finish / on_result is
//    called again);
//  * a hook that runs past its timeout (config.timeouts) is killed (SIGKILL,
//    by the watcher process: it does not run on), and a process that crashes
//    is replaced: the new process is forked from the object as it was at
//    start() in the parent, and resumes at the run where the old one stopped.
// When the attempts are spent, on_error(e) runs in a fresh process (or the same
// one, after an exception): by default it rethrows e, and result() throws that
// ProcessError (hook, run and cause); a value it returns becomes the result.
//
// Processes: start() forks a small watcher process, which forks the child that
// runs the hooks, enforces hook timeouts and replaces a dead child. Both die
// with the parent, ignore SIGINT and end with _exit. tell() and listen() work
// from either side; the timers are readable from the parent while the child runs.
// Not promised: hook timeouts for run_here() (no watcher: Pool's timeout applies),
// state changes of a killed child (they are lost; the replacement starts from the
// parent's copy), and calls on one object from several parent threads at once.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "inorder/codec.hpp"
#include "inorder/errors.hpp"
#include "inorder/pipe.hpp"

namespace inorder {

/// The hooks, plus kIteration (prerun + run + postrun of one run) for timers.
enum class Hook : std::uint8_t {
  kPrerun,
  kRun,
  kPostrun,
  kOnFinish,
  kResult,
  kError,
  kIteration,  ///< keep last: kHookCount is derived from it
  // The spellings of the previous release, kept for one more.
  prerun [[deprecated("use Hook::kPrerun")]] = kPrerun,
  run [[deprecated("use Hook::kRun")]] = kRun,
  postrun [[deprecated("use Hook::kPostrun")]] = kPostrun,
  onfinish [[deprecated("use Hook::kOnFinish")]] = kOnFinish,
  result [[deprecated("use Hook::kResult")]] = kResult,
  error [[deprecated("use Hook::kError")]] = kError,
  iteration [[deprecated("use Hook::kIteration")]] = kIteration,
};
/// Number of distinct hooks (timer slots).
inline constexpr std::size_t kHookCount = static_cast<std::size_t>(Hook::kIteration) + 1;
/// The hooks that can have a time limit (HookTimeouts): kPrerun .. kOnFinish.
inline constexpr std::size_t kTimedHookCount = static_cast<std::size_t>(Hook::kOnFinish) + 1;

/// Name of a hook as errors report it ("prerun", "run", ...).
const char* hook_name(Hook h) noexcept;

/// Per-hook time limits; zero (the default) means no limit. A hook past its
/// limit is killed with its process and costs an attempt.
struct HookTimeouts {
  std::chrono::milliseconds prerun{0};
  std::chrono::milliseconds run{0};
  std::chrono::milliseconds postrun{0};
  std::chrono::milliseconds onfinish{0};
};

/// Set in the derived class's constructor (`config.attempts = 3;`); read by start().
// The implicit copy of ProcessConfig copies the deprecated field `lives`;
// only a user's own use of it should warn, so the definition is exempt.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
struct ProcessConfig {
  /// Number of runs; none (the default): until stop() or join_in.
  std::optional<std::uint64_t> runs;
  /// Time limit for the whole process, from start(); zero (default): none.
  /// When it has passed, the child stops as if stop() had been called.
  std::chrono::milliseconds join_in{0};
  /// Attempts in all, at least 1 (default 1: the first failure is final).
  /// A failure (exception, crash, timeout) costs one.
  unsigned attempts = 1;
  /// Deprecated spelling of `attempts`, kept for one release (it counted
  /// attempts too, not retries). Either field may be changed from 1; changing
  /// both to different values makes start() throw std::invalid_argument.
  [[deprecated(
      "inorder: ProcessConfig::lives is now ProcessConfig::attempts (the same count)")]] unsigned
      lives = 1;
  HookTimeouts timeouts;
  /// Bytes of each direction of the tell()/listen() channel; larger messages
  /// still go through (default 64 KiB).
  std::size_t message_capacity = std::size_t{64} << 10;
  /// Largest encoded result (default 16 MiB); a larger one fails the result hook.
  std::size_t max_result_bytes = std::size_t{16} << 20;
};
#pragma GCC diagnostic pop

/// A snapshot of one hook's timer. Times in seconds. count, total, mean,
/// stdev (sample standard deviation, 0 below 2 samples), min and max cover
/// every successful call; median and percentile are exact up to 1024 calls
/// and from a uniform sample of 1024 calls beyond (reservoir sampling).
class TimerStats {
 public:
  TimerStats() = default;
  TimerStats(std::uint64_t count, double total, double sumsq, double min, double max,
             std::vector<double> samples);

  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  [[nodiscard]] double total() const noexcept { return total_; }
  [[nodiscard]] double mean() const noexcept;
  [[nodiscard]] double stdev() const noexcept;
  [[nodiscard]] double min() const noexcept { return min_; }
  [[nodiscard]] double max() const noexcept { return max_; }
  [[nodiscard]] double median() const noexcept { return percentile(50); }
  /// p in [0, 100], linear interpolation between samples; 0 with no samples.
  /// Throws std::invalid_argument outside [0, 100].
  [[nodiscard]] double percentile(double p) const;

 private:
  std::uint64_t count_ = 0;
  double total_ = 0, sumsq_ = 0, min_ = 0, max_ = 0;
  std::vector<double> samples_;  // sorted
};

namespace detail {
struct ProcessControl;
class ProcessEngine;
}  // namespace detail

/// The part of Skprocess that does not depend on the result type.
class ProcessBase {
 public:
  ProcessConfig config;

  ProcessBase() = default;
  ProcessBase(const ProcessBase&) = delete;
  ProcessBase& operator=(const ProcessBase&) = delete;
  /// In the parent: kill() if still running, then reap. Never throws or hangs.
  virtual ~ProcessBase();

  /// Parent: forks the watcher and the child. Throws std::logic_error if
  /// already started, std::invalid_argument for a bad config field,
  /// std::system_error if fork/mmap fail.
  void start();
  /// Either side: the child ends its loop at the next hook boundary, then runs
  /// on_finish and on_result. Never blocks. Throws NotStarted before start().
  void stop();
  /// Parent: kills the child at once (no on_finish, no result: result() throws
  /// a ProcessError of kind kKilled) and reaps it. Throws NotStarted before start().
  void kill();
  /// Parent: waits until the process has ended; true if it has, false at the
  /// timeout. Throws NotStarted before start().
  bool wait() { return wait_for_ns_(-1); }
  template <class Rep, class Period>
  bool wait(const std::chrono::duration<Rep, Period>& timeout) {
    if (timeout < std::chrono::duration<Rep, Period>::zero())
      throw std::invalid_argument("inorder::Skprocess::wait: timeout must not be negative");
    return wait_for_ns_(std::chrono::ceil<std::chrono::nanoseconds>(timeout).count());
  }
  /// Parent: started and not yet ended. Never blocks.
  [[nodiscard]] bool is_alive();
  /// Either side: the run the child is in (runs completed so far). 0 before start().
  [[nodiscard]] std::uint64_t current_run() const noexcept;
  /// Either side: one hook's timer (see TimerStats). Throws NotStarted before start().
  [[nodiscard]] TimerStats timer(Hook h) const;

  /// Either side: sends a message to the other side. Blocks only while the
  /// channel is full. Throws NotStarted before start(), PipeClosed if the
  /// other side closed or is gone while the channel is full.
  template <class T>
  void tell(const T& message) {
    if (in_child_()) {
      channel_().point.send(message);
    } else {
      channel_().anchor.send(message);
    }
  }
  /// Either side: the next message from the other side, or std::nullopt if
  /// none arrived within `timeout` (zero: do not wait). Throws NotStarted
  /// before start(), PipeClosed once the other side is gone and nothing is left.
  template <class T, class Rep = std::int64_t, class Period = std::milli>
  std::optional<T> listen(const std::chrono::duration<Rep, Period>& timeout) {
    if (in_child_()) return channel_().point.template try_recv_for<T>(timeout);
    return channel_().anchor.template try_recv_for<T>(timeout);
  }
  /// Either side: waits without limit for the next message.
  template <class T>
  T listen() {
    if (in_child_()) return channel_().point.template recv<T>();
    return channel_().anchor.template recv<T>();
  }

 protected:
  // Implemented by Skprocess<R>: the hooks, type-erased for src/process/skprocess.cpp.
  virtual void call_hook_(Hook h) = 0;
  /// Calls on_result() and encodes it into [dst, dst + cap); returns the size.
  virtual std::size_t produce_result_(std::byte* dst, std::size_t cap) = 0;
  /// Calls on_error(e) and encodes what it returns; rethrows what it throws.
  virtual std::size_t produce_error_result_(const ProcessError& e, std::byte* dst,
                                            std::size_t cap) = 0;

  /// Parent: waits, then returns the encoded result, or throws the ProcessError.
  const std::byte* finished_result_(std::size_t& size);
  /// Runs the lifecycle in the calling process (no fork, no hook timeouts).
  const std::byte* run_here_bytes_(std::size_t& size);

  [[noreturn]] static void throw_too_large_(std::size_t need, std::size_t cap);

 private:
  friend class detail::ProcessEngine;
  bool wait_for_ns_(std::int64_t ns);
  [[nodiscard]] bool in_child_() const noexcept { return started_ && getpid() != parent_; }
  Pipe::Pair& channel_();
  void release_() noexcept;

  bool started_ = false;
  pid_t parent_ = 0;                       // process that called start()
  pid_t watcher_ = 0;                      // the watcher process (0 once reaped)
  int watcher_fd_ = -1;                    // pidfd of the watcher, in the parent
  int event_fd_ = -1;                      // eventfd: child -> watcher "a hook deadline was set"
  detail::ProcessControl* ctl_ = nullptr;  // the shared control block
  std::size_t ctl_bytes_ = 0;
  std::optional<Pipe::Pair> channel_pair_;  // tell/listen: Anchor in the parent
};

/// Derive from Skprocess<R>; R is what on_result() returns (void: nothing),
/// and must be encodable (codec.hpp).
template <class R = void>
class Skprocess : public ProcessBase {
 public:
  using result_type = R;

  /// Parent: blocks until the process ended, then returns on_result()'s value
  /// (or on_error()'s), or throws the ProcessError. Throws NotStarted before start().
  R result() {
    std::size_t n = 0;
    const std::byte* p = finished_result_(n);
    return decode_(p, n);
  }
  /// start(), then result().
  R run() {
    start();
    return result();
  }
  /// Runs the whole lifecycle in the calling process, without forking (what
  /// Pool::map<Worker> does in a worker). Lives apply to exceptions; hook
  /// timeouts do not (use the pool's timeout); tell/listen are unavailable.
  R run_here() {
    std::size_t n = 0;
    const std::byte* p = run_here_bytes_(n);
    return decode_(p, n);
  }

 protected:
  virtual void on_prerun() {}
  virtual void on_run() = 0;
  virtual void on_postrun() {}
  virtual void on_finish() {}
  /// The result, computed in the child after on_finish().
  virtual R on_result() {
    if constexpr (std::is_void_v<R>) {
      return;
    } else {
      static_assert(std::is_default_constructible_v<R>,
                    "inorder::Skprocess: override on_result() for a result type that is not "
                    "default-constructible");
      return R{};
    }
  }
  /// Called once the attempts are spent, with the last failure. Rethrows it by
  /// default (result() throws it); a value returned becomes the result.
  virtual R on_error(const ProcessError& e) { throw e; }

 private:
  static_assert(std::is_void_v<R> || Encodable<R>,
                "inorder::Skprocess<R>: the result type cannot cross a process boundary; see "
                "docs/codec.md");

  void call_hook_(Hook h) override {
    switch (h) {
      case Hook::kPrerun:
        on_prerun();
        break;
      case Hook::kRun:
        on_run();
        break;
      case Hook::kPostrun:
        on_postrun();
        break;
      case Hook::kOnFinish:
        on_finish();
        break;
      default:
        break;
    }
  }
  std::size_t produce_result_(std::byte* dst, std::size_t cap) override {
    if constexpr (std::is_void_v<R>) {
      on_result();
      return 0;
    } else {
      return encode_(on_result(), dst, cap);
    }
  }
  std::size_t produce_error_result_(const ProcessError& e, std::byte* dst,
                                    std::size_t cap) override {
    if constexpr (std::is_void_v<R>) {
      on_error(e);
      return 0;
    } else {
      return encode_(on_error(e), dst, cap);
    }
  }
  template <class V>
  static std::size_t encode_(const V& v, std::byte* dst, std::size_t cap) {
    const std::size_t n = encoded_size(v);
    if (n > cap) throw_too_large_(n, cap);
    Writer w(dst);
    inorder::encode(w, v);
    return n;
  }
  static R decode_([[maybe_unused]] const std::byte* p, [[maybe_unused]] std::size_t n) {
    if constexpr (std::is_void_v<R>) {
      return;
    } else {
      return decode_from<R>(p, n);
    }
  }
};

}  // namespace inorder
