// bench/idle_cpu.cpp: how much CPU an idle, warmed-up ParallelQueue burns.
//
//   inorder-idle-cpu [workers=2] [seconds=2]
//
// Constructs a queue, runs a few tasks so every worker has started and gone back
// to waiting, then sleeps while the queue is idle. Reports the CPU time (user +
// system) used during the idle period by the parent process (getrusage, all its
// threads) and by each worker (/proc/<pid>/stat, clock-tick resolution), and the
// total of both as a share of one core. An idle queue should be close to 0%.
#include <inorder/inorder.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <sys/types.h>
#include <unistd.h>

#include "bench_util.hpp"

namespace {

double timeval_s(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

// User + system CPU seconds of this process, all threads.
double self_cpu_s() {
  rusage ru{};
  if (::getrusage(RUSAGE_SELF, &ru) != 0) return 0.0;
  return timeval_s(ru.ru_utime) + timeval_s(ru.ru_stime);
}

using bench::proc_cpu_seconds;

}  // namespace

int main(int argc, char** argv) {
  unsigned workers = 2;
  double seconds = 2.0;
  if (argc > 1) workers = static_cast<unsigned>(std::strtoul(argv[1], nullptr, 10));
  if (argc > 2) seconds = std::strtod(argv[2], nullptr);
  if (workers == 0 || !(seconds > 0.0)) {
    std::fprintf(stderr, "usage: %s [workers >= 1] [seconds > 0]\n", argv[0]);
    return 2;
  }

  inorder::ParallelQueue<long> queue({.workers = workers});

  // Warm up: a few rounds of a full queue (puts never exceed the capacity, as
  // this one thread gets only after putting), then everything is drained.
  const long round = static_cast<long>(queue.stats().capacity);
  for (long r = 0; r < 4; ++r) {
    for (long i = 0; i < round; ++i) queue.put([](long x) { return x * 2; }, i);
    for (long i = 0; i < round; ++i) {
      if (queue.get() != std::optional<long>(i * 2)) {
        std::fprintf(stderr, "warm-up: wrong result at position %ld\n", i);
        return 1;
      }
    }
  }
  // Let every waiter pass its spin and yield phases before measuring.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));

  const inorder::Stats stats = queue.stats();
  std::vector<pid_t> pids;
  std::vector<double> before;
  for (const inorder::WorkerStats& w : stats.workers) {
    const std::optional<double> cpu = proc_cpu_seconds(w.pid);
    if (!cpu) {
      std::fprintf(stderr, "cannot read /proc/%d/stat\n", static_cast<int>(w.pid));
      return 1;
    }
    pids.push_back(w.pid);
    before.push_back(*cpu);
  }
  const double parent_before = self_cpu_s();
  const auto wall_start = std::chrono::steady_clock::now();

  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));

  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  const double parent = self_cpu_s() - parent_before;
  double workers_total = 0.0;
  for (std::size_t i = 0; i < pids.size(); ++i) {
    const std::optional<double> cpu = proc_cpu_seconds(pids[i]);
    if (!cpu) {
      std::fprintf(stderr, "cannot read /proc/%d/stat\n", static_cast<int>(pids[i]));
      return 1;
    }
    const double used = *cpu - before[i];
    workers_total += used;
    std::printf("worker %zu (pid %d, %llu tasks): %.3f s CPU\n", i, static_cast<int>(pids[i]),
                static_cast<unsigned long long>(stats.workers[i].tasks), used);
  }
  std::printf("(worker CPU from /proc/<pid>/stat: resolution %.3f s)\n",
              1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK)));
  std::printf("idle %.2f s: parent %.3f s CPU, workers %.3f s CPU total (%.1f%% of one core)\n",
              wall, parent, workers_total, 100.0 * (parent + workers_total) / wall);
  return 0;
}
