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
  /// Worker time and finished tasks since the previous call (from the
  /// Core's per-worker statistics).
  BatchInfo take_busy();
  /// Tasks submitted and not yet harvested.
  [[nodiscard]] std::size_t outstanding() const noexcept { return outstanding_; }

 private:
  bool try_start(const TaskHeader& h, const std::byte* payload, const Sink& sink);
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
  BatchInfo seen_{0, 0};                                 ///< totals at the previous take_busy()
  Clock::time_point last_take_{};                        ///< when take_busy() last read the Core
};

}  // namespace inorder::mpi::detail
