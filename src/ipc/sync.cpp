// src/ipc/sync.cpp: the futex system calls behind EventCount.
#include "ipc/sync.hpp"

#include "os/os.hpp"

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cerrno>
#include <climits>
#include <ctime>

namespace inorder::detail {

bool futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected, Deadline deadline) {
  timespec ts{};
  const timespec* tsp = nullptr;
  if (deadline != kForever) {
    // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time, the clock
    // behind std::chrono::steady_clock on Linux.
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
    if (ns <= 0) return false;
    ts = to_timespec(static_cast<std::uint64_t>(ns));
    tsp = &ts;
    if (Clock::now() >= deadline) return false;
  }
  // Shared futex (no FUTEX_PRIVATE_FLAG): the word lives in MAP_SHARED memory
  // and the waker may be another process.
  const long rc = syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_BITSET,
                          expected, tsp, nullptr, FUTEX_BITSET_MATCH_ANY);
  if (rc == -1 && errno == ETIMEDOUT) return false;
  return true;  // woken, value changed (EAGAIN) or interrupted (EINTR): caller re-checks
}

namespace {
/// This process registered for expedited barriers. Cleared in a forked child
/// (pthread_atfork), which must register on its own.
std::atomic<bool> g_light_notify{false};

long membarrier(int cmd) noexcept { return syscall(SYS_membarrier, cmd, 0U, 0); }
}  // namespace

bool enable_light_notify() noexcept {
  if (g_light_notify.load(std::memory_order_acquire)) return true;
  static const bool supported = [] {
    const long cmds = membarrier(MEMBARRIER_CMD_QUERY);
    if (cmds < 0 || !(cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED) ||
        !(cmds & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED))
      return false;
    // Registration belongs to the process image fork copies, not to the
    // child: forget it there (the child calls enable_light_notify itself).
    return pthread_atfork(nullptr, nullptr,
                          [] { g_light_notify.store(false, std::memory_order_relaxed); }) == 0;
  }();
  if (!supported || membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) != 0) return false;
  g_light_notify.store(true, std::memory_order_release);
  return true;
}

bool light_notify_enabled() noexcept { return g_light_notify.load(std::memory_order_relaxed); }

bool heavy_barrier() noexcept { return membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0; }

void futex_wake(std::atomic<std::uint32_t>& word, int count) noexcept {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, count, nullptr, nullptr,
          0);
}

}  // namespace inorder::detail
