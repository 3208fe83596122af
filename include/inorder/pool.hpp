// inorder/pool.hpp: map a callable over a range of items in worker processes
// that are forked once and reused by every call.
//
// Contract. Pool<R> forks its workers at construction (a ParallelQueue
// underneath, whose tasks are chunks of items) and runs every call on them.
// map() and imap() deliver results in input order, unordered_map() and
// unordered_imap() in completion order. An item whose task throws, crashes its
// worker or runs past its time limit fails only itself, as an ItemError that
// keeps the task's type name and message and names the item's index; this
// holds when items travel in chunks of several per task (chunksize(), sized
// automatically by default): an exception fails only its item, and a chunk
// whose worker crashed or timed out is run again one item per task. The lazy
// forms pull input only as their results are consumed: at most the queue's
// capacity of items is in flight, whatever the length of the input. Calls on
// one pool run one at a time: a call waits until the one in progress (a
// background call, or an unfinished lazy range made by another thread) has
// ended. Call from the process that made the pool, never from a worker.
// Not promised: cancelling a task a worker has already received (a call that
// ends early waits for the items it has in flight), nor any order among calls
// started concurrently.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <ranges>
#include <semaphore>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "inorder/errors.hpp"
#include "inorder/options.hpp"
#include "inorder/parallel_queue.hpp"
#include "inorder/settled.hpp"
#include "inorder/stats.hpp"

namespace inorder {

/// One item of a Pool call failed. A TaskError (type name, message, worker pid
/// and sequence of the task, as the queue reported them) that also names the
/// item's 0-based position in the input and how it failed. what() starts with
/// "item <index>: ".
class ItemError : public TaskError {
 public:
  enum class Kind {
    kThrew,     ///< the callable threw (or the library refused its result)
    kCrashed,   ///< the worker died running it (WorkerCrashed)
    kTimedOut,  ///< it ran past its time limit (TaskTimeout)
  };

  ItemError(const TaskError& error, std::size_t index)
      : TaskError(error.type_name(), error.message(), error.worker_pid(), error.sequence()),
        index_(index),
        kind_(kind_of(error)) {
    what_ = "item ";  // appended piece by piece: GCC 12 -O3 warns on "literal" + string
    what_ += std::to_string(index);
    what_ += ": ";
    what_ += error.what();
  }

  /// Position of the failed item in the input, counted from 0.
  [[nodiscard]] std::size_t index() const noexcept { return index_; }
  [[nodiscard]] Kind kind() const noexcept { return kind_; }
  [[nodiscard]] bool crashed() const noexcept { return kind_ == Kind::kCrashed; }
  [[nodiscard]] bool timed_out() const noexcept { return kind_ == Kind::kTimedOut; }
  [[nodiscard]] const char* what() const noexcept override { return what_.c_str(); }

 private:
  static Kind kind_of(const TaskError& e) noexcept {
    if (dynamic_cast<const WorkerCrashed*>(&e) != nullptr) return Kind::kCrashed;
    if (dynamic_cast<const TaskTimeout*>(&e) != nullptr) return Kind::kTimedOut;
    return Kind::kThrew;
  }

  std::size_t index_;
  Kind kind_;
  std::string what_;
};

/// How a configured PoolView runs its call: on the calling thread, on a thread
/// of its own behind a std::future, or behind an awaitable.
enum class CallMode { kBlocking, kBackground, kAsynced };

template <class R>
class Pool;
template <class R, bool Star, CallMode Mode>
class PoolView;
template <class R>
class Results;

}  // namespace inorder

// The call engine and the returned ranges and awaitables, kept out of this
// header's text; they need ItemError above.
#define INORDER_POOL_HPP_INSIDE
#include "inorder/detail/pool_engine.hpp"
#include "inorder/detail/pool_results.hpp"
#undef INORDER_POOL_HPP_INSIDE

namespace inorder {

/// A Pool with modifiers applied. Views are cheap to copy and chain: each
/// modifier returns a new view; calls take the same arguments as Pool's.
/// `Star`: items are unpacked into the callable's arguments. `Mode`: see CallMode.
template <class R, bool Star = false, CallMode Mode = CallMode::kBlocking>
class PoolView {
 public:
  /// Each item (a tuple, pair or array) is unpacked into f's arguments.
  [[nodiscard]] PoolView<R, true, Mode> star() const { return {state_, settings_}; }

  /// Each item's task may run for `limit` at most (rounded up to milliseconds);
  /// past it the worker is killed and replaced, and the item fails with an
  /// ItemError whose timed_out() is true. Zero: Options::task_timeout.
  /// Throws std::invalid_argument for a negative limit.
  template <class Rep, class Period>
  [[nodiscard]] PoolView timeout(const std::chrono::duration<Rep, Period>& limit) const {
    if (limit < std::chrono::duration<Rep, Period>::zero())
      throw std::invalid_argument("inorder::Pool: timeout() must not be negative");
    // The queue takes whole milliseconds up to 2^32 - 1 (~49 days); clamp
    // before converting so a huge duration cannot overflow.
    constexpr std::chrono::milliseconds kMax{0xFFFFFFFF};
    using Big = std::chrono::duration<long double, std::milli>;
    PoolView v = *this;
    v.settings_.timeout = std::chrono::duration_cast<Big>(limit) >= Big(kMax)
                              ? kMax
                              : std::chrono::ceil<std::chrono::milliseconds>(limit);
    return v;
  }

  /// Items per task: each task sent to a worker carries `n` consecutive items
  /// (Python's `chunksize`). The default, without this modifier, sizes chunks
  /// automatically from the measured time per item (docs/pool.md, Chunking).
  /// 1: one task per item. Results, order, progress and ItemError::index()
  /// stay per item; a failed item fails alone. The lazy forms put at most the
  /// queue's capacity of items in flight, so a chunk holds at most that many.
  /// Throws std::invalid_argument for 0.
  [[nodiscard]] PoolView chunksize(std::size_t n) const {
    if (n == 0)
      throw std::invalid_argument(
          "inorder::Pool: chunksize() must be at least 1 (1 puts one task per item)");
    PoolView v = *this;
    v.settings_.chunksize = n;
    return v;
  }

  /// map() and unordered_map() return a std::future of their vector and run on
  /// a thread of their own.
  [[nodiscard]] PoolView<R, Star, CallMode::kBackground> background() const {
    static_assert(Mode != CallMode::kAsynced,
                  "inorder::Pool: background() and asynced() both run the call on its own; "
                  "choose one");
    return {state_, settings_};
  }

  /// map() and unordered_map() return an Awaitable of their vector.
  [[nodiscard]] PoolView<R, Star, CallMode::kAsynced> asynced() const {
    static_assert(Mode != CallMode::kBackground,
                  "inorder::Pool: background() and asynced() both run the call on its own; "
                  "choose one");
    return {state_, settings_};
  }

  /// Draws count, rate and ETA on stderr while the call runs, if stderr is a
  /// terminal (nothing otherwise).
  [[nodiscard]] PoolView progress() const {
    PoolView v = *this;
    v.settings_.progress_bar = true;
    return v;
  }

  /// Calls `callback(done, total)` after each item, on the thread running the
  /// call; `total` is 0 when the input's size is not known. An exception from
  /// the callback ends the call once the items in flight are taken.
  [[nodiscard]] PoolView progress(std::function<void(std::size_t, std::size_t)> callback) const {
    PoolView v = *this;
    v.settings_.progress = std::move(callback);
    return v;
  }

  /// Results of f(item) for every item, in input order. Blocks until all are
  /// done (kBlocking); see Pool::map.
  template <class F, std::ranges::input_range Items>
  [[nodiscard]] auto map(F f, Items&& items) const {
    return dispatch_<true>(f, std::forward<Items>(items));
  }

  /// Results of f(item) for every item, in completion order; see Pool::unordered_map.
  template <class F, std::ranges::input_range Items>
  [[nodiscard]] auto unordered_map(F f, Items&& items) const {
    return dispatch_<false>(f, std::forward<Items>(items));
  }

  /// Every item's outcome, in input order; see Pool::map_settled.
  template <class F, std::ranges::input_range Items>
  [[nodiscard]] std::vector<Settled<R>> map_settled(F f, Items&& items) const {
    static_assert(Mode == CallMode::kBlocking,
                  "inorder::Pool: map_settled() runs on the calling thread; background() and "
                  "asynced() apply to map() and unordered_map()");
    std::vector<Settled<R>> out;
    Results<R> results = imap(f, std::forward<Items>(items));
    for (auto it = results.begin(); it != results.end(); ++it) {
      try {
        out.emplace_back(std::move(*it));
      } catch (const ItemError& e) {  // anything else is not an item's outcome: passed on
        out.emplace_back(e);
      }
    }
    return out;
  }

  /// Lazy results in input order; see Pool::imap.
  template <class F, std::ranges::input_range Items>
  [[nodiscard]] Results<R> imap(F f, Items&& items) const {
    return lazy_<true>(f, std::forward<Items>(items));
  }

  /// Lazy results in completion order; see Pool::unordered_imap.
  template <class F, std::ranges::input_range Items>
  [[nodiscard]] Results<R> unordered_imap(F f, Items&& items) const {
    return lazy_<false>(f, std::forward<Items>(items));
  }

 private:
  template <class, bool, CallMode>
  friend class PoolView;
  friend class Pool<R>;

  PoolView(std::shared_ptr<detail::PoolState<R>> state, detail::CallSettings settings)
      : state_(std::move(state)), settings_(std::move(settings)) {}

  template <bool Ordered, class F, class Items>
  auto dispatch_(F f, Items&& items) const {
    if constexpr (Mode == CallMode::kBlocking) {
      return run_<Ordered>(f, std::forward<Items>(items));
    } else {
      auto job = [view = PoolView<R, Star, CallMode::kBlocking>(state_, settings_), f,
                  held = detail::Held<Items>(std::forward<Items>(items))]() mutable {
        return view.template run_<Ordered>(f, held.get());
      };
      if constexpr (Mode == CallMode::kBackground) {
        return std::async(std::launch::async, std::move(job));
      } else {
        using Vec = std::vector<R>;
        return Awaitable<Vec>(std::make_unique<detail::JobOf<Vec, decltype(job)>>(std::move(job)));
      }
    }
  }

  /// The blocking call. Stops putting after the first failure, takes every
  /// result in flight (so the pool is ready for the next call) and throws the
  /// failure with the lowest index.
  template <bool Ordered, class F, class Items>
  std::vector<R> run_(F f, Items&& items) const {
    detail::Engine<R, Star, F, Items> engine(state_, settings_, f, std::forward<Items>(items),
                                             Ordered, false);
    std::vector<R> out;
    out.reserve(std::min(engine.total(), state_->limit * 1024));
    std::exception_ptr first;
    std::size_t first_index = std::numeric_limits<std::size_t>::max();
    while (auto o = engine.next()) {
      if (o->error) {
        if (o->index < first_index) {
          first = o->error;
          first_index = o->index;
        }
        engine.stop_feeding();
      } else if (!first) {
        out.push_back(std::move(*o->value));
      }
    }
    if (first) std::rethrow_exception(first);
    return out;
  }

  template <bool Ordered, class F, class Items>
  Results<R> lazy_(F f, Items&& items) const {
    static_assert(Mode == CallMode::kBlocking,
                  "inorder::Pool: imap() and unordered_imap() return a lazy range, which already "
                  "runs while you iterate; background() and asynced() apply to map() and "
                  "unordered_map()");
    using E = detail::Engine<R, Star, F, Items>;
    return Results<R>(
        std::make_unique<E>(state_, settings_, f, std::forward<Items>(items), Ordered, true));
  }

  std::shared_ptr<detail::PoolState<R>> state_;
  detail::CallSettings settings_;
};

/// Pool<R>: see the contract at the top of this file. R is the result type of
/// every call (what the callables' results are converted to); it must be
/// encodable (codec.hpp). The callables and items follow ParallelQueue::put.
template <class R>
class Pool {
 public:
  using value_type = R;

  /// Forks `opts.workers` workers, reused by every call. Unless `opts.window`
  /// is set, the window is the whole capacity (both default to
  /// max(64, 20 x workers), rounded up to a power of two), so fast items flow
  /// past a slow one in the unordered calls. Throws as ParallelQueue's
  /// constructor: std::invalid_argument naming a bad field, std::system_error.
  explicit Pool(const Options& opts = {})
      : state_(std::make_shared<detail::PoolState<R>>(with_pool_defaults(opts))) {}

  /// terminate().
  ~Pool() { terminate(); }

  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  /// f(item) for every item, in input order. Blocks until every item is done.
  /// On failure, puts no further item, waits for those in flight and throws
  /// the failure with the lowest index: ItemError (or QueueBroken). Any thread
  /// of this process; waits while another call is in progress. Throws
  /// QueueClosed after close(), std::logic_error if this thread has an
  /// unfinished lazy range of this pool.
  template <class F, std::ranges::input_range Items>
  [[nodiscard]] std::vector<R> map(F f, Items&& items) {
    return view_().map(f, std::forward<Items>(items));
  }

  /// As map(), results in completion order.
  template <class F, std::ranges::input_range Items>
  [[nodiscard]] std::vector<R> unordered_map(F f, Items&& items) {
    return view_().unordered_map(f, std::forward<Items>(items));
  }

  /// Every item's outcome, in input order: its value or the ItemError it
  /// failed with (Settled<R>, settled.hpp). Unlike map(), a failed item stops
  /// nothing: every item is run. Blocks until all are done. Throws only what is
  /// no item's outcome, once the items in flight are done: QueueBroken,
  /// QueueClosed, an exception from the input range (or PayloadTooLarge), and
  /// as map() std::logic_error. Any thread of this process.
  template <class F, std::ranges::input_range Items>
  [[nodiscard]] std::vector<Settled<R>> map_settled(F f, Items&& items) {
    return view_().map_settled(f, std::forward<Items>(items));
  }

  /// Skprocess classes: for each item, Worker(item) is constructed in a worker
  /// process and runs its whole lifecycle there (Worker::run_here(): no extra
  /// fork; lives apply to exceptions, Options::task_timeout to each item);
  /// returns the results of on_result() in input order. Items must be
  /// encodable. One task per item (no chunking: each item is a whole
  /// lifecycle). Otherwise as map(): a failed item throws ItemError.
  template <class Worker, std::ranges::input_range Items>
  requires requires(Worker& w) { w.run_here(); }
  [[nodiscard]] std::vector<R> map(Items&& items) {
    using Item = std::remove_cvref_t<std::ranges::range_reference_t<Items>>;
    return view_().chunksize(1).map(&detail::run_worker_here<Worker, Item, R>,
                                    std::forward<Items>(items));
  }

  /// A lazy range of f(item) in input order. Pulls input only as results are
  /// taken: at most the queue's capacity of items in flight. A lvalue `items`
  /// must outlive the range; an rvalue is moved into it. Waits (here) while
  /// another call is in progress.
  template <class F, std::ranges::input_range Items>
  [[nodiscard]] Results<R> imap(F f, Items&& items) {
    return view_().imap(f, std::forward<Items>(items));
  }

  /// As imap(), results in completion order.
  template <class F, std::ranges::input_range Items>
  [[nodiscard]] Results<R> unordered_imap(F f, Items&& items) {
    return view_().unordered_imap(f, std::forward<Items>(items));
  }

  /// Modifiers: each returns a PoolView with the same four calls.
  [[nodiscard]] PoolView<R, true> star() const { return view_().star(); }
  template <class Rep, class Period>
  [[nodiscard]] PoolView<R> timeout(const std::chrono::duration<Rep, Period>& limit) const {
    return view_().timeout(limit);
  }
  [[nodiscard]] PoolView<R, false, CallMode::kBackground> background() const {
    return view_().background();
  }
  [[nodiscard]] PoolView<R, false, CallMode::kAsynced> asynced() const { return view_().asynced(); }
  [[nodiscard]] PoolView<R> chunksize(std::size_t n) const { return view_().chunksize(n); }
  [[nodiscard]] PoolView<R> progress() const { return view_().progress(); }
  [[nodiscard]] PoolView<R> progress(std::function<void(std::size_t, std::size_t)> cb) const {
    return view_().progress(std::move(cb));
  }

  /// Waits for the call in progress, then lets the workers exit and reaps
  /// them. Later calls throw QueueClosed. If this thread has an unfinished lazy
  /// range, does terminate() instead. Idempotent. Call from one thread.
  void close() {
    detail::PoolState<R>& s = *state_;
    if (s.lazy_owner.load() == std::this_thread::get_id()) {
      terminate();
      return;
    }
    s.lease.acquire();
    if (!s.closed.exchange(true) && s.queue) {
      s.queue->join();
      s.queue.reset();
    }
    s.lease.release();
  }

  /// Ends the pool now: a call in progress ends within ~50 ms with QueueClosed
  /// (items in flight are discarded), idle workers exit, busy ones are killed
  /// after Options::shutdown_grace, and all are reaped. Waits for an
  /// unfinished lazy range made by another thread to take its next step.
  /// Idempotent; never throws. Call from one thread.
  void terminate() noexcept {
    detail::PoolState<R>& s = *state_;
    s.closed.store(true);
    s.cancelled.store(true);
    const bool mine = s.lazy_owner.load() == std::this_thread::get_id();
    if (!mine) s.lease.acquire();  // the call in progress notices `cancelled` and lets go
    s.queue.reset();
    if (!mine) s.lease.release();
  }

  /// The queue's Stats (workers, restarts, capacity). Throws QueueClosed after
  /// close() or terminate(). Not concurrently with them.
  [[nodiscard]] Stats stats() {
    if (!state_->queue) throw QueueClosed("inorder::Pool: the pool is closed");
    return state_->queue->stats();
  }

 private:
  static Options with_pool_defaults(Options opts) {
    if (!opts.window) {
      const std::size_t workers = opts.workers;
      const std::size_t cap =
          std::bit_ceil(opts.capacity.value_or(std::max<std::size_t>(64, 20 * workers)));
      opts.window = cap;
      opts.capacity = cap;
    }
    return opts;
  }

  [[nodiscard]] PoolView<R> view_() const { return PoolView<R>(state_, {}); }

  std::shared_ptr<detail::PoolState<R>> state_;
};

}  // namespace inorder
