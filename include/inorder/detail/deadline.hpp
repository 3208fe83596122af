// inorder/detail/deadline.hpp: the one clock and deadline type of inorder.
//
// Not a public API. Every blocking call of the library turns the user's
// timeout or time point into a Deadline on steady_clock here, once, and passes
// that down; nothing below this header converts times again.
#pragma once

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <type_traits>

namespace inorder::detail {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;
/// Wait without limit.
inline constexpr Deadline kForever = Deadline::max();
/// Do not wait at all (try_ forms).
inline constexpr Deadline kNoWait = Deadline::min();

/// Converts a user's time point on any clock to a steady_clock deadline.
template <class C, class D>
Deadline to_deadline(const std::chrono::time_point<C, D>& tp) {
  if constexpr (std::is_same_v<C, Clock>) {
    return std::chrono::time_point_cast<Clock::duration>(tp);
  } else {
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(tp - C::now());
  }
}

/// A relative timeout as a deadline; negative is an error
/// (std::invalid_argument), one too large to represent means forever.
template <class Rep, class Period>
Deadline after(const std::chrono::duration<Rep, Period>& d) {
  if (d < std::chrono::duration<Rep, Period>::zero())
    throw std::invalid_argument("inorder: timeout must not be negative");
  const auto now = Clock::now();
  using Big = std::chrono::duration<long double>;
  if (std::chrono::duration_cast<Big>(d) >= std::chrono::duration_cast<Big>(kForever - now))
    return kForever;
  return now + std::chrono::ceil<Clock::duration>(d);
}

/// A wait that must not outlive the party it waits for: calls
/// `attempt(until)` with deadlines at most `slice` apart until it returns
/// true, and between two empty-handed slices calls `peer_ok()`, which returns
/// false (or throws) when the other side is gone. Returns true when an attempt
/// succeeded; false when `deadline` passed (kNoWait: after one attempt) or
/// `peer_ok()` gave up. The slice only bounds how late a vanished peer is
/// noticed: an attempt that is woken returns at once.
template <class Attempt, class PeerOk>
bool wait_in_slices(Deadline deadline, Clock::duration slice, Attempt&& attempt, PeerOk&& peer_ok) {
  for (;;) {
    const Deadline until = deadline == kNoWait ? kNoWait : std::min(deadline, Clock::now() + slice);
    if (attempt(until)) return true;
    if (deadline == kNoWait || Clock::now() >= deadline) return false;
    if (!peer_ok()) return false;
  }
}

}  // namespace inorder::detail
