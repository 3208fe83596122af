// inorder/mpi/parallel_queue.hpp: the ordered queue across the ranks of an MPI job.
//
// Contract. On rank 0, get() returns results in exactly the order of put():
// the k-th value get() returns belongs to the k-th put(), whichever rank ran
// it. put(value) passes a value through in order without leaving rank 0. A
// task that fails (throws, crashes its worker, times out) fails only its own
// position: get() throws it there as TaskError / WorkerCrashed / TaskTimeout,
// also carrying inorder::mpi::RemoteFailure (rank, host, global sequence).
// get_any() gives completion order. Positions are numbered with a 64-bit
// sequence. At most SessionOptions::window positions are put and not yet
// taken: put() blocks beyond that, so rank 0's memory is bounded.
//
// Tasks must mean the same in every process: a task is a function pointer or
// a lambda without captures (a compile-time error otherwise); its code is
// found on the other rank by its offset in the binary, and its arguments
// travel encoded (codec.hpp). Each argument list and each result may be up to
// SessionOptions::max_spill_bytes encoded.
//
// Who may call: rank 0 only, from the thread that constructed the Session;
// one queue (or pool) per Session at a time. Work moves between ranks only
// while that thread is inside a call of the queue (put, get, ...).
// Not promised: progress of remote work while rank 0 is outside the queue's
// calls (MPI buffers results meanwhile); survival of a lost rank (the job ends).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "inorder/codec.hpp"
#include "inorder/detail/put_checks.hpp"
#include "inorder/errors.hpp"
#include "inorder/mpi/detail/engine.hpp"
#include "inorder/mpi/errors.hpp"
#include "inorder/mpi/session.hpp"
#include "inorder/options.hpp"
#include "inorder/parallel_queue.hpp"

namespace inorder::mpi {
namespace detail {

template <class Fn>
inline constexpr bool kIsFunctionPointer =
    std::is_pointer_v<Fn>&& std::is_function_v<std::remove_pointer_t<Fn>>;

/// A callable whose meaning does not depend on the address space: a function
/// pointer (translated by CodeRef) or an empty, trivially copyable object (a
/// lambda without captures).
template <class Fn>
inline constexpr bool kIsPortableCallable = kIsFunctionPointer<Fn> ||
                                            (std::is_empty_v<Fn> &&
                                             std::is_trivially_copyable_v<Fn>);

template <class P>
std::uintptr_t address_of(P p) noexcept {
  static_assert(sizeof(P) == sizeof(std::uintptr_t), "a function pointer must fit an address");
  std::uintptr_t a = 0;
  std::memcpy(&a, &p, sizeof a);
  return a;
}

/// The portable name of the local invoker for (R, Fn, A...), computed once.
template <class R, class Fn, class... A>
CodeRef invoker_ref() {
  static const CodeRef ref = code_ref(address_of(&inorder::detail::invoke_task<R, Fn, A...>));
  return ref;
}

}  // namespace detail

template <class R>
class ParallelQueue {
  static_assert(Encodable<R>,
                "inorder::mpi::ParallelQueue<R>: R must be encodable (trivially copyable, a "
                "supported standard type, or a type with an inorder::codec<R> specialization); see "
                "docs/codec.md");

 public:
  using value_type = R;

  /// Rank 0 only (std::logic_error elsewhere, or while another queue or pool
  /// of this Session exists). Does not block.
  explicit ParallelQueue(Session& session) : engine_(session) {}

  /// Undelivered results are dropped; tasks still running on other ranks
  /// finish there and their results are discarded. Does not block.
  ~ParallelQueue() = default;
  ParallelQueue(const ParallelQueue&) = delete;
  ParallelQueue& operator=(const ParallelQueue&) = delete;

  /// put(f, args...): runs f(args...) on some rank; its result comes out of
  /// get() at this position. put(value): passes `value` through in order.
  /// Blocks (making progress) while the window is full and its oldest task
  /// is still running. Throws std::logic_error instead of waiting forever
  /// when the window is full and its oldest result only waits for get() (the
  /// same thread must call it: alternate try_put() and get(), see
  /// examples/indexing_mpi.cpp). Throws QueueClosed after stop(),
  /// PayloadTooLarge above SessionOptions::max_spill_bytes.
  /// Returns the position (64-bit, from 0).
  template <class F, class... Args>
  std::uint64_t put(F&& f, Args&&... args) {
    return *put_until_(0, detail::kForever, std::forward<F>(f), std::forward<Args>(args)...);
  }

  /// As put(), but returns false instead of blocking when the window is full.
  template <class F, class... Args>
  [[nodiscard]] bool try_put(F&& f, Args&&... args) {
    return put_until_(0, detail::kNoWait, std::forward<F>(f), std::forward<Args>(args)...)
        .has_value();
  }

  /// As put(), waiting at most `timeout` for room.
  template <class Rep, class Period, class F, class... Args>
  [[nodiscard]] bool try_put_for(const std::chrono::duration<Rep, Period>& timeout, F&& f,
                                 Args&&... args) {
    return put_until_(0, inorder::detail::after(timeout), std::forward<F>(f),
                      std::forward<Args>(args)...)
        .has_value();
  }

  /// As put(f, args...) with this task's own time limit (TaskOptions::timeout).
  template <class F, class... Args>
  std::uint64_t put_with(const TaskOptions& opts, F&& f, Args&&... args) {
    const auto ms = opts.timeout.count();
    if (ms < 0) throw std::invalid_argument("inorder: TaskOptions::timeout must not be negative");
    const auto limit = static_cast<std::uint32_t>(std::min<std::int64_t>(ms, 0xFFFFFFFF));
    return *put_until_(limit, detail::kForever, std::forward<F>(f), std::forward<Args>(args)...);
  }

  /// Passes `value` through in order (explicit form of put(value)).
  std::uint64_t put_value(const R& value) { return *value_until_(detail::kForever, value); }

  /// Next result in put order; blocks until it is there. std::nullopt once
  /// stop() was called and everything was delivered. Throws the task's error.
  [[nodiscard]] std::optional<R> get() { return get_until_(detail::kForever); }
  /// Next result if it is there now (after one round of progress).
  [[nodiscard]] std::optional<R> try_get() { return get_until_(detail::kNoWait); }
  /// Next result, waiting at most `timeout`; std::nullopt on timeout or at the end.
  template <class Rep, class Period>
  [[nodiscard]] std::optional<R> try_get_for(const std::chrono::duration<Rep, Period>& timeout) {
    return get_until_(inorder::detail::after(timeout));
  }

  /// Completion order: any finished result with its position. Not to be mixed
  /// with get() on one queue (std::logic_error).
  [[nodiscard]] std::optional<std::pair<std::uint64_t, R>> get_any() {
    return any_until_(detail::kForever);
  }
  template <class Rep, class Period>
  [[nodiscard]] std::optional<std::pair<std::uint64_t, R>> try_get_any_for(
      const std::chrono::duration<Rep, Period>& timeout) {
    return any_until_(inorder::detail::after(timeout));
  }

  /// No more puts; everything put is still delivered. Does not block.
  void stop() noexcept { engine_.stop(); }
  [[nodiscard]] bool stopped() const noexcept { return engine_.stopped(); }
  /// Stopped and everything delivered.
  [[nodiscard]] bool exhausted() const noexcept { return engine_.exhausted(); }
  /// Per-rank dealing figures, for tuning.
  [[nodiscard]] QueueStats stats() const { return engine_.stats(); }

 private:
  template <class F, class... Args>
  std::optional<std::uint64_t> put_until_(std::uint32_t timeout_ms, detail::Deadline deadline,
                                          F&& f, Args&&... args) {
    using Fn = std::decay_t<F>;
    if constexpr (sizeof...(Args) == 0 && !std::is_invocable_v<const Fn&>) {
      static_assert(inorder::detail::check_put_value<R, F&&>());
      return value_until_(deadline, static_cast<R>(std::forward<F>(f)));
    } else {
      static_assert(detail::kIsPortableCallable<Fn>,
                    "inorder::mpi: the callable given to put() must be a function pointer or a "
                    "lambda without captures: the task runs in another process, maybe on another "
                    "host, where only its code and its encoded arguments exist. Pass data as "
                    "arguments");
      // The same checks as inorder::ParallelQueue::put(); every process calls
      // the one callable through a const reference.
      static_assert(inorder::detail::check_put_task<R, const Fn&, std::decay_t<Args>...>());
      const Fn fn = f;
      detail::CodeRef fn_ref;
      if constexpr (detail::kIsFunctionPointer<Fn>)
        fn_ref = detail::code_ref(detail::address_of(fn));
      const std::size_t bytes = sizeof(Fn) + (std::size_t{0} + ... + encoded_size(args));
      std::uint64_t seq = 0;
      std::byte* dst =
          engine_.begin_task(bytes, detail::invoker_ref<R, Fn, std::decay_t<Args>...>(), fn_ref,
                             static_cast<std::uint32_t>(sizeof(Fn)), timeout_ms, deadline, seq);
      if (dst == nullptr) return std::nullopt;
      std::memcpy(dst, static_cast<const void*>(std::addressof(fn)), sizeof(Fn));
      Writer w(dst + sizeof(Fn));
      (encode(w, args), ...);
      engine_.commit();
      return seq;
    }
  }

  std::optional<std::uint64_t> value_until_(detail::Deadline deadline, const R& value) {
    const std::size_t bytes = encoded_size(value);
    std::uint64_t seq = 0;
    std::byte* dst = engine_.begin_value(bytes, deadline, seq);
    if (dst == nullptr) return std::nullopt;
    Writer w(dst);
    encode(w, value);
    engine_.commit();
    return seq;
  }

  std::optional<R> get_until_(detail::Deadline deadline) {
    detail::Taken t;
    if (engine_.get(deadline, t) != detail::GetStatus::kReady) return std::nullopt;
    if (t.outcome != detail::Outcome::kValue) engine_.throw_error(t);
    return decode_from<R>(t.bytes.data(), t.bytes.size());
  }

  std::optional<std::pair<std::uint64_t, R>> any_until_(detail::Deadline deadline) {
    detail::Taken t;
    if (engine_.get_any(deadline, t) != detail::GetStatus::kReady) return std::nullopt;
    if (t.outcome != detail::Outcome::kValue) engine_.throw_error(t);
    return std::pair<std::uint64_t, R>{t.seq, decode_from<R>(t.bytes.data(), t.bytes.size())};
  }

  detail::Engine engine_;
};

}  // namespace inorder::mpi
