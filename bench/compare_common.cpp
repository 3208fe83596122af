// bench/compare_common.cpp: the workloads and helpers of compare_common.hpp.
#include "compare_common.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace compare {

const WorkloadInfo& info(Workload w) {
  for (const WorkloadInfo& i : kWorkloads)
    if (i.id == w) return i;
  return kWorkloads[0];
}

std::optional<Workload> parse_workload(std::string_view name) {
  for (const WorkloadInfo& i : kWorkloads)
    if (name == i.name) return i.id;
  return std::nullopt;
}

void spin_ns(long ns) {
  const auto end = SteadyClock::now() + std::chrono::nanoseconds(ns);
  while (SteadyClock::now() < end) {
  }
}

bool is_slow(long index) {
  // splitmix64's output function; bench/imap.py computes the same.
  std::uint64_t z = static_cast<std::uint64_t>(index) + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return z % 100 == 0;
}

long task_tiny(long i) { return i; }

long task_1us(long i) {
  spin_ns(1'000);
  return i;
}

long task_50us(long i) {
  spin_ns(50'000);
  return i;
}

long task_skewed(long i) {
  // Sleep, not spin: the point is the uneven task length, and sleeping tasks
  // let more workers than cores run without the 2 cores becoming the limit.
  std::this_thread::sleep_for(is_slow(i) ? std::chrono::milliseconds(50)
                                         : std::chrono::milliseconds(1));
  return i;
}

std::string make_payload(long i, std::size_t n) {
  std::string s(n, static_cast<char>('a' + i % 26));
  std::memcpy(s.data(), &i, std::min(sizeof i, n));
  return s;
}

bool payload_ok(long i, const char* data, std::size_t len, std::size_t n) {
  if (len != n || n < sizeof i) return false;
  long head = 0;
  std::memcpy(&head, data, sizeof head);
  const char fill = static_cast<char>('a' + i % 26);
  return head == i && (n == sizeof i || (data[sizeof i] == fill && data[n - 1] == fill));
}

std::string task_64KiB(long i) { return make_payload(i, std::size_t{64} << 10); }
std::string task_1MiB(long i) { return make_payload(i, std::size_t{1} << 20); }

bool check_index(long i, const long& r) { return r == i; }
bool check_64KiB(long i, const std::string& r) {
  return payload_ok(i, r.data(), r.size(), std::size_t{64} << 10);
}
bool check_1MiB(long i, const std::string& r) {
  return payload_ok(i, r.data(), r.size(), std::size_t{1} << 20);
}

std::string out_of_order(long expected) {
  return "result out of order or wrong: expected task " + std::to_string(expected);
}

int wait_child(int pid) {
  int status = 0;
  for (;;) {
    if (::waitpid(pid, &status, 0) >= 0) return status;
    if (errno != EINTR) return -1;
  }
}

double percentile(std::vector<double>& samples, double p) {
  if (samples.empty()) return 0.0;
  std::sort(samples.begin(), samples.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(samples.size())));
  return samples[std::clamp<std::size_t>(rank, 1, samples.size()) - 1];
}

}  // namespace compare
