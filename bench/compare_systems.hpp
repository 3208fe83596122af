// bench/compare_systems.hpp: the systems inorder-compare measures, one file each.
//
// Every run_* function sets its system up (forks, threads, pool), warms it up,
// then times `tasks` tasks of the workload from the first task handed out to
// the last result received and checked. Setup and warm-up are not timed.
// Every driver checks each result against its position and returns a failure
// (never a measurement) when one is out of order or wrong.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "compare_common.hpp"

namespace compare {

// compare_inorder.cpp ---------------------------------------------------------

/// Options of the measured queue; unset fields keep inorder's defaults.
struct InorderConfig {
  std::optional<std::size_t> window;
  std::optional<std::size_t> capacity;
  std::optional<std::size_t> inline_bytes;
  std::optional<std::size_t> max_spill_bytes;
  /// CPUs to pin the producer thread, the getting thread and every worker to
  /// for the measured part (inorder-placement); -1: left to the kernel.
  int producer_cpu = -1;
  int getter_cpu = -1;
  int worker_cpu = -1;
};

struct InorderRun {
  RunResult result;
  std::size_t window = 0;    ///< effective, from Stats
  std::size_t capacity = 0;  ///< effective, from Stats
  std::size_t inline_bytes = 0;
};

/// inorder::ParallelQueue: a producer thread puts, the calling thread gets.
InorderRun run_inorder(Workload w, unsigned workers, long tasks, const InorderConfig& config);

/// Bytes of the queue's shared ring: capacity x (64-byte header + task and
/// result inline areas). The spill reservation is address space only.
[[nodiscard]] std::size_t ring_bytes(std::size_t capacity, std::size_t inline_bytes);

// compare_tbb.cpp -------------------------------------------------------------

/// Whether this build has oneTBB.
[[nodiscard]] bool tbb_available();

/// oneTBB parallel_pipeline: serial_in_order input -> parallel task ->
/// serial_in_order output, max_number_of_live_tokens = `tokens`, inside a
/// task_arena of `workers` threads (the calling thread is one of them).
RunResult run_tbb(Workload w, unsigned workers, long tasks, std::size_t tokens);

// compare_forkpipe.cpp --------------------------------------------------------

/// A hand-written ordered pool: `workers` forked children, each with a request
/// pipe and a response pipe. Task i goes to child i % workers; the parent keeps
/// up to `depth` tasks queued per child and reads results back in task order.
RunResult run_forkpipe(Workload w, unsigned workers, long tasks, unsigned depth);

/// Batch-barrier over the same kind of children: a batch of workers x
/// `per_worker` tasks is handed out one task per idle child at a time (the
/// next task goes to whichever child answers first), the parent waits for the
/// whole batch, checks it in order, then starts the next batch.
RunResult run_barrier(Workload w, unsigned workers, long tasks, unsigned per_worker);

// compare_python.cpp ----------------------------------------------------------

/// The Python interpreter to use (an executable `python3` on PATH, or
/// $INORDER_PYTHON), or nullopt when there is none.
[[nodiscard]] std::optional<std::string> find_python();

/// multiprocessing.Pool(workers).imap(task, range(tasks), chunksize) in a
/// python3 subprocess running `script` (bench/imap.py); the script times and
/// checks itself and prints its elapsed seconds.
RunResult run_python(Workload w, unsigned workers, long tasks, int chunksize,
                     const std::string& python, const std::string& script);

// compare_extras.cpp ----------------------------------------------------------

struct IdleCpu {
  double wall_s = 0.0;
  double parent_cpu_s = 0.0;
  double workers_cpu_s = 0.0;
  unsigned workers = 0;
  [[nodiscard]] double percent_of_core() const {
    return wall_s > 0.0 ? 100.0 * (parent_cpu_s + workers_cpu_s) / wall_s : 0.0;
  }
};

/// CPU used by a warmed-up, idle queue of `workers` workers over `seconds`
/// (parent and workers, from /proc/<pid>/stat). nullopt if /proc is unreadable.
std::optional<IdleCpu> measure_idle_cpu(unsigned workers, double seconds);

struct Latency {
  std::size_t samples = 0;
  double p50_us = 0.0;
  double p99_us = 0.0;
  double mean_us = 0.0;
};

struct LatencyReport {
  Latency queue_hot;   ///< put -> get of one tiny task, back to back
  Latency pipe_hot;    ///< 8 bytes to a forked child and back, back to back
  Latency queue_cold;  ///< as queue_hot, after 1 ms of idleness each (worker asleep)
  Latency pipe_cold;   ///< as pipe_hot, after 1 ms of idleness each
};

/// How much CPU work `procs` forked processes get done at once, relative to
/// one: each spins through the same calibrated loop (about `seconds` alone);
/// returns procs x (time alone) / (time together), medians of three rounds.
/// 2.0 on two free cores.
std::optional<double> parallel_speedup(unsigned procs, double seconds);

/// One-way time of a cache line between the first two CPUs this process may
/// use (two pinned threads bouncing an atomic `round_trips` times), in ns.
/// nullopt with fewer than two CPUs or when pinning fails.
std::optional<double> core_to_core_ns(std::size_t round_trips);

/// Single-task latency on an idle one-worker queue and the pipe anchor.
/// `hot` back-to-back samples and `cold` spaced ones of each.
std::optional<LatencyReport> measure_latency(std::size_t hot, std::size_t cold);

}  // namespace compare
