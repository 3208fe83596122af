// src/mpi/wire.hpp: the records that travel between ranks.
//
// All ranks passed the start-up identity check (same binary, same ABI), so
// records are plain structs copied with memcpy. A message is a sequence of
// records, each a header followed by `len` payload bytes, read until the end
// of the message. No single MPI message exceeds the transport's limit
// (INT_MAX by default): longer ones are split (transport.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "inorder/mpi/detail/engine.hpp"

namespace inorder::mpi::detail {

/// Message tags. kBig announces a message sent in kPiece parts.
enum Tag : int {
  kTagTasks = 1,      ///< rank 0 -> rank: TaskHeader + payload, repeated
  kTagResults = 2,    ///< rank -> rank 0: ResultHeader + bytes, repeated
  kTagHeartbeat = 3,  ///< rank -> rank 0: empty, "still here"
  kTagShutdown = 4,   ///< rank 0 -> rank: stop serving
  kTagBye = 5,        ///< rank -> rank 0: served; every send of this rank has completed
  kTagBig = 6,        ///< BigHeader: the next message(s) with kTagPiece carry one message
  kTagPiece = 7,      ///< a part of a split message, in order
};

/// One task. Payload: the callable's bytes (fn_size of them) then the encoded arguments.
struct TaskHeader {
  std::uint64_t epoch;       ///< which queue of the session it belongs to
  std::uint64_t seq;         ///< global position
  CodeRef invoker;           ///< the instantiation that decodes, calls and encodes
  CodeRef fn;                ///< for a function pointer: the function; kNone for a lambda
  std::uint64_t len;         ///< payload bytes
  std::uint32_t timeout_ms;  ///< per-task limit, 0: the session's
  std::uint32_t fn_size;     ///< bytes of the callable at the start of the payload
};

/// One result. Bytes: the encoded value, or for a failure pair<type name, message>.
struct ResultHeader {
  std::uint64_t epoch;
  std::uint64_t seq;
  std::uint64_t len;
  std::int32_t pid;
  Outcome outcome;
  std::uint8_t reserved[3];
};

/// Opens every results message: how long the sending rank had tasks to run
/// and how many it finished since its previous results message, which sizes
/// its chunks.
struct BatchInfo {
  std::uint64_t busy_ns;  ///< wall time with tasks outstanding on the rank
  std::uint64_t tasks;    ///< tasks it finished meanwhile
};

/// Announces a split message: `total` bytes for tag `tag`, in parts of at most `part` bytes.
struct BigHeader {
  std::uint64_t total;
  std::uint64_t part;
  std::int32_t tag;
  std::int32_t reserved;
};

static_assert(std::is_trivially_copyable_v<TaskHeader> && sizeof(TaskHeader) == 64,
              "TaskHeader is copied as bytes between ranks and must have no padding");
static_assert(std::is_trivially_copyable_v<ResultHeader> && sizeof(ResultHeader) == 32,
              "ResultHeader is copied as bytes between ranks and must have no padding");
static_assert(std::is_trivially_copyable_v<BatchInfo> && sizeof(BatchInfo) == 16,
              "BatchInfo is copied as bytes between ranks and must have no padding");
static_assert(std::is_trivially_copyable_v<BigHeader> && sizeof(BigHeader) == 24,
              "BigHeader is copied as bytes between ranks and must have no padding");

}  // namespace inorder::mpi::detail
