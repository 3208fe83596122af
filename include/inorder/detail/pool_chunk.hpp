// inorder/detail/pool_chunk.hpp: what crosses to a worker when a Pool call
// runs a chunk of consecutive items as one task, and what comes back.
//
// Not a public API, and not a header of its own: pool_engine.hpp includes it.
// A chunk task runs the callable on each item of the chunk and catches each
// item's exception on its own, so a failed item fails alone and the others
// keep their values. A task of one item lets the exception fail the task, as
// a plain ParallelQueue task does (Options::retry_exceptions applies to it).
#pragma once
#ifndef INORDER_POOL_HPP_INSIDE
#error "include inorder/pool.hpp, not this detail header"
#endif

#include <sys/types.h>
#include <unistd.h>

#include <cxxabi.h>
#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <optional>
#include <ranges>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "inorder/codec.hpp"

namespace inorder {
namespace detail {

/// T's value type if T is a std::optional (else T itself).
template <class T>
struct OptionalValue {
  using type = T;
};
template <class T>
struct OptionalValue<std::optional<T>> {
  using type = T;
};

/// A vector that keeps its first elements in place (no heap) when the
/// element type is small and default-constructible: a lazy call's chunks
/// (a few items each) then allocate nothing in steady state, so its memory
/// stays flat however long the input. Only what the engine needs.
template <class T>
class SmallVec {
  static constexpr bool kIsOptional =
      std::is_same_v<T, std::optional<typename OptionalValue<T>::type>>;
  static constexpr std::size_t kInline =
      sizeof(T) <= 64 && std::is_default_constructible_v<T> && std::is_move_assignable_v<T> ? 16
                                                                                            : 0;

 public:
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  T& operator[](std::size_t i) noexcept { return size_ <= kInline ? inline_[i] : heap_[i]; }
  const T& operator[](std::size_t i) const noexcept {
    return size_ <= kInline ? inline_[i] : heap_[i];
  }
  T& front() noexcept { return (*this)[0]; }
  T& back() noexcept { return (*this)[size_ - 1]; }
  void reserve(std::size_t n) {
    if (n > kInline) heap_.reserve(n);
  }

  template <class... A>
  void emplace_back(A&&... args) {
    if constexpr (kInline > 0) {
      if (size_ < kInline) {
        if constexpr (sizeof...(A) == 0) {
          reset_(inline_[size_]);
        } else {
          inline_[size_] = T(std::forward<A>(args)...);
        }
        ++size_;
        return;
      }
      if (size_ == kInline) spill_();
    }
    heap_.emplace_back(std::forward<A>(args)...);
    ++size_;
  }

  /// Grows with default-constructed elements (shrinking is not needed).
  void resize(std::size_t n) {
    while (size_ < n) emplace_back();
  }

  void clear() noexcept {
    for (std::size_t i = 0; i < std::min(size_, kInline); ++i) reset_(inline_[i]);
    heap_.clear();
    size_ = 0;
  }

 private:
  // An optional is reset rather than assigned a fresh one: GCC 12 then sees
  // no read of a disengaged payload (-Wmaybe-uninitialized).
  static void reset_(T& x) {
    if constexpr (kIsOptional) {
      x.reset();
    } else {
      x = T();
    }
  }

  // The inline elements are left moved-from; they are overwritten before reuse.
  void spill_() {
    heap_.clear();
    heap_.reserve(2 * kInline);
    for (std::size_t i = 0; i < kInline; ++i) heap_.push_back(std::move(inline_[i]));
  }

  std::array<T, kInline> inline_{};  // elements [0, size_) while size_ <= kInline
  std::vector<T> heap_;              // all elements once size_ > kInline
  std::size_t size_ = 0;
};

/// A FIFO over a growable ring: pushing and popping allocate nothing once it
/// has grown to its working size (std::deque allocates as it moves).
template <class T>
class Ring {
 public:
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  T& operator[](std::size_t i) noexcept { return buf_[(head_ + i) & (buf_.size() - 1)]; }
  const T& operator[](std::size_t i) const noexcept {
    return buf_[(head_ + i) & (buf_.size() - 1)];
  }
  T& front() noexcept { return buf_[head_]; }
  void push_back(T value) {
    if (size_ == buf_.size()) grow_();
    (*this)[size_] = std::move(value);
    ++size_;
  }
  template <class... A>
  void emplace_back(A&&... args) {
    push_back(T{std::forward<A>(args)...});
  }
  void pop_front() {
    buf_[head_] = T();
    head_ = (head_ + 1) & (buf_.size() - 1);
    --size_;
  }
  void clear() {
    while (size_ != 0) pop_front();
  }

 private:
  void grow_() {
    std::vector<T> next(std::max<std::size_t>(8, 2 * buf_.size()));
    for (std::size_t i = 0; i < size_; ++i) next[i] = std::move((*this)[i]);
    buf_.swap(next);
    head_ = 0;
  }

  std::vector<T> buf_;  // size a power of two (or empty)
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

/// One item of a chunk that threw in the worker.
struct ItemFailure {
  std::uint32_t offset = 0;  ///< position of the item in its chunk
  std::string type_name;     ///< demangled dynamic type of the exception
  std::string message;       ///< what(), or empty for a non-std exception
};

/// What one task of a Pool call returns: a value per item of the task (empty
/// where the item threw), the items that threw, the worker's pid (set only
/// when an item threw) and the time the callable took over the whole task
/// (the engine sizes chunks with it).
template <class R>
struct ChunkReply {
  SmallVec<std::optional<R>> values;
  std::vector<ItemFailure> failures;
  std::int64_t run_ns = 0;
  pid_t pid = 0;
};

/// Demangled name of a type, as the queue reports a task's exception type.
inline std::string pool_type_name(const std::type_info& type) {
  int status = 0;
  char* name = abi::__cxa_demangle(type.name(), nullptr, nullptr, &status);
  std::string out = status == 0 && name != nullptr ? std::string(name) : std::string(type.name());
  std::free(name);  // NOLINT: __cxa_demangle allocates with malloc
  return out;
}

/// Type name of the exception being handled.
inline std::string pool_current_type_name() {
  const std::type_info* t = abi::__cxa_current_exception_type();
  return t != nullptr ? pool_type_name(*t) : std::string("unknown");
}

inline std::int64_t pool_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// The task of a single item: f(args...) as a plain task. An exception fails
/// the task, and the queue reports it (type name, message, pid) as it does
/// for any task.
template <class R, class F>
struct OneItemTask {
  F f;

  template <class... A>
  requires std::is_invocable_v<F&, A&&...> ChunkReply<R>
  operator()(A&&... args) {
    ChunkReply<R> reply;
    const std::int64_t t0 = pool_now_ns();
    reply.values.emplace_back(static_cast<R>(std::invoke(f, std::forward<A>(args)...)));
    reply.run_ns = pool_now_ns() - t0;
    return reply;
  }
};

/// The task of a chunk of items: f on each item in turn. With `catch_each`,
/// an item's exception is caught and recorded for that item alone; without
/// it (Options::retry_exceptions), it fails the whole task, which the engine
/// then runs again one item per task.
template <class R, class F, bool Star>
struct ChunkTask {
  F f;
  bool catch_each = true;

  template <class Item>
  ChunkReply<R> operator()(SmallVec<Item>&& items) {
    ChunkReply<R> reply;
    reply.values.reserve(items.size());
    const std::int64_t t0 = pool_now_ns();
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (!catch_each) {
        reply.values.emplace_back(call_(items[i]));
        continue;
      }
      try {
        reply.values.emplace_back(call_(items[i]));
      } catch (const std::exception& e) {
        reply.values.emplace_back();
        reply.failures.push_back(
            {static_cast<std::uint32_t>(i), pool_type_name(typeid(e)), std::string(e.what())});
      } catch (...) {
        reply.values.emplace_back();
        reply.failures.push_back(
            {static_cast<std::uint32_t>(i), pool_current_type_name(), std::string()});
      }
    }
    reply.run_ns = pool_now_ns() - t0;
    if (!reply.failures.empty()) reply.pid = getpid();  // a system call: only when needed
    return reply;
  }

 private:
  template <class Item>
  R call_(Item& item) {
    if constexpr (Star) {
      return std::apply(
          [this](auto&... args) -> R { return static_cast<R>(std::invoke(f, std::move(args)...)); },
          item);
    } else {
      return static_cast<R>(std::invoke(f, std::move(item)));
    }
  }
};

/// What a chunk stores and sends of one item: the item's value type, or for
/// star() a std::tuple of the decayed elements (a tuple of references, as
/// some views yield, cannot be encoded).
template <bool Star, class Ref>
struct StoredItem {
  using type = std::remove_cvref_t<Ref>;
};
template <class Ref>
struct StoredItem<true, Ref> {
  template <std::size_t... I>
  static auto pick(std::index_sequence<I...>)
      -> std::tuple<std::decay_t<std::tuple_element_t<I, std::remove_cvref_t<Ref>>>...>;
  using type =
      decltype(pick(std::make_index_sequence<std::tuple_size_v<std::remove_cvref_t<Ref>>>()));
};

/// The stored item type of a call whose input range is `Items` (a range, or a
/// reference to one).
template <bool Star, class Items>
using StoredItemOf =
    typename StoredItem<Star, std::ranges::range_reference_t<std::remove_reference_t<Items>>>::type;

}  // namespace detail

/// How a SmallVec crosses (as a std::vector does: a count, then the elements).
template <class T>
struct codec<detail::SmallVec<T>> {
  static void encode(Writer& w, const detail::SmallVec<T>& v) {
    inorder::encode(w, static_cast<std::uint64_t>(v.size()));
    for (std::size_t i = 0; i < v.size(); ++i) inorder::encode(w, v[i]);
  }
  static detail::SmallVec<T> decode(Reader& r) {
    const auto n = inorder::decode<std::uint64_t>(r);
    detail::SmallVec<T> v;
    v.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(n, r.remaining())));
    for (std::uint64_t i = 0; i < n; ++i) v.emplace_back(inorder::decode<T>(r));
    return v;
  }
};

/// How an ItemFailure crosses back from the worker.
template <>
struct codec<detail::ItemFailure> {
  static void encode(Writer& w, const detail::ItemFailure& f) {
    inorder::encode(w, f.offset);
    inorder::encode(w, f.type_name);
    inorder::encode(w, f.message);
  }
  static detail::ItemFailure decode(Reader& r) {
    detail::ItemFailure f;
    f.offset = inorder::decode<std::uint32_t>(r);
    f.type_name = inorder::decode<std::string>(r);
    f.message = inorder::decode<std::string>(r);
    return f;
  }
};

/// How a ChunkReply crosses back from the worker.
template <class R>
struct codec<detail::ChunkReply<R>> {
  static void encode(Writer& w, const detail::ChunkReply<R>& c) {
    inorder::encode(w, c.values);
    inorder::encode(w, c.failures);
    inorder::encode(w, c.run_ns);
    inorder::encode(w, c.pid);
  }
  static detail::ChunkReply<R> decode(Reader& r) {
    detail::ChunkReply<R> c;
    c.values = inorder::decode<detail::SmallVec<std::optional<R>>>(r);
    c.failures = inorder::decode<std::vector<detail::ItemFailure>>(r);
    c.run_ns = inorder::decode<std::int64_t>(r);
    c.pid = inorder::decode<pid_t>(r);
    return c;
  }
};

}  // namespace inorder
