// inorder/reconnect.hpp: a live resource (a database connection, a socket) that
// each process opens for itself.
//
// Contract. A Reconnect<T> holds how to open a T (and optionally how to close
// one), never a T shared between processes. get() returns the calling
// process's own T, opening it on the first use in that process: a connection
// opened by the parent is never used, nor closed, by a forked child, which
// opens a fresh one. The connection of a process is closed by reset(), by the
// destructor in that process, or, in a Skprocess child (which ends with _exit
// and runs no destructors), when the child finishes; a process that forks on
// its own may call inorder::close_reconnects() before it exits.
//
// Not promised: thread safety of one Reconnect (it is as safe as the T it
// holds: use one per thread, or lock around it), and freeing the memory of
// the copy a child inherited (it is left alone, never destroyed in the child).
// Copies of a Reconnect share the opener and closer, not the connection: a
// copy opens its own.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <functional>
#include <stdexcept>
#include <utility>

namespace inorder {
namespace detail {

/// Entry in the calling process's list of open Reconnects (src/process/reconnect.cpp).
class ReconnectNode {
 public:
  /// Closes this process's resource; called with the node already unlinked.
  virtual void close_unlinked() noexcept = 0;
  ReconnectNode* prev_ = nullptr;  // neighbours in this process's list (guarded by its mutex)
  ReconnectNode* next_ = nullptr;

 protected:
  ReconnectNode() = default;
  ReconnectNode(const ReconnectNode&) {}  // a copy is never linked
  ReconnectNode& operator=(const ReconnectNode&) { return *this; }
  ~ReconnectNode() = default;
};

void reconnect_link(ReconnectNode* node);
void reconnect_unlink(ReconnectNode* node) noexcept;

}  // namespace detail

/// Closes every Reconnect the calling process opened (each one's closer runs
/// once). For processes forked outside Skprocess, just before _exit. Any thread.
void close_reconnects() noexcept;

template <class T>
class Reconnect : private detail::ReconnectNode {
 public:
  using Opener = std::function<T()>;
  using Closer = std::function<void(T&)>;

  /// `open` makes a fresh T; `close` (optional) releases one; T's destructor
  /// runs after it either way. Nothing is opened yet.
  explicit Reconnect(Opener open, Closer close = {})
      : open_(std::move(open)), close_(std::move(close)) {
    if (!open_) throw std::invalid_argument("inorder::Reconnect: the opener is empty");
  }
  /// A copy with the same opener and closer; it opens its own T.
  Reconnect(const Reconnect& other)
      : detail::ReconnectNode(other), open_(other.open_), close_(other.close_) {}
  Reconnect& operator=(const Reconnect& other) {
    if (this != &other) {
      reset();
      open_ = other.open_;
      close_ = other.close_;
    }
    return *this;
  }
  /// Closes the resource if this process opened it.
  ~Reconnect() { reset(); }

  /// The calling process's T; opens it (calls the opener) on the first use in
  /// this process, and again after reset(). Blocks for as long as the opener;
  /// throws what the opener throws (nothing is kept then).
  T& get() {
    const pid_t me = getpid();
    if (value_ != nullptr && owner_ == me) return *value_;
    // A T inherited from another process is dropped, never used or closed here.
    value_ = nullptr;
    T* fresh = new T(open_());
    value_ = fresh;
    owner_ = me;
    detail::reconnect_link(this);
    return *value_;
  }
  T& operator*() { return get(); }
  T* operator->() { return &get(); }

  /// True if the calling process has its own T open.
  [[nodiscard]] bool is_open() const noexcept { return value_ != nullptr && owner_ == getpid(); }

  /// Closes the calling process's T (closer, then destructor), if it has one.
  /// The next get() opens a new one. Never throws (a throwing closer is ignored).
  void reset() noexcept {
    if (!is_open()) return;
    detail::reconnect_unlink(this);
    close_unlinked();
  }

 private:
  void close_unlinked() noexcept override {
    T* v = value_;
    value_ = nullptr;
    owner_ = 0;
    if (v == nullptr) return;
    if (close_) {
      try {
        close_(*v);
      } catch (...) {
      }
    }
    delete v;
  }

  Opener open_;
  Closer close_;
  T* value_ = nullptr;  // the T of process owner_, or an inherited one to ignore
  pid_t owner_ = 0;     // process that opened value_
};

}  // namespace inorder
