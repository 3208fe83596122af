// src/mpi/identity.hpp: what makes two ranks interchangeable: the loaded
// modules (to translate code references) and the identity of the binary and
// ABI (checked at start-up).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "inorder/mpi/detail/engine.hpp"

namespace inorder::mpi::detail {

/// The address CodeRef `ref` names in this process. Throws std::runtime_error
/// if the module index is out of range (cannot happen between ranks that
/// passed the start-up check).
[[nodiscard]] std::uintptr_t resolve(const CodeRef& ref);

/// Identity of this process's code, compared between ranks at start-up.
struct Identity {
  std::uint64_t binary = 0;  ///< hash of the executable's build-id (or bytes) and module names
  std::uint64_t abi = 0;     ///< hash of the compiler, data model, byte order and wire format
  std::string binary_text;   ///< human-readable: build-id in hex, or "sha-of-exe ..."
};

/// Computes it once (the first call reads the executable if it has no build-id).
[[nodiscard]] const Identity& identity();

}  // namespace inorder::mpi::detail
