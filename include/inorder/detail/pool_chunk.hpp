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
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "inorder/codec.hpp"

namespace inorder {
namespace detail {

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
  std::vector<std::optional<R>> values;
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
  ChunkReply<R> operator()(std::vector<Item>&& items) {
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

}  // namespace detail

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
    c.values = inorder::decode<std::vector<std::optional<R>>>(r);
    c.failures = inorder::decode<std::vector<detail::ItemFailure>>(r);
    c.run_ns = inorder::decode<std::int64_t>(r);
    c.pid = inorder::decode<pid_t>(r);
    return c;
  }
};

}  // namespace inorder
