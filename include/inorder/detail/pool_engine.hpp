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
#include <deque>
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
#include "inorder/detail/pool_chunk.hpp"
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
  // An R that cannot be encoded stops the build with the codec's own message.
  static_assert(detail::explain_unencodable<R>());

  explicit PoolState(const Options& opts)
      : workers(std::max<std::size_t>(1, opts.workers)),
        task_timeout(opts.task_timeout),
        retry_exceptions(opts.retry_exceptions),
        recycles_by_count(opts.max_tasks_per_worker != 0) {
    queue.emplace(opts);
    limit = queue->stats().capacity;
  }

  /// Empty once closed or terminated. Touched only by the holder of `lease`,
  /// and by terminate() once it has the lease (or the holder is its own thread).
  /// Each task is a chunk of items; its result holds every item's outcome.
  std::optional<ParallelQueue<ChunkReply<R>>> queue;
  /// Tasks a call keeps in flight at most: the ring's capacity, so put() never
  /// blocks (every earlier lap of the slot it needs has been taken). Also the
  /// items a lazy call keeps in flight at most.
  std::size_t limit = 0;
  /// From the Options: what automatic chunking looks at.
  std::size_t workers = 1;
  std::chrono::milliseconds task_timeout{0};
  bool retry_exceptions = false;
  bool recycles_by_count = false;
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
  std::size_t chunksize = 0;  ///< items per task; zero: automatic (see Engine::next_size_)
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

/// Automatic chunking: a chunk carries about this much of the callable's run
/// time, as measured in the workers.
inline constexpr std::int64_t kChunkTargetNs = 200'000;
/// Automatic chunking: items per chunk at most.
inline constexpr std::size_t kChunkMaxItems = 1024;
/// Encoded bytes of the items of one chunk at most (a chunk stops growing
/// once it reaches this): large payloads stay one or a few items per task.
inline constexpr std::size_t kChunkMaxBytes = std::size_t{64} << 10;

/// The part of a call that depends neither on the callable nor on the input
/// range, only on R and the stored item type: the chunks and tasks in flight,
/// receiving and settling results, handing out outcomes in input order or
/// chunk by chunk in completion order. Engine (below) adds the input and the
/// puts. Kept apart so that every call with the same R and item type shares
/// one copy of this code instead of one per callable type. Holds the pool's
/// lease from construction until the last result has been received (or until
/// destruction, which first drains what is in flight so the queue is empty for
/// the next call).
template <class R, class Item>
class EngineCore : public Source<R> {
 protected:
  using Reply = ChunkReply<R>;
  using Queue = ParallelQueue<Reply>;
  /// Chunks hold their items in a SmallVec<Item>, which keeps bool items in
  /// a std::vector<bool> (no bools) past its inline part: bools go one per task.
  static constexpr bool kChunkable = !std::is_same_v<Item, bool>;

  /// Consecutive items [first, first + size) of the input.
  struct Chunk {
    std::size_t first = 0;
    std::size_t size = 0;
    SmallVec<Item> items;               // kept to run them again one by one; empty when size == 1
    SmallVec<std::optional<R>> values;  // once settled: one per item, empty where failed
    std::vector<std::pair<std::size_t, std::exception_ptr>> errors;  // (offset, error)
    std::size_t unsettled = 0;  // items whose outcome has not arrived
    bool delivered = false;     // completion order: every item handed out
  };
  /// One task in flight: `count` items of a chunk from `offset` (a re-run: 1).
  struct Task {
    std::size_t chunk = 0;  // chunk number (position in the call's chunks)
    std::size_t offset = 0;
    std::size_t count = 0;
    std::uint32_t seq = 0;
    bool taken = false;
  };

  EngineCore(std::shared_ptr<PoolState<R>> state, const CallSettings& settings, std::size_t total,
             bool ordered, bool lazy)
      : state_(std::move(state)),
        ordered_(ordered),
        lazy_(lazy),
        progress_(settings, total),
        timeout_(settings.timeout),
        fixed_(settings.chunksize),
        total_(total) {
    item_cap_ = lazy_ ? state_->limit : state_->limit * kChunkMaxItems;
    // Recycling every N tasks is meant per item; retried exceptions need
    // the item's exception to fail its task: one item per task for both.
    if (fixed_ == 0 && (state_->recycles_by_count || state_->retry_exceptions)) fixed_ = 1;
    state_->begin_call(lazy_);
    holding_ = true;
  }

 public:
  EngineCore(const EngineCore&) = delete;
  EngineCore& operator=(const EngineCore&) = delete;

  ~EngineCore() override {
    if (!holding_) return;
    // Take and discard whatever is still in flight, so the next call starts on
    // an empty queue, unless terminate() took the queue away.
    reruns_.clear();
    while (!tasks_.empty() && !state_->cancelled.load()) {
      try {
        (void)receive_();
      } catch (...) {  // only bad_alloc while wrapping an error; the result is taken
      }
      reruns_.clear();
    }
    finish_();
  }

  std::optional<Outcome<R>> next() final {
    for (;;) {
      if (finished_) return std::nullopt;
      if (state_->cancelled.load()) return cancelled_();
      if (std::optional<Outcome<R>> o = take_ready_()) {
        ++delivered_;
        progress_.update(delivered_);
        return o;
      }
      feed_();
      if (tasks_.empty() && reruns_.empty()) {
        finish_();
        if (input_error_)
          return Outcome<R>{items_put_, std::nullopt, std::exchange(input_error_, {})};
        return std::nullopt;
      }
      if (!receive_()) return cancelled_();
    }
  }

  /// Puts nothing more from the input; what is in flight is still delivered.
  void stop_feeding() noexcept { input_done_ = true; }

  [[nodiscard]] std::size_t total() const noexcept { return total_; }

 protected:
  /// Puts re-runs and new chunks while the window and the item cap allow.
  virtual void feed_() = 0;

  Chunk& chunk_(std::size_t number) { return chunks_[number - chunk_base_]; }

  /// Items the next chunk takes: the fixed chunksize, or automatically so a
  /// chunk runs for about kChunkTargetNs at the measured time per item
  /// (1 until a time is measured), at most kChunkMaxItems (halved for the
  /// rest of the call by each chunk that failed as a whole), for a sized
  /// input at most remaining / (4 x workers) so the tail spreads over all
  /// workers, and for a lazy call at most limit / (2 x workers). feed_()
  /// waits until that many items may be put.
  [[nodiscard]] std::size_t next_size_() const {
    std::size_t n = 1;
    if (fixed_ != 0) {
      n = fixed_;
    } else if (ns_per_item_ > 0) {
      const double fit = static_cast<double>(kChunkTargetNs) / ns_per_item_;
      n = fit >= static_cast<double>(ceiling_)
              ? ceiling_
              : std::max<std::size_t>(1, static_cast<std::size_t>(fit));
      const std::size_t spread = 4 * state_->workers;
      if (total_ > items_put_)
        n = std::min(n, std::max<std::size_t>(1, (total_ - items_put_) / spread));
      if (lazy_) n = std::min(n, std::max<std::size_t>(1, state_->limit / (2 * state_->workers)));
    }
    return std::min(n, item_cap_);
  }

  void add_chunk_(Chunk&& c, std::optional<std::uint32_t> seq) {
    const std::size_t number = chunk_base_ + chunks_.size();
    const std::size_t size = c.size;
    items_put_ += size;
    chunks_.push_back(std::move(c));
    if (seq) {
      tasks_.push_back(Task{number, 0, size, *seq, false});
      last_seq_ = *seq;
    }
  }

  /// Position in tasks_ of the task put with sequence number `seq`: the span
  /// in flight is shorter than the ring, so the wrapped distance is exact.
  [[nodiscard]] std::size_t slot_of_(std::uint32_t seq) const noexcept {
    return tasks_.size() - 1 - static_cast<std::uint32_t>(last_seq_ - seq);
  }

  /// The next result; looks at the cancel flag every kPoolPoll while it
  /// waits. False if the call was cancelled.
  bool receive_() {
    bool got = false;
    if (!state_->cancelled.load())
      wait_in_slices(
          kForever, kPoolPoll,
          [&](Deadline until) {
            got = try_receive_(until);
            return got;
          },
          [&] { return !state_->cancelled.load(); });
    return got;
  }

  /// Takes the next result if one arrives by `until` and settles its items.
  bool try_receive_(Deadline until) {
    Queue& q = *state_->queue;
    try {
      if (ordered_) {
        if (auto v = q.try_get_until(until)) {
          settle_reply_(0, std::move(*v));
          return true;
        }
      } else if (auto p =
                     q.try_get_any_for(std::max(Clock::duration::zero(), until - Clock::now()))) {
        settle_reply_(slot_of_(p->first), std::move(p->second));
        return true;
      }
    } catch (const TaskError& e) {
      settle_task_error_(ordered_ ? 0 : slot_of_(e.sequence()), e);
      return true;
    } catch (...) {  // QueueBroken: from now on every task fails in put order
      settle_task_fail_(0, std::current_exception());
      return true;
    }
    return false;
  }

  void settle_reply_(std::size_t slot, Reply&& reply) {
    Task& t = tasks_[slot];
    t.taken = true;
    Chunk& c = chunk_(t.chunk);
    if (reply.values.size() != t.count) {  // cannot happen: the task returned one per item
      settle_task_fail_(slot, std::make_exception_ptr(DecodeError(
                                  "inorder::Pool: a chunk's result holds the wrong item count")));
      return;
    }
    if (!reply.values.empty()) {
      const double sample =
          std::max(1.0, static_cast<double>(reply.run_ns) / static_cast<double>(t.count));
      ns_per_item_ = ns_per_item_ > 0 ? 0.75 * ns_per_item_ + 0.25 * sample : sample;
    }
    if (t.count == c.size) {
      c.values = std::move(reply.values);
    } else {
      c.values.resize(c.size);
      c.values[t.offset] = std::move(reply.values[0]);
    }
    for (ItemFailure& fail : reply.failures) {
      const std::size_t offset = t.offset + fail.offset;
      c.errors.emplace_back(
          offset,
          std::make_exception_ptr(ItemError(
              TaskError(std::move(fail.type_name), std::move(fail.message), reply.pid, t.seq),
              c.first + offset)));
      c.values[offset].reset();
    }
    settled_(c, t.chunk, t.count);
    pop_taken_();
  }

  /// A task failed as a whole. One item: that item's error. Several: each
  /// item runs again as a task of its own, and later chunks start small.
  void settle_task_error_(std::size_t slot, const TaskError& e) {
    Task& t = tasks_[slot];
    if (t.count == 1) {
      Chunk& c = chunk_(t.chunk);
      t.taken = true;
      settle_error_(c, t.chunk, t.offset,
                    std::make_exception_ptr(ItemError(e, c.first + t.offset)));
      pop_taken_();
      return;
    }
    t.taken = true;
    for (std::size_t k = 0; k < t.count; ++k) reruns_.emplace_back(t.chunk, t.offset + k);
    ns_per_item_ = 0;
    ceiling_ = std::max<std::size_t>(1, ceiling_ / 2);
    pop_taken_();
  }

  /// Every item of the task fails with `error` (QueueBroken).
  void settle_task_fail_(std::size_t slot, std::exception_ptr error) {
    Task& t = tasks_[slot];
    t.taken = true;
    Chunk& c = chunk_(t.chunk);
    c.values.resize(c.size);
    for (std::size_t k = 0; k < t.count; ++k) c.errors.emplace_back(t.offset + k, error);
    settled_(c, t.chunk, t.count);
    pop_taken_();
  }

  void settle_error_(Chunk& c, std::size_t number, std::size_t offset, std::exception_ptr error) {
    c.values.resize(c.size);
    c.errors.emplace_back(offset, std::move(error));
    settled_(c, number, 1);
  }

  void settled_(Chunk& c, std::size_t number, std::size_t count) {
    c.unsettled -= count;
    if (c.unsettled != 0) return;
    std::sort(c.errors.begin(), c.errors.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    if (!ordered_) done_.push_back(number);
  }

  void pop_taken_() {
    while (!tasks_.empty() && tasks_.front().taken) tasks_.pop_front();
  }

  /// The next outcome to hand out, if its chunk has settled: input order, or
  /// chunk by chunk in the order chunks settled.
  std::optional<Outcome<R>> take_ready_() {
    if (ordered_) {
      while (!chunks_.empty()) {
        Chunk& c = chunks_.front();
        if (c.unsettled != 0) return std::nullopt;
        if (cursor_ < c.size) return outcome_(c);
        chunks_.pop_front();
        ++chunk_base_;
        cursor_ = 0;
        error_cursor_ = 0;
      }
      return std::nullopt;
    }
    while (!done_.empty()) {
      Chunk& c = chunk_(done_.front());
      if (cursor_ < c.size) return outcome_(c);
      c.delivered = true;
      c.items = {};
      c.values = {};
      c.errors = {};
      done_.pop_front();
      cursor_ = 0;
      error_cursor_ = 0;
      while (!chunks_.empty() && chunks_.front().delivered) {
        chunks_.pop_front();
        ++chunk_base_;
      }
    }
    return std::nullopt;
  }

  Outcome<R> outcome_(Chunk& c) {
    const std::size_t offset = cursor_++;
    Outcome<R> o{c.first + offset, std::move(c.values[offset]), {}};
    if (error_cursor_ < c.errors.size() && c.errors[error_cursor_].first == offset) {
      o.error = c.errors[error_cursor_++].second;
      o.value.reset();
    }
    return o;
  }

  Outcome<R> cancelled_() {
    finish_();
    return Outcome<R>{delivered_, std::nullopt,
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
      progress_.finish(delivered_);
    } catch (...) {  // a failed write to stderr is not worth an exception here
    }
  }

  std::shared_ptr<PoolState<R>> state_;
  const bool ordered_;  // get() in put order, else get_any() in completion order
  const bool lazy_;     // made by imap/unordered_imap (see PoolState::lazy_owner)
  Progress progress_;
  std::chrono::milliseconds timeout_;
  std::size_t fixed_;         // items per chunk; zero: automatic
  const std::size_t total_;   // input size if known, else 0
  std::size_t item_cap_ = 0;  // items put and not handed out, at most
  bool holding_ = false;      // holds state_->lease
  bool finished_ = false;     // next() returns nullopt from now on
  bool input_done_ = false;   // nothing more is put: end of input, an error, or stop_feeding()
  std::exception_ptr input_error_;  // from the input or put(); delivered after the rest
  std::size_t items_put_ = 0;       // items taken from the input; the index of the next one
  std::size_t delivered_ = 0;       // outcomes handed out by next()
  std::uint32_t last_seq_ = 0;      // sequence number of the last task put
  Ring<Task> tasks_;                // from the oldest task not taken to the last put
  Ring<Chunk> chunks_;              // from the oldest chunk not handed out to the last
  std::size_t chunk_base_ = 0;      // number of chunks_.front()
  Ring<std::pair<std::size_t, std::size_t>> reruns_;  // (chunk, offset) to put alone
  Ring<std::size_t> done_;        // completion order: settled chunks not yet handed out
  std::size_t cursor_ = 0;        // next offset to hand out in the chunk being handed out
  std::size_t error_cursor_ = 0;  // next of its (sorted) errors
  double ns_per_item_ = 0;        // measured run time per item (moving average); 0: none yet
  std::size_t ceiling_ = kChunkMaxItems;  // automatic chunk size at most
};

/// Runs one call: feeds chunks of consecutive items from the input to the
/// queue, one task each, while the window allows, and receives their results
/// (EngineCore), in put order (get) or completion order (get_any). A chunk of
/// several items whose task fails as a whole (its worker crashed or timed
/// out, or its result was too large) is run again one item per task, so only
/// the guilty item fails. `Items` is the input type as stored: `T&` refers to
/// the caller's range, `T` owns it. Not movable: the input iterator may point
/// into `items_`. If construction fails past EngineCore, its destructor gives
/// the lease back (nothing is in flight yet).
template <class R, bool Star, class F, class Items>
class Engine final : public EngineCore<R, StoredItemOf<Star, Items>> {
  using Base = std::remove_reference_t<Items>;
  using Item = StoredItemOf<Star, Items>;
  using Core = EngineCore<R, Item>;
  using Core::add_chunk_;
  using Core::chunk_;
  using Core::chunk_base_;
  using Core::chunks_;
  using Core::delivered_;
  using Core::input_done_;
  using Core::input_error_;
  using Core::item_cap_;
  using Core::items_put_;
  using Core::kChunkable;
  using Core::last_seq_;
  using Core::next_size_;
  using Core::reruns_;
  using Core::settle_error_;
  using Core::state_;
  using Core::tasks_;
  using Core::timeout_;
  using typename Core::Chunk;
  using typename Core::Queue;
  using typename Core::Task;

 public:
  Engine(std::shared_ptr<PoolState<R>> state, const CallSettings& settings, F f, Items&& items,
         bool ordered, bool lazy)
      : Core(std::move(state), settings, total_of(items), ordered, lazy),
        f_(f),
        items_(std::forward<Items>(items)) {
    it_.emplace(std::ranges::begin(items_));
    end_.emplace(std::ranges::end(items_));
  }

 private:
  static std::size_t total_of(const Base& items) {
    if constexpr (std::ranges::sized_range<const Base>) {
      return static_cast<std::size_t>(std::ranges::size(items));
    } else {
      return 0;
    }
  }

  /// Input position: steps past the item last put; false at the end.
  bool at_item_() {
    if (advance_) {
      advance_ = false;
      ++*it_;
    }
    if (*it_ == *end_) {
      input_done_ = true;
      return false;
    }
    return true;
  }

  void feed_() override {
    Queue& q = *state_->queue;
    while (!reruns_.empty() && tasks_.size() < state_->limit) {
      const auto [number, offset] = reruns_.front();
      reruns_.pop_front();
      Chunk& c = chunk_(number);
      try {
        if constexpr (kChunkable) {  // else no chunk has several items to run again
          const std::uint32_t seq = put_one_(q, c.items[offset]);
          tasks_.push_back(Task{number, offset, 1, seq, false});
        }
      } catch (...) {  // the queue is broken or closed, or the item is too large alone
        settle_error_(c, number, offset, std::current_exception());
        input_done_ = true;
      }
    }
    if (!reruns_.empty()) return;
    while (!input_done_ && tasks_.size() < state_->limit && chunks_.size() < state_->limit &&
           items_put_ - delivered_ < item_cap_) {
      std::size_t n = next_size_();
      const std::size_t room = item_cap_ - (items_put_ - delivered_);
      if (n > room) {
        if (!tasks_.empty()) break;  // wait for room rather than put a small chunk
        n = room;
      }
      try {
        if (n == 1 || !kChunkable) {
          if (!at_item_()) break;
          const std::uint32_t seq = put_one_(q, **it_);
          advance_ = true;
          add_chunk_(Chunk{items_put_, 1, {}, {}, {}, 1, false}, seq);
        } else if constexpr (kChunkable) {
          put_chunk_(q, n);
        }
      } catch (...) {  // from the input range, or put() (PayloadTooLarge)
        input_error_ = std::current_exception();
        input_done_ = true;
      }
    }
  }

  /// Pulls up to n items into one chunk and puts it as one task. An input
  /// error ends the chunk early: the items before it are still put.
  void put_chunk_(Queue& q, std::size_t n) {
    Chunk c;
    c.first = items_put_;
    c.items.reserve(n);
    std::exception_ptr input_error;
    try {
      std::size_t bytes = 0;
      while (c.items.size() < n && bytes < kChunkMaxBytes && at_item_()) {
        c.items.emplace_back(stored_(**it_));
        advance_ = true;
        bytes += encoded_size(c.items.back());
      }
    } catch (...) {
      input_error = std::current_exception();
    }
    c.size = c.unsettled = c.items.size();
    if (c.size == 1) {  // nothing to keep for a re-run
      const std::uint32_t seq = put_one_(q, c.items.front());
      c.items.clear();
      add_chunk_(std::move(c), seq);
    } else if (c.size > 1) {
      std::optional<std::uint32_t> seq;
      try {
        seq = put_many_(q, c.items);
      } catch (const PayloadTooLarge&) {  // too large together: one item per task
      }
      const std::size_t number = chunk_base_ + chunks_.size();
      const std::size_t size = c.size;
      add_chunk_(std::move(c), seq);
      if (!seq)
        for (std::size_t k = 0; k < size; ++k) reruns_.emplace_back(number, k);
    }
    if (input_error) std::rethrow_exception(input_error);
  }

  template <class V>
  static Item stored_(V&& v) {
    if constexpr (Star) {
      return std::apply([](auto&&... a) { return Item(std::forward<decltype(a)>(a)...); },
                        std::forward<V>(v));
    } else {
      return Item(std::forward<V>(v));
    }
  }

  /// One item as one task (star(): unpacked into the arguments).
  template <class V>
  std::uint32_t put_one_(Queue& q, const V& item) {
    if constexpr (Star) {
      static_assert(
          requires { std::tuple_size<std::remove_cvref_t<V>>::value; },
          "inorder::Pool: star() unpacks each item into the callable's arguments, so the "
          "items must be tuple-like (std::tuple, std::pair or std::array)");
      return std::apply([&](const auto&... args) { return put_args_(q, args...); }, item);
    } else {
      return put_args_(q, item);
    }
  }

  template <class... A>
  std::uint32_t put_args_(Queue& q, const A&... args) {
    const OneItemTask<R, F> task{f_};
    std::uint32_t seq = 0;
    if (timeout_.count() > 0) {
      seq = q.put_with(TaskOptions{.timeout = timeout_}, task, args...);
    } else {
      seq = q.put(task, args...);
    }
    last_seq_ = seq;
    return seq;
  }

  /// A chunk of several items as one task. Its time limit is the per-item
  /// limit (the call's timeout(), else Options::task_timeout) times its size.
  std::uint32_t put_many_(Queue& q, const SmallVec<Item>& items) {
    const ChunkTask<R, F, Star> task{f_, !state_->retry_exceptions};
    const std::chrono::milliseconds per_item =
        timeout_.count() > 0 ? timeout_ : state_->task_timeout;
    std::uint32_t seq = 0;
    if (per_item.count() > 0) {
      constexpr std::int64_t kMax = 0xFFFFFFFF;
      const auto n = static_cast<std::int64_t>(items.size());
      const std::int64_t ms = per_item.count() > kMax / n ? kMax : per_item.count() * n;
      seq = q.put_with(TaskOptions{.timeout = std::chrono::milliseconds(ms)}, task, items);
    } else {
      seq = q.put(task, items);
    }
    last_seq_ = seq;
    return seq;
  }

  F f_;
  Items items_;  // the input: a reference to the caller's range, or the range itself
  std::optional<std::ranges::iterator_t<Base>> it_;  // next item; see advance_
  std::optional<std::ranges::sentinel_t<Base>> end_;
  bool advance_ = false;  // it_ is at the last item put: step it before the next put
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
