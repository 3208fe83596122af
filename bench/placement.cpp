// bench/placement.cpp: inorder-placement, tiny tasks with the producer, the
// getter and the worker placed on chosen CPUs.
//
//   inorder-placement [--repeat N] [--scale X]
//
// The `tiny` workload of inorder-compare (a task returns its index) has three
// parties: the thread that puts, the thread that gets and the worker process.
// Where the kernel runs them decides most of its speed (docs/benchmarks.md),
// so this program pins them, one placement at a time, on the first two CPUs
// the process may use, and measures in each placement:
//
//   inorder    inorder-compare's inorder-default system (compare_inorder.cpp)
//              with Options{.workers = 1} only: a producer thread puts, the
//              calling thread gets and checks, the worker is pinned from
//              Options::worker_init.
//   batched    the floor of any hand-off design: three threads in the same
//              places pass the tasks through packed arrays (four tasks and
//              eight results to a cache line), each publishing one counter,
//              read once per batch. No fault isolation, one producer, one
//              worker: what moving the data between the CPUs costs and no more.
//
// and once per round, unpinned, oneTBB's one-thread pipeline (the best TBB row of the
// `tiny` workload on this kind of machine) when the build has oneTBB. The
// placements are measured round-robin, --repeat times (5), and each figure is
// the median; the last column is inorder over TBB, the ratio the tiny-task
// target of docs/benchmarks.md names. Before and after, it measures how long
// a cache line takes from one CPU to the other, which on a shared virtual
// machine changes with the host's load. The library itself never pins
// anything: this is a measuring tool.
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "compare_systems.hpp"

namespace {

using compare::SteadyClock;

/// CPUs of one placement; -1 leaves that party to the kernel.
struct Placement {
  const char* name;
  int producer;
  int getter;
  int worker;
};

double rate(long n, SteadyClock::time_point start) {
  return static_cast<double>(n) / compare::seconds_since(start);
}

/// Tasks/s of inorder-compare's `inorder` system on `tiny` with
/// Options{.workers = 1} only, pinned as `p` says; nullopt on a failed run.
std::optional<double> run_inorder(const Placement& p, long n) {
  compare::InorderConfig config;
  config.producer_cpu = p.producer;
  config.getter_cpu = p.getter;
  config.worker_cpu = p.worker;
  const compare::RunResult r = compare::run_inorder(compare::Workload::kTiny, 1, n, config).result;
  if (!r.ok) return std::nullopt;
  return static_cast<double>(r.tasks) / r.seconds;
}

/// Waits until cond() holds: a few pauses, then yields (the party waited for
/// may share this CPU). Bounded by the run: every party is running.
template <class Cond>
void wait_until(Cond cond) {
  for (int k = 0; !cond(); ++k) {
    if (k < 64)
      __builtin_ia32_pause();
    else
      sched_yield();
  }
}

/// The batched floor, see the header. Tasks/s, or nullopt on a wrong result.
std::optional<double> run_batched(const Placement& p, long n) {
  constexpr std::size_t kRing = 4096;  // power of two
  struct Task {
    long (*fn)(long);
    long arg;
  };
  static_assert(sizeof(Task) == 16, "four tasks to a cache line");
  struct alignas(64) Counter {
    std::atomic<long> value{0};
  };
  std::vector<Task> tasks(kRing);
  std::vector<long> results(kRing);
  Counter put;    // written by the producer (release), read by the worker
  Counter done;   // written by the worker (release), read by the getter
  Counter taken;  // written by the getter (release), read by the producer

  const compare::ThreadMaskGuard guard;
  compare::pin_this_thread(p.getter);
  const auto start = SteadyClock::now();
  std::thread worker([&] {
    compare::pin_this_thread(p.worker);
    for (long d = 0; d < n;) {
      long until = 0;
      wait_until([&] { return (until = put.value.load(std::memory_order_acquire)) > d; });
      for (; d < until; ++d) {
        const Task& t = tasks[static_cast<std::size_t>(d) & (kRing - 1)];
        results[static_cast<std::size_t>(d) & (kRing - 1)] = t.fn(t.arg);
      }
      done.value.store(d, std::memory_order_release);
    }
  });
  std::thread producer([&] {
    compare::pin_this_thread(p.producer);
    long limit = 0;
    for (long i = 0; i < n; ++i) {
      if (i >= limit)
        wait_until([&] {
          return (limit = taken.value.load(std::memory_order_acquire) + static_cast<long>(kRing)) >
                 i;
        });
      tasks[static_cast<std::size_t>(i) & (kRing - 1)] = Task{compare::task_tiny, i};
      put.value.store(i + 1, std::memory_order_release);
    }
  });
  bool ok = true;
  long ready = 0;
  for (long e = 0; e < n; ++e) {
    if (e >= ready)
      wait_until([&] { return (ready = done.value.load(std::memory_order_acquire)) > e; });
    if (results[static_cast<std::size_t>(e) & (kRing - 1)] != e) ok = false;
    taken.value.store(e + 1, std::memory_order_release);
  }
  producer.join();
  worker.join();
  const double r = rate(n, start);
  if (!ok) return std::nullopt;
  return r;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: inorder-placement [--repeat N] [--scale X]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  int repeat = 5;
  double scale = 1.0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--repeat" && i + 1 < argc) {
      repeat = std::atoi(argv[++i]);
      if (repeat < 1) usage();
    } else if (arg == "--scale" && i + 1 < argc) {
      scale = std::atof(argv[++i]);
      if (!(scale > 0)) usage();
    } else {
      usage();
    }
  }

  const std::vector<int> cpus = compare::allowed_cpus(2);
  const int a = cpus.at(0);
  const int b = cpus.size() > 1 ? cpus[1] : a;
  std::vector<Placement> places = {{"all on one CPU", a, a, a}};
  if (b != a) {
    places.push_back({"worker alone", a, a, b});
    places.push_back({"getter alone", a, b, a});
    places.push_back({"producer alone", b, a, a});
  }
  places.push_back({"unpinned", -1, -1, -1});

  // The hop before and after: the state of the machine the table was measured in.
  const std::optional<double> hop_before = compare::core_to_core_ns(200'000);
  const long n_inorder = std::max(1L, static_cast<long>(2'000'000 * scale));
  const long n_batched = std::max(1L, static_cast<long>(20'000'000 * scale));
  const long n_tbb = std::max(1L, static_cast<long>(5'000'000 * scale));
  std::vector<std::vector<double>> inorder_rates(places.size()), batched_rates(places.size());
  std::vector<double> tbb_rates;
  int failures = 0;
  for (int r = 0; r < repeat; ++r) {
    for (std::size_t k = 0; k < places.size(); ++k) {
      if (const auto x = run_inorder(places[k], n_inorder))
        inorder_rates[k].push_back(*x);
      else
        ++failures;
      if (const auto x = run_batched(places[k], n_batched))
        batched_rates[k].push_back(*x);
      else
        ++failures;
    }
    if (compare::tbb_available()) {
      const compare::RunResult t = compare::run_tbb(compare::Workload::kTiny, 1, n_tbb, 1024);
      if (t.ok)
        tbb_rates.push_back(static_cast<double>(t.tasks) / t.seconds);
      else
        ++failures;
    }
  }

  const double tbb = median(tbb_rates);
  std::printf("tiny tasks, 1 worker, CPUs %d and %d; medians of %d runs (M tasks/s)\n", a, b,
              repeat);
  std::printf("%-16s %9s %9s %9s %9s %9s %14s\n", "placement", "producer", "getter", "worker",
              "inorder", "batched", "inorder / tbb");
  for (std::size_t k = 0; k < places.size(); ++k) {
    const Placement& p = places[k];
    auto cpu = [](int c) { return c < 0 ? std::string("any") : std::to_string(c); };
    const double in = median(inorder_rates[k]);
    std::printf("%-16s %9s %9s %9s %9.2f %9.2f", p.name, cpu(p.producer).c_str(),
                cpu(p.getter).c_str(), cpu(p.worker).c_str(), in / 1e6,
                median(batched_rates[k]) / 1e6);
    if (tbb > 0)
      std::printf(" %14.3f\n", in / tbb);
    else
      std::printf(" %14s\n", "-");
  }
  if (tbb > 0)
    std::printf("tbb, one thread, unpinned: %.2f M tasks/s\n", tbb / 1e6);
  else
    std::printf("tbb: not in this build\n");
  if (const auto hop = compare::core_to_core_ns(200'000); hop && hop_before)
    std::printf("a cache line takes %.0f ns (before) and %.0f ns (after) from CPU %d to CPU %d\n",
                *hop_before, *hop, a, b);
  if (failures != 0) std::fprintf(stderr, "%d runs delivered a wrong result\n", failures);
  return failures == 0 ? 0 : 1;
}
