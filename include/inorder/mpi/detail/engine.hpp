// inorder/mpi/detail/engine.hpp: the type-erased root engine under
// inorder::mpi::ParallelQueue<R>, and the portable naming of code.
//
// Not a public API. The Engine lives on rank 0 only; it numbers tasks with a
// 64-bit sequence, deals them to the ranks in chunks, and keeps the reorder
// buffer. It moves bytes and code references, never typed values: the
// templates in inorder/mpi/parallel_queue.hpp encode and decode. Compiled once,
// in src/mpi/. Every member is called from the thread that constructed the
// Session (the one thread that makes MPI calls).
#pragma once

#include <sys/types.h>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "inorder/detail/core.hpp"

namespace inorder::mpi {
class Session;
struct RankStats;
struct QueueStats;
}  // namespace inorder::mpi

namespace inorder::mpi::detail {

using inorder::detail::Clock;
using inorder::detail::Deadline;
using inorder::detail::GetStatus;
using inorder::detail::kForever;
using inorder::detail::kNoWait;

/// A code address that means the same in every rank running the same binary:
/// the index of the loaded module (in the dynamic loader's order) and the
/// offset from that module's load address. ASLR moves modules, not offsets.
struct CodeRef {
  static constexpr std::uint32_t kNone = 0xFFFFFFFFU;
  std::uint32_t module = kNone;  ///< kNone: no code (a callable without state or address)
  std::uint32_t reserved = 0;    ///< keeps the layout free of padding
  std::uint64_t offset = 0;      ///< address minus the module's load address
};

/// The CodeRef of `address` in this process. Cached; the first call for an
/// address costs a walk of the loaded modules. Throws std::invalid_argument if
/// no loaded module contains it.
[[nodiscard]] CodeRef code_ref(std::uintptr_t address);

/// How a finished position failed (or did not).
enum class Outcome : std::uint8_t {
  kValue = 0,          ///< the bytes are the encoded result
  kTaskError = 1,      ///< the bytes encode pair<type name, message>
  kWorkerCrashed = 2,  ///< as kTaskError
  kTaskTimeout = 3,    ///< as kTaskError
  kBroken = 4,         ///< the rank's local queue broke; the bytes encode pair<"", reason>
};

/// One result handed to a getter.
struct Taken {
  std::uint64_t seq = 0;
  Outcome outcome = Outcome::kValue;
  pid_t pid = 0;  ///< worker pid; 0 for a pass-through value
  int rank = 0;   ///< rank that ran it; 0 for a pass-through value
  std::vector<std::byte> bytes;
};

class SessionImpl;

class Engine {
 public:
  /// Rank 0 only; at most one Engine per Session at a time (std::logic_error).
  explicit Engine(Session& session);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// Claims the next position for a task whose payload (callable bytes, then
  /// encoded arguments) is `len` bytes, and returns where to write it. Blocks
  /// (making progress) while the window is full, until `deadline`; nullptr on
  /// timeout. Throws QueueClosed after stop(). Follow with commit().
  std::byte* begin_task(std::size_t len, CodeRef invoker, CodeRef fn, std::uint32_t fn_size,
                        std::uint32_t timeout_ms, Deadline deadline, std::uint64_t& seq);
  /// As begin_task, for a pass-through value of `len` encoded bytes.
  std::byte* begin_value(std::size_t len, Deadline deadline, std::uint64_t& seq);
  /// Publishes the position claimed last.
  void commit();

  /// Next result in put order, waiting until `deadline`. kEnd: stopped and drained.
  GetStatus get(Deadline deadline, Taken& out);
  /// Any finished result, oldest finished first.
  GetStatus get_any(Deadline deadline, Taken& out);
  /// Throws the exception `t` records (OnRank<...> or QueueBroken).
  [[noreturn]] void throw_error(const Taken& t) const;

  void stop() noexcept;
  [[nodiscard]] bool stopped() const noexcept;
  [[nodiscard]] bool exhausted() const noexcept;
  [[nodiscard]] QueueStats stats() const;

 private:
  SessionImpl& s_;
};

}  // namespace inorder::mpi::detail
