// src/os/os.hpp: the operating-system calls every component of inorder uses,
// written once. Thin wrappers: each does one system call (or one retried
// call), says what it does on failure, and nothing more.
//
// Failure policy: set-up calls throw std::system_error carrying errno (see
// docs/errors.md); calls made on a cleanup path or in a forked child, where
// there is nobody to throw to, are noexcept and report by their result.
#pragma once

#include <sys/types.h>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <span>
#include <string>
#include <typeinfo>
#include <vector>

#include "inorder/detail/deadline.hpp"

namespace inorder::detail {

// ---- errors ----

/// Throws std::system_error with the current errno and `what`.
[[noreturn]] void throw_errno(const char* what);
/// Throws std::system_error with `err` and `what`.
[[noreturn]] void throw_errno(int err, const char* what);

// ---- time ----

/// CLOCK_MONOTONIC in nanoseconds (the clock behind steady_clock).
std::uint64_t now_ns() noexcept;
/// `ns` nanoseconds as a timespec (relative or absolute, as the caller means it).
timespec to_timespec(std::uint64_t ns) noexcept;

// ---- configuration ----

/// A setting renamed this release, read from its new field `now` and its
/// deprecated one `old` (both default to `unset`): whichever was changed.
/// Throws std::invalid_argument with `conflict` when both were, differently.
unsigned renamed_setting(unsigned now, unsigned old, unsigned unset, const char* conflict);

// ---- memory ----

/// The system's page size (sysconf, read once).
std::size_t page_size() noexcept;
/// `n` rounded up to a multiple of `to`.
constexpr std::size_t round_up(std::size_t n, std::size_t to) noexcept {
  return (n + to - 1) / to * to;
}

// ---- processes ----

/// A pidfd for `pid` (close-on-exec), or -1 with errno set.
int pidfd_open(pid_t pid) noexcept;
/// True once the process behind `pidfd` has exited (its pidfd is readable).
bool pidfd_exited(int pidfd) noexcept;
/// Sleeps until the process behind `pidfd` exits or `deadline` passes
/// (kNoWait: just looks). True if it exited. Throws std::system_error if poll fails.
bool await_pidfd(int pidfd, Deadline deadline);
/// True if `pid` has exited or does not exist (a zombie counts as exited).
bool process_gone(pid_t pid) noexcept;
/// Waits for child `pid` to end and collects it; returns its wait status
/// (0 if it was collected already).
int reap(pid_t pid) noexcept;
/// Collects child `pid` if it has ended, without waiting. True if it is gone
/// (collected now or before); its wait status goes to `*status` when given.
bool try_reap(pid_t pid, int* status = nullptr) noexcept;
/// SIGKILLs child `pid` and collects it.
void kill_and_reap(pid_t pid) noexcept;
/// How a process ended, after `who`: "worker 42 was killed by signal 9
/// (SIGKILL, Killed)", "... exited with status 3", "... ended with wait status N".
std::string describe_wait_status(const std::string& who, int status);

// ---- watching children ----

/// What one sleep of a child watcher saw.
struct WatchEvents {
  bool failed = false;       ///< poll failed (not EINTR); errno says why
  bool parent_gone = false;  ///< the parent's pidfd is readable: it exited
  std::vector<char> ended;   ///< ended[i]: children[i]'s pidfd is readable
};

/// The one sleep of a single-threaded process that forks children and watches
/// them (the queue's supervisor, a Skprocess watcher): polls the pidfd of its
/// own parent, an eventfd others write to wake it (drained here) and the pidfds
/// of its children, until one of them is readable or `timeout_ns` passes
/// (negative: no limit). A negative fd is not watched. Interrupted by a
/// signal, it returns with nothing seen.
WatchEvents watch_children(int parent_fd, int wake_fd, std::span<const int> children,
                           std::int64_t timeout_ns);

// ---- eventfd: a wake-up signal between processes ----

/// A non-blocking, close-on-exec eventfd; throws std::system_error on failure.
int eventfd_create(const char* what);
/// Makes `fd` readable (wakes a poll on it). Never blocks.
void eventfd_signal(int fd) noexcept;
/// Consumes every signal pending on `fd`. Never blocks.
void eventfd_drain(int fd) noexcept;

// ---- type names ----

/// Readable name of a type ("std::out_of_range" rather than "St12out_of_range").
std::string demangle(const std::type_info& type);
/// The same for a mangled name as type_info::name() gives it.
std::string demangle(const char* mangled);
/// Readable name of the exception being handled ("unknown" if none can be
/// found). Call inside a catch block.
std::string current_exception_type_name();

}  // namespace inorder::detail
