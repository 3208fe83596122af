// inorder/pool.hpp: map a callable over a range of items in worker processes
// that are forked once and reused by every call.
//
// Contract. Pool<R> forks its workers at construction (a ParallelQueue<R>
// underneath) and runs every call on them. map() and imap() deliver results in
// input order, unordered_map() and unordered_imap() in completion order. An
// item whose task throws, crashes its worker or runs past its time limit fails
// only itself, as an ItemError that keeps the task's type name and message and
// names the item's index. The lazy forms pull input only as their results are
// consumed: at most the queue's capacity of items is in flight, whatever the
// length of the input. Calls on one pool run one at a time: a call waits until
// the one in progress (a background call, or an unfinished lazy range made by
// another thread) has ended. Call from the process that made the pool, never
// from a worker.
// Not promised: cancelling a task a worker has already received (a call that
// ends early waits for the items it has in flight), nor any order among calls
// started concurrently.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstdio>
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

/// Progress reporting for one call: the user's callback and/or a bar on stderr.
class Progress {
 public:
  Progress(const CallSettings& s, std::size_t total)
      : callback_(s.progress),
        bar_(s.progress_bar && isatty(STDERR_FILENO) == 1),
        total_(total),
        start_(std::chrono::steady_clock::now()) {}

  void update(std::size_t done) {
    if (callback_) callback_(done, total_);
    if (!bar_) return;
    const auto now = std::chrono::steady_clock::now();
    if (done != total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    draw(done, now);
  }

  void finish(std::size_t done) {
    if (!bar_ || done == 0) return;
    draw(done, std::chrono::steady_clock::now());
    std::fputc('\n', stderr);
  }

 private:
  void draw(std::size_t done, std::chrono::steady_clock::time_point now) const {
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? static_cast<double>(done) / secs : 0.0;
    if (total_ != 0) {
      const double eta = rate > 0 ? static_cast<double>(total_ - std::min(done, total_)) / rate : 0;
      std::fprintf(stderr, "\r%zu/%zu items (%3.0f%%)  %.1f/s  ETA %.1fs   ", done, total_,
                   100.0 * static_cast<double>(done) / static_cast<double>(total_), rate, eta);
    } else {
      std::fprintf(stderr, "\r%zu items  %.1f/s   ", done, rate);
    }
    std::fflush(stderr);
  }

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

  Outcome<R> receive_() {
    ParallelQueue<R>& q = *state_->queue;
    for (;;) {
      if (state_->cancelled.load()) return cancelled_();
      std::size_t index = oldest_;
      try {
        if (ordered_) {
          if (auto v = q.try_get_for(kPoolPoll)) {
            mark_(index);
            return Outcome<R>{index, std::move(*v), {}};
          }
        } else if (auto p = q.try_get_any_for(kPoolPoll)) {
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
    }
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

/// What asynced() calls return: `co_await` it in any C++20 coroutine. Nothing
/// runs until it is awaited; then the call runs on a thread of its own, and the
/// coroutine resumes on that thread when the call is over. `co_await` yields
/// the call's result or throws its exception. Await it once; do not move it
/// while awaited.
template <class T>
class [[nodiscard]] Awaitable {
 public:
  explicit Awaitable(std::unique_ptr<detail::Job<T>> job) : job_(std::move(job)) {}

  [[nodiscard]] bool await_ready() const noexcept { return false; }

  /// Starts the call on a new (detached) thread that resumes `h` when done.
  /// Throws std::system_error if the thread cannot be started.
  void await_suspend(std::coroutine_handle<> h) {
    std::thread([this, h] {
      try {
        result_.emplace(job_->run());
      } catch (...) {
        error_ = std::current_exception();
      }
      h.resume();  // the last use of this thread: the coroutine may destroy *this
    }).detach();
  }

  T await_resume() {
    if (error_) std::rethrow_exception(error_);
    return std::move(*result_);
  }

 private:
  std::unique_ptr<detail::Job<T>> job_;
  std::optional<T> result_;
  std::exception_ptr error_;
};

/// What imap() and unordered_imap() return: a lazy, single-pass input range
/// (a std::ranges::view) of R. Each step pulls the next result, putting more
/// input as the window allows. `*it` throws the item's ItemError when that item
/// failed; `++it` goes on past it. Holds its pool until it reaches the end or
/// is destroyed; destroying it early waits for the items still in flight. Use
/// it from the thread that made it (or another, one at a time).
template <class R>
class Results : public std::ranges::view_interface<Results<R>> {
  struct Cursor {
    std::unique_ptr<detail::Source<R>> source;
    std::optional<detail::Outcome<R>> current;  // empty: at the end
    bool started = false;

    void step() {
      current.reset();
      current = source->next();
    }
  };

 public:
  class iterator {
   public:
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    using iterator_concept = std::input_iterator_tag;

    iterator() = default;

    /// The current result. Throws the item's ItemError (or QueueBroken, or what
    /// the input threw) when it failed.
    R& operator*() const {
      detail::Outcome<R>& o = *cursor_->current;
      if (o.error) std::rethrow_exception(o.error);
      return *o.value;
    }
    /// Pulls the next result; blocks until it is ready. Throws only what a
    /// progress callback throws.
    iterator& operator++() {
      cursor_->step();
      return *this;
    }
    void operator++(int) { ++*this; }
    /// Position of the current item in the input.
    [[nodiscard]] std::size_t index() const { return cursor_->current->index; }

    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept {
      return it.cursor_ == nullptr || !it.cursor_->current.has_value();
    }

   private:
    friend class Results;
    explicit iterator(Cursor* c) noexcept : cursor_(c) {}
    Cursor* cursor_ = nullptr;
  };

  Results() = default;
  explicit Results(std::unique_ptr<detail::Source<R>> source)
      : cursor_(std::make_unique<Cursor>(Cursor{std::move(source), std::nullopt, false})) {}

  /// Pulls the first result on the first call (blocks until it is ready).
  iterator begin() {
    if (!cursor_) return iterator{};
    if (!cursor_->started) {
      cursor_->started = true;
      cursor_->step();
    }
    return iterator{cursor_.get()};
  }
  [[nodiscard]] std::default_sentinel_t end() const noexcept { return {}; }

 private:
  std::unique_ptr<Cursor> cursor_;  // on the heap: iterators survive a move of the range
};

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
  /// encodable. Otherwise as map(): a failed item throws ItemError.
  template <class Worker, std::ranges::input_range Items>
  requires requires(Worker& w) { w.run_here(); }
  [[nodiscard]] std::vector<R> map(Items&& items) {
    using Item = std::remove_cvref_t<std::ranges::range_reference_t<Items>>;
    return map(&detail::run_worker_here<Worker, Item, R>, std::forward<Items>(items));
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
