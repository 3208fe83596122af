// inorder/mpi/session.hpp: one MPI job whose ranks run inorder tasks.
//
// Contract. Static SPMD: every rank of `mpirun -n N ./app` constructs one
// Session with the same options. The constructor forks this rank's local
// worker pool (a supervisor and Options::workers workers, exactly as a local
// inorder::ParallelQueue does) and only then initialises MPI, so no process
// forks after MPI_Init. It then checks that every rank runs the same binary
// (GNU build-id of every loaded module, or a hash of the executable) on the
// same ABI; a mismatch ends the whole job (MPI_Abort) with a message naming
// the rank and host. Rank 0 (is_root()) goes on to use a
// mpi::ParallelQueue or mpi::Pool; every other rank calls serve(), which runs
// tasks until rank 0's Session ends.
//
// Faults: tasks fail, crash and time out per rank as in the local queue. A rank
// that dies makes mpirun end the whole job (Open MPI 4 cannot survive a lost
// rank). A rank that stops answering (stopped, hung, unreachable) for
// SessionOptions::heartbeat_timeout while rank 0 is inside a queue call makes
// rank 0 print a message naming it and call MPI_Abort: the job ends, it does
// not hang.
//
// Threads: MPI is initialised with MPI_THREAD_FUNNELED. The Session and every
// queue or pool built on it are used from the thread that constructed the
// Session, which is the only thread making MPI calls.
// Not promised: survival of any rank's loss; serving ranks do not watch rank 0
// (if rank 0 is stopped they sleep, idle, until it continues or mpirun ends).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "inorder/options.hpp"

namespace inorder::mpi {

namespace detail {
class SessionImpl;
class Engine;
}  // namespace detail

struct SessionOptions {
  /// Worker processes forked on every rank, rank 0 included. Default: the
  /// hardware threads of the rank's host. Must be >= 1.
  unsigned workers_per_rank = default_workers();

  /// Per-task time limit on every rank, zero for none (Options::task_timeout).
  std::chrono::milliseconds task_timeout{0};

  /// Retries of a task whose worker crashed or timed out, on the same rank
  /// (Options::retries; the reference design's "lives").
  unsigned retries = 0;

  /// Also spend retries on tasks that throw (Options::retry_exceptions).
  bool retry_exceptions = false;

  /// Largest encoded arguments, and largest encoded result, of one task.
  /// Default 256 MiB (Options::max_spill_bytes).
  std::size_t max_spill_bytes = std::size_t{256} << 20;

  /// Global window: put() blocks while this many positions are put and not
  /// yet taken by get(). Bounds the memory rank 0 holds for results and
  /// queued tasks. Default 8192. Must be >= 1.
  std::size_t window = 8192;

  /// A rank silent for this long (no result, no heartbeat) while rank 0 waits
  /// in a queue call ends the job. Serving ranks send a heartbeat every
  /// heartbeat_timeout / 8. Default 5 s; must be >= 100 ms.
  std::chrono::milliseconds heartbeat_timeout{5000};

  /// Chunk sizing: a chunk carries about this much work, by the measured
  /// throughput of the rank it goes to (at least 1 task, at most max_chunk).
  std::chrono::microseconds chunk_work{2000};
  std::size_t max_chunk = 512;

  /// Whether rank 0's own workers run tasks too (default). false: rank 0
  /// only deals and reorders, unless it is the only rank.
  bool root_runs_tasks = true;
};

/// What rank 0 knows about one rank.
struct RankStats {
  int rank = 0;
  std::string host;
  unsigned workers = 0;
  std::uint64_t dispatched = 0;          ///< tasks sent to it
  std::uint64_t completed = 0;           ///< results received from it
  std::uint64_t chunks = 0;              ///< chunks sent to it
  std::size_t chunk = 0;                 ///< current chunk size
  std::chrono::nanoseconds per_task{0};  ///< measured time per task of the rank (all its workers)
};

/// A snapshot of a queue on rank 0.
struct QueueStats {
  std::uint64_t put = 0;         ///< positions put so far
  std::uint64_t emitted = 0;     ///< positions taken by get()
  std::size_t unsent = 0;        ///< tasks put and not yet dealt to a rank
  std::vector<RankStats> ranks;  ///< by rank
};

class Session {
 public:
  /// Every rank. Forks this rank's workers, then calls MPI_Init_thread, then
  /// checks the binaries (a mismatch aborts the job). Blocks until every rank
  /// has started. Throws std::invalid_argument for bad options,
  /// std::system_error if forking fails, std::logic_error if MPI was already
  /// initialised or a second Session is made in this process.
  Session(int& argc, char**& argv, const SessionOptions& options = {});

  /// Rank 0: tells every rank to stop serving and waits until they have, then
  /// finalises MPI. Other ranks: finalises MPI. Then ends the local workers as
  /// ParallelQueue's destructor does. Never hangs while ranks are alive.
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  [[nodiscard]] int rank() const noexcept;
  [[nodiscard]] int size() const noexcept;
  [[nodiscard]] bool is_root() const noexcept { return rank() == 0; }
  /// This rank's host name.
  [[nodiscard]] const std::string& host() const noexcept;

  /// Ranks other than 0: runs tasks dealt by rank 0 until rank 0's Session
  /// ends; returns 0 then (an exit status for main). Blocks, sleeping when
  /// idle. On rank 0 throws std::logic_error.
  int serve();

 private:
  friend class detail::Engine;
  std::unique_ptr<detail::SessionImpl> impl_;
};

}  // namespace inorder::mpi
