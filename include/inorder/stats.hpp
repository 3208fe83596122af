// inorder/stats.hpp: a snapshot of a queue's state, for tuning and monitoring.
//
// Every number is read without stopping the queue, so a snapshot taken while
// tasks run is approximate (each field is exact at some instant during the call).
#pragma once

#include <sys/types.h>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace inorder {

struct WorkerStats {
  pid_t pid = 0;                     ///< process id of the worker
  std::uint64_t tasks = 0;           ///< tasks it has finished (value or error)
  std::chrono::nanoseconds busy{0};  ///< total time spent running tasks
  bool alive = false;                ///< its process is running
  std::uint32_t restarts = 0;        ///< times this worker was replaced
};

struct Stats {
  std::size_t in_flight = 0;          ///< put and not yet taken by get() (pending included)
  std::size_t pending = 0;            ///< put, waiting in this process for a ring slot
  std::size_t waiting_in_window = 0;  ///< finished, waiting for get() (in order)
  std::size_t capacity = 0;           ///< effective capacity (power of two)
  std::size_t window = 0;             ///< effective reorder window
  std::uint64_t restarts = 0;         ///< workers replaced after a crash or timeout
  std::uint64_t recycled = 0;         ///< workers replaced by max_tasks_per_worker / max_worker_rss
  bool broken = false;                ///< the restart cap was reached (see Options)
  std::vector<WorkerStats> workers;   ///< one entry per worker, by index
};

}  // namespace inorder
