// bench/share_bench.cpp: inorder::Share against Python's multiprocessing.Manager.
//
//     inorder-share-bench [--quick] [ROUNDS]
//
// Each row is 2 processes doing the same operation on one shared object at
// once, started together by a gate; the figure is operations of both per
// second of wall time, the median of ROUNDS rounds (default 5):
//   Share Number<long> ++           lock-free atomic increment
//   Share Value<long>::update       read-modify-write under the Share's lock
//   Share List<int>::push_back      append under the Share's lock
//   Manager Value += 1              v.value += 1 on a Manager().Value (loses updates)
//   Manager Value += 1 under Lock   the same under a Manager().Lock() (exact)
//   Manager list.append             l.append(i) on a Manager().list()
// The Manager rows come from bench/share_manager.py, run in the same program
// with python3 (or $INORDER_PYTHON); without it they are skipped with a note.
// The ratios printed at the end compare the Share's counter with the faster
// (unlocked) Manager counter, and the Share's list with Manager's list.
#include <inorder/share.hpp>

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#ifndef INORDER_SHARE_PY
#define INORDER_SHARE_PY "bench/share_manager.py"
#endif

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// Runs body() in 2 forked processes released together; returns ops/s of both
/// (2 x ops / wall seconds from the release to the last exit).
double two_processes(inorder::Share& share, long ops, const std::function<void()>& body) {
  auto arrived = share.counter<int>("arrived");
  auto go = share.counter<int>("go");
  arrived.store(0);
  go.store(0);
  pid_t pids[2];
  for (pid_t& pid : pids) {
    pid = fork();
    if (pid == 0) {
      ++arrived;
      while (go.load() == 0) sched_yield();  // a few microseconds: the parent releases at once
      body();
      _exit(0);
    }
  }
  while (arrived.load() < 2) sched_yield();
  const auto start = Clock::now();
  go.store(1);
  for (pid_t pid : pids) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "a benchmark process failed\n");
      std::exit(1);
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return 2.0 * static_cast<double>(ops) / seconds;
}

struct PyRow {
  double ops_per_s;
  long final_value;
  long expected;
};

/// Runs share_manager.py; nullopt (with a note on stderr) when python3 cannot run it.
std::optional<std::map<std::string, PyRow>> run_manager(long ops, int rounds) {
  const char* env = std::getenv("INORDER_PYTHON");
  const std::string python = env != nullptr && *env != '\0' ? env : "python3";
  int fd[2];
  if (pipe(fd) != 0) return std::nullopt;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fd[1], STDOUT_FILENO);
    close(fd[0]);
    close(fd[1]);
    const std::string n = std::to_string(ops), r = std::to_string(rounds);
    execlp(python.c_str(), python.c_str(), INORDER_SHARE_PY, n.c_str(), r.c_str(),
           static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fd[1]);
  std::string text;
  char buf[512];
  for (;;) {
    const ssize_t k = read(fd[0], buf, sizeof buf);
    if (k > 0) {
      text.append(buf, static_cast<std::size_t>(k));
    } else if (k < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  close(fd[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "note: Manager rows skipped: '%s %s' %s\n", python.c_str(),
                 INORDER_SHARE_PY,
                 WIFEXITED(status) && WEXITSTATUS(status) == 127 ? "could not be run" : "failed");
    return std::nullopt;
  }
  std::map<std::string, PyRow> rows;
  std::istringstream in(text);
  std::string name;
  PyRow row{};
  while (in >> name >> row.ops_per_s >> row.final_value >> row.expected) rows[name] = row;
  return rows;
}

void print_row(const char* name, double ops_per_s, const std::string& note) {
  std::printf("%-34s %14.0f %10.3f  %s\n", name, ops_per_s, 1e6 / ops_per_s, note.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int rounds = 5;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else {
      rounds = std::max(1, std::atoi(argv[i]));
    }
  }
  const long counter_ops = quick ? 200'000 : 5'000'000;  // per process
  const long update_ops = quick ? 50'000 : 500'000;
  const long list_ops = quick ? 50'000 : 1'000'000;
  const long py_ops = quick ? 2'000 : 20'000;

  std::vector<double> counter, update, list;
  for (int r = 0; r < rounds; ++r) {
    inorder::Share share;
    auto n = share.counter<long>("n");
    counter.push_back(two_processes(share, counter_ops, [&] {
      for (long k = 0; k < counter_ops; ++k) ++n;
    }));
    if (n.load() != 2 * counter_ops) return std::fprintf(stderr, "counter mismatch\n"), 1;
    auto v = share.value<long>("v", 0);
    update.push_back(two_processes(share, update_ops, [&] {
      for (long k = 0; k < update_ops; ++k) v.update([](long x) { return x + 1; });
    }));
    if (v.get() != 2 * update_ops) return std::fprintf(stderr, "update mismatch\n"), 1;
    auto l = share.list<int>("l");
    list.push_back(two_processes(share, list_ops, [&] {
      for (long k = 0; k < list_ops; ++k) l.push_back(static_cast<int>(k));
    }));
    if (static_cast<long>(l.size()) != 2 * list_ops)
      return std::fprintf(stderr, "list mismatch\n"), 1;
  }

  std::printf("inorder::Share vs multiprocessing.Manager: 2 processes, median of %d rounds\n",
              rounds);
  std::printf("%-34s %14s %10s  %s\n", "operation", "ops/s", "us/op", "check");
  const double c = median(counter), u = median(update), l = median(list);
  print_row("Share Number<long> ++", c, "exact: " + std::to_string(2 * counter_ops));
  print_row("Share Value<long>::update", u, "exact: " + std::to_string(2 * update_ops));
  print_row("Share List<int>::push_back", l, "exact: " + std::to_string(2 * list_ops));
  const auto py = run_manager(py_ops, rounds);
  if (!py || !py->count("counter") || !py->count("append") || !py->count("counter_locked")) {
    std::printf("(Manager rows skipped: python3 missing or failed)\n");
    return 0;
  }
  auto note = [](const PyRow& r) {
    return std::to_string(r.final_value) + " of " + std::to_string(r.expected);
  };
  const PyRow& mc = py->at("counter");
  const PyRow& ml = py->at("counter_locked");
  const PyRow& ma = py->at("append");
  print_row("Manager Value += 1", mc.ops_per_s, note(mc));
  print_row("Manager Value += 1 under Lock", ml.ops_per_s, note(ml));
  print_row("Manager list.append", ma.ops_per_s, note(ma));
  std::printf(
      "ratio counter: Share ++ / Manager Value += 1 (unlocked) = %.0fx"
      " (vs the exact locked form: %.0fx)\n",
      c / mc.ops_per_s, c / ml.ops_per_s);
  std::printf("ratio list:    Share push_back / Manager list.append  = %.0fx\n", l / ma.ops_per_s);
  return 0;
}
