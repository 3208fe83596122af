// src/mpi/runner.hpp: feeds one rank's local inorder engine with tasks named by
// CodeRef, and collects its results tagged with their global sequence.
//
// Used by every rank, rank 0 included (rank 0 runs tasks too). The local
// engine (detail::Core) does the fork, crash, timeout and lives handling
// exactly as for a local queue; the runner only translates: CodeRef to the
// local invoker, global sequence to and from the Core's 32-bit one, and a
// failed slot to a (type name, message) record.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <unordered_map>
#include <vector>

#include "inorder/detail/core.hpp"
#include "wire.hpp"

namespace inorder::mpi::detail {

class Runner {
 public:
  /// Called with each finished result: its header and bytes (valid during the call).
  using Sink = std::function<void(const ResultHeader&, const std::byte*)>;

  explicit Runner(const inorder::Options& opts) : core_(opts) {}

  /// Starts one task. Never blocks: a task that does not fit the Core waits
  /// in a backlog (pump() retries it). A task that cannot start (its module
  /// is unknown, the Core broke) finishes at once with an error result.
  void submit(const TaskHeader& h, const std::byte* payload, const Sink& sink);
  /// Retries the backlog. True if anything moved.
  bool pump(const Sink& sink);
  /// Hands finished results to `sink`, at most `max` of them; waits until
  /// `deadline` for the first one. Returns how many.
  std::size_t harvest(const Sink& sink, std::size_t max, Deadline deadline);
  /// Time this rank had tasks (submitted and not yet harvested) and tasks
  /// finished, since the previous call.
  BatchInfo take_busy();
  /// Tasks submitted and not yet harvested.
  [[nodiscard]] std::size_t outstanding() const noexcept { return outstanding_; }

 private:
  bool try_start(const TaskHeader& h, const std::byte* payload, const Sink& sink);
  /// One task more outstanding; starts a busy period when there were none.
  void add_outstanding();
  /// One task finished (harvested or failed at once); ends the busy period
  /// when it was the last.
  void finish_one();
  void fail(const TaskHeader& h, Outcome outcome, const std::string& type, const std::string& msg,
            const Sink& sink);

  struct Pending {
    std::uint64_t epoch;
    std::uint64_t seq;
  };
  struct Waiting {
    TaskHeader header;
    std::vector<std::byte> payload;
  };
  inorder::detail::Core core_;
  std::unordered_map<std::uint32_t, Pending> by_local_;  ///< Core sequence -> global position
  std::deque<Waiting> backlog_;                          ///< in arrival order
  std::size_t outstanding_ = 0;                          ///< submitted, not yet harvested
  // Busy time is wall time with work outstanding: what the rank as a whole
  // takes per task, its workers side by side, its own overhead included and
  // the waits for work left out. (The Core's per-worker busy time is added
  // up per streak of tasks, so a worker that never idles reports none for a
  // long while and then all at once: sizing chunks by it swung them between
  // 1 and max_chunk tasks.)
  Clock::time_point busy_since_{};  ///< start of the busy period (outstanding_ > 0)
  std::uint64_t busy_ns_ = 0;       ///< busy time of periods ended since take_busy()
  std::uint64_t finished_ = 0;      ///< tasks finished since take_busy()
};

}  // namespace inorder::mpi::detail
