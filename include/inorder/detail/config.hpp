// inorder/detail/config.hpp: layout constants shared by every part of inorder.
#pragma once

#include <cstddef>

namespace inorder::detail {

/// Size of the unit of cache coherence. Fields written by different processes
/// live at least this far apart so that one writer's stores do not evict the
/// line another process is polling (false sharing). 64 bytes on every x86-64
/// and on the common AArch64 cores; one named constant so it is never a bare 64.
inline constexpr std::size_t kCacheLine = 64;

/// Bytes of large results a worker lets wait ahead of the next result to be
/// emitted: after a result that did not fit inline, a worker starts tasks at
/// most max(2 x workers, kRunAheadBytes / result bytes) positions ahead of
/// emit (never more than Options::window). Large results then cycle through
/// a few result areas that are still in cache. See src/queue/worker.cpp.
inline constexpr std::size_t kRunAheadBytes = std::size_t{8} << 20;

}  // namespace inorder::detail
