// src/os/os.cpp: the system calls declared in os.hpp.
#include "os/os.hpp"

#include <cxxabi.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <system_error>

namespace inorder::detail {
namespace {
/// The longest single poll() (about 12 days); a longer wait polls again.
constexpr long long kLongestPollMs = 1 << 30;
}  // namespace

void throw_errno(const char* what) { throw_errno(errno, what); }

void throw_errno(int err, const char* what) {
  throw std::system_error(err, std::generic_category(), what);
}

unsigned renamed_setting(unsigned now, unsigned old, unsigned unset, const char* conflict) {
  if (old != unset && now != unset && old != now) throw std::invalid_argument(conflict);
  return now != unset ? now : old;
}

std::uint64_t now_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

timespec to_timespec(std::uint64_t ns) noexcept {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000u);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000u);
  return ts;
}

std::size_t page_size() noexcept {
  static const std::size_t page = [] {
    const long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? static_cast<std::size_t>(p) : std::size_t{4096};
  }();
  return page;
}

int pidfd_open(pid_t pid) noexcept { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

bool pidfd_exited(int pidfd) noexcept {
  pollfd p{pidfd, POLLIN, 0};
  return poll(&p, 1, 0) == 1;
}

bool await_pidfd(int pidfd, Deadline deadline) {
  for (;;) {
    int timeout_ms = -1;
    if (deadline == kNoWait) {
      timeout_ms = 0;
    } else if (deadline != kForever) {
      const auto now = Clock::now();
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(std::max(deadline, now) - now);
      timeout_ms = static_cast<int>(std::min<long long>(left.count(), kLongestPollMs));
    }
    pollfd fd{pidfd, POLLIN, 0};
    const int rc = poll(&fd, 1, timeout_ms);
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR) throw_errno("inorder: poll on a pidfd");
    if (rc == 0 && (deadline == kNoWait || Clock::now() >= deadline)) return false;
  }
}

bool process_gone(pid_t pid) noexcept {
  const int fd = pidfd_open(pid);
  if (fd < 0) return errno == ESRCH;
  const bool gone = pidfd_exited(fd);
  close(fd);
  return gone;
}

int reap(pid_t pid) noexcept {
  int status = 0;
  while (waitpid(pid, &status, 0) == -1 && errno == EINTR) {
  }
  return status;
}

bool try_reap(pid_t pid, int* status) noexcept {
  int st = 0;
  const pid_t rc = waitpid(pid, &st, WNOHANG);
  if (rc == pid && status != nullptr) *status = st;
  return rc == pid || (rc == -1 && errno == ECHILD);
}

void kill_and_reap(pid_t pid) noexcept {
  kill(pid, SIGKILL);
  reap(pid);
}

std::string describe_wait_status(const std::string& who, int status) {
  std::string s = who;
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    s += " was killed by signal " + std::to_string(sig);
    if (const char* name = sigabbrev_np(sig))
      s += std::string(" (SIG") + name + ", " + sigdescr_np(sig) + ")";
  } else if (WIFEXITED(status)) {
    s += " exited with status " + std::to_string(WEXITSTATUS(status));
  } else {
    s += " ended with wait status " + std::to_string(status);
  }
  return s;
}

WatchEvents watch_children(int parent_fd, int wake_fd, std::span<const int> children,
                           std::int64_t timeout_ns) {
  std::vector<pollfd> fds;
  fds.reserve(children.size() + 2);
  fds.push_back({parent_fd, POLLIN, 0});  // poll() skips negative fds
  fds.push_back({wake_fd, POLLIN, 0});
  for (const int fd : children) fds.push_back({fd, POLLIN, 0});
  timespec ts{};
  if (timeout_ns >= 0) ts = to_timespec(static_cast<std::uint64_t>(timeout_ns));
  WatchEvents ev;
  ev.ended.assign(children.size(), 0);
  if (ppoll(fds.data(), fds.size(), timeout_ns >= 0 ? &ts : nullptr, nullptr) < 0) {
    ev.failed = errno != EINTR;
    return ev;
  }
  ev.parent_gone = fds[0].revents != 0;
  if (fds[1].revents != 0) eventfd_drain(wake_fd);
  for (std::size_t i = 0; i < children.size(); ++i) ev.ended[i] = fds[i + 2].revents != 0;
  return ev;
}

int eventfd_create(const char* what) {
  const int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) throw_errno(what);
  return fd;
}

void eventfd_signal(int fd) noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = write(fd, &one, sizeof one);
}

void eventfd_drain(int fd) noexcept {
  std::uint64_t n = 0;
  [[maybe_unused]] const ssize_t got = read(fd, &n, sizeof n);
}

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  if (status == 0 && name) return name.get();
  return mangled;
}

std::string demangle(const std::type_info& type) { return demangle(type.name()); }

std::string current_exception_type_name() {
  const std::type_info* t = abi::__cxa_current_exception_type();
  return t != nullptr ? demangle(*t) : std::string("unknown");
}

}  // namespace inorder::detail
