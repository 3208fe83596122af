// bench/compare_extras.cpp: the idle-cost and latency reports of inorder-compare.
//
// Idle CPU: a queue is warmed up (a few full rounds of tiny tasks), left alone
// for 50 ms so every waiter passes its spin and yield phases, then the CPU time
// of the parent process and of every worker is read from /proc/<pid>/stat
// before and after `seconds` of idleness (clock-tick resolution, 10 ms here).
//
// Latency: one tiny task put -> get on an idle one-worker queue, against 8
// bytes sent to a forked child over a pipe and echoed back over another. Both
// back to back ("hot": the worker is still in its spin/yield phase when the
// next task arrives) and after 1 ms of idleness before each sample ("cold":
// the worker is asleep on its futex, the child blocked in read()).
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <csignal>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

#include <inorder/inorder.hpp>

#include "compare_systems.hpp"

namespace compare {
namespace {

long plus_one(long x) { return x + 1; }

double us_since(SteadyClock::time_point start) {
  return std::chrono::duration<double, std::micro>(SteadyClock::now() - start).count();
}

Latency summarize(std::vector<double>& samples_us) {
  Latency l;
  l.samples = samples_us.size();
  if (samples_us.empty()) return l;
  double sum = 0.0;
  for (const double s : samples_us) sum += s;
  l.mean_us = sum / static_cast<double>(samples_us.size());
  l.p50_us = percentile(samples_us, 0.50);
  l.p99_us = percentile(samples_us, 0.99);
  return l;
}

constexpr auto kColdPause = std::chrono::milliseconds(1);

/// Round trips of one tiny task on a one-worker queue; nullopt on a wrong result.
std::optional<std::vector<double>> queue_round_trips(inorder::ParallelQueue<long>& queue,
                                                     std::size_t count, bool cold, long& next) {
  std::vector<double> samples;
  samples.reserve(count);
  for (std::size_t k = 0; k < count; ++k) {
    if (cold) std::this_thread::sleep_for(kColdPause);
    const auto start = SteadyClock::now();
    queue.put(&plus_one, next);
    const std::optional<long> r = queue.get();
    samples.push_back(us_since(start));
    if (r != std::optional<long>(next + 1)) return std::nullopt;
    ++next;
  }
  return samples;
}

/// Round trips of 8 bytes to an echoing child; nullopt on failure.
std::optional<std::vector<double>> pipe_round_trips(int out, int in, std::size_t count, bool cold,
                                                    std::uint64_t& next) {
  std::vector<double> samples;
  samples.reserve(count);
  for (std::size_t k = 0; k < count; ++k) {
    if (cold) std::this_thread::sleep_for(kColdPause);
    const auto start = SteadyClock::now();
    std::uint64_t back = 0;
    const bool ok = write_all(out, &next, sizeof next) && read_all(in, &back, sizeof back);
    samples.push_back(us_since(start));
    if (!ok || back != next) return std::nullopt;
    ++next;
  }
  return samples;
}

inline void cpu_relax_hint() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/// A dependent chain of additions the compiler cannot drop.
std::uint64_t spin_loop(std::uint64_t iterations) {
  std::uint64_t x = 0;
  for (std::uint64_t i = 0; i < iterations; ++i) {
    x += i ^ (x >> 3);
    asm volatile("" : "+r"(x));
  }
  return x;
}

/// Runs spin_loop(iterations) in `procs` forked children at once; wall seconds.
std::optional<double> spin_in_children(unsigned procs, std::uint64_t iterations) {
  std::vector<pid_t> pids;
  const auto start = SteadyClock::now();
  for (unsigned k = 0; k < procs; ++k) {
    const pid_t pid = ::fork();
    if (pid < 0) break;
    if (pid == 0) {
      spin_loop(iterations);
      ::_exit(0);
    }
    pids.push_back(pid);
  }
  bool ok = pids.size() == procs;
  for (const pid_t pid : pids) ok = wait_child(pid) == 0 && ok;
  if (!ok) return std::nullopt;
  return seconds_since(start);
}

}  // namespace

std::optional<double> parallel_speedup(unsigned procs, double seconds) {
  // Calibrate: iterations for about `seconds` in this process.
  std::uint64_t iterations = 1'000'000;
  for (;;) {
    const auto start = SteadyClock::now();
    spin_loop(iterations);
    const double t = seconds_since(start);
    if (t >= 0.05) {
      iterations = static_cast<std::uint64_t>(static_cast<double>(iterations) * seconds / t);
      break;
    }
    iterations *= 4;
  }
  // Alternate alone / together three times; the medians resist a passing
  // disturbance from other jobs on the host.
  std::vector<double> alone;
  std::vector<double> together;
  for (int round = 0; round < 3; ++round) {
    const auto a = spin_in_children(1, iterations / 3);
    const auto t = spin_in_children(procs, iterations / 3);
    if (!a || !t) return std::nullopt;
    alone.push_back(*a);
    together.push_back(*t);
  }
  return static_cast<double>(procs) * percentile(alone, 0.5) / percentile(together, 0.5);
}

std::optional<double> core_to_core_ns(std::size_t round_trips) {
  const std::vector<int> cpus = allowed_cpus(2);
  if (cpus.size() < 2) return std::nullopt;
  alignas(64) std::atomic<std::uint64_t> ball{0};
  const auto n = static_cast<std::uint64_t>(round_trips);
  bool pinned = true;
  std::thread partner([&] {
    pinned = pin_this_thread(cpus[1]) && pinned;
    for (std::uint64_t i = 1; i < 2 * n; i += 2) {
      while (ball.load(std::memory_order_acquire) != i) cpu_relax_hint();
      ball.store(i + 1, std::memory_order_release);
    }
  });
  std::optional<double> result;
  {
    // Pin this thread for the measurement only; the guard restores its mask.
    const ThreadMaskGuard guard;
    const bool here = pin_this_thread(cpus[0]);
    const auto start = SteadyClock::now();
    for (std::uint64_t i = 0; i < 2 * n; i += 2) {
      ball.store(i + 1, std::memory_order_release);
      while (ball.load(std::memory_order_acquire) != i + 2) cpu_relax_hint();
    }
    const double ns = std::chrono::duration<double, std::nano>(SteadyClock::now() - start).count();
    partner.join();
    if (here && pinned) result = ns / static_cast<double>(2 * n);
  }
  return result;
}

std::optional<IdleCpu> measure_idle_cpu(unsigned workers, double seconds) {
  try {
    inorder::ParallelQueue<long> queue({.workers = workers});
    const long round = static_cast<long>(queue.stats().capacity);
    for (long r = 0; r < 4; ++r) {
      for (long i = 0; i < round; ++i) queue.put(&plus_one, i);
      for (long i = 0; i < round; ++i)
        if (queue.get() != std::optional<long>(i + 1)) return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));

    std::vector<int> pids = {static_cast<int>(::getpid())};
    for (const inorder::WorkerStats& w : queue.stats().workers) pids.push_back(w.pid);
    std::vector<double> before;
    for (const int pid : pids) {
      const std::optional<double> cpu = proc_cpu_seconds(pid);
      if (!cpu) return std::nullopt;
      before.push_back(*cpu);
    }
    const auto start = SteadyClock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    IdleCpu idle;
    idle.wall_s = seconds_since(start);
    idle.workers = workers;
    for (std::size_t k = 0; k < pids.size(); ++k) {
      const std::optional<double> cpu = proc_cpu_seconds(pids[k]);
      if (!cpu) return std::nullopt;
      (k == 0 ? idle.parent_cpu_s : idle.workers_cpu_s) += *cpu - before[k];
    }
    return idle;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<LatencyReport> measure_latency(std::size_t hot, std::size_t cold) {
  LatencyReport report;
  try {
    inorder::ParallelQueue<long> queue({.workers = 1});
    long next = 0;
    if (!queue_round_trips(queue, 100, false, next)) return std::nullopt;  // warm-up
    auto h = queue_round_trips(queue, hot, false, next);
    auto c = queue_round_trips(queue, cold, true, next);
    if (!h || !c) return std::nullopt;
    report.queue_hot = summarize(*h);
    report.queue_cold = summarize(*c);
  } catch (const std::exception&) {
    return std::nullopt;
  }

  int to_child[2];
  int from_child[2];
  if (::pipe(to_child) != 0) return std::nullopt;
  if (::pipe(from_child) != 0) {
    ::close(to_child[0]);
    ::close(to_child[1]);
    return std::nullopt;
  }
  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child < 0) {
    for (const int fd : {to_child[0], to_child[1], from_child[0], from_child[1]}) ::close(fd);
    return std::nullopt;
  }
  if (child == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(0);
    ::close(to_child[1]);
    ::close(from_child[0]);
    std::array<char, 8> msg{};
    while (read_all(to_child[0], msg.data(), msg.size()))
      if (!write_all(from_child[1], msg.data(), msg.size())) break;
    ::_exit(0);
  }
  ::close(to_child[0]);
  ::close(from_child[1]);
  std::uint64_t next = 0;
  auto w = pipe_round_trips(to_child[1], from_child[0], 100, false, next);  // warm-up
  auto h = w ? pipe_round_trips(to_child[1], from_child[0], hot, false, next) : std::nullopt;
  auto c = h ? pipe_round_trips(to_child[1], from_child[0], cold, true, next) : std::nullopt;
  ::close(to_child[1]);  // the child sees end of file and exits
  ::close(from_child[0]);
  wait_child(child);
  if (!c) return std::nullopt;
  report.pipe_hot = summarize(*h);
  report.pipe_cold = summarize(*c);
  return report;
}

}  // namespace compare
