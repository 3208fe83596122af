// bench/compare_forkpipe.cpp: what a user writes without a library. The
// `forkpipe` and `barrier` systems of inorder-compare share one kind of pool:
// N forked children, each reading 8-byte task indices from its own request pipe
// and writing a response to its own response pipe:
//     { int64 value; uint64 length } then `length` payload bytes
// (value is the result of a scalar task, length the size of a payload result).
//
//   forkpipe  task i goes to child i % N. The parent keeps up to `depth` tasks
//             queued in each child's request pipe and reads results back in task
//             order (result i from child i % N), sending task i + N x depth to
//             the child that just answered. One thread, blocking reads, no poll.
//   barrier   the same children; a batch of N x per_worker tasks is handed out
//             one task per idle child (poll on the response pipes: the next task
//             goes to whichever child answers first), the whole batch is awaited
//             and checked in order, then the next batch starts.
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "compare_systems.hpp"

namespace compare {
namespace {

struct ResponseHeader {
  std::int64_t value;
  std::uint64_t length;
};

/// Writes the response for result `r`.
bool send_result(int fd, const long& r) {
  const ResponseHeader h{r, 0};
  return write_all(fd, &h, sizeof h);
}
bool send_result(int fd, const std::string& r) {
  const ResponseHeader h{0, r.size()};
  return write_all(fd, &h, sizeof h) && write_all(fd, r.data(), r.size());
}

/// Reads one response into `r` (a payload string keeps its buffer between calls).
bool receive_result(int fd, long& r) {
  ResponseHeader h{};
  if (!read_all(fd, &h, sizeof h)) return false;
  r = static_cast<long>(h.value);
  return true;
}
bool receive_result(int fd, std::string& r) {
  ResponseHeader h{};
  if (!read_all(fd, &h, sizeof h)) return false;
  if (h.length > (std::uint64_t{1} << 30)) return false;
  r.resize(h.length);
  return read_all(fd, r.data(), r.size());
}

/// N children with a request and a response pipe each. The destructor closes
/// the request pipes (children see end of file and exit) and reaps them.
class ChildPool {
 public:
  ChildPool() = default;
  ChildPool(const ChildPool&) = delete;
  ChildPool& operator=(const ChildPool&) = delete;
  ~ChildPool() { stop(); }

  /// Forks `n` children running job.fn on every index they are sent. Returns
  /// "" or what failed.
  template <class R>
  std::string start(const Job<R>& job, unsigned n) {
    const pid_t parent = ::getpid();
    for (unsigned k = 0; k < n; ++k) {
      int req[2];
      int resp[2];
      if (::pipe(req) != 0) return "pipe failed";
      if (::pipe(resp) != 0) {
        ::close(req[0]);
        ::close(req[1]);
        return "pipe failed";
      }
      const pid_t pid = ::fork();
      if (pid < 0) {
        for (int fd : {req[0], req[1], resp[0], resp[1]}) ::close(fd);
        return "fork failed";
      }
      if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(0);
        // Drop the parent's ends of every pipe, ours and earlier children's:
        // a child holding another child's request pipe open would keep it
        // from ever seeing end of file.
        for (const int fd : req_) ::close(fd);
        for (const int fd : resp_) ::close(fd);
        ::close(req[1]);
        ::close(resp[0]);
        serve(job, req[0], resp[1]);
        ::_exit(0);  // never exit(): it would flush the parent's stdio buffers again
      }
      ::close(req[0]);
      ::close(resp[1]);
      pids_.push_back(pid);
      req_.push_back(req[1]);
      resp_.push_back(resp[0]);
    }
    return "";
  }

  void stop() {
    for (const int fd : req_) ::close(fd);
    for (const int fd : resp_) ::close(fd);
    req_.clear();
    resp_.clear();
    for (const pid_t pid : pids_) wait_child(pid);
    pids_.clear();
  }

  [[nodiscard]] unsigned size() const { return static_cast<unsigned>(pids_.size()); }
  [[nodiscard]] int request_fd(unsigned k) const { return req_[k]; }
  [[nodiscard]] int response_fd(unsigned k) const { return resp_[k]; }

  bool send_task(unsigned k, long index) const {
    const std::int64_t i = index;
    return write_all(req_[k], &i, sizeof i);
  }

 private:
  template <class R>
  static void serve(const Job<R>& job, int in, int out) {
    std::int64_t i = 0;
    while (read_all(in, &i, sizeof i)) {
      const R r = job.fn(static_cast<long>(i));
      if (!send_result(out, r)) break;
    }
  }

  std::vector<pid_t> pids_;
  std::vector<int> req_;   // parent's write ends
  std::vector<int> resp_;  // parent's read ends
};

/// forkpipe's ordered loop over tasks 0..n-1. Returns "" or the error.
template <class R>
std::string ordered_run(const ChildPool& pool, const Job<R>& job, long n, unsigned depth) {
  const long workers = pool.size();
  const long ahead = workers * static_cast<long>(depth);
  long sent = 0;
  for (; sent < std::min(n, ahead); ++sent)
    if (!pool.send_task(static_cast<unsigned>(sent % workers), sent))
      return "write to child failed";
  R r{};
  for (long i = 0; i < n; ++i) {
    const auto child = static_cast<unsigned>(i % workers);
    if (!receive_result(pool.response_fd(child), r)) return "read from child failed";
    if (!job.check(i, r)) return out_of_order(i);
    if (sent < n) {
      // sent == i + ahead: the same child as i, which has just freed a place.
      if (!pool.send_task(child, sent)) return "write to child failed";
      ++sent;
    }
  }
  return "";
}

template <class R>
RunResult drive_forkpipe(const Job<R>& job, Workload w, unsigned workers, long n, unsigned depth) {
  ChildPool pool;
  if (std::string e = pool.start(job, workers); !e.empty()) return RunResult::failure(e);
  const long warm = w == Workload::kSkewed ? 2L * workers : static_cast<long>(workers) * depth;
  if (std::string e = ordered_run(pool, job, warm, depth); !e.empty())
    return RunResult::failure("warm-up: " + e);
  const auto start = SteadyClock::now();
  const std::string error = ordered_run(pool, job, n, depth);
  const double seconds = seconds_since(start);
  if (!error.empty()) return RunResult::failure(error);
  return RunResult::measured(n, seconds);
}

/// barrier's loop over tasks 0..n-1. Returns "" or the error.
template <class R>
std::string batch_run(const ChildPool& pool, const Job<R>& job, long n, unsigned per_worker) {
  const unsigned workers = pool.size();
  const long batch = static_cast<long>(workers) * per_worker;
  std::vector<R> results(static_cast<std::size_t>(batch));
  std::vector<long> running(workers, -1);  // task index each child works on, -1: idle
  std::vector<pollfd> fds(workers);
  for (long base = 0; base < n; base += batch) {
    const long count = std::min(batch, n - base);
    long next = 0;  // next task of the batch to hand out (relative to base)
    long done = 0;
    for (unsigned k = 0; k < workers && next < count; ++k, ++next) {
      if (!pool.send_task(k, base + next)) return "write to child failed";
      running[k] = base + next;
    }
    while (done < count) {
      for (unsigned k = 0; k < workers; ++k)
        fds[k] = pollfd{running[k] >= 0 ? pool.response_fd(k) : -1, POLLIN, 0};
      const int ready = ::poll(fds.data(), fds.size(), -1);
      if (ready < 0) {
        if (errno == EINTR) continue;
        return "poll failed";
      }
      for (unsigned k = 0; k < workers; ++k) {
        if (running[k] < 0 || fds[k].revents == 0) continue;
        if (!receive_result(pool.response_fd(k),
                            results[static_cast<std::size_t>(running[k] - base)]))
          return "read from child failed";
        ++done;
        running[k] = -1;
        if (next < count) {
          if (!pool.send_task(k, base + next)) return "write to child failed";
          running[k] = base + next;
          ++next;
        }
      }
    }
    // The barrier: the whole batch is in; deliver it in order.
    for (long j = 0; j < count; ++j)
      if (!job.check(base + j, results[static_cast<std::size_t>(j)])) return out_of_order(base + j);
  }
  return "";
}

template <class R>
RunResult drive_barrier(const Job<R>& job, Workload w, unsigned workers, long n,
                        unsigned per_worker) {
  ChildPool pool;
  if (std::string e = pool.start(job, workers); !e.empty()) return RunResult::failure(e);
  const long warm = w == Workload::kSkewed ? 2L * workers : static_cast<long>(workers) * per_worker;
  if (std::string e = batch_run(pool, job, warm, per_worker); !e.empty())
    return RunResult::failure("warm-up: " + e);
  const auto start = SteadyClock::now();
  const std::string error = batch_run(pool, job, n, per_worker);
  const double seconds = seconds_since(start);
  if (!error.empty()) return RunResult::failure(error);
  return RunResult::measured(n, seconds);
}

}  // namespace

RunResult run_forkpipe(Workload w, unsigned workers, long tasks, unsigned depth) {
  return with_job(w,
                  [&](const auto& job) { return drive_forkpipe(job, w, workers, tasks, depth); });
}

RunResult run_barrier(Workload w, unsigned workers, long tasks, unsigned per_worker) {
  return with_job(
      w, [&](const auto& job) { return drive_barrier(job, w, workers, tasks, per_worker); });
}

}  // namespace compare
