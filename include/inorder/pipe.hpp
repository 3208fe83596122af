// inorder/pipe.hpp: a message channel between a process and the processes it forks.
//
// Contract. Pipe::pair() makes two connected ends before a fork: the Anchor,
// which stays with the process that made the pair, and the Point, which a
// forked child uses. Messages are values of any Encodable type (codec.hpp);
// each direction delivers them whole and in send order. A message larger than
// the ring still arrives (it streams through in pieces). pair(true) makes a
// one-way pipe: only the Anchor sends, and Point::send throws std::logic_error.
// An end whose peer has gone (closed, or its process exited) throws PipeClosed
// once the messages the peer sent before going are consumed: no call blocks on
// a peer that cannot answer. A waiting call sleeps (futex); it uses no CPU.
//
// Who is the peer. The Anchor belongs to the process that called pair(). The
// Point belongs to the first process other than that one which uses it
// (send, recv, or claim()); until then a waiting Anchor cannot tell whether a
// Point exists and simply waits. Call point.claim() first thing in the child
// when the child may die before it uses the pipe. Skprocess does this itself.
//
// Not promised: several threads of one process on the same end at once (each
// end serializes its own calls with a mutex, so this is safe but not fast), and
// more than one process using the same end; a message whose sender is killed
// half way through it (only possible for messages larger than the ring) makes
// the receiving end throw PipeClosed. Memory: one anonymous shared mapping per
// pair (two rings of `capacity` bytes, one for a one-way pipe), no fd, no name.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "inorder/codec.hpp"
#include "inorder/detail/deadline.hpp"
#include "inorder/errors.hpp"

namespace inorder {
namespace detail {

struct PipeShared;

/// The mapping behind one pair, shared (per process) by its two end objects.
class PipeMapping {
 public:
  PipeMapping(bool one_way, std::size_t capacity);
  ~PipeMapping();
  PipeMapping(const PipeMapping&) = delete;
  PipeMapping& operator=(const PipeMapping&) = delete;

  /// side 0 = Anchor, 1 = Point. Writes one framed message (blocks while the
  /// ring is full; throws PipeClosed if the peer goes meanwhile).
  void send(int side, const std::byte* data, std::size_t n);
  /// Reads one framed message into `out`. False if no message began before
  /// `deadline`; throws PipeClosed if the peer is gone and nothing is left.
  bool recv(int side, std::vector<std::byte>& out, Deadline deadline);
  /// Makes the calling process the owner of `side`.
  void claim(int side) noexcept;
  /// Marks `side` closed if the calling process owns it, and wakes the peer.
  void close(int side) noexcept;
  [[nodiscard]] bool one_way() const noexcept;
  /// False once the peer of `side` has closed its end or exited.
  [[nodiscard]] bool peer_alive(int side) const;

 private:
  PipeShared* shared_;
  std::size_t bytes_;
};

/// One end: the typed templates over PipeMapping.
class PipeEnd {
 public:
  PipeEnd() = default;
  PipeEnd(std::shared_ptr<PipeMapping> m, int side) : map_(std::move(m)), side_(side) {}
  ~PipeEnd() { close(); }
  PipeEnd(PipeEnd&& o) noexcept : map_(std::move(o.map_)), side_(o.side_) {}
  PipeEnd& operator=(PipeEnd&& o) noexcept {
    if (this != &o) {
      close();
      map_ = std::move(o.map_);
      side_ = o.side_;
    }
    return *this;
  }
  PipeEnd(const PipeEnd&) = delete;
  PipeEnd& operator=(const PipeEnd&) = delete;

  template <class T>
  void send(const T& value) {
    require_encodable<T>();
    if (side_ == 1 && mapping().one_way())
      throw std::logic_error("inorder::Pipe: this pipe is one-way; only the Anchor sends");
    const std::lock_guard lock(send_mutex_);
    buffer_.resize(encoded_size(value));
    Writer w(buffer_.data());
    inorder::encode(w, value);
    mapping().send(side_, buffer_.data(), buffer_.size());
  }

  template <class T>
  T recv() {
    return *recv_until_<T>(kForever);
  }

  template <class T, class Rep, class Period>
  std::optional<T> try_recv_for(const std::chrono::duration<Rep, Period>& timeout) {
    return recv_until_<T>(after(timeout));
  }

  template <class T>
  std::optional<T> try_recv() {
    return recv_until_<T>(kNoWait);
  }

  void claim() noexcept {
    if (map_) map_->claim(side_);
  }
  void close() noexcept {
    if (map_) map_->close(side_);
    map_.reset();
  }
  [[nodiscard]] bool peer_alive() const { return map_ && map_->peer_alive(side_); }
  [[nodiscard]] bool valid() const noexcept { return map_ != nullptr; }

 private:
  template <class T>
  static constexpr void require_encodable() {
    static_assert(Encodable<T>,
                  "inorder::Pipe: the message type cannot cross a process boundary; see "
                  "docs/codec.md");
  }

  PipeMapping& mapping() const {
    if (!map_) throw PipeClosed("inorder::Pipe: this end was closed or moved from");
    return *map_;
  }

  template <class T>
  std::optional<T> recv_until_(Deadline d) {
    require_encodable<T>();
    const std::lock_guard lock(recv_mutex_);
    if (!mapping().recv(side_, rbuffer_, d)) return std::nullopt;
    return inorder::decode_from<T>(rbuffer_.data(), rbuffer_.size());
  }

  std::shared_ptr<PipeMapping> map_;
  int side_ = 0;
  std::mutex send_mutex_;
  std::mutex recv_mutex_;
  std::vector<std::byte> buffer_;   // encoded message being sent (guarded by send_mutex_)
  std::vector<std::byte> rbuffer_;  // message being received (guarded by recv_mutex_)
};

}  // namespace detail

/// Namespace-like holder of the pair() factory and the two end types.
class Pipe {
 public:
  /// Default bytes per direction: messages larger than this still go through.
  static constexpr std::size_t kDefaultCapacity = std::size_t{64} << 10;

  /// The end kept by the process that made the pair. send<T>(v) blocks only
  /// while the ring is full, and throws PipeClosed if the peer closed its end
  /// or is gone while the ring is full (a send into a ring with room does not
  /// look further); recv<T>() blocks until a message arrives;
  /// try_recv_for<T>(timeout) returns std::nullopt when none began in time;
  /// both throw PipeClosed once the peer is gone and nothing it sent is left.
  class Anchor : public detail::PipeEnd {
   public:
    Anchor() = default;
    using detail::PipeEnd::PipeEnd;
  };

  /// The end used by a forked child. Same calls as the Anchor; on a one-way
  /// pipe, send() throws std::logic_error.
  class Point : public detail::PipeEnd {
   public:
    Point() = default;
    using detail::PipeEnd::PipeEnd;
  };

  struct Pair {
    Anchor anchor;
    Point point;
  };

  /// Makes a connected pair: `auto [anchor, point] = inorder::Pipe::pair();`.
  /// Call before forking the child that uses the Point. Throws
  /// std::invalid_argument for a capacity below 64 bytes, std::system_error if
  /// the mapping fails.
  [[nodiscard]] static Pair pair(bool one_way = false, std::size_t capacity = kDefaultCapacity) {
    auto m = std::make_shared<detail::PipeMapping>(one_way, capacity);
    return Pair{Anchor(m, 0), Point(m, 1)};
  }
};

}  // namespace inorder
