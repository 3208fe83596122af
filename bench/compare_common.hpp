// bench/compare_common.hpp: what every system of inorder-compare shares: the
// workloads (the task each system runs and how its result is checked), the
// result of one measured run, and small I/O and timing helpers.
//
// A task is `R fn(long index)` with R = long (the index itself) or std::string
// (a payload that starts with the index). Every result therefore carries its
// index, and every driver checks that the k-th result it receives is task k's.
// The same definitions are mirrored in bench/imap.py for the Python systems.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bench_util.hpp"

namespace compare {

using SteadyClock = std::chrono::steady_clock;

enum class Workload { kTiny, k1us, k50us, kSkewed, k64KiB, k1MiB };

struct WorkloadInfo {
  Workload id;
  const char* name;     ///< as on the command line and in the CSV
  std::size_t payload;  ///< result bytes for payload workloads, 0 otherwise
  const char* summary;  ///< one line for --help
};

inline constexpr WorkloadInfo kWorkloads[] = {
    {Workload::kTiny, "tiny", 0, "return the index (no work)"},
    {Workload::k1us, "1us", 0, "spin 1 us on steady_clock, return the index"},
    {Workload::k50us, "50us", 0, "spin 50 us on steady_clock, return the index"},
    {Workload::kSkewed, "skewed", 0, "sleep 1 ms; 1 task in 100 (hashed index) sleeps 50 ms"},
    {Workload::k64KiB, "64KiB", std::size_t{64} << 10, "return a 64 KiB payload"},
    {Workload::k1MiB, "1MiB", std::size_t{1} << 20, "return a 1 MiB payload"},
};

[[nodiscard]] const WorkloadInfo& info(Workload w);
[[nodiscard]] std::optional<Workload> parse_workload(std::string_view name);

// ---------------------------------------------------------------------------
// The tasks. Plain functions: their addresses are valid in forked children, so
// they can be sent to inorder workers as function pointers.

/// Busy-waits `ns` nanoseconds on steady_clock (one CPU busy the whole time).
void spin_ns(long ns);
/// Whether task `index` of the skewed workload is a slow one: splitmix64 of
/// the index, modulo 100, is zero (about 1 in 100, at irregular positions).
[[nodiscard]] bool is_slow(long index);

long task_tiny(long i);
long task_1us(long i);
long task_50us(long i);
long task_skewed(long i);
std::string task_64KiB(long i);
std::string task_1MiB(long i);

/// The payload of task i: n bytes, the first 8 the index (native endianness),
/// the rest the letter 'a' + i % 26.
[[nodiscard]] std::string make_payload(long i, std::size_t n);
[[nodiscard]] bool payload_ok(long i, const char* data, std::size_t len, std::size_t n);

/// A workload as a typed job: the task and the check of its result.
template <class R>
struct Job {
  R (*fn)(long);
  bool (*check)(long index, const R& result);
};

bool check_index(long i, const long& r);
bool check_64KiB(long i, const std::string& r);
bool check_1MiB(long i, const std::string& r);

/// Calls `v(Job<long>{...})` or `v(Job<std::string>{...})` for workload w and
/// returns what it returns (every call must return the same type).
template <class Visitor>
auto with_job(Workload w, Visitor&& v) {
  switch (w) {
    case Workload::kTiny:
      return v(Job<long>{&task_tiny, &check_index});
    case Workload::k1us:
      return v(Job<long>{&task_1us, &check_index});
    case Workload::k50us:
      return v(Job<long>{&task_50us, &check_index});
    case Workload::kSkewed:
      return v(Job<long>{&task_skewed, &check_index});
    case Workload::k64KiB:
      return v(Job<std::string>{&task_64KiB, &check_64KiB});
    case Workload::k1MiB:
      break;
  }
  return v(Job<std::string>{&task_1MiB, &check_1MiB});
}

// ---------------------------------------------------------------------------
// One measured run of one system on one cell.

struct RunResult {
  bool ok = false;       ///< measured and every result in order
  bool skipped = false;  ///< not run (e.g. python3 missing); `error` says why
  long tasks = 0;
  double seconds = 0.0;  ///< wall clock from the first task handed out to the last result checked
  std::string error;     ///< why not ok

  static RunResult failure(std::string why) {
    RunResult r;
    r.error = std::move(why);
    return r;
  }
  static RunResult measured(long tasks, double seconds) {
    RunResult r;
    r.ok = true;
    r.tasks = tasks;
    r.seconds = seconds;
    return r;
  }
};

/// Message for a result that is not task `expected`'s.
[[nodiscard]] std::string out_of_order(long expected);

[[nodiscard]] inline double seconds_since(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

// ---------------------------------------------------------------------------
// Blocking I/O helpers and /proc CPU time, shared with the other bench programs.
using bench::allowed_cpus;
using bench::pin_this_thread;
using bench::proc_cpu_seconds;
using bench::read_all;
using bench::ThreadMaskGuard;
using bench::write_all;

/// Waits for a child, retrying on EINTR; returns its wait status (-1 on error).
int wait_child(int pid);

/// Nearest-rank percentile (p in (0, 1]) of `samples`; sorts them.
[[nodiscard]] double percentile(std::vector<double>& samples, double p);

}  // namespace compare
