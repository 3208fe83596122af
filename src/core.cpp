// src/core.cpp: the parent side of a queue: set-up, producers, getters,
// lifecycle. The worker side is in worker.cpp; the layout in shared.hpp.
#include <algorithm>
#include <bit>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>

#include "inorder/detail/core.hpp"
#include "inorder/errors.hpp"
#include "internal.hpp"

namespace inorder::detail {
namespace {

constexpr std::size_t kPage = 4096;
/// Spilled payloads at least this large have their pages returned to the
/// system when their slot is freed; smaller ones stay mapped for reuse, so the
/// memory a queue keeps is bounded by capacity x this threshold x 2.
constexpr std::size_t kReleaseThreshold = std::size_t{256} << 10;
/// Upper bound of the spill reservation (address space, not memory).
constexpr std::size_t kMaxSpillReservation = std::size_t{1} << 46;

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

int pidfd_open(pid_t pid) {
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

struct Validated {
  unsigned workers;
  std::size_t window;
  std::size_t capacity;
  std::size_t inline_bytes;
  std::size_t spill_bytes;
};

Validated validate(const Options& o) {
  Validated v{};
  if (o.workers < 1 || o.workers > 1024)
    throw std::invalid_argument("inorder: Options::workers must be between 1 and 1024, got " +
                                std::to_string(o.workers));
  v.workers = o.workers;
  v.window = o.window.value_or(std::size_t{10} * o.workers);
  if (o.window && *o.window < o.workers)
    throw std::invalid_argument("inorder: Options::window (" + std::to_string(*o.window) +
                                ") must be >= Options::workers (" + std::to_string(o.workers) +
                                "): a smaller window leaves workers idle forever");
  if (v.window > kMaxCapacity)
    throw std::invalid_argument("inorder: Options::window must be <= " +
                                std::to_string(kMaxCapacity));
  if (o.capacity) {
    if (*o.capacity == 0) throw std::invalid_argument("inorder: Options::capacity must be >= 1");
    if (*o.capacity < v.window)
      throw std::invalid_argument("inorder: Options::capacity (" + std::to_string(*o.capacity) +
                                  ") must be >= Options::window (" + std::to_string(v.window) +
                                  ")");
    if (*o.capacity > kMaxCapacity)
      throw std::invalid_argument("inorder: Options::capacity must be <= " +
                                  std::to_string(kMaxCapacity));
    v.capacity = std::bit_ceil(*o.capacity);
  } else {
    v.capacity = std::bit_ceil(std::max<std::size_t>(64, 2 * v.window));
  }
  if (o.inline_bytes < 64 || o.inline_bytes > (std::size_t{1} << 20))
    throw std::invalid_argument("inorder: Options::inline_bytes must be between 64 and 1 MiB");
  v.inline_bytes = round_up(o.inline_bytes, kCacheLine);
  if (o.max_spill_bytes < v.inline_bytes)
    throw std::invalid_argument("inorder: Options::max_spill_bytes must be >= inline_bytes");
  v.spill_bytes = round_up(o.max_spill_bytes, kPage);
  if (v.spill_bytes > kMaxSpillReservation / v.capacity)
    throw std::invalid_argument(
        "inorder: Options::max_spill_bytes x capacity exceeds the 64 TiB address-space budget");
  if (o.shutdown_grace.count() < 0)
    throw std::invalid_argument("inorder: Options::shutdown_grace must not be negative");
  return v;
}

}  // namespace

struct Core::Impl {
  Options opts;
  Region r;
  void* main_map = nullptr;
  std::size_t main_bytes = 0;
  void* spill_map = nullptr;
  std::size_t spill_total = 0;

  std::mutex procs_mu;          ///< guards the three vectors below
  std::vector<pid_t> pids;      ///< by worker index
  std::vector<int> pidfds;      ///< -1 once reaped
  std::vector<bool> reaped;

  explicit Impl(const Options& o) : opts(o) {}

  ~Impl() {
    if (spill_map) munmap(spill_map, spill_total);
    if (main_map) munmap(main_map, main_bytes);
  }

  /// Reaps worker i if it has exited. Caller holds procs_mu.
  bool try_reap(std::size_t i) {
    if (reaped[i]) return true;
    int status = 0;
    const pid_t rc = waitpid(pids[i], &status, WNOHANG);
    if (rc == pids[i] || (rc == -1 && errno == ECHILD)) {
      reaped[i] = true;
      close(pidfds[i]);
      pidfds[i] = -1;
      return true;
    }
    return false;
  }

  /// Waits until every worker has exited or `deadline` passes. Caller holds procs_mu.
  bool wait_all(Deadline deadline) {
    for (;;) {
      std::vector<pollfd> fds;
      for (std::size_t i = 0; i < pids.size(); ++i)
        if (!try_reap(i)) fds.push_back(pollfd{pidfds[i], POLLIN, 0});
      if (fds.empty()) return true;
      int timeout_ms = -1;
      if (deadline != kForever) {
        const auto now = Clock::now();
        if (now >= deadline) return false;
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
        timeout_ms = static_cast<int>(std::min<long long>(left.count(), 1 << 30));
      }
      const int rc = poll(fds.data(), fds.size(), timeout_ms);
      if (rc < 0 && errno != EINTR) throw_errno("inorder: poll on worker pidfds");
    }
  }

  void kill_and_reap_all() {
    for (std::size_t i = 0; i < pids.size(); ++i)
      if (!reaped[i]) kill(pids[i], SIGKILL);
    for (std::size_t i = 0; i < pids.size(); ++i) {
      if (reaped[i]) continue;
      int status = 0;
      while (waitpid(pids[i], &status, 0) == -1 && errno == EINTR) {
      }
      reaped[i] = true;
      close(pidfds[i]);
      pidfds[i] = -1;
    }
  }

  void wake_everyone() noexcept {
    r.ctl->task_ec.notify_all();
    r.ctl->result_ec.notify_all();
    r.ctl->progress_ec.notify_all();
  }
};

Core::Core(const Options& opts) : impl_(std::make_unique<Impl>(opts)) {
  const Validated v = validate(opts);
  Impl& m = *impl_;

  // One mapping for control, worker records and slots; anonymous and shared,
  // so it is inherited by fork and has no name anywhere.
  const std::size_t stride = sizeof(SlotHeader) + 2 * v.inline_bytes;
  const std::size_t records_off = round_up(sizeof(Control), kCacheLine);
  const std::size_t slots_off = round_up(records_off + v.workers * sizeof(WorkerRecord), kPage);
  m.main_bytes = round_up(slots_off + v.capacity * stride, kPage);
  m.main_map = mmap(nullptr, m.main_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                    -1, 0);
  if (m.main_map == MAP_FAILED) {
    m.main_map = nullptr;
    throw_errno("inorder: mmap of the shared ring");
  }
  // The spill reservation is address space only: MAP_NORESERVE, touched on demand.
  m.spill_total = v.capacity * v.spill_bytes;
  m.spill_map = mmap(nullptr, m.spill_total, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m.spill_map == MAP_FAILED) {
    m.spill_map = nullptr;
    throw_errno("inorder: mmap of the spill reservation (lower Options::max_spill_bytes)");
  }

  auto* base = static_cast<std::byte*>(m.main_map);
  m.r.ctl = new (base) Control();
  m.r.records = reinterpret_cast<WorkerRecord*>(base + records_off);
  for (unsigned i = 0; i < v.workers; ++i) new (&m.r.records[i]) WorkerRecord();
  m.r.slots = base + slots_off;
  m.r.spill = static_cast<std::byte*>(m.spill_map);

  Control& c = *m.r.ctl;
  c.capacity = static_cast<std::uint32_t>(v.capacity);
  c.mask = static_cast<std::uint32_t>(v.capacity - 1);
  c.window = static_cast<std::uint32_t>(v.window);
  c.workers = v.workers;
  c.inline_bytes = v.inline_bytes;
  c.slot_stride = stride;
  c.spill_bytes = v.spill_bytes;
  const std::uint32_t first = opts.first_sequence;
  c.put_word.store(first, std::memory_order_relaxed);
  c.dispatch.store(first, std::memory_order_relaxed);
  c.emit.store(first, std::memory_order_relaxed);
  // Constructing every slot also pre-faults the ring, so no worker pays a
  // first-write page fault (~4 us each here) on its first laps.
  for (std::size_t k = 0; k < v.capacity; ++k) {
    const auto seq = static_cast<std::uint32_t>(first + k);
    auto* h = new (&m.r.slot(seq)) SlotHeader();
    h->state.store(make_state(seq, kFree), std::memory_order_relaxed);
  }

  const pid_t parent = getpid();
  m.pids.reserve(v.workers);
  for (unsigned i = 0; i < v.workers; ++i) {
    const pid_t pid = fork();
    if (pid < 0) {
      const int err = errno;
      m.kill_and_reap_all();
      throw std::system_error(err, std::generic_category(), "inorder: fork of a worker");
    }
    if (pid == 0) worker_main(m.r, i, m.opts, parent, m.pidfds);  // never returns
    const int fd = pidfd_open(pid);
    if (fd < 0) {
      const int err = errno;
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      m.kill_and_reap_all();
      throw std::system_error(err, std::generic_category(), "inorder: pidfd_open of a worker");
    }
    m.r.records[i].pid.store(pid, std::memory_order_relaxed);
    m.pids.push_back(pid);
    m.pidfds.push_back(fd);
    m.reaped.push_back(false);
  }
}

Core::~Core() {
  Impl& m = *impl_;
  if (!m.r.ctl) return;
  m.r.ctl->put_word.fetch_or(kClosedBit, std::memory_order_seq_cst);
  m.r.ctl->shutdown.store(1, std::memory_order_seq_cst);
  m.wake_everyone();
  std::lock_guard lock(m.procs_mu);
  try {
    m.wait_all(Clock::now() + m.opts.shutdown_grace);
  } catch (...) {
    // poll failed: fall through to SIGKILL, which cannot fail to end them.
  }
  m.kill_and_reap_all();
}

std::byte* Core::begin_put(std::size_t bytes, bool is_value, Deadline deadline,
                           std::uint32_t& seq) {
  const Region& r = impl_->r;
  Control& c = *r.ctl;
  if (bytes > c.spill_bytes)
    throw PayloadTooLarge("inorder: put(): payload encodes to " + std::to_string(bytes) +
                          " bytes, above Options::max_spill_bytes (" +
                          std::to_string(c.spill_bytes) + ")");
  for (;;) {
    std::uint64_t pw = c.put_word.load(std::memory_order_acquire);
    if (pw & kClosedBit) throw QueueClosed();
    const auto p = static_cast<std::uint32_t>(pw);
    SlotHeader& h = r.slot(p);
    const std::uint64_t st = h.state.load(std::memory_order_acquire);  // pairs with end_get's release
    if (st == make_state(p, kFree)) {
      // Claim p. The new word keeps the closed bit clear; the sequence wraps in 32 bits.
      if (c.put_word.compare_exchange_weak(pw, static_cast<std::uint32_t>(p + 1),
                                           std::memory_order_acq_rel)) {
        seq = p;
        if (bytes > c.inline_bytes) return r.spill_area(p);
        return is_value ? r.result_area(h) : r.task_area(h);
      }
      continue;
    }
    // Full: slot p still holds the result of p - capacity. Wait for a getter.
    const bool moved = c.progress_ec.await(
        [&] {
          return c.put_word.load(std::memory_order_acquire) != pw ||
                 h.state.load(std::memory_order_acquire) != st;
        },
        deadline);
    if (!moved) return nullptr;
  }
}

void Core::commit_put(std::uint32_t seq, Invoker invoker, std::size_t bytes) noexcept {
  const Region& r = impl_->r;
  Control& c = *r.ctl;
  SlotHeader& h = r.slot(seq);
  const bool spilled = bytes > c.inline_bytes;
  h.invoker = invoker;
  if (invoker != nullptr) {
    h.task_len = bytes;
    h.task_spilled = spilled;
    h.state.store(make_state(seq, kReady), std::memory_order_release);  // pairs with the worker's claim
    c.task_ec.notify_one();
  } else {
    // A pass-through value: finished at once, no worker involved.
    h.task_len = 0;
    h.task_spilled = 0;
    h.result_len = bytes;
    h.result_spilled = spilled;
    h.result_error = 0;
    h.result_pid = 0;
    h.state.store(make_state(seq, kDone), std::memory_order_release);  // pairs with begin_get
    c.result_ec.notify_all();
    c.task_ec.notify_all();  // a worker parked on this slot must step over it
  }
}

GetStatus Core::begin_get(Deadline deadline, ResultView& out) {
  const Region& r = impl_->r;
  Control& c = *r.ctl;
  for (;;) {
    std::uint32_t n = c.emit.load(std::memory_order_acquire);
    SlotHeader& h = r.slot(n);
    const std::uint64_t st = h.state.load(std::memory_order_acquire);  // pairs with kDone release
    if (st == make_state(n, kDone)) {
      if (c.emit.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel)) {
        out.seq = n;
        out.is_error = h.result_error != 0;
        out.len = h.result_len;
        out.pid = h.result_pid;
        if (h.result_spilled) {
          const std::size_t off = h.task_spilled ? spill_result_offset(h.task_len) : 0;
          out.data = r.spill_area(n) + off;
        } else {
          out.data = r.result_area(h);
        }
        return GetStatus::kReady;
      }
      continue;
    }
    const std::uint64_t pw = c.put_word.load(std::memory_order_acquire);
    if ((pw & kClosedBit) && static_cast<std::uint32_t>(pw) == n) return GetStatus::kEnd;
    const bool moved = c.result_ec.await(
        [&] {
          return c.emit.load(std::memory_order_acquire) != n ||
                 h.state.load(std::memory_order_acquire) != st ||
                 c.put_word.load(std::memory_order_acquire) != pw;
        },
        deadline);
    if (!moved) return GetStatus::kTimeout;
  }
}

void Core::end_get(const ResultView& view) noexcept {
  const Region& r = impl_->r;
  Control& c = *r.ctl;
  SlotHeader& h = r.slot(view.seq);
  // Return the pages of large spilled payloads (MADV_REMOVE frees shared
  // anonymous memory; MADV_DONTNEED would only unmap it from this process).
  std::size_t touched = 0;
  if (h.task_spilled) touched = h.task_len;
  if (h.result_spilled)
    touched = (h.task_spilled ? spill_result_offset(h.task_len) : 0) + h.result_len;
  if (touched >= kReleaseThreshold)
    madvise(r.spill_area(view.seq), round_up(touched, kPage), MADV_REMOVE);
  h.state.store(make_state(view.seq + c.capacity, kFree),
                std::memory_order_release);  // pairs with begin_put's acquire
  c.progress_ec.notify_all();
}

void Core::stop() noexcept {
  Impl& m = *impl_;
  m.r.ctl->put_word.fetch_or(kClosedBit, std::memory_order_seq_cst);
  m.wake_everyone();
}

bool Core::stopped() const noexcept {
  return (impl_->r.ctl->put_word.load(std::memory_order_acquire) & kClosedBit) != 0;
}

bool Core::exhausted() const noexcept {
  const Control& c = *impl_->r.ctl;
  const std::uint64_t pw = c.put_word.load(std::memory_order_acquire);
  return (pw & kClosedBit) && c.emit.load(std::memory_order_acquire) == static_cast<std::uint32_t>(pw);
}

bool Core::join(Deadline deadline) {
  stop();
  std::lock_guard lock(impl_->procs_mu);
  return impl_->wait_all(deadline);
}

bool Core::is_alive() {
  std::lock_guard lock(impl_->procs_mu);
  bool alive = false;
  for (std::size_t i = 0; i < impl_->pids.size(); ++i) alive = !impl_->try_reap(i) || alive;
  return alive;
}

Stats Core::stats() {
  Impl& m = *impl_;
  Control& c = *m.r.ctl;
  Stats s;
  s.capacity = c.capacity;
  s.window = c.window;
  const std::uint32_t emit = c.emit.load(std::memory_order_acquire);
  const auto put = static_cast<std::uint32_t>(c.put_word.load(std::memory_order_acquire));
  s.in_flight = before(emit, put) ? put - emit : 0;
  for (std::uint32_t k = 0; k < s.in_flight; ++k) {
    const std::uint32_t seq = emit + k;
    if (m.r.slot(seq).state.load(std::memory_order_acquire) == make_state(seq, kDone))
      ++s.waiting_in_window;
  }
  std::lock_guard lock(m.procs_mu);
  for (std::size_t i = 0; i < m.pids.size(); ++i) {
    WorkerStats w;
    w.pid = m.pids[i];
    w.tasks = m.r.records[i].tasks.load(std::memory_order_relaxed);
    w.busy = std::chrono::nanoseconds(m.r.records[i].busy_ns.load(std::memory_order_relaxed));
    w.alive = !m.try_reap(i);
    s.workers.push_back(w);
  }
  return s;
}

std::size_t Core::inline_bytes() const noexcept { return impl_->r.ctl->inline_bytes; }

}  // namespace inorder::detail
