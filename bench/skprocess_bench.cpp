// bench/skprocess_bench.cpp: costs of Pipe and Skprocess, each beside an anchor
// measured in the same run.
//
//   inorder-skprocess-bench [round trips]     (default 20000)
//
// Prints medians:
//  * Pipe round trip (an int each way between a parent and a forked child)
//    beside the same ping-pong over two pipe(2)s;
//  * Skprocess tell()+listen() round trip;
//  * Skprocess start() -> result() of a one-run process, beside fork+waitpid;
//  * how late a hook past its timeout is killed: from the hook's deadline to
//    result() returning the ProcessError in the parent.
#include <inorder/inorder.hpp>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double median_us(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double since_us(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

double pipe_round_trip(int n) {
  auto [anchor, point] = inorder::Pipe::pair();
  const pid_t kid = fork();
  if (kid == 0) {
    for (int i = 0; i < n; ++i) point.send(point.recv<int>() + 1);
    _exit(0);
  }
  std::vector<double> t;
  t.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    anchor.send(i);
    if (anchor.recv<int>() != i + 1) std::abort();
    t.push_back(since_us(t0));
  }
  waitpid(kid, nullptr, 0);
  return median_us(t);
}

double raw_pipe_round_trip(int n) {
  int down[2], up[2];
  if (pipe(down) != 0 || pipe(up) != 0) std::abort();
  const pid_t kid = fork();
  if (kid == 0) {
    for (int i = 0, v = 0; i < n; ++i) {
      if (read(down[0], &v, sizeof v) != sizeof v) _exit(1);
      ++v;
      if (write(up[1], &v, sizeof v) != sizeof v) _exit(1);
    }
    _exit(0);
  }
  std::vector<double> t;
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    int v = i;
    if (write(down[1], &v, sizeof v) != sizeof v || read(up[0], &v, sizeof v) != sizeof v ||
        v != i + 1)
      std::abort();
    t.push_back(since_us(t0));
  }
  waitpid(kid, nullptr, 0);
  for (int fd : {down[0], down[1], up[0], up[1]}) close(fd);
  return median_us(t);
}

class Echo : public inorder::Skprocess<> {
 public:
  explicit Echo(int n) { config.runs = static_cast<std::uint64_t>(n); }
  void on_run() override { tell(listen<int>() + 1); }
};

double tell_listen_round_trip(int n) {
  Echo p(n);
  p.start();
  std::vector<double> t;
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    p.tell(i);
    if (p.listen<int>() != i + 1) std::abort();
    t.push_back(since_us(t0));
  }
  p.result();
  return median_us(t);
}

class Once : public inorder::Skprocess<int> {
 public:
  Once() { config.runs = 1; }
  void on_run() override {}
  int on_result() override { return 7; }
};

double start_to_result(int n) {
  std::vector<double> t;
  for (int i = 0; i < n; ++i) {
    Once p;
    const auto t0 = Clock::now();
    if (p.run() != 7) std::abort();
    t.push_back(since_us(t0));
  }
  return median_us(t);
}

double fork_wait(int n) {
  std::vector<double> t;
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    const pid_t kid = fork();
    if (kid == 0) _exit(0);
    waitpid(kid, nullptr, 0);
    t.push_back(since_us(t0));
  }
  return median_us(t);
}

struct HookClock {
  std::atomic<long long> started_ns{0};
};

class Hang : public inorder::Skprocess<> {
 public:
  explicit Hang(HookClock* c) : c_(c) {
    config.runs = 1;
    config.timeouts.run = 50ms;
  }
  void on_run() override {
    c_->started_ns.store(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
            .count());
    for (;;) pause();
  }

 private:
  HookClock* c_;
};

double timeout_overshoot(int n) {
  void* m =
      mmap(nullptr, sizeof(HookClock), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  auto* c = new (m) HookClock();
  std::vector<double> t;
  for (int i = 0; i < n; ++i) {
    Hang p(c);
    try {
      p.run();
    } catch (const inorder::ProcessError&) {
    }
    const auto now =
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
            .count();
    t.push_back(static_cast<double>(now - c->started_ns.load()) / 1e3 - 50'000.0);
  }
  munmap(m, sizeof(HookClock));
  return median_us(t);
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 20000;
  const double pipe_rt = pipe_round_trip(n);
  const double raw_rt = raw_pipe_round_trip(n);
  const double tl_rt = tell_listen_round_trip(n);
  std::printf("round trip, median of %d:\n", n);
  std::printf("  inorder::Pipe          %8.2f us\n", pipe_rt);
  std::printf("  pipe(2) x 2 (anchor)   %8.2f us   ratio %.2f\n", raw_rt, pipe_rt / raw_rt);
  std::printf("  tell() + listen()      %8.2f us\n", tl_rt);
  const double sr = start_to_result(200);
  const double fw = fork_wait(200);
  std::printf("process, median of 200:\n");
  std::printf("  Skprocess run() 1 run  %8.1f us\n", sr);
  std::printf("  fork + waitpid (anchor)%8.1f us   ratio %.2f\n", fw, sr / fw);
  std::printf("hook timeout of 50 ms, median of 10:\n");
  std::printf("  deadline -> result()   %8.1f us late\n", timeout_overshoot(10));
}
