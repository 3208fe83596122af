// inorder/detail/put_checks.hpp: the compile-time checks of put() on what it
// is given, shared by inorder::ParallelQueue and inorder::mpi::ParallelQueue.
//
// Not a public API. Each check is a static_assert whose message is what the
// user reads when a put() does not compile, so both queues stop the build with
// the same words. Each function is always true: it only fails to compile, and
// is called as static_assert(check_...<...>()). Checks that only one queue
// makes (the MPI queue's captureless callable) stay in that queue.
#pragma once

#include <type_traits>

#include "inorder/codec.hpp"

namespace inorder::detail {

/// put(x) with one argument that is not a task: x is passed through, so it
/// must convert to the queue's R.
template <class R, class X>
consteval bool check_put_value() {
  static_assert(std::is_convertible_v<X, R>,
                "inorder: put(x) with one argument passes x through, so x must convert to "
                "the queue's R (or be a callable taking no arguments)");
  return true;
}

/// put(f, args...): every argument encodable (the codec's own message for its
/// type, e.g. "std::string_view ... send std::string"), `Call` (the callable
/// as the worker holds it: Fn& or const Fn&) invocable with decoded copies of
/// `Args` (decayed) as rvalues, and its result convertible to R.
template <class R, class Call, class... Args>
consteval bool check_put_task() {
  static_assert((explain_unencodable<Args>() && ...));
  constexpr bool kInvocable = std::is_invocable_v<Call, Args&&...>;
  static_assert(kInvocable,
                "inorder: put(f, args...): f cannot be called with these argument types "
                "(it receives decoded copies, as rvalues)");
  if constexpr (kInvocable) {
    using Ret = std::invoke_result_t<Call, Args&&...>;
    static_assert(std::is_convertible_v<Ret, R> || std::is_constructible_v<R, Ret>,
                  "inorder: the task's return type must convert to the queue's result type R");
  }
  return true;
}

}  // namespace inorder::detail
