// inorder/settled.hpp: Settled<R>, the outcome of one item of a settled call
// (Pool::map_settled): the item's value, or the ItemError it failed with.
//
// Contract. A Settled<R> holds exactly one of the two, for good. value() gives
// the value or throws the item's ItemError; error() gives the ItemError or
// throws std::logic_error. Every member may be called from any thread; none
// blocks. A plain value type: copy it, move it, keep it after the pool is gone.
// Not promised: the task's original exception type (it cannot cross a process
// boundary; the ItemError keeps its type name and message).
//
// ItemError is defined in pool.hpp, which includes this header: include
// <inorder/pool.hpp> (or <inorder/inorder.hpp>) to use Settled.
#pragma once

#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>

namespace inorder {

class ItemError;

namespace detail {
/// ItemError, named through R so that it need only be complete where a
/// Settled<R> is used, not here (pool.hpp includes this header first).
template <class R>
using ItemErrorOf = std::conditional_t<std::is_void_v<R>, void, ItemError>;
}  // namespace detail

template <class R>
class Settled {
  using Error = detail::ItemErrorOf<R>;

 public:
  using value_type = R;

  /// An item that succeeded with `value`.
  explicit Settled(R value) : outcome_(std::in_place_index<0>, std::move(value)) {}
  /// An item that failed with `error`.
  explicit Settled(Error error) : outcome_(std::in_place_index<1>, std::move(error)) {}

  /// True if the item succeeded (there is a value).
  [[nodiscard]] bool ok() const noexcept { return outcome_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  /// The value. Throws the item's ItemError (a copy) if it failed.
  [[nodiscard]] R& value() & {
    throw_if_failed_();
    return std::get<0>(outcome_);
  }
  [[nodiscard]] const R& value() const& {
    throw_if_failed_();
    return std::get<0>(outcome_);
  }
  [[nodiscard]] R&& value() && {
    throw_if_failed_();
    return std::get<0>(std::move(outcome_));
  }

  /// The value, or `fallback` converted to R if the item failed.
  template <class U>
  [[nodiscard]] R value_or(U&& fallback) const& {
    return ok() ? std::get<0>(outcome_) : static_cast<R>(std::forward<U>(fallback));
  }

  /// The error: index(), kind(), type_name(), message() and what() as map()
  /// would have thrown it. Throws std::logic_error if the item succeeded.
  [[nodiscard]] const Error& error() const {
    if (ok()) throw std::logic_error("inorder::Settled: error() of an item that succeeded");
    return std::get<1>(outcome_);
  }

 private:
  void throw_if_failed_() const {
    if (!ok()) throw std::get<1>(outcome_);
  }

  std::variant<R, Error> outcome_;
};

}  // namespace inorder
