// inorder/detail/config.hpp: layout constants shared by every part of inorder.
#pragma once

#include <cstddef>

namespace inorder::detail {

/// Size of the unit of cache coherence. Fields written by different processes
/// live at least this far apart so that one writer's stores do not evict the
/// line another process is polling (false sharing). 64 bytes on every x86-64
/// and on the common AArch64 cores; one named constant so it is never a bare 64.
inline constexpr std::size_t kCacheLine = 64;

}  // namespace inorder::detail
