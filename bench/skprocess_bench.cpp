// bench/skprocess_bench.cpp: costs of Pipe and Skprocess, each beside an anchor
// measured in the same run.
//
//   inorder-skprocess-bench [round trips]     (default 20000)
//
// Prints medians:
//  * Pipe round trip (an int each way between a parent on CPU 0 and a forked
//    child on CPU 1) beside the same ping-pong over two pipe(2)s;
//    and again after a 1 ms pause before each one (the peer is asleep);
//  * Skprocess tell()+listen() round trip;
//  * Skprocess start() -> result() of a one-run process, beside fork+waitpid;
//  * how late a hook past its timeout is killed: from the hook's deadline to
//    result() returning the ProcessError in the parent.
#include <inorder/inorder.hpp>

#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

/// Pins the calling process to one CPU (no-op on a single-CPU machine), so
/// every system is measured with the parent on CPU 0 and its child on CPU 1:
/// round trips otherwise swing with where the scheduler puts the two.
void pin(int cpu) {
  if (sysconf(_SC_NPROCESSORS_ONLN) < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

double median_us(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double since_us(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

double pipe_round_trip(int n, int gap_us = 0) {
  auto [anchor, point] = inorder::Pipe::pair();
  const pid_t kid = fork();
  if (kid == 0) {
    pin(1);
    for (int i = 0; i < n; ++i) point.send(point.recv<int>() + 1);
    _exit(0);
  }
  std::vector<double> t;
  t.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    if (gap_us != 0) std::this_thread::sleep_for(std::chrono::microseconds(gap_us));
    const auto t0 = Clock::now();
    anchor.send(i);
    if (anchor.recv<int>() != i + 1) std::abort();
    t.push_back(since_us(t0));
  }
  waitpid(kid, nullptr, 0);
  return median_us(t);
}

double raw_pipe_round_trip(int n, int gap_us = 0) {
  int down[2], up[2];
  if (pipe(down) != 0 || pipe(up) != 0) std::abort();
  const pid_t kid = fork();
  if (kid == 0) {
    pin(1);
    for (int i = 0, v = 0; i < n; ++i) {
      if (read(down[0], &v, sizeof v) != sizeof v) _exit(1);
      ++v;
      if (write(up[1], &v, sizeof v) != sizeof v) _exit(1);
    }
    _exit(0);
  }
  std::vector<double> t;
  for (int i = 0; i < n; ++i) {
    if (gap_us != 0) std::this_thread::sleep_for(std::chrono::microseconds(gap_us));
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
  void on_prerun() override {
    if (current_run() == 0) pin(1);
  }
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
  // The three systems take turns over kRounds rounds, parent on CPU 0 and
  // child on CPU 1; each prints the median of its round medians, and the range.
  constexpr int kRounds = 7;
  pin(0);
  std::vector<double> pipe_rt, raw_rt, tl_rt;
  for (int r = 0; r < kRounds; ++r) {
    pipe_rt.push_back(pipe_round_trip(n / kRounds));
    raw_rt.push_back(raw_pipe_round_trip(n / kRounds));
    tl_rt.push_back(tell_listen_round_trip(n / kRounds));
  }
  auto show = [](const char* name, std::vector<double> v) {
    std::sort(v.begin(), v.end());
    std::printf("  %-22s %8.2f us   (rounds %.2f .. %.2f)\n", name, v[v.size() / 2], v.front(),
                v.back());
    return v[v.size() / 2];
  };
  std::printf("round trip, %d rounds of %d, median of round medians:\n", kRounds, n / kRounds);
  const double a = show("inorder::Pipe", pipe_rt);
  const double b = show("pipe(2) x 2 (anchor)", raw_rt);
  show("tell() + listen()", tl_rt);
  std::printf("  ratio Pipe / pipe(2)   %8.2f\n", a / b);
  // With a 1 ms pause before each round trip the child has gone to sleep
  // (futex for the Pipe, the kernel pipe's wait queue for pipe(2)): the cost
  // of waking a sleeping peer.
  std::vector<double> pipe_slow, raw_slow;
  for (int r = 0; r < kRounds; ++r) {
    pipe_slow.push_back(pipe_round_trip(100, 1000));
    raw_slow.push_back(raw_pipe_round_trip(100, 1000));
  }
  std::printf("round trip after a 1 ms pause (peer asleep), %d rounds of 100:\n", kRounds);
  const double c = show("inorder::Pipe", pipe_slow);
  const double d = show("pipe(2) x 2 (anchor)", raw_slow);
  std::printf("  ratio Pipe / pipe(2)   %8.2f\n", c / d);
  const double sr = start_to_result(200);
  const double fw = fork_wait(200);
  std::printf("process, median of 200:\n");
  std::printf("  Skprocess run() 1 run  %8.1f us\n", sr);
  std::printf("  fork + waitpid (anchor)%8.1f us   ratio %.2f\n", fw, sr / fw);
  std::printf("hook timeout of 50 ms, median of 10:\n");
  std::printf("  deadline -> result()   %8.1f us late\n", timeout_overshoot(10));
}
