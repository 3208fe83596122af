// inorder/mpi/pool.hpp: map a function over a range, across the ranks of an MPI job.
//
// Contract. Pool<R>::map(f, items) returns f(item) for every item, in the
// order of `items`; unordered_map returns them in completion order. imap and
// unordered_imap return a lazy input range that puts items as it is read:
// at most Pool's `lookahead` items are put and not yet returned, so an
// endless input runs in bounded memory. A failed item throws its TaskError
// (with RemoteFailure: rank, host, position) from map, or from the range's
// iterator at that item; map stops there. `f` follows the task rules of
// mpi::ParallelQueue: a function pointer or a lambda without captures,
// called with one decoded item.
// Who may call: rank 0, from the Session's thread; one pool call (or queue) at
// a time per Session: a lazy range holds the Session's queue until destroyed.
// Not promised: that items beyond a failed one were run or not.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <utility>
#include <vector>

#include "inorder/mpi/parallel_queue.hpp"
#include "inorder/mpi/session.hpp"
#include "inorder/options.hpp"

namespace inorder::mpi {

/// The lazy range imap / unordered_imap return. An input range: read it once.
template <class R, bool Ordered, class F, class View>
class PoolResults {
  struct State {
    State(Session& s, F fn, View v, std::size_t ahead, TaskOptions t)
        : queue(s),
          f(fn),
          items(std::move(v)),
          it(std::ranges::begin(items)),
          lookahead(ahead),
          task(t) {}
    ParallelQueue<R> queue;
    F f;
    View items;
    std::ranges::iterator_t<View> it;
    std::size_t lookahead;
    TaskOptions task;
    std::size_t in_flight = 0;  ///< put and not yet returned
    std::optional<R> current;   ///< the value the iterator shows
    bool done = false;

    void fill() {
      while (in_flight < lookahead && it != std::ranges::end(items)) {
        queue.put_with(task, f, *it);
        ++it;
        ++in_flight;
      }
      if (it == std::ranges::end(items) && !queue.stopped()) queue.stop();
    }
    void advance() {
      fill();
      current.reset();
      if constexpr (Ordered) {
        current = queue.get();
      } else {
        if (auto r = queue.get_any()) current = std::move(r->second);
      }
      if (!current) {
        done = true;
        return;
      }
      --in_flight;
    }
  };

 public:
  class iterator {
   public:
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(State* s) : s_(s) {}
    /// The current result. Valid until the next increment.
    R& operator*() const { return *s_->current; }
    /// Takes the next result; blocks until it is there; throws its TaskError.
    iterator& operator++() {
      s_->advance();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& i, std::default_sentinel_t) { return i.s_->done; }

   private:
    State* s_ = nullptr;
  };

  PoolResults(Session& s, F f, View items, std::size_t lookahead, TaskOptions task)
      : state_(std::make_unique<State>(s, f, std::move(items), lookahead, task)) {}

  /// Starts the work and waits for the first result (throws its TaskError).
  iterator begin() {
    if (!started_) {
      started_ = true;
      state_->advance();
    }
    return iterator(state_.get());
  }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  std::unique_ptr<State> state_;
  bool started_ = false;
};

template <class R>
class Pool {
 public:
  /// Rank 0 only. `lookahead`: items put ahead of the one being returned
  /// (at most SessionOptions::window is useful). Does not block.
  explicit Pool(Session& session, std::size_t lookahead = 4096)
      : session_(&session), lookahead_(lookahead) {
    if (lookahead == 0) throw std::invalid_argument("inorder::mpi::Pool: lookahead must be >= 1");
  }

  /// A pool whose tasks each have this time limit (TaskOptions::timeout).
  template <class Rep, class Period>
  [[nodiscard]] Pool timeout(const std::chrono::duration<Rep, Period>& limit) const {
    Pool p = *this;
    p.task_.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(limit);
    return p;
  }

  /// f(item) for every item, in item order. Blocks until all are done.
  template <class F, std::ranges::input_range Items>
  [[nodiscard]] std::vector<R> map(F f, Items&& items) const {
    return collect_(imap(f, std::forward<Items>(items)));
  }
  /// As map, in completion order.
  template <class F, std::ranges::input_range Items>
  [[nodiscard]] std::vector<R> unordered_map(F f, Items&& items) const {
    return collect_(unordered_imap(f, std::forward<Items>(items)));
  }
  /// Lazy, in item order. `items` is kept (moved in if it is an rvalue).
  template <class F, std::ranges::input_range Items>
  [[nodiscard]] auto imap(F f, Items&& items) const {
    using View = std::views::all_t<Items>;
    return PoolResults<R, true, F, View>(*session_, f, std::views::all(std::forward<Items>(items)),
                                         lookahead_, task_);
  }
  /// Lazy, in completion order.
  template <class F, std::ranges::input_range Items>
  [[nodiscard]] auto unordered_imap(F f, Items&& items) const {
    using View = std::views::all_t<Items>;
    return PoolResults<R, false, F, View>(*session_, f, std::views::all(std::forward<Items>(items)),
                                          lookahead_, task_);
  }

 private:
  template <class Results>
  static std::vector<R> collect_(Results&& results) {
    std::vector<R> out;
    for (auto& r : results) out.push_back(std::move(r));
    return out;
  }

  Session* session_;
  std::size_t lookahead_;
  TaskOptions task_{};
};

}  // namespace inorder::mpi
