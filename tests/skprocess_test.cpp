// tests/skprocess_test.cpp: the Skprocess lifecycle, attempts, timeouts, control,
// tell/listen and timers, each against a real watcher and child process.
#include <inorder/pool.hpp>
#include <inorder/skprocess.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <string>
#include <thread>

#include "test_util.hpp"

namespace {

using inorder::Hook;
using inorder::ProcessError;
using inorder::Skprocess;
using namespace std::chrono_literals;

class SkprocessTest : public inorder_test::LeakCheck {};

/// What the children report back, in shared memory made before start().
struct Board {
  std::atomic<int> n{0};
  char log[512] = {};
  std::atomic<int> flag{0};
  std::atomic<int> attempts{0};
  std::atomic<int> pids[8] = {};
  std::atomic<std::uint64_t> hook_start_ns{0};
  std::atomic<int> child_pid{0};

  void add(char c) { log[n.fetch_add(1)] = c; }
  std::string text() const { return std::string(log, static_cast<std::size_t>(n.load())); }
};

std::uint64_t mono_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

class Recorder : public Skprocess<int> {
 public:
  explicit Recorder(Board* b) : b_(b) { config.runs = 2; }
  void on_prerun() override { b_->add('p'); }
  void on_run() override {
    b_->add('r');
    ++runs_seen_;
  }
  void on_postrun() override { b_->add('o'); }
  void on_finish() override { b_->add('f'); }
  int on_result() override {
    b_->add('x');
    return runs_seen_ * 10;
  }

 private:
  Board* b_;
  int runs_seen_ = 0;
};

TEST_F(SkprocessTest, HooksRunInOrderOncePerRunThenFinishAndResultOnce) {
  inorder_test::SharedBlock<Board> b;
  Recorder p(b.get());
  EXPECT_EQ(p.run(), 20);  // the child's state: runs_seen_ counted there
  EXPECT_EQ(b->text(), "proprofx");
  EXPECT_EQ(p.current_run(), 2u);
  EXPECT_FALSE(p.is_alive());
}

class Endless : public Skprocess<std::uint64_t> {
 public:
  explicit Endless(Board* b) : b_(b) {}
  void on_run() override {
    b_->flag.store(1);
    if (stop_at_ != 0 && current_run() == stop_at_) stop();
    std::this_thread::sleep_for(100us);
  }
  void on_postrun() override { b_->add('o'); }
  std::uint64_t on_result() override { return current_run(); }
  std::uint64_t stop_at_ = 0;

 private:
  Board* b_;
};

TEST_F(SkprocessTest, WithoutRunsItRunsUntilTheParentStopsIt) {
  inorder_test::SharedBlock<Board> b;
  Endless p(b.get());
  p.start();
  // Once run 0 is complete, a stop can no longer leave the count at 0 (a stop
  // seen between on_run and on_postrun cuts the run it lands in).
  ASSERT_TRUE(inorder_test::wait_until([&] { return p.current_run() >= 1; }));
  EXPECT_TRUE(p.is_alive());
  EXPECT_FALSE(p.wait(1ms));
  p.stop();
  EXPECT_TRUE(p.wait(inorder_test::scaled(20s)));
  EXPECT_GE(p.result(), 1u);
  EXPECT_EQ(p.result(), p.current_run());  // result() may be read again
}

TEST_F(SkprocessTest, StopFromInsideEndsTheLoopAtTheNextHookBoundary) {
  inorder_test::SharedBlock<Board> b;
  Endless p(b.get());
  p.stop_at_ = 3;
  EXPECT_EQ(p.run(), 3u);       // run 3 was cut after on_run: it does not count
  EXPECT_EQ(b->text(), "ooo");  // on_postrun of runs 0, 1, 2 only
}

TEST_F(SkprocessTest, JoinInEndsAProcessWithoutRuns) {
  inorder_test::SharedBlock<Board> b;
  Endless p(b.get());
  p.config.join_in = 50ms;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_GE(p.run(), 1u);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
}

class Flaky : public Skprocess<int> {
 public:
  explicit Flaky(Board* b) : b_(b) {
    config.runs = 3;
    config.attempts = 3;
  }
  void on_run() override {
    ++state_;  // kept across a retry: the same process, the same object
    b_->pids[b_->attempts.fetch_add(1)].store(getpid());
    if (current_run() == 1 && failures_++ < 2) throw std::runtime_error("flaky");
  }
  int on_result() override { return state_; }

 private:
  Board* b_;
  int state_ = 0;
  int failures_ = 0;
};

TEST_F(SkprocessTest, AnExceptionCostsALifeAndRetriesTheRunInTheSameProcess) {
  inorder_test::SharedBlock<Board> b;
  Flaky p(b.get());
  EXPECT_EQ(p.run(), 5);  // runs 0, 1 (x3), 2: state kept through both retries
  EXPECT_EQ(b->attempts.load(), 5);
  for (int i = 1; i < 5; ++i) EXPECT_EQ(b->pids[i].load(), b->pids[0].load());
  EXPECT_EQ(p.timer(Hook::kRun).count(), 3u);  // only successful calls are timed
}

class AlwaysThrows : public Skprocess<int> {
 public:
  AlwaysThrows() {
    config.runs = 5;
    config.attempts = 2;
  }
  void on_run() override {}
  void on_postrun() override {
    if (current_run() == 2) throw std::out_of_range("row 7 is missing");
  }
};

TEST_F(SkprocessTest, SpentLivesThrowAProcessErrorNamingHookRunAndCause) {
  AlwaysThrows p;
  try {
    (void)p.run();
    FAIL() << "result() should have thrown";
  } catch (const ProcessError& e) {
    EXPECT_EQ(e.kind(), ProcessError::Kind::kThrew);
    EXPECT_EQ(e.hook(), "postrun");
    EXPECT_EQ(e.run(), 2u);
    EXPECT_EQ(e.type_name(), "std::out_of_range");
    EXPECT_EQ(e.message(), "row 7 is missing");
    EXPECT_NE(std::string(e.what()).find("postrun"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("run 2"), std::string::npos);
  }
}

class Recovering : public AlwaysThrows {
 public:
  int on_error(const ProcessError& e) override { return static_cast<int>(e.run()) + 100; }
};

TEST_F(SkprocessTest, OnErrorsValueBecomesTheResult) {
  Recovering p;
  EXPECT_EQ(p.run(), 102);
}

class SelfKiller : public Skprocess<int> {
 public:
  explicit SelfKiller(Board* b) : b_(b) {
    config.runs = 5;
    config.attempts = 2;
  }
  void on_run() override {
    ++done_;
    b_->add(static_cast<char>('0' + current_run()));
    if (current_run() == 2 && b_->flag.exchange(1) == 0) raise(SIGKILL);
  }
  int on_result() override { return done_; }

 private:
  Board* b_;
  int done_ = 0;
};

TEST_F(SkprocessTest, AKilledChildRestartsFromTheParentsCopyAtTheRunWhereItStopped) {
  inorder_test::SharedBlock<Board> b;
  SelfKiller p(b.get());
  EXPECT_EQ(p.run(), 3);  // the replacement started with done_ == 0 and ran 2, 3, 4
  EXPECT_EQ(b->text(), "012234");
}

TEST_F(SkprocessTest, ACrashAfterTheLastLifeNamesTheSignal) {
  inorder_test::SharedBlock<Board> b;
  SelfKiller p(b.get());
  p.config.attempts = 1;
  try {
    (void)p.run();
    FAIL();
  } catch (const ProcessError& e) {
    EXPECT_EQ(e.kind(), ProcessError::Kind::kCrashed);
    EXPECT_EQ(e.hook(), "run");
    EXPECT_EQ(e.run(), 2u);
    EXPECT_NE(e.message().find("SIGKILL"), std::string::npos) << e.message();
  }
}

class Hangs : public Skprocess<int> {
 public:
  explicit Hangs(Board* b) : b_(b) {
    config.runs = 3;
    config.timeouts.run = 100ms;
  }
  void on_run() override {
    if (current_run() == 1 && b_->flag.exchange(1) == 0) {
      b_->child_pid.store(getpid());
      b_->hook_start_ns.store(mono_ns());
      for (;;) pause();  // only a kill ends this
    }
  }
  int on_result() override { return static_cast<int>(current_run()); }

 private:
  Board* b_;
};

TEST_F(SkprocessTest, AHookPastItsTimeoutIsKilledAndTheErrorSaysSo) {
  inorder_test::SharedBlock<Board> b;
  Hangs p(b.get());
  try {
    (void)p.run();
    FAIL();
  } catch (const ProcessError& e) {
    const double waited_ms = static_cast<double>(mono_ns() - b->hook_start_ns.load()) / 1e6;
    EXPECT_EQ(e.kind(), ProcessError::Kind::kTimedOut);
    EXPECT_EQ(e.hook(), "run");
    EXPECT_EQ(e.run(), 1u);
    EXPECT_NE(e.message().find("100 ms"), std::string::npos) << e.message();
    // Really interrupted: the hung process no longer exists, and it went soon
    // after its limit (a generous margin: this checks the kill, not speed).
    EXPECT_EQ(kill(b->child_pid.load(), 0), -1);
    EXPECT_GE(waited_ms, 100.0);
    EXPECT_LT(waited_ms, 100.0 + 2000.0 * inorder_test::time_scale());
  }
}

TEST_F(SkprocessTest, AHookTimeoutWithLivesLeftRestartsAtTheSameRun) {
  inorder_test::SharedBlock<Board> b;
  Hangs p(b.get());
  p.config.attempts = 2;
  EXPECT_EQ(p.run(), 3);
  EXPECT_EQ(p.timer(Hook::kRun).count(), 3u);  // runs 0, 1 (second attempt), 2
}

TEST_F(SkprocessTest, KillFromTheParentEndsItAndResultSaysKilled) {
  inorder_test::SharedBlock<Board> b;
  Endless p(b.get());
  p.start();
  ASSERT_TRUE(inorder_test::wait_until([&] { return b->flag.load() == 1; }));
  p.kill();
  EXPECT_FALSE(p.is_alive());
  try {
    (void)p.result();
    FAIL();
  } catch (const ProcessError& e) {
    EXPECT_EQ(e.kind(), ProcessError::Kind::kKilled);
  }
}

TEST_F(SkprocessTest, TheDestructorOfARunningProcessNeverHangs) {
  inorder_test::SharedBlock<Board> b;
  {
    Endless p(b.get());
    p.start();
    ASSERT_TRUE(inorder_test::wait_until([&] { return b->flag.load() == 1; }));
  }  // LeakCheck: nothing is left behind
}

class Echo : public Skprocess<int> {
 public:
  void on_prerun() override { command_ = listen<std::string>(1s); }
  void on_run() override {
    if (command_ && *command_ == "stop") stop();
  }
  void on_postrun() override {
    if (command_) {
      tell(*command_ + " received");
      ++answered_;
    }
  }
  int on_result() override { return answered_; }

 private:
  std::optional<std::string> command_;
  int answered_ = 0;
};

TEST_F(SkprocessTest, TellAndListenWorkBothWaysWithTimeouts) {
  Echo p;
  EXPECT_THROW(p.tell(1), inorder::NotStarted);
  EXPECT_THROW((void)p.listen<int>(1ms), inorder::NotStarted);
  p.start();
  EXPECT_EQ(p.listen<std::string>(20ms), std::nullopt);  // nothing told yet: times out
  for (int i = 0; i < 10; ++i) {
    p.tell("print " + std::to_string(i));
    EXPECT_EQ(p.listen<std::string>(inorder_test::scaled(20s)),
              "print " + std::to_string(i) + " received");
  }
  p.tell(std::string("stop"));
  EXPECT_EQ(p.result(), 10);
  EXPECT_THROW((void)p.listen<std::string>(10s), inorder::PipeClosed);  // the child is gone
}

class Timed : public Skprocess<> {
 public:
  explicit Timed(Board* b) : b_(b) { config.runs = 20; }
  void on_run() override {
    std::this_thread::sleep_for(1ms);
    if (current_run() == 10) {
      b_->flag.store(1);
      while (b_->attempts.load() == 0) std::this_thread::sleep_for(100us);  // the parent looked
    }
  }

 private:
  Board* b_;
};

TEST_F(SkprocessTest, TimersCountEachHookAndIterationAndAreReadableDuringTheRun) {
  inorder_test::SharedBlock<Board> b;
  Timed p(b.get());
  EXPECT_THROW((void)p.timer(Hook::kRun), inorder::NotStarted);
  p.start();
  ASSERT_TRUE(inorder_test::wait_until([&] { return b->flag.load() == 1; }));
  const auto during = p.timer(Hook::kRun);
  EXPECT_EQ(during.count(), 10u);  // runs 0..9 done; run 10 waits for us
  b->attempts.store(1);
  p.result();
  const auto t = p.timer(Hook::kRun);
  EXPECT_EQ(t.count(), 20u);
  EXPECT_GE(t.min(), 0.001);
  EXPECT_LE(t.min(), t.median());
  EXPECT_LE(t.median(), t.max());
  EXPECT_DOUBLE_EQ(t.percentile(100), t.max());
  EXPECT_DOUBLE_EQ(t.percentile(0), t.min());
  EXPECT_NEAR(t.total(), t.mean() * 20, 1e-9);
  EXPECT_GE(t.stdev(), 0.0);
  EXPECT_EQ(p.timer(Hook::kIteration).count(), 20u);
  EXPECT_GE(p.timer(Hook::kIteration).total(), t.total());
  EXPECT_EQ(p.timer(Hook::kPrerun).count(), 20u);
  EXPECT_EQ(p.timer(Hook::kOnFinish).count(), 1u);
  EXPECT_THROW((void)t.percentile(101), std::invalid_argument);
}

TEST_F(SkprocessTest, ControlCallsBeforeStartThrowNotStartedAndBadConfigIsRejected) {
  inorder_test::SharedBlock<Board> b;
  Endless p(b.get());
  EXPECT_THROW(p.stop(), inorder::NotStarted);
  EXPECT_THROW(p.kill(), inorder::NotStarted);
  EXPECT_THROW((void)p.wait(1ms), inorder::NotStarted);
  EXPECT_THROW((void)p.result(), inorder::NotStarted);
  EXPECT_FALSE(p.is_alive());
  p.config.attempts = 0;
  EXPECT_THROW(p.start(), std::invalid_argument);
  p.config.attempts = 1;
  p.config.timeouts.run = -1ms;
  EXPECT_THROW(p.start(), std::invalid_argument);
}

TEST_F(SkprocessTest, DeprecatedLivesStillSetsTheAttemptsAndAConflictIsRejected) {
  inorder_test::SharedBlock<Board> b;
  Flaky p(b.get());
  p.config.attempts = 1;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  p.config.lives = 3;
  EXPECT_EQ(p.run(), 5) << "three attempts under the old name";
  Endless q(b.get());
  q.config.attempts = 2;
  q.config.lives = 3;
#pragma GCC diagnostic pop
  EXPECT_THROW(q.start(), std::invalid_argument);
}

TEST_F(SkprocessTest, StartTwiceIsAnError) {
  Recovering p;
  p.start();
  EXPECT_THROW(p.start(), std::logic_error);
  EXPECT_EQ(p.result(), 102);
}

TEST_F(SkprocessTest, RunHereRunsTheLifecycleInThisProcess) {
  inorder_test::SharedBlock<Board> b;
  Recorder p(b.get());
  EXPECT_EQ(p.run_here(), 20);
  EXPECT_EQ(b->text(), "proprofx");
  Flaky f(b.get());
  EXPECT_EQ(f.run_here(), 5);  // attempts apply to exceptions here too
  AlwaysThrows a;
  EXPECT_THROW((void)a.run_here(), ProcessError);
}

/// Sums 1..n over n runs; n == 13 fails every time.
class Summer : public Skprocess<long> {
 public:
  explicit Summer(int n) : n_(n) {
    config.runs = static_cast<std::uint64_t>(n);
    config.attempts = 2;
  }
  void on_run() override {
    if (n_ == 13) throw std::domain_error("unlucky");
    sum_ += static_cast<long>(current_run()) + 1;
  }
  long on_result() override { return sum_ * 1000; }

 private:
  int n_;
  long sum_ = 0;
};

/// Its result is the pid of the process its lifecycle ran in.
class WhereAmI : public Skprocess<long> {
 public:
  explicit WhereAmI(int) { config.runs = 1; }
  void on_run() override {}
  long on_result() override { return getpid(); }
};

// A Pool of Skprocess classes runs them on the pool's workers, so it honours
// Options::max_tasks_per_worker like any other pool: 3 items per process.
TEST_F(SkprocessTest, PoolMapOfSkprocessClassesHonoursWorkerRecycling) {
  inorder::Pool<long> pool({.workers = 2, .max_tasks_per_worker = 3});
  const std::vector<long> pids = pool.map<WhereAmI>(std::vector<int>(30, 0));
  ASSERT_EQ(pids.size(), 30U);
  std::map<long, int> per_pid;
  for (const long p : pids) ++per_pid[p];
  EXPECT_GE(per_pid.size(), 10U);
  for (const auto& [pid, n] : per_pid) EXPECT_LE(n, 3) << "process " << pid << " ran " << n;
}

TEST_F(SkprocessTest, PoolMapConstructsEachWorkerInAWorkerProcessAndReturnsItsResult) {
  inorder::Pool<long> pool({.workers = 2});
  const std::vector<int> items = {1, 2, 3, 4, 10, 100};
  const std::vector<long> got = pool.map<Summer>(items);
  ASSERT_EQ(got.size(), items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    const long n = items[i];
    EXPECT_EQ(got[i], n * (n + 1) / 2 * 1000) << "item " << i;
  }
  try {
    (void)pool.map<Summer>(std::vector<int>{5, 13, 6});
    FAIL();
  } catch (const inorder::ItemError& e) {
    EXPECT_EQ(e.index(), 1u);
    EXPECT_EQ(e.type_name(), "inorder::ProcessError");
    EXPECT_NE(std::string(e.what()).find("unlucky"), std::string::npos) << e.what();
  }
}

class Sleeper : public Skprocess<> {
 public:
  explicit Sleeper(Board* b) : b_(b) {}
  void on_run() override {
    b_->child_pid.store(getpid());
    for (;;) pause();
  }

 private:
  Board* b_;
};

TEST_F(SkprocessTest, TheWatcherAndTheChildDieWithTheParent) {
  inorder_test::SharedBlock<Board> b;
  const pid_t parent = fork();
  if (parent == 0) {
    Sleeper p(b.get());
    p.start();
    for (;;) pause();  // killed by the test
  }
  ASSERT_TRUE(inorder_test::wait_until([&] { return b->child_pid.load() != 0; }));
  kill(parent, SIGKILL);
  waitpid(parent, nullptr, 0);
  // The watcher and the child are re-parented to this test process (a
  // subreaper): reap them as they go. Both must be gone well within the bound.
  EXPECT_TRUE(inorder_test::wait_until(
      [] {
        while (waitpid(-1, nullptr, WNOHANG) > 0) {
        }
        return inorder_test::child_pids().empty();
      },
      std::chrono::seconds(5)));
  EXPECT_EQ(kill(b->child_pid.load(), 0), -1);
}

class DiesInResult : public Skprocess<int> {
 public:
  explicit DiesInResult(Board* b) : b_(b) {
    config.runs = 2;
    config.attempts = 2;
  }
  void on_run() override {}
  void on_finish() override { b_->add('f'); }
  int on_result() override {
    b_->add('x');
    if (b_->flag.exchange(1) == 0) raise(SIGKILL);
    return static_cast<int>(current_run());
  }

 private:
  Board* b_;
};

TEST_F(SkprocessTest, AReplacementAfterOnFinishOnlyRedoesOnResult) {
  inorder_test::SharedBlock<Board> b;
  DiesInResult p(b.get());
  EXPECT_EQ(p.run(), 2);
  EXPECT_EQ(b->text(), "fxx");  // on_finish ran once
}

/// The seed's Pipe example: a Point handed to a Skprocess, used by its child.
class PipeUser : public Skprocess<std::string> {
 public:
  explicit PipeUser(inorder::Pipe::Point point) : pipe_(std::move(point)) { config.runs = 1; }
  void on_run() override {
    pipe_.send(std::string("hello"));
    got_ = pipe_.recv<std::string>();
  }
  std::string on_result() override { return got_; }

 private:
  inorder::Pipe::Point pipe_;
  std::string got_;
};

TEST_F(SkprocessTest, APipePointHandedToASkprocessIsUsedByItsChild) {
  auto [anchor, point] = inorder::Pipe::pair();
  PipeUser p(std::move(point));
  p.start();
  EXPECT_EQ(anchor.recv<std::string>(), "hello");
  anchor.send(std::string("world"));
  EXPECT_EQ(p.result(), "world");
  EXPECT_THROW((void)anchor.recv<std::string>(), inorder::PipeClosed);  // the child is gone
}

}  // namespace
