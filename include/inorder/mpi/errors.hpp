// inorder/mpi/errors.hpp: how a task's failure on another rank reaches get().
//
// Contract: a task that fails on any rank (throws, crashes its worker, runs
// past its timeout) is thrown by get() at its own position, as the same class
// the local queue throws (TaskError, WorkerCrashed, TaskTimeout) with the same
// type name and message, and additionally as inorder::mpi::RemoteFailure, which
// names the rank and host it ran on and its 64-bit global sequence number.
// catch (const inorder::TaskError&) therefore keeps working unchanged.
// Not promised: TaskError::sequence() is the global sequence truncated to 32
// bits; use RemoteFailure::global_sequence() for the full number.
#pragma once

#include <sys/types.h>
#include <cstdint>
#include <string>
#include <utility>

#include "inorder/errors.hpp"

namespace inorder::mpi {

/// Where a failed task ran. Mixed into the exceptions below; reach it with
/// dynamic_cast<const RemoteFailure*>(&e) or catch it directly.
class RemoteFailure {
 public:
  RemoteFailure(int rank, std::string host, std::uint64_t global_sequence)
      : rank_(rank), host_(std::move(host)), global_sequence_(global_sequence) {}
  virtual ~RemoteFailure() = default;

  /// MPI rank (in MPI_COMM_WORLD) whose worker ran the task.
  [[nodiscard]] int rank() const noexcept { return rank_; }
  /// Host name of that rank, as it reported at start-up.
  [[nodiscard]] const std::string& host() const noexcept { return host_; }
  /// The position put() returned for the task.
  [[nodiscard]] std::uint64_t global_sequence() const noexcept { return global_sequence_; }

 protected:
  RemoteFailure(const RemoteFailure&) = default;
  RemoteFailure& operator=(const RemoteFailure&) = default;

 private:
  int rank_;
  std::string host_;
  std::uint64_t global_sequence_;
};

/// Base is TaskError, WorkerCrashed or TaskTimeout; what() also names the rank and host.
template <class Base>
class OnRank final : public Base, public RemoteFailure {
 public:
  OnRank(std::string type_name, std::string message, pid_t pid, int rank, std::string host,
         std::uint64_t global_sequence)
      : Base(type_name, message, pid, static_cast<std::uint32_t>(global_sequence)),
        RemoteFailure(rank, host, global_sequence),
        what_("task " + std::to_string(global_sequence) + " failed in worker " +
              std::to_string(pid) + " on rank " + std::to_string(rank) + " (" + host +
              "): " + type_name + (message.empty() ? "" : ": " + message)) {}

  [[nodiscard]] const char* what() const noexcept override { return what_.c_str(); }

 private:
  std::string what_;
};

using RemoteTaskError = OnRank<TaskError>;
using RemoteWorkerCrashed = OnRank<WorkerCrashed>;
using RemoteTaskTimeout = OnRank<TaskTimeout>;

}  // namespace inorder::mpi
