// tests/lifecycle_test.cpp: a queue's life from construction to destruction:
// stop(), end of stream, timed waits, join(), the destructor, worker_init,
// stats() and invalid Options. Every test runs under LeakCheck, so each one
// also proves that nothing (child, fd, /dev/shm name) outlives its queue.
#include <gtest/gtest.h>
#include <inorder/inorder.hpp>

#include <unistd.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using inorder_test::child_pids;
using inorder_test::scaled;
using inorder_test::SharedBlock;
using inorder_test::wait_until;

class Lifecycle : public inorder_test::LeakCheck {};

/// Flags shared between the test and the workers (lives in a SharedBlock made
/// before the queue, so the workers inherit the mapping).
struct Gate {
  std::atomic<int> open{0};      ///< set by the test: blocked tasks may return
  std::atomic<int> started{0};   ///< tasks that have begun running
  std::atomic<int> finished{0};  ///< tasks that have returned
};

/// Runs in a worker: counts itself as started and waits until the gate opens.
/// Polls with a short sleep so a blocked worker does not burn a core.
int wait_at(Gate* g, int value) {
  g->started.fetch_add(1);
  while (g->open.load() == 0) usleep(200);
  g->finished.fetch_add(1);
  return value;
}

template <class F>
Clock::duration time_of(F&& f) {
  const auto t0 = Clock::now();
  f();
  return Clock::now() - t0;
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

/// The what() of the std::invalid_argument that constructing a queue with `o`
/// throws, or a marker if it throws nothing (or something else).
std::string invalid_argument_message(const inorder::Options& o) {
  try {
    inorder::ParallelQueue<int> q(o);
  } catch (const std::invalid_argument& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<wrong exception type: ") + e.what() + ">";
  }
  return "<no exception>";
}

TEST_F(Lifecycle, PutAfterStopThrowsQueueClosedAndKeepsEarlierResults) {
  SharedBlock<Gate> gate;
  Gate* g = gate.get();
  inorder::ParallelQueue<int> q({.workers = 2});
  // The tasks are held back, so stop() arrives while all ten are still pending.
  for (int i = 0; i < 10; ++i) q.put([g](int x) { return wait_at(g, x * 3); }, i);
  q.stop();
  EXPECT_TRUE(q.stopped());

  int (*task)(int) = [](int x) { return x; };
  EXPECT_THROW(q.put(task, 99), inorder::QueueClosed);
  EXPECT_THROW((void)q.try_put(task, 99), inorder::QueueClosed);
  EXPECT_THROW((void)q.try_put_for(10ms, task, 99), inorder::QueueClosed);
  EXPECT_THROW((void)q.try_put_until(Clock::now() + 10ms, task, 99), inorder::QueueClosed);
  EXPECT_THROW(q.put_value(99), inorder::QueueClosed);
  EXPECT_THROW(q.put(99), inorder::QueueClosed);
  q.stop();  // idempotent
  EXPECT_TRUE(q.stopped());

  g->open.store(1);
  for (int i = 0; i < 10; ++i) {
    const std::optional<int> r = q.get();
    ASSERT_TRUE(r.has_value()) << "result " << i << " was lost by stop()";
    EXPECT_EQ(*r, i * 3);
  }
  EXPECT_EQ(q.get(), std::nullopt);
  EXPECT_TRUE(q.exhausted());
}

TEST_F(Lifecycle, GetAfterStopAndDrainReturnsEndOfStreamAtOnce) {
  inorder::ParallelQueue<int> q({.workers = 2});
  for (int i = 0; i < 5; ++i) q.put([](int x) { return x + 1; }, i);
  q.stop();
  EXPECT_FALSE(q.exhausted()) << "results are still undelivered";
  for (int i = 0; i < 5; ++i) EXPECT_EQ(q.get(), i + 1);
  EXPECT_TRUE(q.exhausted());

  std::optional<int> r = 0;
  const auto timed = time_of([&] { r = q.try_get_for(10s); });
  EXPECT_EQ(r, std::nullopt);
  // "At once": the point is not speed but that it does not wait for the timeout.
  EXPECT_LT(timed, scaled(5s)) << "try_get_for at end of stream waited " << ms(timed) << " ms";

  const auto timed_until = time_of([&] { r = q.try_get_until(Clock::now() + 10s); });
  EXPECT_EQ(r, std::nullopt);
  EXPECT_LT(timed_until, scaled(5s));

  EXPECT_EQ(q.try_get(), std::nullopt);
  EXPECT_EQ(q.get(), std::nullopt);
  EXPECT_EQ(q.get(), std::nullopt) << "end of stream must be sticky";
  EXPECT_TRUE(q.exhausted());
}

TEST_F(Lifecycle, TimedGetOnEmptyQueueWaitsAtLeastItsTimeout) {
  inorder::ParallelQueue<int> q({.workers = 1});
  std::optional<int> r = 0;

  const auto for_50 = time_of([&] { r = q.try_get_for(50ms); });
  EXPECT_EQ(r, std::nullopt);
  EXPECT_GE(for_50, 50ms) << "try_get_for(50ms) gave up after " << ms(for_50) << " ms";

  r = 0;
  const auto no_wait = time_of([&] { r = q.try_get(); });
  EXPECT_EQ(r, std::nullopt);
  EXPECT_LT(no_wait, scaled(5s));

  r = 0;
  const auto until_30 = time_of([&] { r = q.try_get_until(Clock::now() + 30ms); });
  EXPECT_EQ(r, std::nullopt);
  EXPECT_GE(until_30, 30ms) << "try_get_until(now + 30ms) gave up after " << ms(until_30) << " ms";

  // A system_clock deadline is converted to the steady clock; allow 1 ms for
  // the two clocks being read at slightly different instants.
  r = 0;
  const auto sys_30 =
      time_of([&] { r = q.try_get_until(std::chrono::system_clock::now() + 30ms); });
  EXPECT_EQ(r, std::nullopt);
  EXPECT_GE(sys_30, 29ms) << "try_get_until(system_clock + 30ms) gave up after " << ms(sys_30)
                          << " ms";

  EXPECT_FALSE(q.exhausted()) << "an open queue is never exhausted";
  // The queue still works after the timeouts.
  q.put([] { return 7; });
  EXPECT_EQ(q.get(), 7);
}

TEST_F(Lifecycle, TimedPutOnFullQueueWaitsAtLeastItsTimeout) {
  SharedBlock<Gate> gate;
  Gate* g = gate.get();
  // max_pending = 0: no pending stage, so put() waits while the ring is full.
  inorder::ParallelQueue<int> q({.workers = 1, .window = 2, .capacity = 4, .max_pending = 0});
  ASSERT_EQ(q.stats().capacity, 4U);
  auto task = [g](int x) { return wait_at(g, x); };

  // Capacity counts results not yet taken by get(): four fit, the fifth does not.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(q.try_put(task, i)) << "put " << i << " of 4";

  bool ok = true;
  const auto no_wait = time_of([&] { ok = q.try_put(task, 4); });
  EXPECT_FALSE(ok) << "try_put succeeded on a full queue";
  EXPECT_LT(no_wait, scaled(5s));

  ok = true;
  const auto for_50 = time_of([&] { ok = q.try_put_for(50ms, task, 4); });
  EXPECT_FALSE(ok) << "try_put_for succeeded on a full queue";
  EXPECT_GE(for_50, 50ms) << "try_put_for(50ms) gave up after " << ms(for_50) << " ms";

  ok = true;
  const auto until_30 = time_of([&] { ok = q.try_put_until(Clock::now() + 30ms, task, 4); });
  EXPECT_FALSE(ok);
  EXPECT_GE(until_30, 30ms) << "try_put_until(now + 30ms) gave up after " << ms(until_30) << " ms";

  EXPECT_FALSE(q.try_put_for(0ms, task, 4)) << "a zero timeout on a full queue";

  // Free one slot: a put fits again.
  g->open.store(1);
  EXPECT_EQ(q.get(), 0);
  EXPECT_TRUE(q.try_put_for(10s, task, 4));
  EXPECT_FALSE(q.try_put(task, 5)) << "full again after one get and one put";
  q.stop();
  for (int i = 1; i <= 4; ++i) EXPECT_EQ(q.get(), i) << "a failed try_put must not take a slot";
  EXPECT_EQ(q.get(), std::nullopt);
}

TEST_F(Lifecycle, NegativeTimeoutsAreRejected) {
  inorder::ParallelQueue<int> q({.workers = 1});
  int (*task)(int) = [](int x) { return x; };
  EXPECT_THROW((void)q.try_get_for(-1ms), std::invalid_argument);
  EXPECT_THROW((void)q.try_put_for(-1ms, task, 1), std::invalid_argument);
  EXPECT_THROW((void)q.try_put_for(std::chrono::duration<double>(-0.5), task, 1),
               std::invalid_argument);

  // A rejected put enqueued nothing.
  q.stop();
  EXPECT_EQ(q.get(), std::nullopt);
}

TEST_F(Lifecycle, InvalidOptionsNameTheField) {
  struct Case {
    const char* what;
    inorder::Options opts;
    const char* field;
  };
  const Case cases[] = {
      {"workers = 0", {.workers = 0}, "workers"},
      {"capacity = 0", {.workers = 1, .capacity = 0}, "capacity"},
      {"window < workers", {.workers = 2, .window = 1}, "window"},
      {"capacity < window", {.workers = 1, .window = 8, .capacity = 4}, "capacity"},
      {"inline_bytes = 8", {.workers = 1, .inline_bytes = 8}, "inline_bytes"},
      {"inline_bytes = 63", {.workers = 1, .inline_bytes = 63}, "inline_bytes"},
      {"inline_bytes = 0", {.workers = 1, .inline_bytes = 0}, "inline_bytes"},
      {"shutdown_grace < 0", {.workers = 1, .shutdown_grace = -1ms}, "shutdown_grace"},
  };
  for (const Case& c : cases) {
    const std::string message = invalid_argument_message(c.opts);
    EXPECT_NE(message.find(c.field), std::string::npos)
        << c.what << ": expected std::invalid_argument naming \"" << c.field << "\", got \""
        << message << "\"";
    EXPECT_TRUE(child_pids().empty()) << c.what << ": a child process outlived the throw";
  }
}

TEST_F(Lifecycle, InlineBytesAtTheDocumentedMinimumIsAcceptedAndSpillsLargerPayloads) {
  EXPECT_NE(invalid_argument_message({.workers = 1, .inline_bytes = 63}).find("inline_bytes"),
            std::string::npos);
  inorder::ParallelQueue<std::string> q({.workers = 1, .inline_bytes = 64});
  // A small payload stays inline; a large argument and result spill.
  q.put([](std::string s) { return s + "!"; }, std::string("hi"));
  q.put([](std::string s) { return s + s; }, std::string(300, 'x'));
  q.stop();
  EXPECT_EQ(q.get(), "hi!");
  EXPECT_EQ(q.get(), std::string(600, 'x'));
  EXPECT_EQ(q.get(), std::nullopt);
}

TEST_F(Lifecycle, DestructorWithTasksInFlightReturnsAndLeavesNoProcess) {
  SharedBlock<Gate> gate;
  Gate* g = gate.get();
  auto q = std::make_unique<inorder::ParallelQueue<int>>(
      inorder::Options{.workers = 2, .shutdown_grace = 100ms});
  // Tasks that never return on their own: only SIGKILL ends them.
  for (int i = 0; i < 4; ++i)
    q->put([g]() -> int {
      g->started.fetch_add(1);
      for (;;) pause();
    });
  ASSERT_TRUE(wait_until([&] { return g->started.load() == 2; })) << "both workers are busy";

  const auto destroy = time_of([&] { q.reset(); });
  std::printf("[ info     ] destructor with 2 stuck tasks (shutdown_grace 100 ms): %.1f ms\n",
              ms(destroy));
  EXPECT_LT(destroy, scaled(10s));
  EXPECT_TRUE(child_pids().empty()) << "a stuck worker survived the destructor";
}

TEST_F(Lifecycle, DestructorWithUndeliveredResultsReturns) {
  {
    auto q =
        std::make_unique<inorder::ParallelQueue<int>>(inorder::Options{.workers = 2, .window = 8});
    for (int i = 0; i < 30; ++i) q->put([](int x) { return x * x; }, i);
    q->put_value(-1);
    // The window (8 tasks) is full of finished results nobody takes, and the
    // pass-through value is finished too; the workers wait for the window.
    ASSERT_TRUE(wait_until([&] { return q->stats().waiting_in_window == 9; }))
        << "waiting_in_window = " << q->stats().waiting_in_window;
    const auto destroy = time_of([&] { q.reset(); });
    std::printf("[ info     ] destructor with 31 undelivered results: %.1f ms\n", ms(destroy));
    EXPECT_LT(destroy, scaled(10s));
  }
  {
    // Stopped, every task finished, nothing taken.
    auto q = std::make_unique<inorder::ParallelQueue<int>>(inorder::Options{.workers = 1});
    for (int i = 0; i < 3; ++i) q->put([](int x) { return x; }, i);
    q->stop();
    ASSERT_TRUE(wait_until([&] { return q->stats().waiting_in_window == 3; }));
    const auto destroy = time_of([&] { q.reset(); });
    EXPECT_LT(destroy, scaled(10s));
  }
  EXPECT_TRUE(child_pids().empty());
}

TEST_F(Lifecycle, JoinAfterStopWaitsForWorkersAndResultsStayAvailable) {
  // window > number of tasks: every task can run without any get().
  inorder::ParallelQueue<int> q({.workers = 2, .window = 32});
  for (int i = 0; i < 20; ++i) q.put([](int x) { return 100 + x; }, i);
  q.stop();
  EXPECT_TRUE(q.join(scaled(10s))) << "workers did not exit after all work was done";
  EXPECT_FALSE(q.is_alive());
  for (const inorder::WorkerStats& w : q.stats().workers) EXPECT_FALSE(w.alive);
  EXPECT_TRUE(q.join(0ms)) << "a second join after the workers exited";

  for (int i = 0; i < 20; ++i) {
    const std::optional<int> r = q.get();
    ASSERT_TRUE(r.has_value()) << "result " << i << " lost by join()";
    EXPECT_EQ(*r, 100 + i);
  }
  EXPECT_EQ(q.get(), std::nullopt);
  EXPECT_TRUE(q.exhausted());
}

// A worker whose next sequence is exactly emit + window (every task ran, none
// taken) must still notice that the queue is stopped and fully dispatched,
// rather than sleep until the window moves.
TEST_F(Lifecycle, JoinSucceedsWhenStoppedWithExactlyAWindowOfResultsUntaken) {
  inorder::ParallelQueue<int> q({.workers = 1, .window = 4});
  for (int i = 0; i < 4; ++i) q.put([](int x) { return x; }, i);
  q.stop();
  EXPECT_TRUE(q.join(scaled(3s))) << "every task ran, yet the worker did not exit";
  for (int i = 0; i < 4; ++i) EXPECT_EQ(q.get(), i);
  EXPECT_EQ(q.get(), std::nullopt);
  EXPECT_TRUE(q.join(scaled(10s))) << "the worker did not exit even after the results were taken";
}

// A getter can take a pass-through value before any worker has looked at its
// sequence number; by then its slot is free for a later lap. The workers must
// still step over it, or no later task ever runs and join() never succeeds.
TEST_F(Lifecycle, TaskPutAfterATakenPassThroughValueStillRuns) {
  inorder::ParallelQueue<int> q({.workers = 1});
  q.put([] { return 1; });
  ASSERT_EQ(q.get(), 1);
  // Not synchronisation: lets the idle worker park at the next sequence, the
  // situation a wrong implementation mishandles.
  std::this_thread::sleep_for(2ms);
  q.put_value(2);
  ASSERT_EQ(q.get(), 2);
  q.put([] { return 3; });
  EXPECT_EQ(q.try_get_for(scaled(3s)), 3)
      << "a task put after a taken pass-through value never ran";
  q.stop();
  EXPECT_TRUE(q.join(scaled(3s)));
}

TEST_F(Lifecycle, JoinTimesOutWhileATaskBlocks) {
  SharedBlock<Gate> gate;
  Gate* g = gate.get();
  inorder::ParallelQueue<int> q({.workers = 1});
  q.put([g] { return wait_at(g, 5); });
  ASSERT_TRUE(wait_until([&] { return g->started.load() == 1; }));

  bool joined = true;
  const auto timed = time_of([&] { joined = q.join(50ms); });
  EXPECT_FALSE(joined) << "join returned true while a task was still running";
  EXPECT_GE(timed, 50ms) << "join(50ms) gave up after " << ms(timed) << " ms";
  EXPECT_TRUE(q.stopped()) << "join stops the queue";
  EXPECT_TRUE(q.is_alive());

  g->open.store(1);
  EXPECT_TRUE(q.join());
  EXPECT_FALSE(q.is_alive());
  EXPECT_EQ(q.get(), 5);
  EXPECT_EQ(q.get(), std::nullopt);
}

TEST_F(Lifecycle, WorkerInitHookRunsOncePerWorker) {
  struct InitLog {
    std::atomic<int> calls[2]{};
    std::atomic<int> pid[2]{};
    std::atomic<int> total{0};
    std::atomic<int> bad_index{0};
  };
  SharedBlock<InitLog> block;
  InitLog* log = block.get();
  inorder::Options opts{.workers = 2};
  opts.worker_init = [log](unsigned index) {
    log->total.fetch_add(1);
    if (index >= 2) {
      log->bad_index.fetch_add(1);
      return;
    }
    log->pid[index].store(getpid());
    log->calls[index].fetch_add(1);
  };
  inorder::ParallelQueue<int> q(opts);

  // Each task reports whether its own worker's hook had already run.
  auto init_ran_here = [log]() -> int {
    const int me = getpid();
    for (int i = 0; i < 2; ++i)
      if (log->pid[i].load() == me && log->calls[i].load() == 1) return 1;
    return 0;
  };
  for (int i = 0; i < 40; ++i) q.put(init_ran_here);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(q.get(), 1) << "task " << i << " ran before worker_init";

  ASSERT_TRUE(wait_until([&] { return log->total.load() >= 2; }));
  const inorder::Stats s = q.stats();
  q.stop();
  ASSERT_TRUE(q.join(scaled(10s)));
  // After join every worker has exited: the counts are final.
  EXPECT_EQ(log->total.load(), 2);
  EXPECT_EQ(log->bad_index.load(), 0);
  ASSERT_EQ(s.workers.size(), 2U);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(log->calls[i].load(), 1) << "worker " << i;
    EXPECT_EQ(log->pid[i].load(), s.workers[i].pid) << "worker " << i;
  }
  EXPECT_NE(log->pid[0].load(), getpid()) << "worker_init ran in the parent";
  EXPECT_NE(log->pid[0].load(), log->pid[1].load());
}

TEST_F(Lifecycle, ThrowingWorkerInitFailsTasksInsteadOfHanging) {
  inorder::Options opts{.workers = 2};
  opts.worker_init = [](unsigned) { throw std::runtime_error("no db"); };
  inorder::ParallelQueue<int> q(opts);
  for (int i = 0; i < 6; ++i) q.put([](int x) { return x; }, i);
  q.put_value(42);  // a pass-through value needs no worker
  q.put([] { return 0; });
  q.stop();
  // The window admits all eight, so every task can fail and the workers exit
  // before any get().
  EXPECT_TRUE(q.join(scaled(10s))) << "workers whose worker_init threw did not finish";

  auto expect_init_failure = [&](int position) {
    try {
      const std::optional<int> r = q.get();
      ADD_FAILURE() << "task " << position << " returned "
                    << (r ? std::to_string(*r) : std::string("nullopt"))
                    << " although worker_init failed";
    } catch (const inorder::TaskError& e) {
      EXPECT_EQ(e.type_name(), "inorder::WorkerInitFailed") << "task " << position;
      EXPECT_NE(e.message().find("no db"), std::string::npos) << e.message();
      EXPECT_NE(e.worker_pid(), getpid());
    }
  };
  for (int i = 0; i < 6; ++i) expect_init_failure(i);
  EXPECT_EQ(q.get(), 42);
  expect_init_failure(7);
  EXPECT_EQ(q.get(), std::nullopt);
}

TEST_F(Lifecycle, StatsCountTasksPerWorkerAndInFlight) {
  SharedBlock<Gate> gate;
  Gate* g = gate.get();
  inorder::ParallelQueue<int> q({.workers = 2, .window = 6, .capacity = 12});

  inorder::Stats s = q.stats();
  EXPECT_EQ(s.capacity, 16U) << "capacity is rounded up to a power of two";
  EXPECT_EQ(s.window, 6U);
  EXPECT_EQ(s.in_flight, 0U);
  EXPECT_EQ(s.waiting_in_window, 0U);
  ASSERT_EQ(s.workers.size(), 2U);
  for (const inorder::WorkerStats& w : s.workers) {
    EXPECT_GT(w.pid, 0);
    EXPECT_NE(w.pid, getpid());
    EXPECT_TRUE(w.alive);
    EXPECT_EQ(w.tasks, 0U);
  }

  // A blocked head and four quick tasks behind it.
  q.put([g] { return wait_at(g, 0); });
  for (int i = 1; i < 5; ++i) q.put([](int x) { return x; }, i);
  EXPECT_EQ(q.stats().in_flight, 5U);
  ASSERT_TRUE(wait_until([&] { return q.stats().waiting_in_window == 4; }))
      << "waiting_in_window = " << q.stats().waiting_in_window;
  s = q.stats();
  EXPECT_EQ(s.in_flight, 5U);
  EXPECT_EQ(s.waiting_in_window, 4U) << "the blocked head is not finished";

  g->open.store(1);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(q.get(), i);
  s = q.stats();
  EXPECT_EQ(s.in_flight, 0U);
  EXPECT_EQ(s.waiting_in_window, 0U);

  // More work, taken as it goes (a batch at a time stays under capacity).
  constexpr int kBatches = 5;
  constexpr int kPerBatch = 10;
  for (int b = 0; b < kBatches; ++b) {
    for (int i = 0; i < kPerBatch; ++i)
      q.put(
          [](int x) {
            const auto until = Clock::now() + 200us;
            while (Clock::now() < until) {
            }
            return x;
          },
          i);
    EXPECT_LE(q.stats().in_flight, static_cast<std::size_t>(kPerBatch));
    for (int i = 0; i < kPerBatch; ++i) EXPECT_EQ(q.get(), i);
  }
  q.put_value(-1);  // values are not tasks: no worker counts them
  EXPECT_EQ(q.get(), -1);

  q.stop();
  ASSERT_TRUE(q.join(scaled(10s)));  // the workers have exited: their counters are final
  s = q.stats();
  std::uint64_t total = 0;
  std::chrono::nanoseconds busy{0};
  for (const inorder::WorkerStats& w : s.workers) {
    total += w.tasks;
    busy += w.busy;
    EXPECT_FALSE(w.alive);
  }
  EXPECT_EQ(total, 5U + kBatches * kPerBatch);
  EXPECT_GT(busy.count(), 0);
  EXPECT_EQ(s.in_flight, 0U);
}

// The constructor does not wait for the supervisor to fork the workers; the
// records stats() reads are filled by the supervisor, so stats() waits for
// the start. Every worker it names exists and runs.
TEST_F(Lifecycle, StatsRightAfterConstructionNamesEveryLiveWorker) {
  inorder::ParallelQueue<int> q({.workers = 3});
  const inorder::Stats s = q.stats();
  ASSERT_EQ(s.workers.size(), 3U);
  std::set<pid_t> pids;
  for (const inorder::WorkerStats& w : s.workers) {
    EXPECT_GT(w.pid, 0);
    EXPECT_TRUE(w.alive);
    EXPECT_EQ(kill(w.pid, 0), 0) << "worker " << w.pid << " does not exist";
    pids.insert(w.pid);
  }
  EXPECT_EQ(pids.size(), 3U) << "two workers share a pid";
}

// Destruction can come while the supervisor is still forking the workers:
// it stops forking, and every process that exists is reaped (LeakCheck).
TEST_F(Lifecycle, DestroyedWhileItsWorkersStartLeavesNothingBehind) {
  const int cycles = static_cast<int>(inorder_test::volume(200, 20));
  Clock::duration slowest{};
  for (int i = 0; i < cycles; ++i) {
    const auto t0 = Clock::now();
    { inorder::ParallelQueue<int> q({.workers = 4}); }
    slowest = std::max(slowest, Clock::now() - t0);
    const std::vector<int> kids = child_pids();
    ASSERT_TRUE(kids.empty()) << "cycle " << i << " left " << inorder_test::describe_pids(kids);
  }
  std::printf("[ info     ] %d create/destroy cycles at once; slowest %.1f ms\n", cycles,
              ms(slowest));
}

/// Lines of /proc/self/maps: one per mapping of this process.
std::size_t mapping_count() {
  std::ifstream maps("/proc/self/maps");
  std::size_t n = 0;
  for (std::string line; std::getline(maps, line);) ++n;
  return n;
}

// The count only serves volume: each cycle checks its own result, LeakCheck
// checks that no process, fd or /dev/shm entry is left, and the mapping count
// that no mapping is (a leak of one per cycle would add hundreds against a
// margin of 8). 500 cycles, 200 under the sanitizers; a cycle costs
// milliseconds (two forks and two exits), more on a busy or freshly booted
// machine, so a larger count would only test the watchdog and the suite's
// time. The per-cycle cost is a figure of bench/ (BM_QueueLifecycle in
// inorder-bench), not a bound.
TEST_F(Lifecycle, ManyCreateDestroyCyclesLeaveNothingBehind) {
  const int cycles = static_cast<int>(inorder_test::volume(500, 200));
  {  // one cycle first: the library's own one-time allocations are not a leak
    inorder::ParallelQueue<int> q({.workers = 1});
    q.put([](int x) { return x + 1; }, 0);
    ASSERT_EQ(q.get(), 1);
  }
  const std::size_t maps_before = mapping_count();
  const auto t0 = Clock::now();
  for (int i = 0; i < cycles; ++i) {
    inorder::ParallelQueue<int> q({.workers = 1});
    q.put([](int x) { return x + 1; }, i);
    const std::optional<int> r = q.get();
    ASSERT_EQ(r, i + 1) << "cycle " << i;
  }
  const auto elapsed = Clock::now() - t0;
  const std::size_t maps_after = mapping_count();
  std::printf("[ info     ] %d create/put/get/destroy cycles: %.2f s (%.1f us each)\n", cycles,
              ms(elapsed) / 1000.0, ms(elapsed) * 1000.0 / cycles);
  // malloc may add an arena or two; a per-cycle leak would add `cycles`.
  EXPECT_LE(maps_after, maps_before + 8) << "mappings grew from " << maps_before << " to "
                                         << maps_after << " over " << cycles << " cycles";
}

TEST_F(Lifecycle, SingleTaskQueueRunsATaskWithUnencodableStateInPutOrder) {
  const std::map<std::string, int> table{{"zero", 0}, {"one", 1}, {"two", 2}, {"three", 3}};
  const std::function<int(int)> scale = [](int x) { return x * 10; };
  const std::vector<std::string> names{"zero", "one", "two", "three"};
  // State that cannot be encoded: inherited by the workers through the fork.
  inorder::SingleTaskQueue<std::string, int> q(
      [table, scale, names](int i) {
        const std::string& name = names[static_cast<std::size_t>(i) % names.size()];
        return name + "=" + std::to_string(scale(table.at(name))) + "@" + std::to_string(getpid());
      },
      {.workers = 2});

  constexpr int kTasks = 24;
  for (int i = 0; i < kTasks; ++i) {
    q.put(i);
    if (i % 8 == 7) q.put_value("mark " + std::to_string(i));
  }
  q.stop();
  EXPECT_THROW(q.put(0), inorder::QueueClosed);

  const std::string parent = std::to_string(getpid());
  for (int i = 0; i < kTasks; ++i) {
    const std::optional<std::string> r = q.get();
    ASSERT_TRUE(r.has_value()) << "task " << i;
    const std::string& name = names[static_cast<std::size_t>(i) % names.size()];
    const std::string expected = name + "=" + std::to_string(table.at(name) * 10) + "@";
    EXPECT_EQ(r->substr(0, expected.size()), expected) << "task " << i;
    EXPECT_NE(r->substr(expected.size()), parent) << "task " << i << " ran in the parent";
    if (i % 8 == 7) {
      EXPECT_EQ(q.get(), "mark " + std::to_string(i));
    }
  }
  EXPECT_EQ(q.get(), std::nullopt);
  EXPECT_TRUE(q.exhausted());
}

}  // namespace
