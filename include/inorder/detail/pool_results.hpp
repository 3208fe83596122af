// inorder/detail/pool_results.hpp: what Pool's lazy and asynced calls
// return: Results<R> (the range imap() gives) and Awaitable<T>.
//
// Public types, declared in their own header to keep pool.hpp short. Not a
// header of its own: pool.hpp includes it after the call engine.
#pragma once
#ifndef INORDER_POOL_HPP_INSIDE
#error "include inorder/pool.hpp, not this detail header"
#endif

namespace inorder {

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

}  // namespace inorder
