// src/mpi/session.cpp: the Session (start-up, serving ranks, shut-down) and
// the root Engine (numbering, dealing, reordering, fault detection).
//
// Rank 0 is single-threaded: it makes progress (sends, receives, its own
// local results, dealing) only inside calls of the queue, and between them
// MPI buffers what the ranks send. Serving ranks loop in serve().
//
// Dealing. Tasks are dealt on demand: each rank has credits (how many of its
// tasks may be outstanding); whenever a rank has free credits, it gets the
// next chunk of consecutive unsent tasks. Chunk size follows the rank's
// measured time per task so that a chunk is about SessionOptions::chunk_work
// of work; credits are three chunks (at least two tasks per worker), so a
// rank always has its next chunk while it works on one, and a slow rank holds
// little that another could do. A chunk is sent before it is full when a
// waiting call needs it (the oldest position is not dealt yet, or nothing runs
// anywhere), after stop(), or when its oldest task has waited kFlushAfter.
// Time per task is the rank's wall time with tasks outstanding per finished
// task (BatchInfo), so waiting for work does not shrink the chunks.
#include <mpi.h>
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "identity.hpp"
#include "inorder/codec.hpp"
#include "inorder/errors.hpp"
#include "inorder/mpi/detail/engine.hpp"
#include "inorder/mpi/errors.hpp"
#include "inorder/mpi/session.hpp"
#include "runner.hpp"
#include "transport.hpp"
#include "wire.hpp"

namespace inorder::mpi::detail {
namespace {

/// Tasks the local engine of each rank holds at most (its capacity and window).
constexpr std::size_t kLocalCapacity = 2048;
/// A partly filled chunk waits at most this long for more puts.
constexpr auto kFlushAfter = std::chrono::microseconds(500);
/// A rank's time per task is sampled over at least this much busy time ...
constexpr std::chrono::nanoseconds kSampleWork = std::chrono::milliseconds(2);
/// ... or this many tasks, whichever comes first.
constexpr std::uint64_t kSampleTasks = 64;
/// A results message carries at most this many results (more go in the next).
constexpr std::size_t kMaxResultsPerMessage = 4096;
/// A serving rank sends a heartbeat before copying a result this large.
constexpr std::size_t kLargeResult = std::size_t{4} << 20;

/// Only one Session per process: MPI is initialised once.
bool g_session_exists = false;  // touched only by the thread constructing Sessions

struct Hello {
  std::uint64_t binary;
  std::uint64_t abi;
  std::uint32_t workers;
  std::uint32_t reserved;
  char host[256];
  char binary_text[96];
};

void append(std::vector<std::byte>& out, const void* p, std::size_t n) {
  const auto* b = static_cast<const std::byte*>(p);
  out.insert(out.end(), b, b + n);
}

}  // namespace

class SessionImpl {
 public:
  SessionImpl(int& argc, char**& argv, const SessionOptions& o);
  ~SessionImpl();

  int serve();

  // ---- rank 0: the queue -------------------------------------------------
  void open_queue();
  void close_queue() noexcept;
  std::byte* begin(std::size_t len, bool is_value, const TaskHeader& h, Deadline deadline,
                   std::uint64_t& seq);
  void commit();
  GetStatus get(Deadline deadline, Taken& out, bool any);
  [[noreturn]] void throw_error(const Taken& t) const;
  QueueStats stats() const;

  SessionOptions opts;
  Runner runner;  ///< constructed (and its workers forked) before MPI_Init
  int rank = 0;
  int size = 1;
  std::string host;

  // ---- queue state (rank 0) ----------------------------------------------
  enum class St : std::uint8_t { kReserved, kUnsent, kSent, kDone, kTaken };
  struct Entry {
    St st = St::kReserved;
    Outcome outcome = Outcome::kValue;
    bool is_value = false;
    int rank = 0;
    pid_t pid = 0;
    std::vector<std::byte> bytes;  ///< unsent: TaskHeader + payload; done: the result
  };
  bool queue_open = false;
  bool stopped = false;
  std::uint64_t epoch = 0;              ///< of the open queue; results of older ones are dropped
  std::deque<Entry> entries;            ///< positions [base, put_seq)
  std::uint64_t base = 0;               ///< oldest position not yet taken (the emit point)
  std::uint64_t put_seq = 0;            ///< next position to give out
  std::uint64_t next_unsent = 0;        ///< no unsent task before it
  std::size_t unsent = 0;               ///< tasks in kUnsent
  Clock::time_point unsent_since{};     ///< when the oldest unsent task was put
  std::deque<std::uint64_t> done_fifo;  ///< completion order, for get_any
  enum class Mode : std::uint8_t { kUnknown, kOrdered, kAny } mode = Mode::kUnknown;
  unsigned puts_since_progress = 0;

 private:
  struct RankState {
    std::string host;
    unsigned workers = 1;
    std::size_t outstanding = 0;     ///< tasks dealt and not yet answered (any queue)
    double per_task_ns = 0;          ///< EWMA of measured time per task; 0: unknown
    std::uint64_t sample_ns = 0;     ///< busy time gathered for the next sample
    std::uint64_t sample_tasks = 0;  ///< tasks gathered for the next sample
    Clock::time_point last_heard{};  ///< last message of any kind
    std::uint64_t dispatched = 0, completed = 0, chunks = 0;
    bool bye = false;
  };

  void start_up();
  bool progress(bool urgent);
  /// A waiter needs unsent work at once: the oldest position is not dealt
  /// yet, or nothing runs anywhere.
  [[nodiscard]] bool starving() const;
  void wait_round(Backoff& backoff, bool did, Deadline deadline);
  bool dispatch(bool urgent);
  /// Sets `unsent` and `next_unsent` from the entries themselves.
  void recount_unsent();
  [[nodiscard]] std::size_t chunk_of(const RankState& r) const;
  [[nodiscard]] std::size_t credit_of(const RankState& r) const;
  void on_result(int from, const ResultHeader& h, const std::byte* data);
  void on_batch(int from, const BatchInfo& info);
  void handle(Message& m);
  void check_liveness();
  void idle_tick();

  Transport* transport_ = nullptr;  ///< exists once MPI is initialised
  std::vector<RankState> ranks_;
  Clock::time_point attending_since_{};  ///< rank 0 has been polling since then
  Clock::time_point last_progress_{};
  bool finalized_ = false;
  std::vector<std::byte> batch_;  ///< serving rank: results being collected
};

namespace {
inorder::Options local_options(const SessionOptions& o) {
  if (o.window < 1)
    throw std::invalid_argument("inorder::mpi: SessionOptions::window must be >= 1");
  if (o.heartbeat_timeout < std::chrono::milliseconds(100))
    throw std::invalid_argument(
        "inorder::mpi: SessionOptions::heartbeat_timeout must be >= 100 ms");
  if (o.max_chunk < 1 || o.max_chunk > kLocalCapacity / 2)
    throw std::invalid_argument("inorder::mpi: SessionOptions::max_chunk must be between 1 and " +
                                std::to_string(kLocalCapacity / 2));
  if (o.chunk_work.count() <= 0)
    throw std::invalid_argument("inorder::mpi: SessionOptions::chunk_work must be positive");
  if (g_session_exists)
    throw std::logic_error("inorder::mpi: only one Session per process (MPI starts once)");
  int inited = 0;
  MPI_Initialized(&inited);
  if (inited)
    throw std::logic_error(
        "inorder::mpi: MPI is already initialised; the Session must fork its workers before "
        "MPI_Init, so it initialises MPI itself");
  inorder::Options l;
  l.workers = o.workers_per_rank;
  l.capacity = kLocalCapacity;
  l.window = kLocalCapacity;  // completion order locally: fast tasks flow past slow ones
  l.task_timeout = o.task_timeout;
  l.retries = o.retries;
  // The dealer's credits are this ring: a full ring must refuse, not stage.
  l.max_pending = 0;
  l.retry_exceptions = o.retry_exceptions;
  l.max_spill_bytes = o.max_spill_bytes;
  return l;
}
}  // namespace

SessionImpl::SessionImpl(int& argc, char**& argv, const SessionOptions& o)
    : opts(o), runner(local_options(o)) {
  // The workers exist (forked by the Core's supervisor); from here on this
  // process never forks, and the supervisor is not an MPI process.
  int provided = 0;
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    throw std::runtime_error("inorder::mpi: MPI_Init_thread failed");
  g_session_exists = true;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  host = name;
  start_up();
  // A message that has started to arrive completes in far less than a
  // heartbeat period unless its sender is gone.
  transport_ = new Transport(2 * opts.heartbeat_timeout);
  attending_since_ = last_progress_ = Clock::now();
  for (auto& r : ranks_) r.last_heard = attending_since_;
}

SessionImpl::~SessionImpl() {
  if (!finalized_) {
    if (rank == 0 && size > 1) {
      // Tell every rank to stop, then read (and drop) what they still send
      // until each says it is done; a silent rank ends the job instead.
      for (int r = 1; r < size; ++r) transport_->send(r, kTagShutdown, {});
      Backoff backoff;
      for (;;) {
        bool all =
            transport_->pending() == 0 || (transport_->poll_sends(), transport_->pending() == 0);
        for (int r = 1; r < size; ++r) all = all && ranks_[static_cast<std::size_t>(r)].bye;
        if (all) break;
        Message m;
        bool did = false;
        while (transport_->try_recv(m)) {
          handle(m);
          did = true;
        }
        check_liveness();
        if (did)
          backoff.reset();
        else
          backoff.pause();
      }
    }
    delete transport_;
    MPI_Finalize();
  }
}

void SessionImpl::start_up() {
  const Identity& id = identity();
  Hello mine{};
  mine.binary = id.binary;
  mine.abi = id.abi;
  mine.workers = opts.workers_per_rank;
  std::snprintf(mine.host, sizeof mine.host, "%s", host.c_str());
  std::snprintf(mine.binary_text, sizeof mine.binary_text, "%s", id.binary_text.c_str());
  std::vector<Hello> all(rank == 0 ? static_cast<std::size_t>(size) : 1);
  MPI_Gather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, 0, MPI_COMM_WORLD);
  if (rank != 0) return;
  ranks_.resize(static_cast<std::size_t>(size));
  for (int r = 0; r < size; ++r) {
    const Hello& h = all[static_cast<std::size_t>(r)];
    auto& st = ranks_[static_cast<std::size_t>(r)];
    st.host = std::string(h.host, strnlen(h.host, sizeof h.host));
    st.workers = h.workers;
    const std::string text(h.binary_text, strnlen(h.binary_text, sizeof h.binary_text));
    if (h.binary != mine.binary)
      abort_job("inorder::mpi: rank " + std::to_string(r) + " on host " + st.host +
                " runs a different binary than rank 0 on host " + host + " (" + text + " vs " +
                id.binary_text + "); every rank must run the same executable");
    if (h.abi != mine.abi)
      abort_job("inorder::mpi: rank " + std::to_string(r) + " on host " + st.host +
                " was built for another ABI (compiler, data model or inorder wire format) than "
                "rank 0 on host " +
                host);
  }
}

// ---- serving ranks ---------------------------------------------------------

void SessionImpl::idle_tick() {
  // A serving rank proves it is alive; rank 0 counts any message.
  const auto interval = opts.heartbeat_timeout / 8;
  if (Clock::now() - transport_->last_send(0) >= interval) transport_->send(0, kTagHeartbeat, {});
}

int SessionImpl::serve() {
  if (rank == 0) throw std::logic_error("inorder::mpi: serve() is for ranks other than 0");
  // batch_ is the next results message: BatchInfo (filled in when it is
  // sent), then each result's header and bytes.
  const auto start_batch = [this] { batch_.assign(sizeof(BatchInfo), std::byte{0}); };
  start_batch();
  const Runner::Sink collect = [this](const ResultHeader& h, const std::byte* data) {
    // Copying a large result takes a while (seconds for 100 MiB under the
    // sanitizers), and rank 0 hears nothing more until the message is in:
    // say "still here" first.
    if (h.len >= kLargeResult) transport_->send(0, kTagHeartbeat, {});
    append(batch_, &h, sizeof h);
    append(batch_, data, h.len);
  };
  const std::function<void()> tick = [this] { idle_tick(); };
  Backoff backoff;
  bool shutdown = false;
  while (!shutdown) {
    bool did = transport_->poll_sends();
    Message m;
    while (!shutdown && transport_->try_recv(m, tick)) {
      did = true;
      if (m.tag == kTagShutdown) {
        shutdown = true;
      } else if (m.tag == kTagTasks) {
        std::size_t off = 0;
        while (off + sizeof(TaskHeader) <= m.bytes.size()) {
          TaskHeader h;
          std::memcpy(&h, m.bytes.data() + off, sizeof h);
          off += sizeof h;
          runner.submit(h, m.bytes.data() + off, collect);
          off += h.len;
        }
      }
    }
    if (shutdown) break;
    did = runner.pump(collect) || did;
    // When idle with tasks running, wait on the local engine (it wakes at once
    // on a result); otherwise sleep by the backoff.
    Deadline wait = kNoWait;
    const bool batch_empty = batch_.size() == sizeof(BatchInfo);
    if (!did && batch_empty) {
      const auto pause = backoff.next();
      if (pause.count() != 0) {
        if (runner.outstanding() > 0)
          wait = Clock::now() + pause;
        else
          std::this_thread::sleep_for(pause);
      }
    }
    if (runner.harvest(collect, kMaxResultsPerMessage, wait) > 0 ||
        batch_.size() != sizeof(BatchInfo)) {
      const BatchInfo info = runner.take_busy();
      std::memcpy(batch_.data(), &info, sizeof info);
      transport_->send(0, kTagResults, std::move(batch_));
      start_batch();
      did = true;
    }
    idle_tick();
    if (did) backoff.reset();
  }
  // Finish our sends (rank 0 keeps reading until our bye), then say bye.
  Backoff drain;
  while (transport_->pending() != 0) {
    if (!transport_->poll_sends()) drain.pause();
  }
  transport_->send(0, kTagBye, {});
  while (transport_->pending() != 0) {
    if (!transport_->poll_sends()) drain.pause();
  }
  return 0;
}

// ---- rank 0 ------------------------------------------------------------------

void SessionImpl::open_queue() {
  if (rank != 0) throw std::logic_error("inorder::mpi: queues are made on rank 0 only");
  if (queue_open) throw std::logic_error("inorder::mpi: one queue (or pool) at a time per Session");
  queue_open = true;
  stopped = false;
  ++epoch;
  entries.clear();
  done_fifo.clear();
  base = put_seq = next_unsent = 0;
  unsent = 0;
  mode = Mode::kUnknown;
}

void SessionImpl::close_queue() noexcept {
  // Tasks still running elsewhere finish there; their results carry the old
  // epoch and are dropped when they arrive.
  queue_open = false;
  entries.clear();
  done_fifo.clear();
}

std::size_t SessionImpl::chunk_of(const RankState& r) const {
  if (r.per_task_ns <= 0) return r.workers;  // unmeasured: one task per worker
  const double work = static_cast<double>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(opts.chunk_work).count());
  const double n = work / r.per_task_ns;
  // Compared in double before converting: a time per task near zero makes n
  // larger than any size_t, and converting that is undefined (on x86-64 it
  // gave 0, a chunk of no tasks, and dispatch looped forever).
  if (!(n >= 1)) return 1;
  if (n >= static_cast<double>(opts.max_chunk)) return opts.max_chunk;
  return static_cast<std::size_t>(n);
}

std::size_t SessionImpl::credit_of(const RankState& r) const {
  return std::min<std::size_t>(kLocalCapacity,
                               std::max<std::size_t>(2 * std::size_t{r.workers}, 3 * chunk_of(r)));
}

void SessionImpl::on_batch(int from, const BatchInfo& info) {
  // Time per task of the rank as a whole: its wall time with tasks
  // outstanding per task finished (its workers side by side). Time spent
  // waiting for work is left out, so a rank that waits is not taken for slow.
  RankState& r = ranks_[static_cast<std::size_t>(from)];
  r.sample_ns += info.busy_ns;
  r.sample_tasks += info.tasks;
  // Once a first figure is known, one sample per kSampleWork of busy time or
  // kSampleTasks tasks, whichever comes first: a results message can carry
  // two tasks that finished a moment after the previous message, and a ratio
  // over so short a time says little.
  if (r.sample_tasks == 0) return;
  if (r.per_task_ns > 0 && r.sample_ns < static_cast<std::uint64_t>(kSampleWork.count()) &&
      r.sample_tasks < kSampleTasks)
    return;
  double sample = static_cast<double>(r.sample_ns) / static_cast<double>(r.sample_tasks);
  r.sample_ns = 0;
  r.sample_tasks = 0;
  // At least 1 ns, so the average stays a positive time ("very fast", not
  // "unknown") whatever a clock with a coarse tick reports.
  sample = std::max(sample, 1.0);
  r.per_task_ns = r.per_task_ns <= 0 ? sample : 0.75 * r.per_task_ns + 0.25 * sample;
}

void SessionImpl::on_result(int from, const ResultHeader& h, const std::byte* data) {
  RankState& r = ranks_[static_cast<std::size_t>(from)];
  if (r.outstanding > 0) --r.outstanding;
  ++r.completed;
  if (!queue_open || h.epoch != epoch || h.seq < base || h.seq >= put_seq) return;
  Entry& e = entries[static_cast<std::size_t>(h.seq - base)];
  if (e.st != St::kSent) return;
  e.st = St::kDone;
  e.outcome = h.outcome;
  e.pid = h.pid;
  e.rank = from;
  e.bytes.assign(data, data + h.len);
  if (mode != Mode::kOrdered) done_fifo.push_back(h.seq);
}

void SessionImpl::handle(Message& m) {
  if (m.source <= 0 || m.source >= size) return;
  ranks_[static_cast<std::size_t>(m.source)].last_heard = Clock::now();
  if (m.tag == kTagBye) {
    ranks_[static_cast<std::size_t>(m.source)].bye = true;
    return;
  }
  if (m.tag != kTagResults) return;
  BatchInfo info{0, 0};
  if (m.bytes.size() < sizeof info) return;
  std::memcpy(&info, m.bytes.data(), sizeof info);
  std::size_t off = sizeof info;
  while (off + sizeof(ResultHeader) <= m.bytes.size()) {
    ResultHeader h;
    std::memcpy(&h, m.bytes.data() + off, sizeof h);
    off += sizeof h;
    on_result(m.source, h, m.bytes.data() + off);
    off += h.len;
  }
  on_batch(m.source, info);
}

void SessionImpl::check_liveness() {
  const auto now = Clock::now();
  for (int r = 1; r < size; ++r) {
    const RankState& st = ranks_[static_cast<std::size_t>(r)];
    if (st.bye) continue;
    const auto since = std::max(st.last_heard, attending_since_);
    if (now - since > opts.heartbeat_timeout) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - since).count();
      abort_job("inorder::mpi: rank " + std::to_string(r) + " on host " + st.host +
                " has sent nothing for " + std::to_string(ms) +
                " ms (stopped, hung or unreachable; SessionOptions::heartbeat_timeout is " +
                std::to_string(opts.heartbeat_timeout.count()) + " ms); ending the job");
    }
  }
}

bool SessionImpl::dispatch(bool urgent) {
  bool did = false;
  const auto now = Clock::now();
  while (unsent > 0) {
    while (next_unsent < put_seq &&
           entries[static_cast<std::size_t>(next_unsent - base)].st != St::kUnsent)
      ++next_unsent;
    // The rank with the largest share of its credits free gets the next
    // chunk: an idle rank first, whatever its (maybe stale) measured speed.
    int best = -1;
    std::size_t best_free = 0;
    double best_share = 0;
    const int first = opts.root_runs_tasks || size == 1 ? 0 : 1;
    for (int r = first; r < size; ++r) {
      const RankState& st = ranks_[static_cast<std::size_t>(r)];
      const std::size_t credit = credit_of(st);
      const std::size_t free = credit > st.outstanding ? credit - st.outstanding : 0;
      const double share = static_cast<double>(free) / static_cast<double>(credit);
      // Ties go to the higher rank: rank 0 also produces and consumes.
      if (free > 0 && share >= best_share) {
        best = r;
        best_free = free;
        best_share = share;
      }
    }
    if (best < 0) break;
    RankState& st = ranks_[static_cast<std::size_t>(best)];
    const std::size_t chunk = chunk_of(st);
    const std::size_t n = std::min({best_free, chunk, unsent});
    // No slivers. A chunk smaller than the rank's chunk size goes only when a
    // waiting call needs it (urgent, stopped), or when the rank is about to
    // run dry (less than a chunk outstanding) and the unsent tasks have
    // waited kFlushAfter. A rank that still holds work returns its results a
    // few at a time; dealing each few credits as they came back made chunks
    // of a handful of tiny tasks, and the cost of a message per handful ruled.
    if (n < chunk && !urgent && !stopped &&
        (st.outstanding >= chunk || now - unsent_since < kFlushAfter))
      break;
    std::vector<std::byte> msg;
    std::size_t taken = 0;
    std::uint64_t s = next_unsent;
    const Runner::Sink local_sink = [this](const ResultHeader& h, const std::byte* data) {
      on_result(0, h, data);
    };
    for (; taken < n && s < put_seq; ++s) {
      Entry& e = entries[static_cast<std::size_t>(s - base)];
      if (e.st != St::kUnsent) continue;
      e.st = St::kSent;
      e.rank = best;
      ++taken;
      if (best == 0) {
        // The task's bytes leave the entry first: a task that fails at once
        // is answered inside submit(), and its error record goes in e.bytes.
        const std::vector<std::byte> task = std::move(e.bytes);
        e.bytes = {};
        TaskHeader h;
        std::memcpy(&h, task.data(), sizeof h);
        ++st.outstanding;  // before submit, for the same reason
        runner.submit(h, task.data() + sizeof h, local_sink);
      } else {
        if (msg.empty()) msg.reserve(n * e.bytes.size());
        append(msg, e.bytes.data(), e.bytes.size());
        ++st.outstanding;
        std::vector<std::byte>().swap(e.bytes);
      }
    }
    if (taken == 0) {
      // The count said a task was unsent and none was found from the cursor
      // on. That must not happen; if it does, trust the entries, say so once,
      // and leave: this loop must never spin.
      recount_unsent();
      break;
    }
    next_unsent = s;
    unsent -= taken;
    unsent_since = now;
    st.dispatched += taken;
    ++st.chunks;
    if (best != 0) transport_->send(best, kTagTasks, std::move(msg));
    did = true;
  }
  return did;
}

void SessionImpl::recount_unsent() {
  std::size_t count = 0;
  std::uint64_t first = put_seq;
  for (std::uint64_t s = base; s < put_seq; ++s) {
    if (entries[static_cast<std::size_t>(s - base)].st != St::kUnsent) continue;
    if (count++ == 0) first = s;
  }
  static bool said = false;
  if (!said) {
    said = true;
    std::fprintf(stderr,
                 "inorder::mpi: internal: %zu tasks counted as unsent from position %llu, %zu "
                 "found from position %llu; recounted\n",
                 unsent, static_cast<unsigned long long>(next_unsent), count,
                 static_cast<unsigned long long>(first));
  }
  unsent = count;
  next_unsent = first;
}

bool SessionImpl::starving() const {
  if (unsent == 0) return false;
  if (!entries.empty() && entries.front().st == St::kUnsent) return true;
  for (const RankState& r : ranks_)
    if (r.outstanding != 0) return false;
  return true;
}

bool SessionImpl::progress(bool urgent) {
  const auto now = Clock::now();
  if (now - last_progress_ > opts.heartbeat_timeout / 8) attending_since_ = now;
  bool did = false;
  if (size > 1) {
    did = transport_->poll_sends();
    Message m;
    while (transport_->try_recv(m)) {
      handle(m);
      did = true;
    }
  }
  const Runner::Sink local_sink = [this](const ResultHeader& h, const std::byte* data) {
    on_result(0, h, data);
  };
  did = runner.pump(local_sink) || did;
  const std::size_t n = runner.harvest(local_sink, kMaxResultsPerMessage, kNoWait);
  if (n > 0) on_batch(0, runner.take_busy());
  did = n > 0 || did;
  did = dispatch(urgent) || did;
  if (size > 1) check_liveness();
  last_progress_ = Clock::now();
  return did;
}

void SessionImpl::wait_round(Backoff& backoff, bool did, Deadline deadline) {
  if (did) {
    backoff.reset();
    return;
  }
  const auto pause = backoff.next();
  if (pause.count() == 0) return;
  Deadline until = std::min(deadline, Clock::now() + pause);
  if (runner.outstanding() > 0) {
    // Sleep on the local engine: a local result wakes us at once.
    const Runner::Sink local_sink = [this](const ResultHeader& h, const std::byte* data) {
      on_result(0, h, data);
    };
    if (runner.harvest(local_sink, kMaxResultsPerMessage, until) > 0)
      on_batch(0, runner.take_busy());
  } else {
    std::this_thread::sleep_until(until);
  }
}

std::byte* SessionImpl::begin(std::size_t len, bool is_value, const TaskHeader& h,
                              Deadline deadline, std::uint64_t& seq) {
  if (stopped) throw QueueClosed();
  if (len > opts.max_spill_bytes)
    throw PayloadTooLarge("inorder::mpi: put(): payload encodes to " + std::to_string(len) +
                          " bytes, above SessionOptions::max_spill_bytes (" +
                          std::to_string(opts.max_spill_bytes) + ")");
  Backoff backoff;
  while (put_seq - base >= opts.window) {
    // Only get() frees the oldest position once it is finished, and get()
    // runs on this same thread: waiting here would be waiting forever.
    if (!entries.empty() && entries.front().st == St::kDone && deadline != kNoWait)
      throw std::logic_error(
          "inorder::mpi: put() would wait forever: the window (SessionOptions::window = " +
          std::to_string(opts.window) +
          ") is full and its oldest result waits for get(), which only this thread may call; "
          "take results between puts (or use try_put and get when it returns false)");
    if (deadline == kNoWait) {
      // With the oldest result ready, the caller's get() takes it at once:
      // progress here would only add a probe of the network to every put.
      if (entries.front().st != St::kDone) progress(starving());
      if (put_seq - base >= opts.window) return nullptr;
      break;
    }
    if (Clock::now() >= deadline) return nullptr;
    wait_round(backoff, progress(starving()), deadline);
  }
  seq = put_seq++;
  Entry& e = entries.emplace_back();
  e.is_value = is_value;
  if (is_value) {
    e.bytes.resize(len);
    return e.bytes.data();
  }
  e.bytes.resize(sizeof(TaskHeader) + len);
  TaskHeader th = h;
  th.epoch = epoch;
  th.seq = seq;
  th.len = len;
  std::memcpy(e.bytes.data(), &th, sizeof th);
  return e.bytes.data() + sizeof th;
}

void SessionImpl::commit() {
  Entry& e = entries.back();
  const std::uint64_t seq = put_seq - 1;
  if (e.is_value) {
    e.st = St::kDone;
    e.outcome = Outcome::kValue;
    if (mode != Mode::kOrdered) done_fifo.push_back(seq);
  } else {
    e.st = St::kUnsent;
    if (unsent == 0) unsent_since = Clock::now();
    ++unsent;
  }
  // Progress now and then while only putting: the ranks get chunks as they fill.
  if (++puts_since_progress >= 32) {
    puts_since_progress = 0;
    progress(false);
  }
}

GetStatus SessionImpl::get(Deadline deadline, Taken& out, bool any) {
  if (mode == Mode::kUnknown) {
    mode = any ? Mode::kAny : Mode::kOrdered;
    if (!any) done_fifo.clear();
  }
  if ((mode == Mode::kAny) != any)
    throw std::logic_error("inorder::mpi: use get*() or get_any*() on one queue, not both");
  Backoff backoff;
  bool first = true;
  for (;;) {
    if (any) {
      while (!done_fifo.empty()) {
        const std::uint64_t s = done_fifo.front();
        done_fifo.pop_front();
        if (s < base) continue;
        Entry& e = entries[static_cast<std::size_t>(s - base)];
        if (e.st != St::kDone) continue;
        e.st = St::kTaken;
        out.seq = s;
        out.outcome = e.outcome;
        out.pid = e.pid;
        out.rank = e.rank;
        out.bytes = std::move(e.bytes);
        while (!entries.empty() && entries.front().st == St::kTaken) {
          entries.pop_front();
          ++base;
        }
        if (next_unsent < base) next_unsent = base;
        return GetStatus::kReady;
      }
    } else if (!entries.empty() && entries.front().st == St::kDone) {
      Entry& e = entries.front();
      out.seq = base;
      out.outcome = e.outcome;
      out.pid = e.pid;
      out.rank = e.rank;
      out.bytes = std::move(e.bytes);
      entries.pop_front();
      ++base;
      if (next_unsent < base) next_unsent = base;
      return GetStatus::kReady;
    }
    if (stopped && base == put_seq) return GetStatus::kEnd;
    if (!first && (deadline == kNoWait || Clock::now() >= deadline)) return GetStatus::kTimeout;
    if (!first) {
      wait_round(backoff, false, deadline == kNoWait ? Clock::now() : deadline);
    }
    first = false;
    if (progress(starving())) backoff.reset();
  }
}

void SessionImpl::throw_error(const Taken& t) const {
  std::pair<std::string, std::string> rec;
  if (!t.bytes.empty())
    rec = decode_from<std::pair<std::string, std::string>>(t.bytes.data(), t.bytes.size());
  const std::string& h = t.rank >= 0 && static_cast<std::size_t>(t.rank) < ranks_.size()
                             ? ranks_[static_cast<std::size_t>(t.rank)].host
                             : host;
  switch (t.outcome) {
    case Outcome::kWorkerCrashed:
      throw RemoteWorkerCrashed(rec.first, rec.second, t.pid, t.rank, h, t.seq);
    case Outcome::kTaskTimeout:
      throw RemoteTaskTimeout(rec.first, rec.second, t.pid, t.rank, h, t.seq);
    case Outcome::kBroken:
      throw QueueBroken("inorder::mpi: rank " + std::to_string(t.rank) + " (" + h +
                        "): " + rec.second);
    case Outcome::kTaskError:
    case Outcome::kValue:
      break;
  }
  throw RemoteTaskError(rec.first, rec.second, t.pid, t.rank, h, t.seq);
}

QueueStats SessionImpl::stats() const {
  QueueStats s;
  s.put = put_seq;
  s.emitted = base;
  s.unsent = unsent;
  for (int r = 0; r < size; ++r) {
    const RankState& st = ranks_[static_cast<std::size_t>(r)];
    RankStats rs;
    rs.rank = r;
    rs.host = st.host;
    rs.workers = st.workers;
    rs.dispatched = st.dispatched;
    rs.completed = st.completed;
    rs.chunks = st.chunks;
    rs.chunk = chunk_of(st);
    rs.per_task = std::chrono::nanoseconds(static_cast<long long>(st.per_task_ns));
    s.ranks.push_back(rs);
  }
  return s;
}

// ---- Engine: the thin face the templates use ---------------------------------

Engine::Engine(Session& session) : s_(*session.impl_) { s_.open_queue(); }
Engine::~Engine() { s_.close_queue(); }

std::byte* Engine::begin_task(std::size_t len, CodeRef invoker, CodeRef fn, std::uint32_t fn_size,
                              std::uint32_t timeout_ms, Deadline deadline, std::uint64_t& seq) {
  TaskHeader h{};
  h.invoker = invoker;
  h.fn = fn;
  h.fn_size = fn_size;
  h.timeout_ms = timeout_ms;
  return s_.begin(len, false, h, deadline, seq);
}

std::byte* Engine::begin_value(std::size_t len, Deadline deadline, std::uint64_t& seq) {
  return s_.begin(len, true, TaskHeader{}, deadline, seq);
}

void Engine::commit() { s_.commit(); }
GetStatus Engine::get(Deadline deadline, Taken& out) { return s_.get(deadline, out, false); }
GetStatus Engine::get_any(Deadline deadline, Taken& out) { return s_.get(deadline, out, true); }
void Engine::throw_error(const Taken& t) const { s_.throw_error(t); }
void Engine::stop() noexcept { s_.stopped = true; }
bool Engine::stopped() const noexcept { return s_.stopped; }
bool Engine::exhausted() const noexcept { return s_.stopped && s_.base == s_.put_seq; }
QueueStats Engine::stats() const { return s_.stats(); }

}  // namespace inorder::mpi::detail

namespace inorder::mpi {

Session::Session(int& argc, char**& argv, const SessionOptions& options)
    : impl_(std::make_unique<detail::SessionImpl>(argc, argv, options)) {}
Session::~Session() = default;
int Session::rank() const noexcept { return impl_->rank; }
int Session::size() const noexcept { return impl_->size; }
const std::string& Session::host() const noexcept { return impl_->host; }
int Session::serve() { return impl_->serve(); }

}  // namespace inorder::mpi
