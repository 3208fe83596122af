// bench/bench_util.hpp: small helpers every benchmark program shares:
// exact-size pipe I/O, reading a process's CPU time from /proc, and pinning
// the calling thread to a CPU for a measurement.
#pragma once

#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace bench {

/// The first `n` CPUs this process may run on, in order (fewer if it may use fewer).
inline std::vector<int> allowed_cpus(std::size_t n) {
  std::vector<int> cpus;
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE && cpus.size() < n; ++c)
    if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
  return cpus;
}

/// Pins the calling thread to `cpu`; -1 leaves it alone. False if the kernel refused.
inline bool pin_this_thread(int cpu) {
  if (cpu < 0) return true;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  return ::pthread_setaffinity_np(::pthread_self(), sizeof one, &one) == 0;
}

/// Restores the calling thread's CPU mask when it goes out of scope, so a
/// measurement can pin the thread and leave it as it found it.
class ThreadMaskGuard {
 public:
  ThreadMaskGuard() {
    saved_ = ::pthread_getaffinity_np(::pthread_self(), sizeof mask_, &mask_) == 0;
  }
  ~ThreadMaskGuard() {
    if (saved_) ::pthread_setaffinity_np(::pthread_self(), sizeof mask_, &mask_);
  }
  ThreadMaskGuard(const ThreadMaskGuard&) = delete;
  ThreadMaskGuard& operator=(const ThreadMaskGuard&) = delete;

 private:
  cpu_set_t mask_{};
  bool saved_ = false;
};

/// Writes exactly n bytes, retrying on EINTR and short counts. False on error.
inline bool write_all(int fd, const void* p, std::size_t n) {
  const auto* b = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t k = ::write(fd, b, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    b += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}

/// Reads exactly n bytes, retrying on EINTR and short counts. False on error or EOF.
inline bool read_all(int fd, void* p, std::size_t n) {
  auto* b = static_cast<char*>(p);
  while (n > 0) {
    const ssize_t k = ::read(fd, b, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    b += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}

/// User + system CPU seconds of process `pid` from /proc/<pid>/stat (fields 14
/// and 15, counted after the parenthesised command name), or nullopt.
inline std::optional<double> proc_cpu_seconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in.is_open()) return std::nullopt;
  const std::string stat{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  const auto close_paren = stat.rfind(')');
  if (close_paren == std::string::npos || close_paren + 2 > stat.size()) return std::nullopt;
  std::istringstream fields(stat.substr(close_paren + 2));  // starts at field 3
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int index = 3; index <= 15 && fields >> field; ++index) {
    if (index == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (index == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  if (!fields) return std::nullopt;
  const long ticks = ::sysconf(_SC_CLK_TCK);
  if (ticks <= 0) return std::nullopt;
  return static_cast<double>(utime + stime) / static_cast<double>(ticks);
}

}  // namespace bench
