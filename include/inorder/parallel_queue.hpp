// inorder/parallel_queue.hpp: run callables in forked worker processes and get
// their results back in the order they were put.
//
// Contract. get() returns results in exactly the order of put(): the k-th
// value get() returns belongs to the k-th put() (for puts from several threads,
// the order in which their calls claimed a sequence number, which is before
// they return). A task that throws fails only its own position: get() rethrows
// it there as inorder::TaskError (type name, message, worker pid) and the next
// get() goes on with the next result. Workers are forked at construction and
// run tasks concurrently; a worker does not start a task more than
// `window - 1` positions ahead of the next result get() will return, so a slow
// task holds up the pipeline only once the window has filled behind it.
// put() and get() may be called from any number of threads of the process that
// constructed the queue (never from a worker or from a child forked later).
//
// Faults: a task whose worker dies (signal, abort, exit, SIGKILL) or runs past
// Options::task_timeout fails only its own position (WorkerCrashed /
// TaskTimeout), or is retried on a fresh worker while it has Options::lives;
// the worker is replaced by the queue's supervisor process. Past the restart
// cap the queue is Broken and every unfinished position and later put() fails
// with QueueBroken at once: nothing waits for work that cannot happen.
// Not promised: results of tasks that never return when no task_timeout is set.
// A callable put() receives must be trivially copyable; see put().
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>

#include "inorder/codec.hpp"
#include "inorder/detail/core.hpp"
#include "inorder/detail/deadline.hpp"
#include "inorder/detail/put_checks.hpp"
#include "inorder/errors.hpp"
#include "inorder/options.hpp"
#include "inorder/stats.hpp"

namespace inorder {
namespace detail {

/// Runs in a worker: rebuilds the callable and arguments, calls, encodes.
template <class R, class Fn, class... A>
void invoke_task(const std::byte* p, std::size_t n, ResultSink& sink) {
  alignas(Fn) std::byte storage[sizeof(Fn)];
  std::memcpy(storage, p, sizeof(Fn));  // Fn is trivially copyable: this creates it
  // This call's own copy: a `mutable` lambda may change it; nothing carries over.
  Fn& fn = *std::launder(reinterpret_cast<Fn*>(storage));
  Reader in(p + sizeof(Fn), n - sizeof(Fn));
  // Braced initialization decodes the arguments left to right.
  std::tuple<A...> args{decode<A>(in)...};
  const R result = std::apply(
      [&](A&... xs) -> R { return static_cast<R>(std::invoke(fn, std::move(xs)...)); }, args);
  const std::size_t size = encoded_size(result);
  Writer out(sink.reserve(size));
  encode(out, result);
}

}  // namespace detail

/// ParallelQueue<R>: see the contract at the top of this file.
/// R is the type get() returns; it must be encodable (codec.hpp).
template <class R>
class ParallelQueue {
  // An R that cannot be encoded stops the build with the codec's own message
  // for its type, which says what to use instead.
  static_assert(detail::explain_unencodable<R>());

 public:
  using value_type = R;

  /// Forks the queue's supervisor process, which forks `opts.workers` worker
  /// processes. Returns without waiting for the workers: tasks put meanwhile
  /// wait in the ring (stats() waits until the workers exist). Throws
  /// std::invalid_argument naming a bad field, std::system_error if mmap or
  /// the fork of the supervisor fails; if the supervisor cannot fork a worker,
  /// the queue is Broken and put()/get() throw QueueBroken saying so.
  /// Call from the thread that will own the queue; forking copies only that
  /// thread, so a task must not rely on locks other threads held at that moment.
  explicit ParallelQueue(const Options& opts = {}) : core_(opts) {}

  /// Never hangs and leaves nothing behind: closes the queue, lets workers that
  /// are between tasks exit, gives busy ones Options::shutdown_grace to finish,
  /// SIGKILLs the rest and reaps every one. Undelivered results are discarded.
  ~ParallelQueue() = default;

  ParallelQueue(const ParallelQueue&) = delete;
  ParallelQueue& operator=(const ParallelQueue&) = delete;

  /// put(f, args...): runs f(args...) in a worker; its result (converted to R)
  /// comes out of get() at this position.
  /// put(value): with a single argument that is not callable without
  /// arguments, passes `value` (converted to R) through in order, untouched.
  ///
  /// `f` must be trivially copyable: a function pointer, or a lambda capturing
  /// only numbers and pointers to memory that existed when the workers were
  /// forked. Its bytes are copied to the worker and the same code runs there.
  /// Each argument is encoded (codec.hpp) and decoded in the worker, where `f`
  /// receives it as an rvalue. Any thread. Blocks while `capacity` results are
  /// outstanding. Throws QueueClosed after stop(), PayloadTooLarge when the
  /// encoded arguments exceed Options::max_spill_bytes.
  ///
  /// Returns the task's sequence number: its position, counted from
  /// Options::first_sequence and wrapping at 2^32 (TaskError::sequence() and
  /// get_any() report the same number).
  template <class F, class... Args>
  std::uint32_t put(F&& f, Args&&... args) {
    return *put_until_(0, detail::kForever, std::forward<F>(f), std::forward<Args>(args)...);
  }

  /// As put(), but returns false at once instead of blocking when full.
  template <class F, class... Args>
  [[nodiscard]] bool try_put(F&& f, Args&&... args) {
    return put_until_(0, detail::kNoWait, std::forward<F>(f), std::forward<Args>(args)...)
        .has_value();
  }

  /// As put(), waiting at most `timeout` (never returns false earlier).
  /// Throws std::invalid_argument for a negative timeout.
  template <class Rep, class Period, class F, class... Args>
  [[nodiscard]] bool try_put_for(const std::chrono::duration<Rep, Period>& timeout, F&& f,
                                 Args&&... args) {
    return put_until_(0, detail::after(timeout), std::forward<F>(f), std::forward<Args>(args)...)
        .has_value();
  }

  /// As put(), waiting until `deadline` at most.
  template <class C, class D, class F, class... Args>
  [[nodiscard]] bool try_put_until(const std::chrono::time_point<C, D>& deadline, F&& f,
                                   Args&&... args) {
    return put_until_(0, detail::to_deadline(deadline), std::forward<F>(f),
                      std::forward<Args>(args)...)
        .has_value();
  }

  /// As put(f, args...), with settings for this task alone: `opts.timeout`
  /// overrides Options::task_timeout for it. Throws std::invalid_argument for
  /// a negative timeout.
  template <class F, class... Args>
  std::uint32_t put_with(const TaskOptions& opts, F&& f, Args&&... args) {
    return *put_until_(timeout_ms_(opts), detail::kForever, std::forward<F>(f),
                       std::forward<Args>(args)...);
  }

  /// As put_with(), waiting at most `timeout` for room; false on timeout.
  template <class Rep, class Period, class F, class... Args>
  [[nodiscard]] bool try_put_with_for(const TaskOptions& opts,
                                      const std::chrono::duration<Rep, Period>& timeout, F&& f,
                                      Args&&... args) {
    return put_until_(timeout_ms_(opts), detail::after(timeout), std::forward<F>(f),
                      std::forward<Args>(args)...)
        .has_value();
  }

  /// Passes `value` through in order (explicit form of put(value)).
  std::uint32_t put_value(const R& value) { return *put_value_until_(detail::kForever, value); }

  /// Next result in put order. Blocks until it is ready. Returns std::nullopt
  /// once stop() was called and every result was delivered (end of stream; at
  /// once, never a hang). Throws TaskError if that task failed. Any thread.
  [[nodiscard]] std::optional<R> get() { return get_until_(detail::kForever); }

  /// Next result if it is ready now; std::nullopt otherwise (see exhausted()).
  [[nodiscard]] std::optional<R> try_get() { return get_until_(detail::kNoWait); }

  /// Next result, waiting at most `timeout`; std::nullopt on timeout (never
  /// earlier than the timeout) or, at once, at end of stream.
  template <class Rep, class Period>
  [[nodiscard]] std::optional<R> try_get_for(const std::chrono::duration<Rep, Period>& timeout) {
    return get_until_(detail::after(timeout));
  }

  /// Next result, waiting until `deadline` at most.
  template <class C, class D>
  [[nodiscard]] std::optional<R> try_get_until(const std::chrono::time_point<C, D>& deadline) {
    return get_until_(detail::to_deadline(deadline));
  }

  /// Completion order instead of put order: the next finished result, whatever
  /// its position (the oldest finished one first), with the sequence number
  /// put() returned for it. std::nullopt at end of stream. A failed task throws
  /// its TaskError (sequence() tells which). Use either get*() or get_any*() on
  /// one queue, not both. The window still bounds how far ahead of the oldest
  /// unfinished task work may start; set `window` = `capacity` to let fast
  /// tasks flow past a slow one as far as the ring allows.
  [[nodiscard]] std::optional<std::pair<std::uint32_t, R>> get_any() {
    return get_any_until_(detail::kForever);
  }
  /// As get_any(), waiting at most `timeout`; std::nullopt on timeout too.
  template <class Rep, class Period>
  [[nodiscard]] std::optional<std::pair<std::uint32_t, R>> try_get_any_for(
      const std::chrono::duration<Rep, Period>& timeout) {
    return get_any_until_(detail::after(timeout));
  }

  /// No more puts: put() throws QueueClosed from now on. Everything already
  /// put still runs and is delivered. Idle workers exit once all work has been
  /// dispatched. Any thread; idempotent; does not block.
  void stop() noexcept { core_.stop(); }

  /// True once stop() was called, or once the queue is broken (QueueBroken):
  /// no put() can succeed any more.
  [[nodiscard]] bool stopped() const noexcept { return core_.stopped(); }

  /// Stops the queue (if not yet) and waits until every worker has run its
  /// last task and exited, or `timeout` passes. Returns true if all exited.
  /// Workers can finish only if results are drained far enough for the window
  /// to admit the remaining tasks. Results stay available to get() afterwards.
  template <class Rep = long, class Period = std::ratio<1>>
  bool join(const std::chrono::duration<Rep, Period>& timeout =
                std::chrono::duration<Rep, Period>::max()) {
    return core_.join(detail::after(timeout));
  }

  /// True while any worker process has not exited.
  [[nodiscard]] bool is_alive() { return core_.is_alive(); }

  /// True when stopped and every result has been delivered.
  [[nodiscard]] bool exhausted() const noexcept { return core_.exhausted(); }

  /// A snapshot for tuning: in flight, waiting in the window, per-worker counts.
  [[nodiscard]] Stats stats() { return core_.stats(); }

 private:
  template <class F, class... Args>
  std::optional<std::uint32_t> put_until_(std::uint32_t timeout_ms, detail::Deadline deadline,
                                          F&& f, Args&&... args) {
    using Fn = std::decay_t<F>;
    if constexpr (sizeof...(Args) == 0 && !std::is_invocable_v<Fn&>) {
      static_assert(detail::check_put_value<R, F&&>());
      if constexpr (std::is_same_v<Fn, R>) {
        return put_value_until_(deadline, f);  // encode in place: no temporary copy
      } else {
        return put_value_until_(deadline, static_cast<R>(std::forward<F>(f)));
      }
    } else {
      static_assert(std::is_trivially_copyable_v<Fn>,
                    "inorder: the callable given to put() must be trivially copyable: its bytes "
                    "are copied to a worker process. Capture only numbers and pointers (to memory "
                    "that existed when the workers were forked), pass data as arguments, or fix "
                    "the task at construction with SingleTaskQueue");
      // The worker calls its own copy of f, which a `mutable` lambda may change.
      static_assert(detail::check_put_task<R, Fn&, std::decay_t<Args>...>());
      const std::size_t bytes = sizeof(Fn) + (std::size_t{0} + ... + encoded_size(args));
      std::uint32_t seq = 0;
      std::byte* dst = core_.begin_put(bytes, false, deadline, seq);
      if (dst == nullptr) return std::nullopt;
      const Fn fn = f;  // a function reference decays to the pointer whose bytes we send
      std::memcpy(dst, static_cast<const void*>(std::addressof(fn)), sizeof(Fn));
      Writer w(dst + sizeof(Fn));
      (encode(w, args), ...);
      core_.commit_put(seq, &detail::invoke_task<R, Fn, std::decay_t<Args>...>, bytes, timeout_ms);
      return seq;
    }
  }

  static std::uint32_t timeout_ms_(const TaskOptions& opts) {
    const auto ms = opts.timeout.count();
    if (ms < 0) throw std::invalid_argument("inorder: TaskOptions::timeout must not be negative");
    constexpr auto kMax = std::int64_t{0xFFFFFFFF};
    return static_cast<std::uint32_t>(std::min<std::int64_t>(ms, kMax));
  }

  std::optional<std::uint32_t> put_value_until_(detail::Deadline deadline, const R& value) {
    const std::size_t bytes = encoded_size(value);
    std::uint32_t seq = 0;
    std::byte* dst = core_.begin_put(bytes, true, deadline, seq);
    if (dst == nullptr) return std::nullopt;
    Writer w(dst);
    encode(w, value);
    core_.commit_put(seq, nullptr, bytes);
    return seq;
  }

  std::optional<R> get_until_(detail::Deadline deadline) {
    detail::ResultView v;
    if (core_.begin_get(deadline, v) != detail::GetStatus::kReady) return std::nullopt;
    // The slot goes back to the producers whatever happens while decoding.
    struct Release {
      detail::Core& core;
      const detail::ResultView& view;
      ~Release() { core.end_get(view); }
    } release{core_, v};
    if (v.is_error) core_.throw_task_error(v);
    return decode_from<R>(v.data, v.len);
  }

  std::optional<std::pair<std::uint32_t, R>> get_any_until_(detail::Deadline deadline) {
    detail::ResultView v;
    if (core_.begin_get_any(deadline, v) != detail::GetStatus::kReady) return std::nullopt;
    struct Release {
      detail::Core& core;
      const detail::ResultView& view;
      ~Release() { core.end_get(view); }
    } release{core_, v};
    if (v.is_error) core_.throw_task_error(v);
    return std::pair<std::uint32_t, R>{v.seq, decode_from<R>(v.data, v.len)};
  }

  detail::Core core_;
};

/// SingleTaskQueue<R, Args...>: a queue bound to one task given at
/// construction. The task object is created before the workers are forked and
/// inherited by them, so it may hold anything: a std::function, a connection,
/// a large table, state that cannot be encoded. put(args...) sends only the
/// arguments. Same ordering, error and lifecycle contract as ParallelQueue.
template <class R, class... Args>
class SingleTaskQueue {
 public:
  using Task = std::function<R(Args...)>;

  explicit SingleTaskQueue(Task task, const Options& opts = {})
      : task_(std::make_unique<const Task>(std::move(task))), queue_(opts) {}

  /// Runs task(args...) in a worker. Blocks while full; throws QueueClosed after stop().
  void put(const std::decay_t<Args>&... args) { queue_.put(Call{task_.get()}, args...); }
  [[nodiscard]] bool try_put(const std::decay_t<Args>&... args) {
    return queue_.try_put(Call{task_.get()}, args...);
  }
  template <class Rep, class Period>
  [[nodiscard]] bool try_put_for(const std::chrono::duration<Rep, Period>& timeout,
                                 const std::decay_t<Args>&... args) {
    return queue_.try_put_for(timeout, Call{task_.get()}, args...);
  }
  /// Passes `value` through in order.
  void put_value(const R& value) { queue_.put_value(value); }

  [[nodiscard]] std::optional<R> get() { return queue_.get(); }
  [[nodiscard]] std::optional<R> try_get() { return queue_.try_get(); }
  template <class Rep, class Period>
  [[nodiscard]] std::optional<R> try_get_for(const std::chrono::duration<Rep, Period>& timeout) {
    return queue_.try_get_for(timeout);
  }

  void stop() noexcept { queue_.stop(); }
  template <class Rep = long, class Period = std::ratio<1>>
  bool join(const std::chrono::duration<Rep, Period>& timeout =
                std::chrono::duration<Rep, Period>::max()) {
    return queue_.join(timeout);
  }
  [[nodiscard]] bool is_alive() { return queue_.is_alive(); }
  [[nodiscard]] bool exhausted() const noexcept { return queue_.exhausted(); }
  [[nodiscard]] Stats stats() { return queue_.stats(); }

 private:
  /// What crosses to the worker: a pointer to the task, valid there because
  /// the task was allocated before the fork.
  struct Call {
    const Task* task;
    R operator()(std::decay_t<Args>&&... xs) const { return (*task)(std::move(xs)...); }
  };

  std::unique_ptr<const Task> task_;  // declared first: exists before queue_ forks
  ParallelQueue<R> queue_;
};

}  // namespace inorder
