// bench/detection_latency.cpp: how fast the queue notices a worker killed
// from outside, from the SIGKILL to the WorkerCrashed that get() throws.
//
//   inorder-detection-latency [rounds=50]
//
// Each round puts a task that publishes its worker's pid and then blocks,
// SIGKILLs that worker, and times get() until it throws WorkerCrashed for that
// position. Prints p50, p99 and the maximum. A figure, not a test: the fault
// suite (tests/fault_test.cpp) checks the outcome, this program measures it.
#include <inorder/inorder.hpp>

#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

/// Shared with the workers (anonymous shared memory, mapped before the fork).
struct Blocker {
  std::atomic<int> started{0};  ///< index + 1 of the last task that began
  std::atomic<pid_t> pid{0};    ///< worker running it
  std::atomic<int> release{0};  ///< never set: the tasks are killed
};

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 50;
  void* mem =
      mmap(nullptr, sizeof(Blocker), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return 1;
  auto* b = new (mem) Blocker();
  inorder::ParallelQueue<long> q({.workers = 2, .max_restarts = 100'000});
  std::vector<double> latency_us;
  for (int i = 0; i < rounds; ++i) {
    q.put(
        [](Blocker* blk, int idx) -> long {
          blk->pid.store(getpid());
          blk->started.store(idx + 1);
          while (blk->release.load() == 0) sched_yield();
          return idx;
        },
        b, i);
    while (b->started.load() != i + 1) sched_yield();
    const pid_t pid = b->pid.load();
    const auto t0 = Clock::now();
    kill(pid, SIGKILL);
    try {
      (void)q.get();
      std::fprintf(stderr, "round %d: the killed task returned a value\n", i);
      return 1;
    } catch (const inorder::WorkerCrashed& e) {
      if (e.worker_pid() != pid) {
        std::fprintf(stderr, "round %d: WorkerCrashed names pid %d, not %d\n", i,
                     static_cast<int>(e.worker_pid()), static_cast<int>(pid));
        return 1;
      }
    }
    latency_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::sort(latency_us.begin(), latency_us.end());
  const auto at = [&](double p) {
    const auto k = static_cast<std::size_t>(p * static_cast<double>(latency_us.size()) + 0.5);
    return latency_us[std::min(latency_us.size() - 1, k == 0 ? 0 : k - 1)];
  };
  std::printf(
      "SIGKILL to WorkerCrashed in get(), %zu rounds: p50 %.0f us, p99 %.0f us, max %.0f us\n",
      latency_us.size(), at(0.50), at(0.99), latency_us.back());
  munmap(mem, sizeof(Blocker));
  return 0;
}
