// bench/compare.cpp: inorder-compare, inorder against what users compare it with.
//
//   inorder-compare [--csv] [--quick] [--workloads a,b] [--systems x,y]
//                   [--workers 1,2] [--scale X] [--repeat N] [--extra FILE]
//                   [--runs FILE] [--no-extras] [--window N] [--capacity N]
//                   [--inline-bytes N] [--tokens N]
//   inorder-compare --sweep WORKLOAD [--csv] [--quick] [--workers 1,2] [--repeat N]
//                   [--windows a,b] [--inline a,b] [--capacities a,b] [--spills a,b]
//
// Runs every system on every workload with every worker count, one after the
// other in one process, and prints one row per (workload, system, workers):
// a table by default, or with --csv exactly
//     workload,system,workers,tasks,seconds,tasks_per_s
// on stdout and nothing else there. Each row is the median (by rate) of
// --repeat runs (3; --quick: 1). Before and after the table it measures how
// long a cache line takes from one CPU to the other (always: tiny-task
// ratios follow it) and how much two spinning processes get done at once (the
// ceiling of any 2-worker speed-up on this machine; not with --no-extras);
// after it, an idle queue's CPU use and put -> get latency against a pipe
// round trip; then the ratios the benchmark targets name. Those reports go to stdout with the
// table, to stderr with --csv, and with --extra FILE also to FILE as `metric,value` CSV. --runs
// FILE writes every single run (workload,system,workers,run,tasks,seconds,tasks_per_s), to show the
// spread behind each median. Other notes go to stderr. A result out of order fails its row: the row
// is not printed, the error is, and the program exits with status 1 at the end.
//
// Systems (compare_systems.hpp has the details):
//   inorder          ParallelQueue<R>: a producer thread puts, the main thread
//                    gets. Options per workload (inorder_config below): window
//                    1024 for tiny and 1us, 50 x workers for skewed, the
//                    defaults otherwise.
//   inorder-default  the same with Options{.workers = N} only: window 1024,
//                    capacity max(64, 2 x window), inline 192.
//   tbb              oneTBB parallel_pipeline, serial_in_order -> parallel ->
//                    serial_in_order, live tokens = the inorder row's window,
//                    in a task_arena(workers).
//   forkpipe         hand-written pool over fork and pipes, 10 tasks queued per child.
//   barrier          batches of workers x 10 tasks over the same kind of children.
//   py-imap-1        python3 multiprocessing.Pool(workers).imap(.., chunksize=1)
//   py-imap-100      the same with chunksize=100 (bench/imap.py).
//
// --sweep WORKLOAD measures inorder alone over workers x window x inline_bytes
// (and capacity and max_spill_bytes when lists are given) and recommends the
// Options with the best throughput, preferring the smallest ring among those
// within 5% of the best.
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <ranges>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <inorder/options.hpp>
#include <inorder/pool.hpp>

#include "compare_systems.hpp"

#ifndef INORDER_IMAP_PY
#define INORDER_IMAP_PY "bench/imap.py"
#endif

namespace compare {
namespace {

// ---------------------------------------------------------------------------
// Systems and task counts.

enum class System { kInorder, kInorderDefault, kTbb, kForkpipe, kBarrier, kPyImap1, kPyImap100 };

struct SystemInfo {
  System id;
  const char* name;
};

constexpr SystemInfo kSystems[] = {
    {System::kInorder, "inorder"},
    {System::kInorderDefault, "inorder-default"},
    {System::kTbb, "tbb"},
    {System::kForkpipe, "forkpipe"},
    {System::kBarrier, "barrier"},
    {System::kPyImap1, "py-imap-1"},
    {System::kPyImap100, "py-imap-100"},
};

const char* name_of(System s) {
  for (const SystemInfo& i : kSystems)
    if (i.id == s) return i.name;
  return "?";
}

/// Tasks per run, per workload and system, chosen so that one run takes roughly
/// 0.5 to 1.5 s on a 2-core machine (a few rows of tbb and Python, whose rates
/// differ by two orders of magnitude between 1 and 2 workers, run shorter or
/// longer). Rates (tasks/s) are comparable across rows. inorder's rows ran for
/// 20-40 ms at `tiny` and `1MiB` once the library became fast enough, short
/// enough for one scheduling slice to move a row's median: they now run as
/// many tasks as the other inorder row.
struct Counts {
  long inorder, inorder_default, tbb, forkpipe, barrier, py1, py100;
};

Counts counts_for(Workload w) {
  switch (w) {
    case Workload::kTiny:
      return {5'000'000, 5'000'000, 5'000'000, 150'000, 50'000, 10'000, 500'000};
    case Workload::k1us:
      return {500'000, 500'000, 500'000, 100'000, 50'000, 10'000, 150'000};
    case Workload::k50us:
      return {10'000, 10'000, 10'000, 10'000, 10'000, 5'000, 10'000};
    case Workload::kSkewed:
      return {1'000, 1'000, 1'000, 1'000, 1'000, 1'000, 1'000};
    case Workload::k64KiB:
      return {50'000, 50'000, 500'000, 20'000, 15'000, 2'500, 1'500};
    case Workload::k1MiB:
      break;
  }
  return {5'000, 5'000, 2'000, 1'000, 1'000, 250, 150};
}

long count_for(Workload w, System s, double scale) {
  const Counts c = counts_for(w);
  long n = 0;
  switch (s) {
    case System::kInorder:
      n = c.inorder;
      break;
    case System::kInorderDefault:
      n = c.inorder_default;
      break;
    case System::kTbb:
      n = c.tbb;
      break;
    case System::kForkpipe:
      n = c.forkpipe;
      break;
    case System::kBarrier:
      n = c.barrier;
      break;
    case System::kPyImap1:
      n = c.py1;
      break;
    case System::kPyImap100:
      n = c.py100;
      break;
  }
  return std::max(20L, static_cast<long>(static_cast<double>(n) * scale));
}

// ---------------------------------------------------------------------------
// Command line.

struct Args {
  bool csv = false;
  bool quick = false;
  bool extras = true;  // idle CPU, latency, CPU scaling
  double scale = 1.0;
  int repeat = 3;  // runs per row; the row shows the median by rate
  bool scale_given = false;
  std::vector<Workload> workloads;
  std::vector<System> systems;
  std::vector<unsigned> workers;  // empty: the defaults
  std::optional<std::string> extra_file;
  std::optional<std::string> runs_file;  // every run of every row, as CSV
  std::optional<Workload> sweep;
  InorderConfig inorder;
  std::optional<std::size_t> tokens;  // tbb live tokens; default: inorder's window
  std::vector<std::size_t> windows, inlines, capacities, spills;  // sweep grid overrides
};

[[noreturn]] void usage(const char* why) {
  if (why != nullptr) std::fprintf(stderr, "inorder-compare: %s\n", why);
  std::fprintf(
      stderr,
      "usage: inorder-compare [--csv] [--quick] [--workloads a,b] [--systems x,y]\n"
      "                       [--workers 1,2] [--scale X] [--repeat N] [--extra FILE]\n"
      "                       [--runs FILE] [--no-extras]\n"
      "                       [--window N] [--capacity N] [--inline-bytes N] [--tokens N]\n"
      "       inorder-compare --sweep WORKLOAD [--csv] [--quick] [--workers 1,2]\n"
      "                       [--windows a,b] [--inline a,b] [--capacities a,b]"
      " [--spills a,b]\n"
      "workloads:");
  for (const WorkloadInfo& w : kWorkloads) std::fprintf(stderr, " %s", w.name);
  std::fprintf(stderr, "\nsystems:");
  for (const SystemInfo& s : kSystems) std::fprintf(stderr, " %s", s.name);
  std::fprintf(stderr, "\n");
  std::exit(2);
}

std::vector<std::string> split(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    const auto comma = s.find(',');
    if (comma != 0) out.emplace_back(s.substr(0, comma));
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return out;
}

std::size_t parse_size(const std::string& s, const char* what) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  std::size_t mult = 1;
  if (end != nullptr && (*end == 'k' || *end == 'K'))
    mult = std::size_t{1} << 10, ++end;
  else if (end != nullptr && (*end == 'm' || *end == 'M'))
    mult = std::size_t{1} << 20, ++end;
  if (end == s.c_str() || end == nullptr || *end != '\0') {
    const std::string msg = std::string("bad number for ") + what + ": " + s;
    usage(msg.c_str());
  }
  return static_cast<std::size_t>(v) * mult;
}

std::vector<std::size_t> parse_sizes(const char* list, const char* what) {
  std::vector<std::size_t> out;
  for (const std::string& s : split(list)) out.push_back(parse_size(s, what));
  if (out.empty()) usage("empty list");
  return out;
}

Args parse_args(int argc, char** argv) {
  Args a;
  bool repeat_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage("missing value");
      return argv[++i];
    };
    if (arg == "--csv") {
      a.csv = true;
    } else if (arg == "--quick") {
      a.quick = true;
    } else if (arg == "--repeat") {
      a.repeat = static_cast<int>(parse_size(value(), "--repeat"));
      if (a.repeat < 1 || a.repeat > 99) usage("--repeat: 1..99");
      repeat_given = true;
    } else if (arg == "--no-extras") {
      a.extras = false;
    } else if (arg == "--scale") {
      a.scale = std::strtod(value(), nullptr);
      a.scale_given = true;
      if (!(a.scale > 0.0)) usage("--scale must be > 0");
    } else if (arg == "--workloads") {
      for (const std::string& s : split(value())) {
        const auto w = parse_workload(s);
        if (!w) usage(("unknown workload " + s).c_str());
        a.workloads.push_back(*w);
      }
    } else if (arg == "--systems") {
      for (const std::string& s : split(value())) {
        const auto it = std::find_if(std::begin(kSystems), std::end(kSystems),
                                     [&](const SystemInfo& i) { return s == i.name; });
        if (it == std::end(kSystems)) usage(("unknown system " + s).c_str());
        a.systems.push_back(it->id);
      }
    } else if (arg == "--workers") {
      for (const std::string& s : split(value())) {
        const std::size_t n = parse_size(s, "--workers");
        if (n < 1 || n > 256) usage("--workers: 1..256");
        a.workers.push_back(static_cast<unsigned>(n));
      }
    } else if (arg == "--extra") {
      a.extra_file = value();
    } else if (arg == "--runs") {
      a.runs_file = value();
    } else if (arg == "--sweep") {
      const auto w = parse_workload(value());
      if (!w) usage("unknown workload for --sweep");
      a.sweep = w;
    } else if (arg == "--window") {
      a.inorder.window = parse_size(value(), "--window");
    } else if (arg == "--tokens") {
      a.tokens = parse_size(value(), "--tokens");
    } else if (arg == "--capacity") {
      a.inorder.capacity = parse_size(value(), "--capacity");
    } else if (arg == "--inline-bytes") {
      a.inorder.inline_bytes = parse_size(value(), "--inline-bytes");
    } else if (arg == "--windows") {
      a.windows = parse_sizes(value(), "--windows");
    } else if (arg == "--inline") {
      a.inlines = parse_sizes(value(), "--inline");
    } else if (arg == "--capacities") {
      a.capacities = parse_sizes(value(), "--capacities");
    } else if (arg == "--spills") {
      a.spills = parse_sizes(value(), "--spills");
    } else if (arg == "-h" || arg == "--help") {
      usage(nullptr);
    } else {
      usage(("unknown argument " + std::string(arg)).c_str());
    }
  }
  if (a.quick && !a.scale_given) a.scale = 0.02;
  if (a.quick && !repeat_given) a.repeat = 1;
  if (a.workloads.empty())
    for (const WorkloadInfo& w : kWorkloads) a.workloads.push_back(w.id);
  if (a.systems.empty())
    for (const SystemInfo& s : kSystems) a.systems.push_back(s.id);
  return a;
}

unsigned cores() {
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<unsigned>(n) : 1U;
}

/// Worker counts for a workload: --workers if given; otherwise 1, 2 and the
/// number of cores if larger. The skewed workload sleeps instead of computing,
/// so it also runs with 2 x cores workers (4 on a 2-core machine).
std::vector<unsigned> workers_for(const Args& a, Workload w) {
  if (!a.workers.empty()) return a.workers;
  std::vector<unsigned> out = {1, 2};
  const unsigned n = cores();
  if (n > 2) out.push_back(n);
  if (w == Workload::kSkewed && 2 * n > out.back()) out.push_back(2 * n);
  return out;
}

// ---------------------------------------------------------------------------
// Output.

struct Row {
  Workload workload;
  System system;
  unsigned workers;
  RunResult result;
  [[nodiscard]] double rate() const {
    return result.seconds > 0.0 ? static_cast<double>(result.tasks) / result.seconds : 0.0;
  }
};

std::string human_rate(double r) {
  char buf[32];
  if (r >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2f M/s", r / 1e6);
  else if (r >= 1e3)
    std::snprintf(buf, sizeof buf, "%.1f k/s", r / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.1f /s", r);
  return buf;
}

void print_table_header() {
  std::printf("%-8s %-15s %7s %9s %9s %13s %11s\n", "workload", "system", "workers", "tasks",
              "seconds", "tasks/s", "us/task");
}

void print_row(const Args& a, const Row& r) {
  if (a.csv) {
    std::printf("%s,%s,%u,%ld,%.6f,%.1f\n", info(r.workload).name, name_of(r.system), r.workers,
                r.result.tasks, r.result.seconds, r.rate());
  } else {
    std::printf("%-8s %-15s %7u %9ld %9.3f %13s %11.3f\n", info(r.workload).name, name_of(r.system),
                r.workers, r.result.tasks, r.result.seconds, human_rate(r.rate()).c_str(),
                r.rate() > 0 ? 1e6 / r.rate() : 0.0);
  }
  std::fflush(stdout);
}

/// Where the summary goes: stdout beside the table, stderr beside the CSV.
std::FILE* summary_stream(const Args& a) { return a.csv ? stderr : stdout; }

// ---------------------------------------------------------------------------
// The comparison run.

struct Context {
  std::optional<std::string> python;
  std::string script;
};

/// The Options of the `inorder` rows, per workload: what `--sweep` recommends
/// on a 2-core machine (docs/tuning.md), rounded to a rule a user can apply.
/// Unset fields keep the defaults. --window, --capacity and --inline-bytes
/// override them for every workload.
InorderConfig inorder_config(const Args& a, Workload w, unsigned workers) {
  InorderConfig c;
  switch (w) {
    case Workload::kTiny:
    case Workload::k1us:
      c.window = 1024;  // tasks of a few microseconds or less: a deep window
      break;
    case Workload::kSkewed:
      c.window = 50 * std::size_t{workers};  // covers one 50 ms task at 1 ms per task
      break;
    case Workload::k50us:
    case Workload::k64KiB:
    case Workload::k1MiB:
      break;  // the defaults: window 1024, capacity 2 x window
  }
  if (a.inorder.window) c.window = a.inorder.window;
  if (a.inorder.capacity) c.capacity = a.inorder.capacity;
  if (a.inorder.inline_bytes) c.inline_bytes = a.inorder.inline_bytes;
  return c;
}

/// TBB's live tokens: --tokens, else the same in-flight bound as the window of
/// the `inorder` row (a token is held from input to output, as a window place).
std::size_t tokens_for(const Args& a, Workload w, unsigned workers) {
  if (a.tokens) return *a.tokens;
  return inorder_config(a, w, workers).window.value_or(10 * std::size_t{workers});
}

RunResult run_one(const Context& ctx, Workload w, System s, unsigned workers, long tasks,
                  const Args& a) {
  switch (s) {
    case System::kInorder:
      return run_inorder(w, workers, tasks, inorder_config(a, w, workers)).result;
    case System::kInorderDefault:
      return run_inorder(w, workers, tasks, InorderConfig{}).result;
    case System::kTbb:
      return run_tbb(w, workers, tasks, tokens_for(a, w, workers));
    case System::kForkpipe:
      return run_forkpipe(w, workers, tasks, 10);
    case System::kBarrier:
      return run_barrier(w, workers, tasks, 10);
    case System::kPyImap1:
    case System::kPyImap100:
      break;
  }
  if (!ctx.python) {
    RunResult r;
    r.skipped = true;
    r.error = "python3 not found";
    return r;
  }
  return run_python(w, workers, tasks, s == System::kPyImap1 ? 1 : 100, *ctx.python, ctx.script);
}

/// Runs `once` a.repeat times; the median run by rate, or the first failure.
/// Every run, in order, is appended to `all` when given.
template <class Once>
RunResult run_repeated(const Args& a, Once&& once, std::vector<RunResult>* all = nullptr) {
  std::vector<RunResult> runs;
  for (int k = 0; k < a.repeat; ++k) {
    RunResult r = once();
    if (!r.ok) return r;
    if (all != nullptr) all->push_back(r);
    runs.push_back(std::move(r));
  }
  std::sort(runs.begin(), runs.end(), [](const RunResult& x, const RunResult& y) {
    return static_cast<double>(x.tasks) / x.seconds < static_cast<double>(y.tasks) / y.seconds;
  });
  return runs[runs.size() / 2];
}

const Row* find_row(const std::vector<Row>& rows, Workload w, System s, unsigned workers) {
  for (const Row& r : rows)
    if (r.workload == w && r.system == s && r.workers == workers) return &r;
  return nullptr;
}

const Row* best_row(const std::vector<Row>& rows, Workload w, System s) {
  const Row* best = nullptr;
  for (const Row& r : rows)
    if (r.workload == w && r.system == s && (best == nullptr || r.rate() > best->rate())) best = &r;
  return best;
}

struct Metrics {
  std::vector<std::pair<std::string, double>> values;
  void add(std::string name, double v) { values.emplace_back(std::move(name), v); }
};

void report_ratios(const Args& a, const std::vector<Row>& rows, Metrics& m) {
  std::FILE* out = summary_stream(a);
  std::fprintf(out, "\nratios (same run):\n");
  const Row* it = best_row(rows, Workload::kTiny, System::kInorder);
  if (const Row* tb = best_row(rows, Workload::kTiny, System::kTbb); it && tb) {
    const double r = it->rate() / tb->rate();
    std::fprintf(out,
                 "  tiny: inorder best / tbb best          = %.3f  (inorder %s at %u workers, "
                 "tbb %s at %u; target >= 1.0)\n",
                 r, human_rate(it->rate()).c_str(), it->workers, human_rate(tb->rate()).c_str(),
                 tb->workers);
    m.add("tiny_inorder_best_over_tbb_best", r);
  }
  const Row* id = best_row(rows, Workload::kTiny, System::kInorderDefault);
  if (const Row* tb = best_row(rows, Workload::kTiny, System::kTbb); id && tb) {
    const double r = id->rate() / tb->rate();
    std::fprintf(out,
                 "  tiny: inorder-default best / tbb best  = %.3f  (inorder-default %s; "
                 "target >= 1.5)\n",
                 r, human_rate(id->rate()).c_str());
    m.add("tiny_inorder_default_best_over_tbb_best", r);
    m.add("tiny_default_over_tbb", r);
  }
  // Large results with the defaults: bytes per second at 1 MiB against 64 KiB
  // (the spill path should run at memory speed at both), and against the
  // hand-written pipe pool at each size.
  const Row* k64 = best_row(rows, Workload::k64KiB, System::kInorderDefault);
  const Row* mib = best_row(rows, Workload::k1MiB, System::kInorderDefault);
  if (k64 && mib) {
    const double r = mib->rate() * 16.0 / k64->rate();
    std::fprintf(out,
                 "  1MiB: inorder-default bytes/s / 64KiB bytes/s = %.3f  (%s of 1 MiB, %s of "
                 "64 KiB; target >= 0.7)\n",
                 r, human_rate(mib->rate()).c_str(), human_rate(k64->rate()).c_str());
    m.add("mib_over_64kib_per_byte", r);
  }
  for (const Workload w : {Workload::k64KiB, Workload::k1MiB}) {
    const Row* d = best_row(rows, w, System::kInorderDefault);
    const Row* f = best_row(rows, w, System::kForkpipe);
    if (!d || !f) continue;
    const double r = d->rate() / f->rate();
    std::fprintf(out, "  %s: inorder-default best / forkpipe best = %.3f  (target > 1)\n",
                 info(w).name, r);
    m.add(std::string(info(w).name) + "_inorder_default_over_forkpipe", r);
  }
  if (const Row* py = best_row(rows, Workload::kTiny, System::kPyImap1); it && py) {
    const double r = it->rate() / py->rate();
    std::fprintf(out,
                 "  tiny: inorder best / py-imap-1 best    = %.1f  (py-imap-1 %s at %u workers; "
                 "target >= 100)\n",
                 r, human_rate(py->rate()).c_str(), py->workers);
    m.add("tiny_inorder_best_over_py_imap_1_best", r);
  }
  if (const Row* py = best_row(rows, Workload::kTiny, System::kPyImap1); id && py) {
    const double r = id->rate() / py->rate();
    std::fprintf(out, "  tiny: inorder-default best / py-imap-1 best = %.1f\n", r);
    m.add("tiny_inorder_default_best_over_py_imap_1_best", r);
  }
  if (const Row* py = best_row(rows, Workload::kTiny, System::kPyImap100); it && py) {
    const double r = it->rate() / py->rate();
    std::fprintf(out, "  tiny: inorder best / py-imap-100 best  = %.1f\n", r);
    m.add("tiny_inorder_best_over_py_imap_100_best", r);
  }
  const Row* one = find_row(rows, Workload::k50us, System::kInorder, 1);
  const Row* two = find_row(rows, Workload::k50us, System::kInorder, 2);
  if (one && two) {
    const double r = two->rate() / one->rate();
    std::fprintf(out, "  50us: inorder 2 workers / 1 worker     = %.3f  (target >= 1.9)\n", r);
    m.add("50us_inorder_2_workers_over_1_worker", r);
  }
  for (const Row& r : rows) {
    if (r.workload != Workload::kSkewed || r.system != System::kInorderDefault) continue;
    const Row* b = find_row(rows, Workload::kSkewed, System::kBarrier, r.workers);
    if (!b) continue;
    const double ratio = b->rate() / r.rate();
    std::fprintf(out, "  skewed: inorder-default time / barrier time = %.3f  at %u workers\n",
                 ratio, r.workers);
    m.add("skewed_inorder_default_time_over_barrier_time_w" + std::to_string(r.workers), ratio);
  }
  for (const Row& r : rows) {
    if (r.workload != Workload::kSkewed || r.system != System::kInorder) continue;
    const Row* b = find_row(rows, Workload::kSkewed, System::kBarrier, r.workers);
    if (!b) continue;
    // Time per task, so that different task counts would still compare.
    const double ratio = b->rate() / r.rate();
    // No scheduler beats the sum of the sleeps spread over every worker.
    double sleeps = 0.0;
    for (long i = 0; i < r.result.tasks; ++i) sleeps += is_slow(i) ? 0.050 : 0.001;
    const double bound = sleeps / r.workers;
    const double best_ratio = bound / (b->result.seconds * static_cast<double>(r.result.tasks) /
                                       static_cast<double>(b->result.tasks));
    std::fprintf(out,
                 "  skewed: inorder time / barrier time    = %.3f  at %u workers (%.3f s vs "
                 "%.3f s; target <= 0.7; sleeps / workers = %.3f s, so >= %.3f for any "
                 "scheduler)\n",
                 ratio, r.workers, r.result.seconds, b->result.seconds, bound, best_ratio);
    m.add("skewed_inorder_time_over_barrier_time_w" + std::to_string(r.workers), ratio);
    m.add("skewed_lower_bound_ratio_w" + std::to_string(r.workers), best_ratio);
  }
}

/// The tools the systems need: the imap.py script, and python3 when a
/// py-imap system is asked for.
Context make_context(const Args& a) {
  Context ctx;
  ctx.script = INORDER_IMAP_PY;
  if (const char* s = std::getenv("INORDER_IMAP_PY"); s != nullptr && *s != '\0') ctx.script = s;
  const bool wants_python = std::any_of(a.systems.begin(), a.systems.end(), [](System s) {
    return s == System::kPyImap1 || s == System::kPyImap100;
  });
  if (wants_python) {
    ctx.python = find_python();
    if (!ctx.python) std::fprintf(stderr, "note: python3 not found: py-imap-* rows skipped\n");
  }
  return ctx;
}

/// Runs every (workload, workers, system) cell, prints its row and keeps it
/// in `rows`; every single run goes to `runs_csv`. Returns the failed cells.
int run_table(const Args& a, const Context& ctx, std::vector<Row>& rows,
              std::ostringstream& runs_csv) {
  int failures = 0;
  std::map<std::string, bool> noted;
  for (const Workload w : a.workloads) {
    for (const unsigned workers : workers_for(a, w)) {
      for (const System s : a.systems) {
        const long tasks = count_for(w, s, a.scale);
        std::vector<RunResult> all;
        Row row{w, s, workers,
                run_repeated(
                    a, [&] { return run_one(ctx, w, s, workers, tasks, a); }, &all)};
        for (std::size_t k = 0; k < all.size(); ++k) {
          runs_csv << info(w).name << ',' << name_of(s) << ',' << workers << ',' << k + 1 << ','
                   << all[k].tasks << ',' << all[k].seconds << ','
                   << static_cast<double>(all[k].tasks) / all[k].seconds << '\n';
        }
        if (row.result.skipped) {
          const std::string key = std::string(name_of(s)) + row.result.error;
          if (!noted[key])
            std::fprintf(stderr, "note: %s skipped: %s\n", name_of(s), row.result.error.c_str());
          noted[key] = true;
          continue;
        }
        if (!row.result.ok) {
          std::fprintf(stderr, "error: %s %s workers=%u: %s\n", info(w).name, name_of(s), workers,
                       row.result.error.c_str());
          ++failures;
          continue;
        }
        print_row(a, row);
        rows.push_back(row);
      }
    }
  }
  return failures;
}

/// Bytes per second of a plain memcpy of `size` bytes between two buffers
/// used over and over (warm, as a queue's result areas are), median of 5
/// timings of enough copies to take ~50 ms each.
double memcpy_bytes_per_s(std::size_t size) {
  std::vector<char> a(size, 'a');
  std::vector<char> b(size, 'b');
  const std::size_t copies = std::max<std::size_t>(8, (std::size_t{512} << 20) / size);
  std::vector<double> rates;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = SteadyClock::now();
    for (std::size_t k = 0; k < copies; ++k) {
      std::memcpy((k & 1) ? a.data() : b.data(), (k & 1) ? b.data() : a.data(), size);
      // Keep the copy: the compiler may not drop a write another copy reads.
      asm volatile("" : : "r"(a.data()), "r"(b.data()) : "memory");
    }
    rates.push_back(static_cast<double>(copies * size) / seconds_since(t0));
  }
  std::sort(rates.begin(), rates.end());
  return rates[2];
}

/// Median us/item of 3 runs of Pool<int>::map(x + 1) over `n` items, default
/// options (automatic chunking); -1 on a wrong result.
double pool_map_us_per_item(int n, unsigned workers) {
  inorder::Pool<int> pool({.workers = workers});
  std::vector<double> runs;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = SteadyClock::now();
    const std::vector<int> out = pool.map([](int x) { return x + 1; }, std::views::iota(0, n));
    if (out.size() != static_cast<std::size_t>(n) || out.back() != n) return -1;
    runs.push_back(seconds_since(t0) * 1e6 / n);
  }
  std::sort(runs.begin(), runs.end());
  return runs[1];
}

/// Python's multiprocessing.Pool.map with its default chunking over `n` tiny
/// items (bench/pool_overhead.py), median us/item; nullopt without python3.
std::optional<double> python_pool_map_us_per_item(int n, unsigned workers) {
  const std::optional<std::string> python = find_python();
  if (!python) return std::nullopt;
  std::string script = INORDER_POOL_PY;
  if (const char* s = std::getenv("INORDER_POOL_PY"); s != nullptr && *s != '\0') script = s;
  const std::string cmd =
      *python + " '" + script + "' " + std::to_string(n) + " " + std::to_string(workers);
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return std::nullopt;
  std::optional<double> us;
  char line[512];
  while (std::fgets(line, sizeof line, p) != nullptr) {
    const std::string text(line);
    const auto at = text.find("median ");
    if (text.find("chunksize=default") == std::string::npos || at == std::string::npos) continue;
    us = std::strtod(text.c_str() + at + 7, nullptr);
  }
  if (::pclose(p) != 0) return std::nullopt;
  return us;
}

/// Idle cost, latency and what the machine gives, measured after the table
/// in the same run (none with --no-extras). Returns the failed measurements.
int report_extras(const Args& a, Metrics& m, std::optional<double> speedup_before,
                  std::optional<double> hop_before) {
  int failures = 0;
  std::FILE* out = summary_stream(a);
  // Idle cost and latency, in the same run as the table.
  const unsigned idle_workers = std::max(2U, cores());
  const double idle_seconds = a.quick ? 0.5 : 2.0;
  if (!a.extras) {
    // --no-extras: the table and the ratios only.
  } else if (const auto idle = measure_idle_cpu(idle_workers, idle_seconds)) {
    std::fprintf(out,
                 "\nidle queue (%u workers, %.2f s, /proc/<pid>/stat, 10 ms ticks): parent %.3f s "
                 "CPU, workers %.3f s CPU = %.2f%% of one core\n",
                 idle->workers, idle->wall_s, idle->parent_cpu_s, idle->workers_cpu_s,
                 idle->percent_of_core());
    m.add("idle_seconds", idle->wall_s);
    m.add("idle_parent_cpu_s", idle->parent_cpu_s);
    m.add("idle_workers_cpu_s", idle->workers_cpu_s);
    m.add("idle_cpu_percent_of_one_core", idle->percent_of_core());
  } else {
    std::fprintf(stderr, "error: idle CPU measurement failed\n");
    ++failures;
  }
  const std::size_t hot = a.quick ? 2'000 : 20'000;
  const std::size_t cold = a.quick ? 100 : 1'000;
  if (!a.extras) {
  } else if (const auto lat = measure_latency(hot, cold)) {
    std::fprintf(out, "latency of one tiny task (us)         p50      p99     mean  samples\n");
    auto line = [&](const char* what, const Latency& l) {
      std::fprintf(out, "  %-34s %8.2f %8.2f %8.2f %8zu\n", what, l.p50_us, l.p99_us, l.mean_us,
                   l.samples);
    };
    line("inorder put->get, back to back", lat->queue_hot);
    line("pipe round trip, back to back", lat->pipe_hot);
    line("inorder put->get, after 1 ms idle", lat->queue_cold);
    line("pipe round trip, after 1 ms idle", lat->pipe_cold);
    std::fprintf(out,
                 "  p50 inorder / pipe: back to back %.3f, after 1 ms idle %.3f (target <= 1)\n",
                 lat->queue_hot.p50_us / lat->pipe_hot.p50_us,
                 lat->queue_cold.p50_us / lat->pipe_cold.p50_us);
    for (const auto& [name, l] :
         {std::pair{"queue_hot", lat->queue_hot}, std::pair{"pipe_hot", lat->pipe_hot},
          std::pair{"queue_cold", lat->queue_cold}, std::pair{"pipe_cold", lat->pipe_cold}}) {
      m.add(std::string("latency_") + name + "_p50_us", l.p50_us);
      m.add(std::string("latency_") + name + "_p99_us", l.p99_us);
    }
    m.add("latency_p50_inorder_over_pipe_hot", lat->queue_hot.p50_us / lat->pipe_hot.p50_us);
    m.add("latency_p50_inorder_over_pipe_cold", lat->queue_cold.p50_us / lat->pipe_cold.p50_us);
  } else {
    std::fprintf(stderr, "error: latency measurement failed\n");
    ++failures;
  }

  // Pool::map of tiny items with the defaults against Python's Pool.map with
  // its default chunking, per item, same run (bench/pool_overhead.sh alone).
  if (a.extras) {
    const int items = a.quick ? 50'000 : 200'000;
    const double ours = pool_map_us_per_item(items, 2);
    const std::optional<double> theirs = python_pool_map_us_per_item(items, 2);
    if (ours <= 0) {
      std::fprintf(stderr, "error: Pool::map measurement failed\n");
      ++failures;
    } else if (theirs) {
      std::fprintf(out,
                   "Pool<int>::map of %d tiny items, 2 workers: %.3f us/item; Python Pool.map "
                   "default chunking: %.3f us/item\n  pool map: python chunked / inorder "
                   "= %.2f  (target >= 3)\n",
                   items, ours, *theirs, *theirs / ours);
      m.add("pool_map_us_per_item", ours);
      m.add("python_pool_map_chunked_us_per_item", *theirs);
      m.add("pool_map_over_python_chunked", *theirs / ours);
    } else {
      std::fprintf(stderr, "note: python3 not found or failed: the Pool::map anchor was skipped\n");
    }
  }

  // The physical limit of large results: a plain memcpy at each size.
  if (a.extras) {
    const double k64 = memcpy_bytes_per_s(std::size_t{64} << 10);
    const double mib = memcpy_bytes_per_s(std::size_t{1} << 20);
    std::fprintf(out,
                 "memcpy, warm buffers: 64 KiB %.1f GB/s, 1 MiB %.1f GB/s; 1 MiB / 64 KiB per "
                 "byte = %.3f\n",
                 k64 / 1e9, mib / 1e9, mib / k64);
    m.add("memcpy_64kib_bytes_per_s", k64);
    m.add("memcpy_1mib_bytes_per_s", mib);
    m.add("memcpy_mib_over_64kib_per_byte", mib / k64);
  }

  // What the machine gives: the ceiling of every "2 workers / 1 worker" ratio.
  if (!a.extras) {
  } else if (const auto speedup = parallel_speedup(2, a.quick ? 0.2 : 1.0);
             speedup && speedup_before) {
    std::fprintf(out,
                 "\ncpu: 2 processes spinning at once get %.2f x (before the table) and %.2f x "
                 "(after) the work of one done (2.00 = two free cores)\n",
                 *speedup_before, *speedup);
    m.add("cpu_two_process_speedup_before", *speedup_before);
    m.add("cpu_two_process_speedup_after", *speedup);
  }
  if (const auto hop = core_to_core_ns(a.quick ? 20'000 : 200'000); hop && hop_before) {
    std::fprintf(out,
                 "cpu: a cache line takes %.0f ns (before the table) and %.0f ns (after) from one "
                 "CPU to the other\n",
                 *hop_before, *hop);
    m.add("cpu_core_to_core_ns_before", *hop_before);
    m.add("cpu_core_to_core_ns_after", *hop);
  }

  return failures;
}

/// Writes the --extra and --runs files. Returns the files that failed.
int write_files(const Args& a, const Metrics& m, const std::ostringstream& runs_csv) {
  int failures = 0;
  if (a.extra_file) {
    std::ofstream f(*a.extra_file);
    f << "metric,value\n";
    for (const auto& [name, v] : m.values) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.6g", v);
      f << name << ',' << buf << '\n';
    }
    if (!f) {
      std::fprintf(stderr, "error: cannot write %s\n", a.extra_file->c_str());
      ++failures;
    }
  }
  if (a.runs_file) {
    std::ofstream f(*a.runs_file);
    f << runs_csv.str();
    if (!f) {
      std::fprintf(stderr, "error: cannot write %s\n", a.runs_file->c_str());
      ++failures;
    }
  }
  return failures;
}

int run_compare(const Args& a) {
  const Context ctx = make_context(a);

  if (a.csv)
    std::printf("workload,system,workers,tasks,seconds,tasks_per_s\n");
  else
    print_table_header();
  std::fflush(stdout);

  const auto start = SteadyClock::now();
  // What the machine gives, before and after the table: the ceiling of every
  // "2 workers / 1 worker" ratio.
  std::optional<double> speedup_before;
  std::optional<double> hop_before;
  if (a.extras) speedup_before = parallel_speedup(2, a.quick ? 0.2 : 1.0);
  // The cross-CPU hop, even with --no-extras (it takes well under a second):
  // tiny-task ratios follow it (docs/benchmarks.md).
  hop_before = core_to_core_ns(a.quick ? 20'000 : 200'000);
  std::vector<Row> rows;
  std::ostringstream runs_csv;  // every run, for --runs
  runs_csv << "workload,system,workers,run,tasks,seconds,tasks_per_s\n";
  runs_csv.precision(9);
  int failures = run_table(a, ctx, rows, runs_csv);
  const double compare_seconds = seconds_since(start);

  Metrics m;
  failures += report_extras(a, m, speedup_before, hop_before);
  report_ratios(a, rows, m);
  const double total = seconds_since(start);
  std::fprintf(summary_stream(a), "\ntime: table %.1f s, everything %.1f s\n", compare_seconds,
               total);
  m.add("table_seconds", compare_seconds);
  m.add("total_seconds", total);
  failures += write_files(a, m, runs_csv);
  if (failures > 0) std::fprintf(stderr, "%d run(s) failed\n", failures);
  return failures > 0 ? 1 : 0;
}

// ---------------------------------------------------------------------------
// The sweep.

std::size_t round_up_64(std::size_t n) { return (n + 63) / 64 * 64; }

/// One measured configuration of the sweep.
struct SweepPoint {
  unsigned workers;
  std::size_t window, capacity, inline_bytes, spill, ring;
  RunResult result;
  [[nodiscard]] double rate() const { return static_cast<double>(result.tasks) / result.seconds; }
};

/// The inline_bytes values to try: --inline-bytes, or a default per workload.
std::vector<std::size_t> sweep_inlines(const Args& a, Workload w) {
  std::vector<std::size_t> inlines = a.inlines;
  if (inlines.empty()) {
    inlines = {64, 192, 1024};
    if (info(w).payload > 0) {
      // A payload result fits inline only up to the 1 MiB limit of inline_bytes.
      inlines = {192, 4096};
      if (info(w).payload + 8 <= (std::size_t{1} << 20))
        inlines.push_back(round_up_64(info(w).payload + 8));
    }
  }
  return inlines;
}

/// One line of the sweep table (or CSV row).
void print_point(const Args& a, Workload w, const SweepPoint& p) {
  if (a.csv) {
    std::printf("%s,%u,%zu,%zu,%zu,%zu,%zu,%ld,%.6f,%.1f\n", info(w).name, p.workers, p.window,
                p.capacity, p.inline_bytes, p.spill, p.ring, p.result.tasks, p.result.seconds,
                p.rate());
  } else {
    std::printf("%7u %7zu %9zu %12zu %10zu %10.1f %9.3f %13s\n", p.workers, p.window, p.capacity,
                p.inline_bytes, p.spill, static_cast<double>(p.ring) / 1024.0, p.result.seconds,
                human_rate(p.rate()).c_str());
  }
}

/// The fastest point, and the smallest ring within 5% of it as the advice.
void report_best(std::FILE* out, Workload w, const std::vector<SweepPoint>& points) {
  if (!points.empty()) {
    const SweepPoint* best = &points[0];
    for (const SweepPoint& p : points)
      if (p.rate() > best->rate()) best = &p;
    const SweepPoint* pick = nullptr;
    for (const SweepPoint& p : points) {
      if (p.rate() < 0.95 * best->rate()) continue;
      if (pick == nullptr || p.ring < pick->ring ||
          (p.ring == pick->ring &&
           (p.workers < pick->workers || (p.workers == pick->workers && p.rate() > pick->rate()))))
        pick = &p;
    }
    std::fprintf(out, "\nbest: workers=%u window=%zu capacity=%zu inline_bytes=%zu: %s\n",
                 best->workers, best->window, best->capacity, best->inline_bytes,
                 human_rate(best->rate()).c_str());
    std::fprintf(out,
                 "recommended for %s (smallest ring within 5%% of the best):\n"
                 "  inorder::Options{.workers = %u, .window = %zu, .capacity = %zu, "
                 ".inline_bytes = %zu}\n"
                 "  %s (%.0f%% of the best), ring %.1f KiB\n",
                 info(w).name, pick->workers, pick->window, pick->capacity, pick->inline_bytes,
                 human_rate(pick->rate()).c_str(), 100.0 * pick->rate() / best->rate(),
                 static_cast<double>(pick->ring) / 1024.0);
  }
}

int run_sweep(const Args& a) {
  const Workload w = *a.sweep;
  // Tasks per point: a fixed count for the skewed workload (which tasks are
  // slow depends on the indices, so every point runs the same ones); for the
  // others, enough for about `target` seconds, from a short probe run.
  const double target = a.quick ? 0.05 : 0.3;
  const long fixed = w == Workload::kSkewed ? count_for(w, System::kInorder, a.scale * 0.5) : 0;
  const long probe = std::max(20L, count_for(w, System::kInorder, a.scale) / 200);
  auto measure = [&](unsigned wk, const InorderConfig& cfg) {
    long n = fixed;
    InorderRun run;
    if (n == 0) {
      // Calibrate: grow the count until one run takes a third of the target
      // (a short run overstates the rate: the first `capacity` puts never block).
      n = probe;
      for (;;) {
        run = run_inorder(w, wk, n, cfg);
        if (!run.result.ok) return run;
        const double seconds = std::max(run.result.seconds, 1e-6);
        if (seconds >= target / 3) {
          n = std::max(n, static_cast<long>(static_cast<double>(n) * target / seconds));
          break;
        }
        n = static_cast<long>(static_cast<double>(n) * std::min(10.0, target / seconds));
      }
    }
    run.result = run_repeated(a, [&] {
      InorderRun r = run_inorder(w, wk, n, cfg);
      run.window = r.window;
      run.capacity = r.capacity;
      return r.result;
    });
    return run;
  };
  constexpr std::size_t kMaxRing = std::size_t{512} << 20;
  const std::vector<unsigned> workers = workers_for(a, w);
  const std::vector<std::size_t> inlines = sweep_inlines(a, w);
  const std::vector<std::size_t> capacities =
      a.capacities.empty() ? std::vector<std::size_t>{0} : a.capacities;  // 0: default
  const std::vector<std::size_t> spills =
      a.spills.empty() ? std::vector<std::size_t>{0} : a.spills;  // 0: default

  std::vector<SweepPoint> points;
  int failures = 0;

  if (a.csv) {
    std::printf(
        "workload,workers,window,capacity,inline_bytes,max_spill_bytes,ring_bytes,tasks,"
        "seconds,tasks_per_s\n");
  } else {
    if (fixed > 0)
      std::printf("sweep of inorder on %s, %ld tasks per run", info(w).name, fixed);
    else
      std::printf("sweep of inorder on %s, about %.2f s per run", info(w).name, target);
    std::printf(", median of %d run(s) per point\n", a.repeat);
    std::printf("%7s %7s %9s %12s %10s %10s %9s %13s\n", "workers", "window", "capacity",
                "inline_bytes", "max_spill", "ring_KiB", "seconds", "tasks/s");
  }
  std::fflush(stdout);
  const auto start = SteadyClock::now();
  for (const unsigned wk : workers) {
    std::vector<std::size_t> windows = a.windows;
    if (windows.empty())
      for (const std::size_t m : {1, 4, 10, 50, 250, 1000}) windows.push_back(m * wk);
    for (const std::size_t window : windows) {
      if (window < wk) continue;
      for (const std::size_t capacity : capacities) {
        if (capacity != 0 && capacity < window) continue;
        for (const std::size_t inl : inlines) {
          for (const std::size_t spill : spills) {
            InorderConfig cfg;
            cfg.window = window;
            if (capacity != 0) cfg.capacity = capacity;
            cfg.inline_bytes = inl;
            if (spill != 0) cfg.max_spill_bytes = spill;
            std::size_t cap = 1;  // the capacity the queue will use: a power of two
            while (cap < (capacity != 0 ? capacity : std::max<std::size_t>(64, 2 * window)))
              cap *= 2;
            if (ring_bytes(cap, round_up_64(inl)) > kMaxRing) {
              std::fprintf(stderr,
                           "note: skipped workers=%u window=%zu inline=%zu: ring over %zu MiB\n",
                           wk, window, inl, kMaxRing >> 20);
              continue;
            }
            const InorderRun run = measure(wk, cfg);
            if (!run.result.ok) {
              std::fprintf(stderr, "error: workers=%u window=%zu capacity=%zu inline=%zu: %s\n", wk,
                           window, capacity, inl, run.result.error.c_str());
              ++failures;
              continue;
            }
            const std::size_t spill_eff = spill != 0 ? spill : inorder::Options{}.max_spill_bytes;
            const SweepPoint p{wk,           run.window,
                               run.capacity, round_up_64(inl),
                               spill_eff,    ring_bytes(run.capacity, round_up_64(inl)),
                               run.result};
            print_point(a, w, p);
            std::fflush(stdout);
            points.push_back(p);
          }
        }
      }
    }
  }
  std::FILE* out = summary_stream(a);
  report_best(out, w, points);
  std::fprintf(out, "sweep time %.1f s\n", seconds_since(start));
  return failures > 0 ? 1 : 0;
}

}  // namespace
}  // namespace compare

int main(int argc, char** argv) {
  // A child that dies must show up as a failed write, not kill the program.
  std::signal(SIGPIPE, SIG_IGN);
  const compare::Args args = compare::parse_args(argc, argv);
  return args.sweep ? compare::run_sweep(args) : compare::run_compare(args);
}
