// tests/test_util.hpp: what every multi-process test checks and uses.
//
// - A per-test watchdog: alarm() armed when each test starts, so a hang kills
//   the test binary (and fails it) long before the meson timeout.
// - time_scale() and scaled(): every time bound in the suite (the watchdog,
//   wait_until(), the few "within N s" promises) is multiplied by it, so the
//   bounds hold on a slow, freshly booted, busy 2-core machine and under the
//   sanitizers; volume() trims loops whose count only serves volume.
// - LeakCheck: a fixture that records this process's open fds, children and
//   /dev/shm entries before a test and fails the test if any new one is left
//   after it (no zombie, no live child, no fd, no shared-memory name).
// - SharedBlock<T>: a T in anonymous MAP_SHARED memory, made before a queue
//   forks its workers, so tasks and the test can flip flags both ways.
// - wait_until(): polls a condition with sched_yield until a deadline, for
//   waiting on flags set by workers (never used to assert timing).
#pragma once

#include <gtest/gtest.h>

#include <dirent.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace inorder_test {

/// Built with AddressSanitizer (GCC defines __SANITIZE_ADDRESS__; clang has
/// __has_feature). ASan makes fork, first touches of memory and process exit
/// several times slower: a fresh machine measured 4.5 ms per queue
/// create/destroy cycle without it, and more than 12 ms with it.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

/// Factor applied to every time bound of the suite: INORDER_TIMEOUT_MULTIPLIER
/// (the same variable scripts/test.sh gives meson; default 1), times 4 under
/// the sanitizers. Never below 1.
inline double time_scale() {
  static const double scale = [] {
    double m = 1.0;
    if (const char* env = std::getenv("INORDER_TIMEOUT_MULTIPLIER")) {
      char* end = nullptr;
      const double v = std::strtod(env, &end);
      if (end != env && v >= 1.0) m = v;
    }
    return kSanitized ? 4.0 * m : m;
  }();
  return scale;
}

/// A time bound scaled by time_scale(): `scaled(2s)` is 2 s on a plain build.
template <class Rep, class Period>
std::chrono::milliseconds scaled(std::chrono::duration<Rep, Period> d) {
  const auto base = std::chrono::duration_cast<std::chrono::duration<double, std::milli>>(d);
  return std::chrono::milliseconds(static_cast<long long>(base.count() * time_scale()));
}

/// Iteration count for loops that only serve volume: `n` on a plain build,
/// n / 10 (at least `floor`) under the sanitizers, whose every fork and exit
/// costs several times more. What such a loop checks (nothing left behind,
/// order kept) does not depend on the count.
inline long volume(long n, long floor = 1) { return kSanitized ? std::max(n / 10, floor) : n; }

inline std::set<std::string> list_dir(const char* path) {
  std::set<std::string> names;
  if (DIR* d = opendir(path)) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") names.insert(n);
    }
    closedir(d);
  }
  return names;
}

/// Open fds of this process, excluding the one opendir() itself uses.
inline std::size_t open_fd_count() { return list_dir("/proc/self/fd").size() - 1; }

/// pids whose parent is this process (live or zombie).
inline std::vector<int> child_pids() {
  std::vector<int> kids;
  const int me = getpid();
  for (const auto& name : list_dir("/proc")) {
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream st("/proc/" + name + "/stat");
    std::string line;
    if (!std::getline(st, line)) continue;
    // Fields after the parenthesised command: state ppid ...
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == me)
      kids.push_back(std::stoi(name));
  }
  return kids;
}

/// The scheduler state letter of a thread ('R' running, 'S' sleeping, ...),
/// from /proc/<pid>/task/<tid>/stat; '?' if it cannot be read. Plain stdio,
/// so a forked worker may call it too.
inline char thread_state(pid_t pid, pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/task/%d/stat", pid, tid);
  std::FILE* f = std::fopen(path, "r");
  if (f == nullptr) return '?';
  char buf[512] = {};
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  const char* close = std::strrchr(buf, ')');
  return (n > 0 && close != nullptr && close[1] == ' ') ? close[2] : '?';
}

/// "pid (comm) state" for each pid, to say what was left behind.
inline std::string describe_pids(const std::vector<int>& pids) {
  std::string out;
  for (const int pid : pids) {
    std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(st, line);
    const auto close = line.rfind(')');
    out += line.substr(0, close == std::string::npos ? line.size() : close + 3) + "; ";
  }
  return out;
}

class LeakCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    fds_before_ = open_fd_count();
    shm_before_ = list_dir("/dev/shm");
    ASSERT_TRUE(child_pids().empty()) << "a previous test left a child process behind";
  }
  void TearDown() override {
    const std::vector<int> kids = child_pids();
    EXPECT_TRUE(kids.empty()) << "child processes (workers or zombies) left behind: "
                              << describe_pids(kids);
    EXPECT_EQ(open_fd_count(), fds_before_) << "file descriptors leaked";
    EXPECT_EQ(list_dir("/dev/shm"), shm_before_) << "/dev/shm entries left behind";
  }

 private:
  std::size_t fds_before_ = 0;
  std::set<std::string> shm_before_;
};

/// A T constructed in anonymous shared memory; visible to workers forked later.
template <class T>
class SharedBlock {
 public:
  SharedBlock() {
    void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    ptr_ = new (p) T();
  }
  ~SharedBlock() {
    ptr_->~T();
    munmap(ptr_, sizeof(T));
  }
  SharedBlock(const SharedBlock&) = delete;
  SharedBlock& operator=(const SharedBlock&) = delete;
  T* get() const { return ptr_; }
  T* operator->() const { return ptr_; }
  T& operator*() const { return *ptr_; }

 private:
  T* ptr_;
};

/// Polls `cond` until it holds or `timeout` (scaled by time_scale()) passes;
/// returns its last value.
template <class Cond>
bool wait_until(Cond&& cond, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + scaled(timeout);
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= deadline) return cond();
    sched_yield();
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  return true;
}

/// Arms alarm() for every test: a hung test dies with SIGALRM and fails.
/// 120 s on a plain build, scaled by time_scale(); the meson timeout of each
/// test binary (tests/meson.build) is scaled by the same multiplier.
class Watchdog : public ::testing::EmptyTestEventListener {
 public:
  static constexpr unsigned kSecondsPerTest = 120;
  static unsigned seconds() {
    return static_cast<unsigned>(static_cast<double>(kSecondsPerTest) * time_scale());
  }
  void OnTestStart(const ::testing::TestInfo&) override { alarm(seconds()); }
  void OnTestEnd(const ::testing::TestInfo&) override { alarm(0); }
};

inline const bool kWatchdogInstalled = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new Watchdog);
  // Become a subreaper: a worker orphaned by its supervisor is re-parented to
  // this test process instead of init, so LeakCheck sees it.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  return true;
}();

}  // namespace inorder_test
