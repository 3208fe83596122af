// bench/mpi_compare.cpp: libinorder-mpi beside its anchors (bench/mpi_compare.sh runs it).
//
//   inorder-mpi-compare local-skewed N WORKERS   the local ParallelQueue (no MPI)
//   mpirun -n R inorder-mpi-compare mpi-skewed N WORKERS
//   mpirun -n R inorder-mpi-compare mpi-tiny N WORKERS
//
// skewed: bench/compare_common's sleeping workload (1 ms, 1 task in 100 sleeps
// 50 ms). tiny: returns its argument. Prints one line: the mode, ranks,
// workers per rank, tasks, seconds, tasks/s, and rank 0's CPU time per task.
// Every result is checked against its position; a wrong one exits 1.
#include <sys/resource.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "compare_common.hpp"
#include "inorder/mpi.hpp"
#include "inorder/parallel_queue.hpp"

namespace {

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

template <class Queue>
int drive(Queue& q, long n, long (*task)(long), const char* mode, int ranks, unsigned workers) {
  // A short warm-up outside the timing: first chunks, first pages.
  for (long i = 0; i < 64; ++i) q.put(task, i);
  for (long i = 0; i < 64; ++i) (void)q.get();
  const double cpu0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  long next = 0;
  for (long i = 0; i < n; ++i) {
    // Put until the window is full, then take a result to make room.
    while (!q.try_put(task, i)) {
      if (*q.get() != next++) return 1;
    }
  }
  q.stop();
  while (auto r = q.get()) {
    if (*r != next++) return 1;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = cpu_seconds() - cpu0;
  if (next != n) return 1;
  std::printf(
      "%s ranks=%d workers=%u tasks=%ld seconds=%.4f tasks_per_s=%.0f root_cpu_ns_per_task=%.0f\n",
      mode, ranks, workers, n, s, static_cast<double>(n) / s, cpu * 1e9 / static_cast<double>(n));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s local-skewed|mpi-skewed|mpi-tiny N WORKERS\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  const long n = std::atol(argv[2]);
  const auto workers = static_cast<unsigned>(std::atoi(argv[3]));
  if (mode == "local-skewed") {
    inorder::ParallelQueue<long> q({.workers = workers});
    return drive(q, n, &compare::task_skewed, mode.c_str(), 1, workers);
  }
  inorder::mpi::Session mpi(argc, argv, {.workers_per_rank = workers});
  if (!mpi.is_root()) return mpi.serve();
  inorder::mpi::ParallelQueue<long> q(mpi);
  long (*task)(long) = mode == "mpi-tiny" ? &compare::task_tiny : &compare::task_skewed;
  const int rc = drive(q, n, task, mode.c_str(), mpi.size(), workers);
  for (const auto& r : q.stats().ranks)
    std::fprintf(stderr, "rank %d: %llu tasks in %llu chunks, chunk now %zu, %lld ns per task\n",
                 r.rank, static_cast<unsigned long long>(r.completed),
                 static_cast<unsigned long long>(r.chunks), r.chunk,
                 static_cast<long long>(r.per_task.count()));
  return rc;
}
