// src/mpi/transport.hpp: byte messages over MPI_COMM_WORLD, from one thread.
//
// send() never blocks: it starts MPI_Isend and keeps the buffer until
// poll_sends() sees it complete. Messages above the part limit (INT_MAX, or
// INORDER_MPI_MAX_MESSAGE bytes when set, so tests can force the split) go as
// a BigHeader then parts on kTagPiece; MPI keeps messages of one sender and
// tag in order, and one thread sends all parts of a message before the next,
// so the receiver reads the parts in order from the announcing sender.
// try_recv() never waits for a message that has not arrived; once one has, it
// waits for its bytes with the Backoff below (not MPI's spinning waits). A
// message is found with MPI_Iprobe and received with MPI_Irecv from its
// source and tag (one thread makes every MPI call, so nothing can take it in
// between, and MPI keeps one sender's messages of one tag in order). A
// message whose bytes stop coming for `stall_limit` ends the job with a
// message naming the sender, instead of hanging.
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace inorder::mpi::detail {

/// Exit status of a job inorder ends on purpose (MPI_Abort).
inline constexpr int kAbortStatus = 75;

/// Prints `message` on stderr and ends the whole job (MPI_Abort): for faults
/// no rank can recover from (a rank gone silent, a message that stopped
/// arriving, a binary mismatch).
[[noreturn]] void abort_job(const std::string& message);

/// Spin briefly, then sleep with a growing step (up to 1 ms): an idle rank
/// must leave the cores to the workers. Open MPI's blocking waits spin, even
/// oversubscribed (they yield, which still burns a core), so none is used.
class Backoff {
 public:
  static constexpr int kSpins = 64;  ///< rounds before the first sleep
  static constexpr std::chrono::microseconds kMaxSleep{1000};
  void reset() noexcept { rounds_ = 0; }
  /// How long the next idle pause should be; zero while still spinning.
  [[nodiscard]] std::chrono::microseconds next() noexcept;
  /// Takes the next pause (sleeps, or returns at once while spinning).
  void pause();

 private:
  int rounds_ = 0;
};

struct Message {
  int source = -1;
  int tag = -1;
  std::vector<std::byte> bytes;
};

class Transport {
 public:
  explicit Transport(std::chrono::milliseconds stall_limit);
  /// Starts sending `bytes` to `dest` with `tag`; the buffer is kept until sent.
  void send(int dest, int tag, std::vector<std::byte> bytes);
  /// Completes finished sends. True if any completed.
  bool poll_sends();
  /// Sends not yet complete.
  [[nodiscard]] std::size_t pending() const noexcept { return sends_.size(); }
  /// The next arrived message, if any. Waits (Backoff, calling `idle` between
  /// rounds) only for the rest of a message that has started to arrive.
  bool try_recv(Message& out, const std::function<void()>& idle = {});
  /// When this rank last started a send to `dest`.
  [[nodiscard]] std::chrono::steady_clock::time_point last_send(int dest) const {
    return last_send_[static_cast<std::size_t>(dest)];
  }

 private:
  void wait(MPI_Request* reqs, int n, int source, const std::function<void()>& idle);

  struct Outgoing {
    MPI_Request req;
    std::shared_ptr<const std::vector<std::byte>> buf;  ///< shared by the parts of one message
  };
  std::vector<Outgoing> sends_;
  std::size_t part_limit_;  ///< largest single MPI message, <= INT_MAX
  std::vector<std::chrono::steady_clock::time_point> last_send_;
  std::chrono::milliseconds stall_limit_;
};

}  // namespace inorder::mpi::detail
