// inorder/errors.hpp: the one exception hierarchy of inorder.
//
// Contract: every error inorder throws on its own account derives from
// inorder::Error (itself a std::runtime_error), with three exceptions that
// follow the standard library's conventions: bad Options throw
// std::invalid_argument naming the field, failed system calls during set-up
// throw std::system_error carrying errno, and out-of-memory is std::bad_alloc.
// A task's failure is never thrown where it happened: it travels back to the
// parent and is thrown by get() at the task's own position in the output order,
// as a TaskError that keeps the original type name, message and worker pid.
// docs/errors.md states this policy once for the whole library.
#pragma once

#include <sys/types.h>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace inorder {

/// Base of every inorder-specific exception.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// put() after stop(): the queue takes no more input. Nothing already put is lost.
class QueueClosed : public Error {
 public:
  QueueClosed() : Error("inorder: put() after stop(): the queue is closed to new input") {}
  using Error::Error;
};

/// Bytes handed to a decoder did not hold what the decoder expected (short,
/// trailing bytes, or an impossible length). Thrown by inorder::decode.
class DecodeError : public Error {
 public:
  using Error::Error;
};

/// put() was given arguments (or a pass-through value) whose encoding is
/// larger than Options::max_spill_bytes. Thrown before anything is enqueued.
class PayloadTooLarge : public Error {
 public:
  using Error::Error;
};

/// A task failed. Thrown by get() at the failed task's position; the results
/// before and after it are unaffected.
class TaskError : public Error {
 public:
  TaskError(std::string type_name, std::string message, pid_t worker_pid, std::uint32_t sequence)
      : Error(compose(type_name, message, worker_pid)),
        type_name_(std::move(type_name)),
        message_(std::move(message)),
        worker_pid_(worker_pid),
        sequence_(sequence) {}

  /// Demangled type of what the task threw ("std::out_of_range", "int", ...),
  /// or an inorder-specific name ("inorder::ResultTooLarge") when the failure
  /// was detected by the library rather than thrown by the task.
  [[nodiscard]] const std::string& type_name() const noexcept { return type_name_; }
  /// what() of the original exception; empty when it was not a std::exception.
  [[nodiscard]] const std::string& message() const noexcept { return message_; }
  /// pid of the worker process the task ran in.
  [[nodiscard]] pid_t worker_pid() const noexcept { return worker_pid_; }
  /// Wrapped sequence number of the task (the position it was put at).
  [[nodiscard]] std::uint32_t sequence() const noexcept { return sequence_; }

 private:
  static std::string compose(const std::string& type, const std::string& msg, pid_t pid) {
    std::string s = "task failed in worker " + std::to_string(pid) + ": " + type;
    if (!msg.empty()) s += ": " + msg;
    return s;
  }

  std::string type_name_;
  std::string message_;
  pid_t worker_pid_;
  std::uint32_t sequence_;
};

/// The worker running this task died: killed by a signal (a segfault, abort(),
/// SIGKILL) or exited (even exit(0): a task that ends its process has not
/// returned a result). The worker was replaced; later tasks are unaffected.
class WorkerCrashed : public TaskError {
 public:
  using TaskError::TaskError;
};

/// The task ran past Options::task_timeout; its worker was killed and replaced.
class TaskTimeout : public TaskError {
 public:
  using TaskError::TaskError;
};

/// The queue gave up: the restart cap was reached (workers kept dying), or its
/// supervisor process vanished. Thrown by put() from then on, and by get() for
/// every task that had not finished; no call waits for work that cannot happen.
class QueueBroken : public Error {
 public:
  using Error::Error;
};

/// A Share cannot hold what was asked: the allocation would pass
/// ShareOptions::max_bytes, or one transaction changed more words than its undo
/// journal records. Nothing of the failed operation is kept.
class ShareFull : public Error {
 public:
  using Error::Error;
};

/// A Share handle (or the Share itself) was used in a process where its arena
/// is not mapped: the process was forked before the Share was made, or the
/// Share was destroyed in this process.
class ShareNotInherited : public Error {
 public:
  using Error::Error;
};

/// A name of a Share was opened as another kind of object (a list as a map) or
/// with another element type than it was made with.
class ShareTypeMismatch : public Error {
 public:
  using Error::Error;
};

/// A Pipe end (or a Skprocess's tell()/listen()) found its peer gone: the other
/// end was closed, or the process using it exited. Messages the peer sent
/// before it went are still delivered first; no call blocks on a peer that
/// cannot answer.
class PipeClosed : public Error {
 public:
  using Error::Error;
};

/// A Skprocess call that needs a started process (tell, listen, wait, result,
/// ...) was made before start().
class NotStarted : public Error {
 public:
  using Error::Error;
};

/// A Skprocess failed after its lives were spent. Thrown by result() (and
/// run()) in the parent, and handed to the on_error() hook. Names the hook and
/// the run where the last failure happened, and its cause.
class ProcessError : public Error {
 public:
  /// How the last attempt failed.
  enum class Kind {
    kThrew,     ///< the hook threw an exception (type_name() and message() say which)
    kTimedOut,  ///< the hook ran past its timeout; the process was killed
    kCrashed,   ///< the process died (a signal, or an exit before it finished)
    kKilled,    ///< kill() was called from the parent
  };

  ProcessError(Kind kind, std::string hook, std::uint64_t run, std::string type_name,
               std::string message)
      : Error(compose(kind, hook, run, type_name, message)),
        kind_(kind),
        hook_(std::move(hook)),
        run_(run),
        type_name_(std::move(type_name)),
        message_(std::move(message)) {}

  [[nodiscard]] Kind kind() const noexcept { return kind_; }
  /// The hook that failed: "prerun", "run", "postrun", "onfinish", "result" or "error".
  [[nodiscard]] const std::string& hook() const noexcept { return hook_; }
  /// The run (iteration, counted from 0) the hook belonged to.
  [[nodiscard]] std::uint64_t run() const noexcept { return run_; }
  /// Demangled type of the exception (kThrew), else an inorder:: name.
  [[nodiscard]] const std::string& type_name() const noexcept { return type_name_; }
  /// what() of the exception, or the signal / exit status / timeout.
  [[nodiscard]] const std::string& message() const noexcept { return message_; }
  /// type_name and message together: what went wrong.
  [[nodiscard]] std::string cause() const {
    return message_.empty() ? type_name_ : type_name_ + ": " + message_;
  }

 private:
  static std::string compose(Kind kind, const std::string& hook, std::uint64_t run,
                             const std::string& type, const std::string& msg) {
    std::string s = "inorder: Skprocess hook ";
    s += hook;
    s += " failed at run ";
    s += std::to_string(run);
    s += kind == Kind::kThrew      ? " (threw): "
         : kind == Kind::kTimedOut ? " (timed out): "
         : kind == Kind::kCrashed  ? " (process crashed): "
                                   : " (killed): ";
    s += type;
    if (!msg.empty()) {
      s += ": ";
      s += msg;
    }
    return s;
  }

  Kind kind_;
  std::string hook_;
  std::uint64_t run_;
  std::string type_name_;
  std::string message_;
};

}  // namespace inorder
