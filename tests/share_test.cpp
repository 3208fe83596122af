// tests/share_test.cpp: the contract of inorder::Share.
//
// Processes are made with fork() (run_children) or by a ParallelQueue / Pool
// made after the Share. Contention is forced with a start gate in the arena:
// every child waits until all have started, then all hammer the same object.
// Crash tests SIGKILL a child at a point it announced through a flag in shared
// memory (inside update's fn, inside a transaction), never after a sleep.
#include <gtest/gtest.h>
#include <inorder/inorder.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "test_util.hpp"

namespace {

using inorder::Share;
using inorder_test::wait_until;

class ShareTest : public inorder_test::LeakCheck {};

/// Forks n children running body(i); each exits 0 on success, 1 if body threw
/// (the message goes to stderr). Waits for all; returns how many failed.
int run_children(int n, const std::function<void(int)>& body) {
  std::vector<pid_t> pids;
  for (int i = 0; i < n; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      int rc = 0;
      try {
        body(i);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child %d: %s\n", i, e.what());
        rc = 1;
      }
      _exit(rc);
    }
    pids.push_back(pid);
  }
  int failed = 0;
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
  }
  return failed;
}

/// Every child calls this first: no child starts its work before all n have
/// arrived, so their operations overlap.
void start_gate(Share::Number<int> arrived, int n) {
  ++arrived;
  if (!wait_until([&] { return arrived.load() >= n; })) throw std::runtime_error("gate timeout");
}

/// Forks a child running body(); returns its pid. The child _exits 0 after body.
pid_t fork_child(const std::function<void()>& body) {
  const pid_t pid = fork();
  if (pid == 0) {
    try {
      body();
    } catch (...) {
      _exit(1);
    }
    _exit(0);
  }
  return pid;
}

void kill_and_reap(pid_t pid) {
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
}

static_assert(std::is_trivially_copyable_v<Share::Number<std::uint64_t>> &&
                  std::is_trivially_copyable_v<Share::Value<std::vector<std::string>>> &&
                  std::is_trivially_copyable_v<Share::Map<std::string, std::vector<int>>>,
              "handles must be capturable by a put() lambda");

TEST_F(ShareTest, FourProcessesTimes25000IncrementsCountExactly100000) {
  Share share;
  auto count = share.counter<long>("count");
  auto gate = share.counter<int>("gate");
  EXPECT_EQ(run_children(4,
                         [&](int) {
                           start_gate(gate, 4);
                           for (int k = 0; k < 25'000; ++k) ++count;
                         }),
            0);
  EXPECT_EQ(count.load(), 100'000);
}

TEST_F(ShareTest, NumberOperationsBehaveLikeStdAtomic) {
  Share share;
  auto n = share.number<int>("n", 10);
  EXPECT_EQ(n.load(), 10);
  EXPECT_EQ(n += 5, 15);
  EXPECT_EQ(n -= 3, 12);
  EXPECT_EQ(++n, 13);
  EXPECT_EQ(--n, 12);
  EXPECT_EQ(n++, 12);
  EXPECT_EQ(n--, 13);
  EXPECT_EQ(n.exchange(40), 12);
  int expected = 41;
  EXPECT_FALSE(n.compare_exchange(expected, 50));
  EXPECT_EQ(expected, 40);
  EXPECT_TRUE(n.compare_exchange(expected, 50));
  n.store(7);
  EXPECT_EQ(static_cast<int>(n), 7);
  auto d = share.number<double>("d", 0.5);
  d += 1.25;
  EXPECT_EQ(d.load(), 1.75);
  // Opening the name again gives the same number, whatever initial is passed.
  EXPECT_EQ(share.number<int>("n", 99).load(), 7);
}

TEST_F(ShareTest, NumberMinusEqualsAndCompareExchangeAreExactAcrossProcesses) {
  Share share;
  auto n = share.number<long>("n", 0);
  auto cas = share.number<long>("cas", 0);
  auto gate = share.counter<int>("gate");
  EXPECT_EQ(run_children(2,
                         [&](int i) {
                           start_gate(gate, 2);
                           for (int k = 0; k < 20'000; ++k) {
                             if (i == 0)
                               n += 3;
                             else
                               n -= 1;
                             long seen = cas.load();
                             while (!cas.compare_exchange(seen, seen + 1)) {
                             }
                           }
                         }),
            0);
  EXPECT_EQ(n.load(), 40'000);
  EXPECT_EQ(cas.load(), 40'000);
}

TEST_F(ShareTest, ListAppendedFromFourWorkersHoldsEveryItemExactlyOnce) {
  Share share;
  auto list = share.list<int>("items");
  auto gate = share.counter<int>("gate");
  constexpr int kPer = 3000;
  EXPECT_EQ(run_children(4,
                         [&](int i) {
                           start_gate(gate, 4);
                           for (int k = 0; k < kPer; ++k) list.push_back(i * kPer + k);
                         }),
            0);
  std::vector<int> items = list.snapshot();
  ASSERT_EQ(items.size(), 4u * kPer);
  ASSERT_EQ(list.size(), items.size());
  // Each worker's items appear in its own order...
  std::vector<int> last(4, -1);
  for (int v : items) {
    EXPECT_GT(v, last[v / kPer]);
    last[v / kPer] = v;
  }
  // ...and every item exactly once.
  std::sort(items.begin(), items.end());
  std::vector<int> want(4 * kPer);
  std::iota(want.begin(), want.end(), 0);
  EXPECT_EQ(items, want);
  EXPECT_EQ(list.at(0), list.snapshot().front());
  EXPECT_THROW((void)list.at(4 * kPer), std::out_of_range);
}

TEST_F(ShareTest, LogKeepsWriteOrderOfIncrementsLoggedInOneTransaction) {
  Share share;
  auto count = share.counter<int>("count");
  auto log = share.log("log");
  auto gate = share.counter<int>("gate");
  EXPECT_EQ(run_children(4,
                         [&](int) {
                           start_gate(gate, 4);
                           for (int k = 0; k < 500; ++k) {
                             share.transaction([&] {
                               const int v = ++count;
                               if (v % 7 == 0)
                                 log.warn(std::to_string(v));
                               else
                                 log.info(std::to_string(v));
                             });
                           }
                         }),
            0);
  const std::vector<std::string> messages = log.messages();
  ASSERT_EQ(messages.size(), 2000u);
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(messages[i], std::to_string(i + 1)) << "entry " << i;
  const auto entries = log.entries();
  std::set<pid_t> writers;
  for (const auto& e : entries) {
    writers.insert(e.pid);
    EXPECT_EQ(e.level,
              std::stoi(e.text) % 7 == 0 ? inorder::LogLevel::kWarn : inorder::LogLevel::kInfo);
  }
  EXPECT_EQ(writers.size(), 4u);
  log.error("done");
  EXPECT_EQ(log.entries().back().level, inorder::LogLevel::kError);
  EXPECT_EQ(log.entries().back().pid, getpid());
}

TEST_F(ShareTest, UpdateUnderContentionLosesNothing) {
  Share share;
  auto total = share.value<long>("total", 0);
  auto words = share.value<std::vector<std::string>>("words");
  auto gate = share.counter<int>("gate");
  EXPECT_EQ(run_children(4,
                         [&](int i) {
                           start_gate(gate, 4);
                           for (int k = 0; k < 500; ++k) {
                             total.update([](long v) { return v + 1; });
                             words.update([&](std::vector<std::string>& w) {
                               w.push_back(std::to_string(i) + ":" + std::to_string(k));
                             });
                           }
                         }),
            0);
  EXPECT_EQ(total.get(), 2000);
  std::vector<std::string> w = words.get();
  ASSERT_EQ(w.size(), 2000u);
  std::set<std::string> unique(w.begin(), w.end());
  EXPECT_EQ(unique.size(), 2000u);
  EXPECT_EQ(total.update([](long v) { return v * 2; }), 4000);
}

TEST_F(ShareTest, ValueGetSetAndUpdateReturnTheNewValue) {
  Share share;
  auto v = share.value<std::map<std::string, int>>("config", {{"a", 1}});
  EXPECT_EQ(v.get(), (std::map<std::string, int>{{"a", 1}}));
  v.set({{"b", 2}});
  const auto now = v.update([](std::map<std::string, int>& m) { m["c"] = 3; });
  EXPECT_EQ(now, (std::map<std::string, int>{{"b", 2}, {"c", 3}}));
  EXPECT_EQ(v.get(), now);
}

TEST_F(ShareTest, UpdateWhoseFunctionThrowsLeavesTheValueUnchanged) {
  Share share;
  auto v = share.value<std::string>("s", "before");
  auto list = share.list<int>("l");
  EXPECT_THROW(v.update([&](std::string& s) {
    list.push_back(1);  // nested operation: undone with the update
    s = "after";
    throw std::runtime_error("no");
  }),
               std::runtime_error);
  EXPECT_EQ(v.get(), "before");
  EXPECT_EQ(list.size(), 0u);
  EXPECT_EQ(v.update([](std::string s) { return s + "!"; }), "before!");
}

TEST_F(ShareTest, TransactionThatThrowsUndoesAllItsLockedOperations) {
  Share share;
  auto v = share.value<int>("v", 1);
  auto list = share.list<std::string>("l");
  auto map = share.map<std::string, int>("m");
  map.insert_or_assign("keep", 1);
  EXPECT_THROW(share.transaction([&] {
    v.set(2);
    list.push_back("x");
    map.insert_or_assign("new", 2);
    map.erase("keep");
    throw std::logic_error("abort");
  }),
               std::logic_error);
  EXPECT_EQ(v.get(), 1);
  EXPECT_EQ(list.size(), 0u);
  EXPECT_EQ(map.snapshot(), (std::map<std::string, int>{{"keep", 1}}));
  EXPECT_EQ(share.transaction([&] { return v.update([](int x) { return x + 10; }); }), 11);
}

TEST_F(ShareTest, ProcessKilledInsideUpdateLeavesThePreviousValueAndTheNextUserGoesOn) {
  Share share;
  auto v = share.value<std::string>("v", "old");
  auto inside = share.counter<int>("inside");
  const pid_t child = fork_child([&] {
    v.update([&](std::string& s) {
      s = "half-done";
      ++inside;
      for (;;) pause();  // killed here, holding the lock
    });
  });
  ASSERT_TRUE(wait_until([&] { return inside.load() == 1; }));
  kill_and_reap(child);
  EXPECT_EQ(v.get(), "old");
  EXPECT_EQ(v.update([](std::string s) { return s + "+new"; }), "old+new");
  EXPECT_EQ(v.get(), "old+new");
}

TEST_F(ShareTest, ProcessKilledInsideTransactionRollsBackEveryStep) {
  Share share;
  auto v = share.value<int>("v", 5);
  auto list = share.list<int>("l");
  auto map = share.map<int, std::string>("m");
  auto inside = share.counter<int>("inside");
  for (int i = 0; i < 7; ++i) list.push_back(i);  // the 8-slot index is nearly full
  map.insert_or_assign(1, "one");
  const std::size_t used_before = share.used_bytes();
  const pid_t child = fork_child([&] {
    share.transaction([&] {
      v.set(6);
      for (int i = 0; i < 100; ++i) list.push_back(100 + i);           // grows the index, allocates
      for (int i = 0; i < 100; ++i) map.insert_or_assign(i + 2, "x");  // rehashes
      map.erase(1);
      (void)share.list<int>("made-inside");
      v.update([&](int x) {
        ++inside;
        for (;;) pause();
        return x;
      });
    });
  });
  ASSERT_TRUE(wait_until([&] { return inside.load() == 1; }));
  kill_and_reap(child);
  EXPECT_EQ(v.get(), 5);
  EXPECT_EQ(list.snapshot(), (std::vector<int>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(map.snapshot(), (std::map<int, std::string>{{1, "one"}}));
  EXPECT_FALSE(share.contains("made-inside"));
  EXPECT_EQ(share.used_bytes(), used_before);  // the allocator was rolled back too
  // Everything still works, including growth past what the dead process had.
  for (int i = 7; i < 50; ++i) list.push_back(i);
  EXPECT_EQ(list.size(), 50u);
  map.insert_or_assign(2, "two");
  EXPECT_EQ(map.find(2), "two");
}

TEST_F(ShareTest, ProcessesKilledAtArbitraryPointsNeverBreakATransactionInvariant) {
  // A child runs transactions that keep three objects in step (list size ==
  // map size == value); it is killed at whatever point it has reached. Every
  // kill must leave the invariant intact and the Share usable.
  Share share({.max_bytes = 64 << 20});
  auto v = share.value<long>("v", 0);
  auto list = share.list<std::string>("l");
  auto map = share.map<long, std::string>("m");
  auto progress = share.counter<long>("progress");
  std::mt19937 rng(12345);
  for (int round = 0; round < 20; ++round) {
    const long start = progress.load();
    const pid_t child = fork_child([&] {
      for (;;) {
        share.transaction([&] {
          const long n = v.get() + 1;
          list.push_back(std::string(static_cast<std::size_t>(n % 50), 'x'));
          map.insert_or_assign(n, std::to_string(n));
          if (n % 3 == 0) map.erase(n - 1), map.insert_or_assign(n - 1, "again");
          v.set(n);
        });
        ++progress;
      }
    });
    const long target = start + 1 + static_cast<long>(rng() % 200);
    ASSERT_TRUE(wait_until([&] { return progress.load() >= target; }));
    kill_and_reap(child);
    const long n = v.get();
    ASSERT_EQ(static_cast<long>(list.size()), n) << "round " << round;
    ASSERT_EQ(static_cast<long>(map.size()), n) << "round " << round;
    ASSERT_GE(n, target);
  }
  const auto m = map.snapshot();
  for (long k = 1; k <= v.get(); ++k) ASSERT_TRUE(m.count(k)) << k;
}

TEST_F(ShareTest, FillingTheArenaThrowsShareFullAndKeepsEverythingBefore) {
  Share share({.max_bytes = 256 << 10});
  EXPECT_EQ(share.max_bytes(), 256u << 10);
  auto list = share.list<std::string>("big");
  const std::string item(1000, 'z');
  std::size_t pushed = 0;
  try {
    for (;;) {
      list.push_back(item);
      ++pushed;
      ASSERT_LT(pushed, 1000u) << "never full";
    }
  } catch (const inorder::ShareFull& e) {
    EXPECT_NE(std::string(e.what()).find("max_bytes"), std::string::npos) << e.what();
  }
  EXPECT_GT(pushed, 100u);  // the arena grew to (nearly) its limit before refusing
  EXPECT_LE(share.used_bytes(), share.max_bytes());
  EXPECT_EQ(list.size(), pushed);  // the failed push left nothing behind
  EXPECT_EQ(list.at(pushed - 1), item);
  EXPECT_THROW(list.push_back(item), inorder::ShareFull);
  EXPECT_THROW((void)share.value<std::string>("another", std::string(500'000, 'y')),
               inorder::ShareFull);
  EXPECT_FALSE(share.contains("another"));
  EXPECT_THROW(Share({.max_bytes = 100}), std::invalid_argument);
}

TEST_F(ShareTest, TransactionTooLargeForItsJournalThrowsShareFullAndIsUndone) {
  Share share;
  auto list = share.list<int>("l");
  auto v = share.value<int>("v", 1);
  list.push_back(-1);
  try {
    share.transaction([&] {
      v.set(2);
      for (int i = 0; i < 100'000; ++i) list.push_back(i);
    });
    ADD_FAILURE() << "a transaction of 100,000 appends fitted in the journal";
  } catch (const inorder::ShareFull& e) {
    EXPECT_NE(std::string(e.what()).find("undo journal"), std::string::npos) << e.what();
  }
  EXPECT_EQ(list.snapshot(), std::vector<int>{-1});
  EXPECT_EQ(v.get(), 1);
  // The same appends, one operation each, all fit.
  for (int i = 0; i < 100'000; ++i) list.push_back(i);
  EXPECT_EQ(list.size(), 100'001u);
}

TEST_F(ShareTest, FreedValuesAreReusedSoRepeatedSetsDoNotGrowTheArena) {
  Share share({.max_bytes = 64 << 10});
  auto v = share.value<std::string>("v");
  auto m = share.map<int, std::string>("m");
  for (int i = 0; i < 20'000; ++i) {
    v.set(std::string(static_cast<std::size_t>(i % 300), 'a'));
    m.insert_or_assign(i % 10, std::string(static_cast<std::size_t>(i % 200), 'b'));
    if (i % 5 == 0) m.erase((i / 5) % 10);
  }
  EXPECT_EQ(v.get(), std::string(19'999 % 300, 'a'));
  EXPECT_LT(share.used_bytes(), share.max_bytes());
}

TEST_F(ShareTest, MapInsertFindEraseAndSnapshotAcrossProcesses) {
  Share share;
  auto m = share.map<std::string, int>("m");
  auto gate = share.counter<int>("gate");
  EXPECT_TRUE(m.insert_or_assign("x", 1));
  EXPECT_FALSE(m.insert_or_assign("x", 2));
  EXPECT_EQ(m.find("x"), 2);
  EXPECT_EQ(m.find("y"), std::nullopt);
  EXPECT_TRUE(m.erase("x"));
  EXPECT_FALSE(m.erase("x"));
  EXPECT_EQ(run_children(2,
                         [&](int i) {
                           start_gate(gate, 2);
                           for (int k = 0; k < 2000; ++k)
                             m.insert_or_assign(std::to_string(i) + "/" + std::to_string(k), k);
                           for (int k = 0; k < 2000; k += 2)
                             m.erase(std::to_string(i) + "/" + std::to_string(k));
                         }),
            0);
  const auto snap = m.snapshot();
  EXPECT_EQ(snap.size(), 2000u);
  EXPECT_EQ(m.size(), 2000u);
  for (int i = 0; i < 2; ++i)
    for (int k = 1; k < 2000; k += 2)
      EXPECT_EQ(snap.at(std::to_string(i) + "/" + std::to_string(k)), k);
}

TEST_F(ShareTest, NamesAreFoundFromAnyProcessAndTypesAreChecked) {
  Share share;
  auto made = share.list<int>("xs");
  made.push_back(1);
  EXPECT_EQ(run_children(1,
                         [&](int) {
                           auto found = share.find<Share::List<int>>("xs");
                           if (!found) throw std::runtime_error("not found");
                           found->push_back(2);
                           share.value<std::string>("made-by-child", "hi");
                         }),
            0);
  EXPECT_EQ(made.snapshot(), (std::vector<int>{1, 2}));
  EXPECT_EQ(share.find<Share::Value<std::string>>("made-by-child")->get(), "hi");
  EXPECT_EQ(share.find<Share::List<int>>("nothing"), std::nullopt);
  EXPECT_THROW((void)share.list<long>("xs"), inorder::ShareTypeMismatch);
  EXPECT_THROW(((void)share.map<int, int>("xs")), inorder::ShareTypeMismatch);
  EXPECT_THROW((void)share.find<Share::Log>("xs"), inorder::ShareTypeMismatch);
  try {
    (void)share.value<int>("xs");
    ADD_FAILURE() << "no ShareTypeMismatch";
  } catch (const inorder::ShareTypeMismatch& e) {
    EXPECT_NE(std::string(e.what()).find("List of int, opened as a Value"), std::string::npos)
        << e.what();
  }
}

TEST_F(ShareTest, TasksOfAParallelQueueMadeAfterTheShareUseItsHandles) {
  Share share;
  auto count = share.counter<long>("count");
  auto seen = share.list<int>("seen");
  inorder::ParallelQueue<long> q({.workers = 2});
  for (int i = 0; i < 200; ++i)
    q.put(
        [count, seen](int x) {
          seen.push_back(x);
          return ++count;
        },
        i);
  std::set<long> results;
  for (int i = 0; i < 200; ++i) results.insert(*q.get());
  q.stop();
  EXPECT_EQ(count.load(), 200);
  EXPECT_EQ(results.size(), 200u);  // every increment returned a distinct new value
  auto s = seen.snapshot();
  std::sort(s.begin(), s.end());
  for (int i = 0; i < 200; ++i) EXPECT_EQ(s[i], i);
}

TEST_F(ShareTest, PoolItemsUpdateSharedStateExactly) {
  Share share;
  auto sum = share.value<long>("sum", 0);
  auto log = share.log("log");
  inorder::Pool<int> pool({.workers = 2});
  std::vector<int> items(100);
  std::iota(items.begin(), items.end(), 1);
  const auto out = pool.map(
      [sum, log](int x) {
        sum.update([x](long s) { return s + x; });
        log.info(std::to_string(x));
        return x;
      },
      items);
  EXPECT_EQ(out, items);
  EXPECT_EQ(sum.get(), 5050);
  EXPECT_EQ(log.size(), 100u);
}

TEST_F(ShareTest, AWorkerThatReplacesACrashedOneStillSeesTheShare) {
  Share share;
  auto count = share.counter<long>("count");
  inorder::ParallelQueue<long> q({.workers = 1});
  q.put([count] { return ++count; });
  q.put([]() -> long { std::abort(); });
  q.put([count] { return ++count; });  // runs on the replacement worker
  EXPECT_EQ(q.get(), 1);
  EXPECT_THROW((void)q.get(), inorder::WorkerCrashed);
  EXPECT_EQ(q.get(), 2);
  q.stop();
  EXPECT_EQ(count.load(), 2);
}

/// The seed's example: a process class that counts and logs each of its runs.
class ShareCounter : public inorder::Skprocess<> {
 public:
  ShareCounter(Share* share, Share::Number<long> count, Share::Log log)
      : share_(share), count_(count), log_(log) {
    config.runs = 10;
  }
  void on_run() override {
    share_->transaction([&] { log_.info(std::to_string(++count_)); });
  }

 private:
  Share* share_;
  Share::Number<long> count_;
  Share::Log log_;
};

TEST_F(ShareTest, SkprocessesStartedAfterTheShareCountAndLogInOrder) {
  Share share;
  auto count = share.counter<long>("count");
  auto log = share.log("log");
  std::vector<std::unique_ptr<ShareCounter>> procs;
  for (int i = 0; i < 4; ++i) procs.push_back(std::make_unique<ShareCounter>(&share, count, log));
  for (auto& p : procs) p->start();
  for (auto& p : procs) p->result();
  EXPECT_EQ(count.load(), 40);
  const auto messages = log.messages();
  ASSERT_EQ(messages.size(), 40u);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(messages[i], std::to_string(i + 1));
}

TEST_F(ShareTest, WorkerForkedBeforeTheShareGetsShareNotInherited) {
  inorder::ParallelQueue<long> q({.workers = 1});  // forked before the Share exists
  Share share;
  auto count = share.counter<long>("count");
  auto v = share.value<int>("v", 1);
  q.put([count] { return ++count; });
  q.put([v] { return static_cast<long>(v.get()); });
  for (int i = 0; i < 2; ++i) {
    try {
      (void)q.get();
      ADD_FAILURE() << "task " << i << " used a Share it did not inherit";
    } catch (const inorder::TaskError& e) {
      EXPECT_EQ(e.type_name(), "inorder::ShareNotInherited");
      EXPECT_NE(e.message().find("forked before the Share was made"), std::string::npos);
    }
  }
  EXPECT_EQ(count.load(), 0);
}

TEST_F(ShareTest, HandlesOfADestroyedShareThrowShareNotInherited) {
  Share::Number<int> n;
  Share::List<int> l;
  {
    Share share;
    n = share.counter<int>("n");
    l = share.list<int>("l");
    ++n;
  }
  EXPECT_THROW(++n, inorder::ShareNotInherited);
  EXPECT_THROW((void)l.size(), inorder::ShareNotInherited);
  Share::Value<int> never_made;
  EXPECT_THROW((void)never_made.get(), inorder::ShareNotInherited);
}

TEST_F(ShareTest, AChildKeepsItsMappingAfterTheParentDestroyedTheShare) {
  auto share = std::make_unique<Share>();
  auto n = share->counter<int>("n");
  auto go = inorder_test::SharedBlock<std::atomic<int>>();
  const pid_t child = fork_child([&] {
    if (!wait_until([&] { return go->load() == 1; })) _exit(2);
    ++n;
    if (n.load() != 1) _exit(3);
  });
  share.reset();  // unmapped here; the child's inherited mapping stays
  go->store(1);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST_F(ShareTest, ThreadsOfOneProcessShareTheLockToo) {
  Share share;
  auto v = share.value<long>("v", 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int k = 0; k < 2000; ++k) v.update([](long x) { return x + 1; });
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(v.get(), 8000);
}

}  // namespace
