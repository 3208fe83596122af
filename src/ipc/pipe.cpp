// src/ipc/pipe.cpp: the shared-memory rings behind inorder::Pipe.
//
// One anonymous MAP_SHARED mapping per pair holds a header and one byte ring
// per direction (ring[s] carries what side s sends). Each ring is a
// single-producer single-consumer byte stream: the sender owns `tail`, the
// receiver owns `head`, and a message is framed as a 64-bit length followed by
// its encoded bytes. A frame that fits in the ring is published with one store
// of `tail`, so the receiver sees it whole or not at all; a larger frame is
// published piece by piece as the receiver frees space. Both sides sleep on
// EventCounts (src/ipc/sync.hpp). A waiting call also wakes every kPeerCheck to
// check that its peer still exists (a pidfd of the peer's process), so a peer
// that died without closing its end is noticed within that bound.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>
#include <string>
#include <system_error>

#include "inorder/pipe.hpp"
#include "ipc/sync.hpp"
#include "os/os.hpp"

namespace inorder::detail {
namespace {

/// How often a waiting end looks at its peer's process. Only a bound on how
/// late a peer that vanished without closing is noticed; data wakes at once.
constexpr auto kPeerCheck = std::chrono::milliseconds(20);
constexpr std::size_t kFrameHeader = sizeof(std::uint64_t);

struct Ring {
  /// Bytes ever published by the sender. Written only by the sender (release,
  /// after the bytes); read by the receiver (acquire, before reading them).
  alignas(kCacheLine) std::atomic<std::uint64_t> tail{0};
  /// Bytes ever consumed by the receiver. Written only by the receiver
  /// (release, after copying out); read by the sender (acquire) to find space.
  alignas(kCacheLine) std::atomic<std::uint64_t> head{0};
  /// The receiver sleeps here until `tail` moves or the peer closes.
  EventCount data;
  /// The sender sleeps here until `head` moves or the peer closes.
  EventCount space;
};

}  // namespace

/// Ordering: `owner` and `closed` use the default, sequentially consistent,
/// on purpose: they change once or twice per pair's life, and `closed` must
/// be ordered with the EventCount protocol's sleeper count (seq_cst there)
/// so that a close is never missed by a sleeping peer. The ring counters
/// (Ring::head, Ring::tail), on the per-message path, name their orderings.
struct PipeShared {
  /// pid of the process that owns each side; 0 = the Point is unclaimed.
  /// Written by claim() (and at creation for the Anchor); read by the peer.
  std::atomic<std::int32_t> owner[2];
  /// Nonzero once the owner of that side closed it. Set (seq_cst) before the
  /// peer's EventCounts are notified; part of every wait condition.
  std::atomic<std::uint32_t> closed[2];
  std::uint32_t one_way = 0;
  std::uint64_t capacity = 0;
  Ring ring[2];
};

static_assert(std::atomic<std::uint64_t>::is_always_lock_free &&
                  std::atomic<std::int32_t>::is_always_lock_free,
              "ring counters must be lock-free: an emulated atomic is not shared across processes");
static_assert(alignof(Ring) >= kCacheLine,
              "head and tail must be a cache line apart to prevent false sharing");

namespace {

constexpr std::size_t kHeaderBytes =
    (sizeof(PipeShared) + kCacheLine - 1) / kCacheLine * kCacheLine;

std::byte* ring_data(PipeShared* s, int sender) {
  return reinterpret_cast<std::byte*>(s) + kHeaderBytes +
         static_cast<std::size_t>(sender) * s->capacity;
}

void copy_in(std::byte* buf, std::uint64_t cap, std::uint64_t pos, const std::byte* src,
             std::size_t n) {
  const std::size_t at = static_cast<std::size_t>(pos % cap);
  const std::size_t first = std::min<std::size_t>(n, cap - at);
  std::memcpy(buf + at, src, first);
  if (first < n) std::memcpy(buf, src + first, n - first);
}

void copy_out(const std::byte* buf, std::uint64_t cap, std::uint64_t pos, std::byte* dst,
              std::size_t n) {
  const std::size_t at = static_cast<std::size_t>(pos % cap);
  const std::size_t first = std::min<std::size_t>(n, cap - at);
  std::memcpy(dst, buf + at, first);
  if (first < n) std::memcpy(dst + first, buf, n - first);
}

[[noreturn]] void throw_closed(int side, const char* what) {
  std::string m = "inorder::Pipe: the ";
  m += side == 0 ? "Point" : "Anchor";
  m += " end is gone (closed, or its process exited) ";
  m += what;
  throw PipeClosed(m);
}

}  // namespace

PipeMapping::PipeMapping(bool one_way, std::size_t capacity) {
  if (capacity < 64)
    throw std::invalid_argument("inorder::Pipe::pair: capacity (" + std::to_string(capacity) +
                                ") must be at least 64 bytes");
  bytes_ = kHeaderBytes + capacity * (one_way ? 1 : 2);
  void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw_errno("inorder::Pipe: mmap");
  shared_ = new (p) PipeShared();
  shared_->owner[0].store(getpid());
  shared_->owner[1].store(0);
  shared_->closed[0].store(0);
  shared_->closed[1].store(0);
  shared_->one_way = one_way ? 1 : 0;
  shared_->capacity = capacity;
}

PipeMapping::~PipeMapping() {
  shared_->~PipeShared();
  munmap(shared_, bytes_);
}

bool PipeMapping::one_way() const noexcept { return shared_->one_way != 0; }

void PipeMapping::claim(int side) noexcept { shared_->owner[side].store(getpid()); }

void PipeMapping::close(int side) noexcept {
  if (shared_->owner[side].load() != getpid()) return;  // a copy inherited by fork: not ours
  shared_->closed[side].store(1);
  for (Ring& r : shared_->ring) {
    r.data.notify_all();
    r.space.notify_all();
  }
}

bool PipeMapping::peer_alive(int side) const {
  const int peer = 1 - side;
  if (shared_->closed[peer].load() != 0) return false;
  const pid_t pid = shared_->owner[peer].load();
  if (pid == 0 || pid == getpid()) return true;
  return !process_gone(pid);
}

namespace {

/// Waits on `ec` until `cond()`; false at `deadline`. Throws PipeClosed when
/// the peer of `side` is gone and `cond()` still does not hold.
template <class Cond>
bool wait_peer(const PipeMapping& m, PipeShared* s, int side, EventCount& ec, Cond cond,
               Deadline deadline, const char* what) {
  const int peer = 1 - side;
  auto woken = [&] { return cond() || s->closed[peer].load() != 0; };
  auto peer_ok = [&] {
    if (!m.peer_alive(side) && !cond()) throw_closed(side, what);
    return true;
  };
  // A wake-up by the peer's close() is not a success: the peer is looked at next.
  if (wait_in_slices(
          deadline, kPeerCheck, [&](Deadline until) { return ec.await(woken, until) && cond(); },
          peer_ok))
    return true;
  peer_ok();  // the deadline passed: a gone peer still makes this end throw
  return cond();
}

}  // namespace

void PipeMapping::send(int side, const std::byte* data, std::size_t n) {
  PipeShared* s = shared_;
  if (side == 1 && s->owner[1].load() == 0 && s->owner[0].load() != getpid()) claim(1);
  if (s->closed[1 - side].load() != 0) throw_closed(side, "before send()");
  Ring& r = s->ring[side];
  std::byte* buf = ring_data(s, side);
  const std::uint64_t cap = s->capacity;
  std::uint64_t tail = r.tail.load(std::memory_order_relaxed);  // only this side writes it
  const std::uint64_t len = n;
  auto free_at_least = [&](std::uint64_t need) {
    return [&r, &tail, cap, need] {
      return cap - (tail - r.head.load(std::memory_order_acquire)) >= need;
    };
  };
  if (kFrameHeader + n <= cap) {
    // Whole frame in one publication: the receiver never sees half of it.
    wait_peer(*this, s, side, r.space, free_at_least(kFrameHeader + n), kForever, "during send()");
    copy_in(buf, cap, tail, reinterpret_cast<const std::byte*>(&len), kFrameHeader);
    copy_in(buf, cap, tail + kFrameHeader, data, n);
    r.tail.store(tail + kFrameHeader + n, std::memory_order_release);
    r.data.notify_one();
    return;
  }
  // Larger than the ring: the header, then pieces as the receiver frees space.
  wait_peer(*this, s, side, r.space, free_at_least(kFrameHeader), kForever, "during send()");
  copy_in(buf, cap, tail, reinterpret_cast<const std::byte*>(&len), kFrameHeader);
  tail += kFrameHeader;
  r.tail.store(tail, std::memory_order_release);
  r.data.notify_one();
  std::size_t sent = 0;
  while (sent < n) {
    wait_peer(*this, s, side, r.space, free_at_least(1), kForever, "during send()");
    const std::uint64_t room = cap - (tail - r.head.load(std::memory_order_acquire));
    const std::size_t piece = static_cast<std::size_t>(std::min<std::uint64_t>(room, n - sent));
    copy_in(buf, cap, tail, data + sent, piece);
    tail += piece;
    sent += piece;
    r.tail.store(tail, std::memory_order_release);
    r.data.notify_one();
  }
}

bool PipeMapping::recv(int side, std::vector<std::byte>& out, Deadline deadline) {
  PipeShared* s = shared_;
  if (side == 1 && s->owner[1].load() == 0 && s->owner[0].load() != getpid()) claim(1);
  if (side == 0 && s->one_way != 0)
    throw std::logic_error("inorder::Pipe: this pipe is one-way; the Anchor only sends");
  const int sender = 1 - side;
  Ring& r = s->ring[sender];
  const std::byte* buf = ring_data(s, sender);
  const std::uint64_t cap = s->capacity;
  std::uint64_t head = r.head.load(std::memory_order_relaxed);  // only this side writes it
  auto available = [&] { return r.tail.load(std::memory_order_acquire) - head; };
  if (!wait_peer(
          *this, s, side, r.data, [&] { return available() >= kFrameHeader; }, deadline,
          "and sent nothing more"))
    return false;
  std::uint64_t len = 0;
  copy_out(buf, cap, head, reinterpret_cast<std::byte*>(&len), kFrameHeader);
  head += kFrameHeader;
  out.resize(static_cast<std::size_t>(len));
  std::size_t got = 0;
  while (got < len) {
    wait_peer(
        *this, s, side, r.data, [&] { return available() > 0; }, kForever,
        "in the middle of a message");
    const std::size_t piece =
        static_cast<std::size_t>(std::min<std::uint64_t>(available(), len - got));
    copy_out(buf, cap, head, out.data() + got, piece);
    head += piece;
    got += piece;
    if (len + kFrameHeader > cap) {  // a streamed frame: give the sender its space back now
      r.head.store(head, std::memory_order_release);
      r.space.notify_one();
    }
  }
  r.head.store(head, std::memory_order_release);
  r.space.notify_one();
  return true;
}

}  // namespace inorder::detail
