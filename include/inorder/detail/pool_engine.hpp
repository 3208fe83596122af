// inorder/detail/pool_engine.hpp: the call engine behind Pool and PoolView.
//
// Not a public API, and not a header of its own: pool.hpp includes it after
// ItemError, which the engine throws. It holds what a call needs but a user
// never names: the shared pool state, the progress reporter, the engine that
// feeds items and receives results, and the type-erased jobs of background
// and asynced calls.
#pragma once
#ifndef INORDER_POOL_HPP_INSIDE
#error "include inorder/pool.hpp, not this detail header"
#endif

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
#include "inorder/stats.hpp"

namespace inorder {

namespace detail {

/// How long a call waits for a result before it looks at the cancel flag again.
/// Only a bound on how late terminate() is noticed; results wake it at once.
inline constexpr std::chrono::milliseconds kPoolPoll{50};

/// Everything a pool's calls share. Held by shared_ptr so a view, a lazy range
/// or a background call that outlives its Pool finds `closed` instead of a
/// dangling pointer.
template <class R>
struct PoolState {
  explicit PoolState(const Options& opts) {
    queue.emplace(opts);
    limit = queue->stats().capacity;
  }

  /// Empty once closed or terminated. Touched only by the holder of `lease`,
  /// and by terminate() once it has the lease (or the holder is its own thread).
  std::optional<ParallelQueue<R>> queue;
  /// Items a call keeps in flight at most: the ring's capacity, so put() never
  /// blocks (every earlier lap of the slot it needs has been taken).
  std::size_t limit = 0;
  /// Held by the call in progress. A semaphore, not a mutex: a lazy range may
  /// release it on another thread than the one that acquired it.
  std::binary_semaphore lease{1};
  /// No new call starts. Set under the lease by close(), or by terminate().
  std::atomic<bool> closed{false};
  /// Set by terminate(): a call in progress stops touching the queue at its
  /// next step and ends with QueueClosed.
  std::atomic<bool> cancelled{false};
  /// Thread that made the unfinished lazy range holding the lease, else none.
  /// Lets a second call on that thread fail instead of waiting for itself.
  std::atomic<std::thread::id> lazy_owner{};

  void begin_call(bool lazy) {
    if (!lease.try_acquire()) {
      if (lazy_owner.load() == std::this_thread::get_id())
        throw std::logic_error(
            "inorder::Pool: a lazy range made by this thread is unfinished; iterate it to the "
            "end or destroy it before the next call on the same pool");
      lease.acquire();
    }
    if (closed.load()) {
      lease.release();
      throw QueueClosed("inorder::Pool: the pool is closed");
    }
    if (lazy) lazy_owner.store(std::this_thread::get_id());
  }

  void end_call(bool lazy) noexcept {
    if (lazy) lazy_owner.store(std::thread::id{});
    lease.release();
  }
};

/// What the modifiers set; copied into each call.
struct CallSettings {
  std::chrono::milliseconds timeout{0};  ///< per-item limit; zero: Options::task_timeout
  std::function<void(std::size_t, std::size_t)> progress;  ///< (done, total) after each item
  bool progress_bar = false;                               ///< draw on stderr if a terminal
};

/// One item's result: a value, or the error to throw at its position.
template <class R>
struct Outcome {
  std::size_t index = 0;
  std::optional<R> value;
  std::exception_ptr error;
};

/// Progress reporting for one call: the user's callback and/or a bar on
/// stderr. Compiled in the library (src/pool/progress.cpp), so this header
/// does no terminal I/O of its own.
class Progress {
 public:
  /// Draws a bar only when `s.progress_bar` is set and stderr is a terminal.
  Progress(const CallSettings& s, std::size_t total);
  /// After each item: calls the callback; redraws the bar at most every 100 ms.
  void update(std::size_t done);
  /// At the end of the call: the bar's last state and a newline.
  void finish(std::size_t done);

 private:
  void draw(std::size_t done, std::chrono::steady_clock::time_point now) const;

  std::function<void(std::size_t, std::size_t)> callback_;
  bool bar_;
  std::size_t total_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_{};
};

/// The lazy side of an Engine, type-erased so Results<R> has one type per R.
template <class R>
class Source {
 public:
  virtual ~Source() = default;
  /// The next item's outcome; std::nullopt when the call is over.
  virtual std::optional<Outcome<R>> next() = 0;
};

/// Runs one call: feeds items from the input to the queue while the window
/// allows and receives results, in put order (get) or completion order
/// (get_any). Holds the pool's lease from construction until the last result
/// has been received (or until destruction, which first drains what is in
/// flight so the queue is empty for the next call). `Items` is the input type
/// as stored: `T&` refers to the caller's range, `T` owns it. Not movable: the
/// input iterator may point into `items_`.
template <class R, bool Star, class F, class Items>
class Engine final : public Source<R> {
  using Base = std::remove_reference_t<Items>;

 public:
  Engine(std::shared_ptr<PoolState<R>> state, CallSettings settings, F f, Items&& items,
         bool ordered, bool lazy)
      : state_(std::move(state)),
        f_(f),
        items_(std::forward<Items>(items)),
        ordered_(ordered),
        lazy_(lazy),
        progress_(settings, total_of(items_)),
        timeout_(settings.timeout) {
    state_->begin_call(lazy_);
    holding_ = true;
    try {
      it_.emplace(std::ranges::begin(items_));
      end_.emplace(std::ranges::end(items_));
      if (!ordered_) seen_.assign(state_->limit, 0);
    } catch (...) {
      state_->end_call(lazy_);
      throw;
    }
  }

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  ~Engine() override {
    if (!holding_) return;
    // Take and discard whatever is still in flight, so the next call starts on
    // an empty queue, unless terminate() took the queue away.
    while (received_ < put_ && !state_->cancelled.load()) {
      try {
        (void)receive_();
      } catch (...) {  // only bad_alloc while wrapping an error; the result is taken
      }
    }
    finish_();
  }

  std::optional<Outcome<R>> next() override {
    if (finished_) return std::nullopt;
    if (state_->cancelled.load()) return cancelled_();
    feed_();
    if (received_ == put_) {
      finish_();
      if (input_error_) return Outcome<R>{put_, std::nullopt, std::exchange(input_error_, {})};
      return std::nullopt;
    }
    Outcome<R> o = receive_();
    progress_.update(received_);
    return o;
  }

  /// Puts nothing more; what is in flight is still delivered.
  void stop_feeding() noexcept { input_done_ = true; }

  [[nodiscard]] std::size_t total() const noexcept { return total_of(items_); }

 private:
  static std::size_t total_of(const Base& items) {
    if constexpr (std::ranges::sized_range<const Base>) {
      return static_cast<std::size_t>(std::ranges::size(items));
    } else {
      return 0;
    }
  }

  void feed_() {
    ParallelQueue<R>& q = *state_->queue;
    while (!input_done_ && put_ - oldest_ < state_->limit) {
      try {
        if (advance_) {
          advance_ = false;
          ++*it_;
        }
        if (*it_ == *end_) {
          input_done_ = true;
          break;
        }
        put_item_(q, **it_);
        advance_ = true;
      } catch (...) {  // from the input range, or put() (PayloadTooLarge)
        input_error_ = std::current_exception();
        input_done_ = true;
      }
    }
  }

  template <class Item>
  void put_item_(ParallelQueue<R>& q, Item&& item) {
    if constexpr (Star) {
      static_assert(
          requires { std::tuple_size<std::remove_cvref_t<Item>>::value; },
          "inorder::Pool: star() unpacks each item into the callable's arguments, so the "
          "items must be tuple-like (std::tuple, std::pair or std::array)");
      std::apply([&](const auto&... args) { put_args_(q, args...); }, item);
    } else {
      put_args_(q, item);
    }
  }

  template <class... A>
  void put_args_(ParallelQueue<R>& q, const A&... args) {
    if (timeout_.count() > 0) {
      last_seq_ = q.put_with(TaskOptions{.timeout = timeout_}, f_, args...);
    } else {
      last_seq_ = q.put(f_, args...);
    }
    ++put_;
  }

  /// Index of the item put with sequence number `seq`: the in-flight span is
  /// shorter than the ring, so the wrapped distance to the last put is exact.
  [[nodiscard]] std::size_t index_of_(std::uint32_t seq) const noexcept {
    return put_ - 1 - static_cast<std::uint32_t>(last_seq_ - seq);
  }

  void mark_(std::size_t index) {
    ++received_;
    if (ordered_) {
      oldest_ = index + 1;
      return;
    }
    seen_[index % seen_.size()] = 1;
    while (oldest_ < put_ && seen_[oldest_ % seen_.size()] != 0) {
      seen_[oldest_ % seen_.size()] = 0;
      ++oldest_;
    }
  }

  /// The next result; looks at the cancel flag every kPoolPoll while it waits.
  Outcome<R> receive_() {
    std::optional<Outcome<R>> got;
    if (!state_->cancelled.load())
      wait_in_slices(
          kForever, kPoolPoll,
          [&](Deadline until) {
            got = try_receive_(until);
            return got.has_value();
          },
          [&] { return !state_->cancelled.load(); });
    if (!got) return cancelled_();
    return std::move(*got);
  }

  /// The next result if one arrives by `until`.
  std::optional<Outcome<R>> try_receive_(Deadline until) {
    ParallelQueue<R>& q = *state_->queue;
    std::size_t index = oldest_;
    try {
      if (ordered_) {
        if (auto v = q.try_get_until(until)) {
          mark_(index);
          return Outcome<R>{index, std::move(*v), {}};
        }
      } else if (auto p =
                     q.try_get_any_for(std::max(Clock::duration::zero(), until - Clock::now()))) {
        index = index_of_(p->first);
        mark_(index);
        return Outcome<R>{index, std::move(p->second), {}};
      }
    } catch (const TaskError& e) {
      if (!ordered_) index = index_of_(e.sequence());
      mark_(index);
      return Outcome<R>{index, std::nullopt, std::make_exception_ptr(ItemError(e, index))};
    } catch (...) {  // QueueBroken: from now on every position fails in put order
      mark_(index);
      return Outcome<R>{index, std::nullopt, std::current_exception()};
    }
    return std::nullopt;
  }

  Outcome<R> cancelled_() {
    finish_();
    return Outcome<R>{oldest_, std::nullopt,
                      std::make_exception_ptr(QueueClosed(
                          "inorder::Pool: terminated while this call was in progress"))};
  }

  void finish_() noexcept {
    if (finished_) return;
    finished_ = true;
    if (holding_) {
      holding_ = false;
      state_->end_call(lazy_);
    }
    try {
      progress_.finish(received_);
    } catch (...) {  // a failed write to stderr is not worth an exception here
    }
  }

  std::shared_ptr<PoolState<R>> state_;
  F f_;
  Items items_;  // the input: a reference to the caller's range, or the range itself
  std::optional<std::ranges::iterator_t<Base>> it_;  // next item; see advance_
  std::optional<std::ranges::sentinel_t<Base>> end_;
  const bool ordered_;  // get() in put order, else get_any() in completion order
  const bool lazy_;     // made by imap/unordered_imap (see PoolState::lazy_owner)
  Progress progress_;
  std::chrono::milliseconds timeout_;
  bool holding_ = false;     // holds state_->lease
  bool finished_ = false;    // next() returns nullopt from now on
  bool advance_ = false;     // it_ is at the last item put: step it before the next put
  bool input_done_ = false;  // nothing more is put: end of input, an error, or stop_feeding()
  std::exception_ptr input_error_;  // from the input or put(); delivered after the rest
  std::size_t put_ = 0;             // items put; the index of the next item
  std::size_t received_ = 0;        // results received; received_ <= put_
  std::size_t oldest_ = 0;          // lowest index not received; put_ - oldest_ <= limit
  std::uint32_t last_seq_ = 0;      // sequence number of item put_ - 1
  std::vector<char> seen_;          // completion order: seen_[i % limit] for i in [oldest_, put_)
};

/// The input of a background or asynced call: refers to an lvalue range (which
/// must outlive the call), owns an rvalue one.
template <class T>
struct Held {
  explicit Held(T&& v) : value(std::move(v)) {}
  T& get() noexcept { return value; }
  T value;
};
template <class T>
struct Held<T&> {
  explicit Held(T& r) noexcept : ptr(&r) {}
  T& get() const noexcept { return *ptr; }
  T* ptr;
};

/// A call to run later, type-erased for Awaitable.
template <class T>
class Job {
 public:
  virtual ~Job() = default;
  virtual T run() = 0;
};
template <class T, class Fn>
class JobOf final : public Job<T> {
 public:
  explicit JobOf(Fn fn) : fn_(std::move(fn)) {}
  T run() override { return fn_(); }

 private:
  Fn fn_;
};

/// The task Pool::map<Worker> sends: builds Worker(item) in the worker process
/// and runs its lifecycle there (Worker::run_here(), see skprocess.hpp). A
/// function template, so each Worker type gets a plain function pointer.
template <class Worker, class Item, class R>
R run_worker_here(Item item) {
  Worker worker(std::move(item));
  return static_cast<R>(worker.run_here());
}

}  // namespace detail

}  // namespace inorder
