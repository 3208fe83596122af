// tests/pool_test.cpp: the contract of inorder::Pool.
//
// Out-of-order completion is forced, not hoped for: the first item waits in
// its worker on a counter in shared memory (SharedBlock, created before the
// pool forks) until every later item has finished, so it completes last.
// Ordered calls must still return it first; unordered calls must return it last.
#include <gtest/gtest.h>
#include <inorder/inorder.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <coroutine>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <future>
#include <numeric>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "test_util.hpp"

namespace {

using inorder_test::SharedBlock;
using inorder_test::wait_until;

class PoolTest : public inorder_test::LeakCheck {};

constexpr int kHeld = 8;  // items in the forced-order tests

/// Shared counters for forcing and observing completion order.
struct Gates {
  std::atomic<int> finished{0};  // items finished so far
  std::atomic<int> rank[kHeld];  // rank[i]: how many items finished before item i
  std::atomic<int> started{0};   // items started so far
  std::atomic<int> release{0};   // set by the test to let a waiting item go
  std::atomic<int> taken{0};     // results the parent has taken so far
};

/// Item 0 waits until the other kHeld - 1 items have finished, so it always
/// completes last; every item records its completion rank and returns i * 10.
int held_first(Gates* g, int i) {
  if (i == 0)
    while (g->finished.load() < kHeld - 1) sched_yield();
  g->rank[i].store(g->finished.fetch_add(1));
  return i * 10;
}

std::vector<int> iota_vector(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

std::vector<int> times_ten(int n) {
  std::vector<int> v;
  for (int i = 0; i < n; ++i) v.push_back(i * 10);
  return v;
}

/// For the unordered calls: item 0 waits until the parent has *taken* the
/// other results (a completion-order getter returns the oldest finished item
/// first, so finishing last is not enough when the parent is slow to look).
int held_until_taken(Gates* g, int i) {
  if (i == 0)
    while (g->taken.load() < kHeld - 1) sched_yield();
  g->rank[i].store(g->finished.fetch_add(1));
  return i * 10;
}

/// The order forced by held_first really happened: item 0 finished last.
void expect_first_finished_last(const Gates& g) {
  EXPECT_EQ(g.rank[0].load(), kHeld - 1);
  EXPECT_EQ(g.finished.load(), kHeld);
}

/// held_first's results in completion order: 10, 20, ... then 0.
std::vector<int> completion_order_of_held() {
  std::vector<int> v = times_ten(kHeld);
  std::rotate(v.begin(), v.begin() + 1, v.end());
  return v;
}

/// Unordered calls: the later items finish in rank order, item 0 last.
std::vector<int> by_rank(const Gates& g) {
  std::vector<int> order(kHeld);
  for (int i = 0; i < kHeld; ++i) order[static_cast<std::size_t>(g.rank[i].load())] = i * 10;
  return order;
}

std::size_t rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
  return 0;
}

/// A minimal eager coroutine type: runs at once, hands its result to a future.
template <class T>
struct Eager {
  struct promise_type {
    std::promise<T> result;
    Eager get_return_object() { return Eager{result.get_future()}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_value(T v) { result.set_value(std::move(v)); }
    void unhandled_exception() { result.set_exception(std::current_exception()); }
  };
  std::future<T> result;
};

// ---------------------------------------------------------------- order

TEST_F(PoolTest, MapReturnsInputOrderWhenTheFirstItemFinishesLast) {
  SharedBlock<Gates> g;
  inorder::Pool<int> pool({.workers = 2});
  const auto out = pool.map([g = g.get()](int i) { return held_first(g, i); }, iota_vector(kHeld));
  EXPECT_EQ(out, times_ten(kHeld));
  expect_first_finished_last(*g);
}

TEST_F(PoolTest, ImapYieldsInputOrderWhenTheFirstItemFinishesLast) {
  SharedBlock<Gates> g;
  inorder::Pool<int> pool({.workers = 2});
  std::vector<int> out;
  for (int v : pool.imap([g = g.get()](int i) { return held_first(g, i); }, iota_vector(kHeld)))
    out.push_back(v);
  EXPECT_EQ(out, times_ten(kHeld));
  expect_first_finished_last(*g);
}

TEST_F(PoolTest, UnorderedMapReturnsCompletionOrderWithTheSlowFirstItemLast) {
  SharedBlock<Gates> g;
  inorder::Pool<int> pool({.workers = 2});
  // The progress callback runs in the parent as each result is taken.
  const auto out = pool.progress([g = g.get()](std::size_t done, std::size_t) {
                         g->taken.store(static_cast<int>(done));
                       })
                       .unordered_map([g = g.get()](int i) { return held_until_taken(g, i); },
                                      iota_vector(kHeld));
  EXPECT_EQ(out, by_rank(*g));
  EXPECT_EQ(out.back(), 0);
  std::vector<int> sorted = out;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, times_ten(kHeld));
  expect_first_finished_last(*g);
}

TEST_F(PoolTest, UnorderedImapYieldsCompletionOrderWithTheSlowFirstItemLast) {
  SharedBlock<Gates> g;
  inorder::Pool<int> pool({.workers = 2});
  std::vector<int> out;
  std::vector<std::size_t> indices;
  auto results = pool.unordered_imap([g = g.get()](int i) { return held_until_taken(g, i); },
                                     iota_vector(kHeld));
  for (auto it = results.begin(); it != results.end(); ++it) {
    out.push_back(*it);
    indices.push_back(it.index());
    g->taken.fetch_add(1);
  }
  EXPECT_EQ(out, by_rank(*g));
  EXPECT_EQ(out.back(), 0);
  EXPECT_EQ(indices.back(), 0U);
  for (std::size_t k = 0; k < out.size(); ++k)
    EXPECT_EQ(out[k], static_cast<int>(indices[k]) * 10) << "index names the item";
  expect_first_finished_last(*g);
}

// ---------------------------------------------------------------- modifiers, one at a time

TEST_F(PoolTest, StarUnpacksTuplesAndPairsIntoArguments) {
  SharedBlock<Gates> g;
  inorder::Pool<std::string> pool({.workers = 2});
  std::vector<std::tuple<int, std::string>> items;
  for (int i = 0; i < kHeld; ++i) items.emplace_back(i, "x" + std::to_string(i));
  const auto out = pool.star().map(
      [g = g.get()](int i, const std::string& s) { return std::to_string(held_first(g, i)) + s; },
      items);
  ASSERT_EQ(out.size(), static_cast<std::size_t>(kHeld));
  for (int i = 0; i < kHeld; ++i)
    EXPECT_EQ(out[static_cast<std::size_t>(i)], std::to_string(i * 10) + "x" + std::to_string(i));
  expect_first_finished_last(*g);

  const std::vector<std::pair<int, int>> pairs{{2, 3}, {4, 5}, {6, 7}};
  EXPECT_EQ(pool.star().map([](int a, int b) { return std::to_string(a * b); }, pairs),
            (std::vector<std::string>{"6", "20", "42"}));
}

TEST_F(PoolTest, TimeoutFailsOnlyTheItemThatRunsPastIt) {
  inorder::Pool<int> pool({.workers = 2});
  auto task = [](int i) {
    if (i == 3) std::this_thread::sleep_for(std::chrono::hours(1));  // a hung item
    return i;
  };
  try {
    (void)pool.timeout(std::chrono::milliseconds(200)).map(task, iota_vector(6));
    ADD_FAILURE() << "item 3 should have timed out";
  } catch (const inorder::ItemError& e) {
    EXPECT_EQ(e.index(), 3U);
    EXPECT_TRUE(e.timed_out());
    EXPECT_EQ(e.type_name(), "inorder::TaskTimeout");
  }
  // The lazy form goes on past the failed item.
  std::vector<int> values;
  std::vector<std::size_t> failed;
  auto results = pool.timeout(std::chrono::milliseconds(200)).imap(task, iota_vector(6));
  for (auto it = results.begin(); it != results.end(); ++it) {
    try {
      values.push_back(*it);
    } catch (const inorder::ItemError& e) {
      EXPECT_TRUE(e.timed_out());
      failed.push_back(e.index());
    }
  }
  EXPECT_EQ(values, (std::vector<int>{0, 1, 2, 4, 5}));
  EXPECT_EQ(failed, (std::vector<std::size_t>{3}));
  EXPECT_THROW((void)pool.timeout(std::chrono::milliseconds(-1)), std::invalid_argument);
  // A limit too long to matter is accepted (clamped, not overflowed).
  EXPECT_EQ(pool.timeout(std::chrono::hours::max()).map(task, std::vector<int>{1, 2}),
            (std::vector<int>{1, 2}));
}

// The restart cap (default: 100 replacements within 10 s) stops a crash loop;
// a timeout the caller asked for is the item's outcome and does not count.
// 1,000 timeouts take a few seconds here, ten times the cap within its window.
TEST_F(PoolTest, ThousandItemsThatAllTimeOutLeaveThePoolWorking) {
  constexpr int kItems = 1000;
  inorder::Pool<int> pool({.workers = 2});
  auto hang = [](int) -> int {
    for (;;) pause();  // until the supervisor's SIGKILL
  };
  std::size_t next = 0;
  std::size_t timed_out = 0;
  auto results = pool.timeout(std::chrono::milliseconds(10)).imap(hang, iota_vector(kItems));
  for (auto it = results.begin(); it != results.end(); ++it, ++next) {
    try {
      (void)*it;
      ADD_FAILURE() << "item " << next << " returned a value";
    } catch (const inorder::ItemError& e) {
      EXPECT_EQ(e.index(), next);
      EXPECT_TRUE(e.timed_out()) << e.what();
      timed_out += e.timed_out() ? 1 : 0;
    }  // a QueueBroken escapes and fails the test
  }
  EXPECT_EQ(next, std::size_t{kItems});
  EXPECT_EQ(timed_out, std::size_t{kItems});
  // The supervisor publishes a timed-out item's error before it counts the
  // replacement: the last count may lag the last result by a moment.
  EXPECT_TRUE(inorder_test::wait_until([&] { return pool.stats().restarts >= kItems; }))
      << "every timeout replaces its worker";
  const inorder::Stats s = pool.stats();
  EXPECT_FALSE(s.broken);
  EXPECT_EQ(s.restarts, std::uint64_t{kItems}) << "every timeout replaces its worker, once";
  // The pool still works, for a call with and without a limit.
  EXPECT_EQ(pool.map([](int x) { return x * x; }, iota_vector(4)), (std::vector<int>{0, 1, 4, 9}));
  EXPECT_EQ(pool.timeout(std::chrono::seconds(30)).map([](int x) { return x + 1; }, iota_vector(3)),
            (std::vector<int>{1, 2, 3}));
}

// A worker that dies before its first task, every time, is a crash loop: the
// cap still breaks the pool, after max_restarts replacements, instead of
// forking forever.
TEST_F(PoolTest, WorkersThatDieAtStartUpStillBreakThePool) {
  inorder::Pool<int> pool({.workers = 2, .worker_init = [](unsigned) { _exit(3); }});
  EXPECT_THROW((void)pool.map([](int x) { return x; }, iota_vector(4)), inorder::QueueBroken);
  const inorder::Stats s = pool.stats();
  EXPECT_TRUE(s.broken);
  EXPECT_EQ(s.restarts, 100U) << "the default max_restarts";
  // A time limit on the call does not exempt such deaths from the cap.
  inorder::Pool<int> timed(
      {.workers = 2, .worker_init = [](unsigned) { _exit(3); }, .max_restarts = 5});
  EXPECT_THROW((void)timed.timeout(std::chrono::milliseconds(50))
                   .map([](int x) { return x; }, iota_vector(4)),
               inorder::QueueBroken);
  EXPECT_TRUE(timed.stats().broken);
}

// map_settled: every item runs, and each position holds its value or its own
// ItemError. The failures are forced (a throw, a crash), not timed.
TEST_F(PoolTest, MapSettledKeepsEveryValueAndEveryErrorInInputOrder) {
  inorder::Pool<int> pool({.workers = 2});
  auto task = [](int i) {
    if (i % 4 == 1) throw std::out_of_range("item " + std::to_string(i));
    if (i == 6) raise(SIGKILL);
    return i * 10;
  };
  const std::vector<inorder::Settled<int>> out = pool.map_settled(task, iota_vector(10));
  ASSERT_EQ(out.size(), 10U);
  for (int i = 0; i < 10; ++i) {
    const inorder::Settled<int>& s = out[static_cast<std::size_t>(i)];
    if (i % 4 == 1) {
      ASSERT_FALSE(s.ok()) << i;
      EXPECT_EQ(s.error().index(), static_cast<std::size_t>(i));
      EXPECT_EQ(s.error().kind(), inorder::ItemError::Kind::kThrew);
      EXPECT_EQ(s.error().type_name(), "std::out_of_range");
      EXPECT_EQ(s.error().message(), "item " + std::to_string(i));
      EXPECT_THROW((void)s.value(), inorder::ItemError);
      EXPECT_EQ(s.value_or(-1), -1);
    } else if (i == 6) {
      ASSERT_FALSE(s) << i;
      EXPECT_EQ(s.error().index(), 6U);
      EXPECT_TRUE(s.error().crashed());
    } else {
      ASSERT_TRUE(s.ok()) << i << ": " << s.error().what();
      EXPECT_EQ(s.value(), i * 10);
      EXPECT_THROW((void)s.error(), std::logic_error);
    }
  }
  // Modifiers apply, an empty input gives an empty vector, and the pool goes on.
  const std::vector<std::pair<int, int>> pairs{{2, 3}, {4, 5}};
  const auto products = pool.star()
                            .timeout(std::chrono::seconds(30))
                            .map_settled([](int a, int b) { return a * b; }, pairs);
  ASSERT_EQ(products.size(), 2U);
  EXPECT_EQ(products[0].value(), 6);
  EXPECT_EQ(products[1].value(), 20);
  EXPECT_TRUE(pool.map_settled(task, std::vector<int>{}).empty());
  EXPECT_EQ(pool.map([](int x) { return x + 1; }, iota_vector(3)), (std::vector<int>{1, 2, 3}));
}

TEST_F(PoolTest, BackgroundReturnsAFutureOfTheOrderedResults) {
  SharedBlock<Gates> g;
  inorder::Pool<int> pool({.workers = 2});
  std::future<std::vector<int>> f =
      pool.background().map([g = g.get()](int i) { return held_first(g, i); }, iota_vector(kHeld));
  EXPECT_EQ(f.get(), times_ten(kHeld));
  expect_first_finished_last(*g);
}

TEST_F(PoolTest, BackgroundCallsWaitForEachOtherAndForTheCallingThread) {
  inorder::Pool<int> pool({.workers = 2});
  const std::vector<int> items = iota_vector(500);  // an lvalue: must outlive the futures
  auto a = pool.background().map([](int i) { return i + 1; }, items);
  auto b = pool.background().unordered_map([](int i) { return i + 2; }, items);
  const auto c = pool.map([](int i) { return i + 3; }, items);
  auto bv = b.get();
  std::sort(bv.begin(), bv.end());
  for (int i = 0; i < 500; ++i) {
    const auto k = static_cast<std::size_t>(i);
    EXPECT_EQ(c[k], i + 3);
    EXPECT_EQ(bv[k], i + 2);
  }
  const auto av = a.get();
  for (int i = 0; i < 500; ++i) EXPECT_EQ(av[static_cast<std::size_t>(i)], i + 1);
}

Eager<std::vector<int>> map_in_coroutine(inorder::Pool<int>& pool, Gates* g) {
  co_return co_await pool.asynced().map([g](int i) { return held_first(g, i); },
                                        iota_vector(kHeld));
}

TEST_F(PoolTest, AsyncedIsAwaitedFromACoroutine) {
  SharedBlock<Gates> g;
  inorder::Pool<int> pool({.workers = 2});
  Eager<std::vector<int>> task = map_in_coroutine(pool, g.get());
  EXPECT_EQ(task.result.get(), times_ten(kHeld));
  expect_first_finished_last(*g);
}

Eager<std::size_t> failing_map_in_coroutine(inorder::Pool<int>& pool) {
  try {
    (void)co_await pool.asynced().map(
        [](int i) {
          if (i == 4) throw std::runtime_error("four");
          return i;
        },
        iota_vector(10));
  } catch (const inorder::ItemError& e) {
    co_return e.index();
  }
  co_return 999;
}

TEST_F(PoolTest, AsyncedDeliversTheItemErrorAtTheAwait) {
  inorder::Pool<int> pool({.workers = 2});
  EXPECT_EQ(failing_map_in_coroutine(pool).result.get(), 4U);
}

TEST_F(PoolTest, ProgressCallbackCountsEveryItemWithTheTotalWhenKnown) {
  inorder::Pool<int> pool({.workers = 2});
  std::vector<std::pair<std::size_t, std::size_t>> calls;
  auto record = [&calls](std::size_t done, std::size_t total) { calls.emplace_back(done, total); };
  const auto out = pool.progress(record).map([](int i) { return i; }, iota_vector(25));
  EXPECT_EQ(out, iota_vector(25));
  ASSERT_EQ(calls.size(), 25U);
  for (std::size_t k = 0; k < 25; ++k) EXPECT_EQ(calls[k], std::make_pair(k + 1, std::size_t{25}));

  // An input of unknown size reports total 0.
  calls.clear();
  auto unsized = std::views::iota(0, 40) | std::views::filter([](int i) { return i % 2 == 0; });
  std::size_t n = 0;
  for (int v : pool.progress(record).imap([](int i) { return i; }, unsized)) {
    EXPECT_EQ(v % 2, 0);
    ++n;
  }
  EXPECT_EQ(n, 20U);
  ASSERT_EQ(calls.size(), 20U);
  EXPECT_EQ(calls.back(), std::make_pair(std::size_t{20}, std::size_t{0}));
}

TEST_F(PoolTest, ProgressBarWritesNothingWhenStderrIsNotATerminal) {
  if (isatty(STDERR_FILENO) == 1) GTEST_SKIP() << "stderr is a terminal";
  inorder::Pool<int> pool({.workers = 2});
  testing::internal::CaptureStderr();
  const auto out = pool.progress().map([](int i) { return i; }, iota_vector(50));
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(out, iota_vector(50));
}

// ---------------------------------------------------------------- modifiers combined

int product_or_hang(int a, int b) {
  if (a == 2) std::this_thread::sleep_for(std::chrono::hours(1));
  return a * b;
}

TEST_F(PoolTest, StarTimeoutBackgroundCombineInAnyOrder) {
  inorder::Pool<int> pool({.workers = 2});
  const std::vector<std::pair<int, int>> items{{0, 5}, {1, 5}, {3, 5}, {4, 5}};
  const std::vector<int> expected{0, 5, 15, 20};
  const auto ms = std::chrono::milliseconds(200);
  EXPECT_EQ(pool.star().timeout(ms).background().map(product_or_hang, items).get(), expected);
  EXPECT_EQ(pool.background().star().timeout(ms).map(product_or_hang, items).get(), expected);
  EXPECT_EQ(pool.timeout(ms).background().star().map(product_or_hang, items).get(), expected);

  // The timeout is in force through every chain: the hung item fails at its index.
  const std::vector<std::pair<int, int>> with_hang{{0, 5}, {2, 5}, {3, 5}};
  try {
    (void)pool.background().timeout(ms).star().map(product_or_hang, with_hang).get();
    ADD_FAILURE() << "item 1 should have timed out";
  } catch (const inorder::ItemError& e) {
    EXPECT_EQ(e.index(), 1U);
    EXPECT_TRUE(e.timed_out());
  }
}

Eager<std::vector<int>> combined_in_coroutine(
    inorder::Pool<int>& pool, std::vector<std::pair<int, int>> items,
    std::vector<std::pair<std::size_t, std::size_t>>* calls) {
  auto record = [calls](std::size_t done, std::size_t total) { calls->emplace_back(done, total); };
  co_return co_await pool.timeout(std::chrono::seconds(30))
      .progress(record)
      .star()
      .asynced()
      .unordered_map([](int a, int b) { return a + b; }, items);
}

TEST_F(PoolTest, TimeoutProgressStarAsyncedCombine) {
  inorder::Pool<int> pool({.workers = 2});
  std::vector<std::pair<int, int>> items;
  for (int i = 0; i < 30; ++i) items.emplace_back(i, 100);
  std::vector<std::pair<std::size_t, std::size_t>> calls;
  auto out = combined_in_coroutine(pool, items, &calls).result.get();
  std::sort(out.begin(), out.end());
  std::vector<int> expected;
  for (int i = 0; i < 30; ++i) expected.push_back(i + 100);
  EXPECT_EQ(out, expected);
  ASSERT_EQ(calls.size(), 30U);
  EXPECT_EQ(calls.back(), std::make_pair(std::size_t{30}, std::size_t{30}));
}

TEST_F(PoolTest, StarProgressWorkOnTheLazyUnorderedForm) {
  SharedBlock<Gates> g;
  inorder::Pool<int> pool({.workers = 2});
  std::vector<std::pair<Gates*, int>> items;
  for (int i = 0; i < kHeld; ++i) items.emplace_back(g.get(), i);
  std::size_t reported = 0;
  std::vector<int> out;
  for (int v : pool.progress([&](std::size_t done, std::size_t) { reported = done; })
                   .star()
                   .unordered_imap(held_until_taken, items)) {
    out.push_back(v);
    g->taken.fetch_add(1);
  }
  EXPECT_EQ(out, by_rank(*g));
  EXPECT_EQ(out, completion_order_of_held());
  EXPECT_EQ(reported, static_cast<std::size_t>(kHeld));
}

// ---------------------------------------------------------------- errors

int fails_at_3_and_6(int i) {
  if (i == 3) throw std::out_of_range("three is out of range");
  if (i == 6) throw std::logic_error("six");
  return i;
}

TEST_F(PoolTest, MapThrowsTheFirstFailureInInputOrderWithItsIndexAndStaysUsable) {
  inorder::Pool<int> pool({.workers = 2});
  try {
    (void)pool.map(fails_at_3_and_6, iota_vector(10));
    ADD_FAILURE() << "map should have thrown";
  } catch (const inorder::ItemError& e) {
    EXPECT_EQ(e.index(), 3U);
    EXPECT_EQ(e.type_name(), "std::out_of_range");
    EXPECT_EQ(e.message(), "three is out of range");
    EXPECT_FALSE(e.crashed());
    EXPECT_EQ(std::string(e.what()).rfind("item 3: ", 0), 0U) << e.what();
    EXPECT_NE(std::string(e.what()).find("three is out of range"), std::string::npos);
  }
  try {
    (void)pool.unordered_map(fails_at_3_and_6, iota_vector(10));
    ADD_FAILURE() << "unordered_map should have thrown";
  } catch (const inorder::ItemError& e) {
    EXPECT_EQ(e.index(), 3U) << "the lowest failing index";
  }
  EXPECT_EQ(pool.map([](int i) { return i * 2; }, iota_vector(5)),
            (std::vector<int>{0, 2, 4, 6, 8}));
}

TEST_F(PoolTest, MapPutsNoMoreItemsAfterAFailure) {
  SharedBlock<Gates> g;
  inorder::Pool<int> pool({.workers = 2});
  const std::size_t capacity = pool.stats().capacity;
  EXPECT_THROW((void)pool.map(
                   [g = g.get()](int i) {
                     g->started.fetch_add(1);
                     if (i == 0) throw std::runtime_error("first");
                     return i;
                   },
                   iota_vector(5000)),
               inorder::ItemError);
  EXPECT_LE(static_cast<std::size_t>(g->started.load()), capacity);
}

TEST_F(PoolTest, LazyRangesThrowAtTheFailingPositionAndGoOn) {
  inorder::Pool<int> pool({.workers = 2});
  for (bool ordered : {true, false}) {
    auto results = ordered ? pool.imap(fails_at_3_and_6, iota_vector(10))
                           : pool.unordered_imap(fails_at_3_and_6, iota_vector(10));
    std::vector<int> values;
    std::set<std::size_t> failed;
    for (auto it = results.begin(); it != results.end(); ++it) {
      try {
        const int v = *it;
        EXPECT_EQ(static_cast<std::size_t>(v), it.index());
        values.push_back(v);
      } catch (const inorder::ItemError& e) {
        EXPECT_EQ(e.index(), it.index());
        failed.insert(e.index());
      }
    }
    if (ordered) {
      EXPECT_EQ(values, (std::vector<int>{0, 1, 2, 4, 5, 7, 8, 9}));
    }
    std::sort(values.begin(), values.end());
    EXPECT_EQ(values, (std::vector<int>{0, 1, 2, 4, 5, 7, 8, 9}));
    EXPECT_EQ(failed, (std::set<std::size_t>{3, 6}));
  }
}

TEST_F(PoolTest, UnorderedIndicesStayRightAcrossSequenceWrapAround) {
  // Sequence numbers wrap at 2^32; item indices must not.
  inorder::Pool<int> pool({.workers = 2, .capacity = 16, .first_sequence = 0xFFFFFFFFu - 40});
  auto task = [](int i) {
    if (i % 17 == 5) throw std::runtime_error("bad");
    return i;
  };
  std::set<std::size_t> failed;
  std::vector<int> values;
  auto results = pool.unordered_imap(task, iota_vector(300));
  for (auto it = results.begin(); it != results.end(); ++it) {
    try {
      values.push_back(*it);
      EXPECT_EQ(static_cast<std::size_t>(values.back()), it.index());
    } catch (const inorder::ItemError& e) {
      failed.insert(e.index());
    }
  }
  std::set<std::size_t> expected_failed;
  for (std::size_t i = 0; i < 300; ++i)
    if (i % 17 == 5) expected_failed.insert(i);
  EXPECT_EQ(failed, expected_failed);
  EXPECT_EQ(values.size() + failed.size(), 300U);
}

TEST_F(PoolTest, ACrashFailsOnlyItsItem) {
  inorder::Pool<int> pool({.workers = 2});
  auto task = [](int i) {
    if (i == 2) raise(SIGKILL);
    return i;
  };
  try {
    (void)pool.map(task, iota_vector(6));
    ADD_FAILURE() << "item 2 should have crashed";
  } catch (const inorder::ItemError& e) {
    EXPECT_EQ(e.index(), 2U);
    EXPECT_TRUE(e.crashed());
    EXPECT_EQ(e.type_name(), "inorder::WorkerCrashed");
  }
  for (bool ordered : {true, false}) {
    auto results =
        ordered ? pool.imap(task, iota_vector(6)) : pool.unordered_imap(task, iota_vector(6));
    std::vector<int> values;
    std::vector<std::size_t> crashed;
    for (auto it = results.begin(); it != results.end(); ++it) {
      try {
        values.push_back(*it);
      } catch (const inorder::ItemError& e) {
        EXPECT_TRUE(e.crashed());
        crashed.push_back(e.index());
      }
    }
    std::sort(values.begin(), values.end());
    EXPECT_EQ(values, (std::vector<int>{0, 1, 3, 4, 5}));
    EXPECT_EQ(crashed, (std::vector<std::size_t>{2}));
  }
}

/// An input range that throws when it reaches item 5.
auto throwing_input() {
  return std::views::iota(0, 10) | std::views::transform([](int i) {
           if (i == 5) throw std::runtime_error("input broke at 5");
           return i;
         });
}

TEST_F(PoolTest, AnInputErrorComesAfterTheItemsBeforeIt) {
  inorder::Pool<int> pool({.workers = 2});
  EXPECT_THROW((void)pool.map([](int i) { return i; }, throwing_input()), std::runtime_error);
  std::vector<int> values;
  auto results = pool.imap([](int i) { return i; }, throwing_input());
  auto it = results.begin();
  for (; it != results.end(); ++it) {
    try {
      values.push_back(*it);
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "input broke at 5");
      EXPECT_EQ(it.index(), 5U);
      break;
    }
  }
  EXPECT_EQ(values, (std::vector<int>{0, 1, 2, 3, 4}));
  ++it;
  EXPECT_TRUE(it == results.end());
}

// ---------------------------------------------------------------- sizes

TEST_F(PoolTest, EmptyInputGivesEmptyOutputEverywhere) {
  inorder::Pool<int> pool({.workers = 2});
  const std::vector<int> none;
  auto f = [](int i) { return i; };
  EXPECT_TRUE(pool.map(f, none).empty());
  EXPECT_TRUE(pool.unordered_map(f, none).empty());
  auto a = pool.imap(f, none);
  EXPECT_TRUE(a.begin() == a.end());
  auto b = pool.unordered_imap(f, none);
  EXPECT_TRUE(b.begin() == b.end());
  EXPECT_TRUE(pool.background().map(f, none).get().empty());
  EXPECT_TRUE(pool.star()
                  .map([](int x, int y) { return x + y; }, std::vector<std::pair<int, int>>{})
                  .empty());
}

TEST_F(PoolTest, OneItemGivesItsResultThroughEveryCallForm) {
  inorder::Pool<int> pool({.workers = 2});
  const std::vector<int> one{7};
  auto f = [](int i) { return i * 3; };
  EXPECT_EQ(pool.map(f, one), std::vector<int>{21});
  EXPECT_EQ(pool.unordered_map(f, one), std::vector<int>{21});
  std::vector<int> lazy;
  for (int v : pool.imap(f, one)) lazy.push_back(v);
  for (int v : pool.unordered_imap(f, one)) lazy.push_back(v);
  EXPECT_EQ(lazy, (std::vector<int>{21, 21}));
}

TEST_F(PoolTest, TenThousandItemsFarBeyondTheWindow) {
  inorder::Pool<long> pool({.workers = 2});
  ASSERT_LT(pool.stats().capacity, 10'000U);
  auto f = [](int i) { return static_cast<long>(i) * i; };
  const auto items = iota_vector(10'000);
  const auto ordered = pool.map(f, items);
  ASSERT_EQ(ordered.size(), 10'000U);
  for (int i = 0; i < 10'000; ++i) ASSERT_EQ(ordered[static_cast<std::size_t>(i)], f(i));
  auto unordered = pool.unordered_map(f, items);
  std::sort(unordered.begin(), unordered.end());
  EXPECT_EQ(unordered, ordered);
  long i = 0;
  for (long v : pool.imap(f, items)) {
    ASSERT_EQ(v, i * i);
    ++i;
  }
  EXPECT_EQ(i, 10'000);
  long sum = 0;
  for (long v : pool.unordered_imap(f, std::views::iota(0, 10'000))) sum += v;
  EXPECT_EQ(sum, std::accumulate(ordered.begin(), ordered.end(), 0L));
}

TEST_F(PoolTest, ImapPullsInputLazilyAndKeepsMemoryBoundedOverALongGenerator) {
  // A generated input of 10 million items: imap must keep at most `capacity`
  // items in flight, so neither the input nor the results pile up.
  constexpr long kItems = 10'000'000;
  inorder::Pool<long> pool({.workers = 2});
  const std::size_t capacity = pool.stats().capacity;
  long pulled = 0;
  auto input = std::views::iota(0L, kItems) | std::views::transform([&pulled](long i) {
                 ++pulled;
                 return i;
               });
  long consumed = 0;
  long max_ahead = 0;
  std::size_t rss_start = 0;
  for (long v : pool.imap([](long i) { return i * 2; }, input)) {
    ASSERT_EQ(v, consumed * 2);
    ++consumed;
    max_ahead = std::max(max_ahead, pulled - consumed);
    if (consumed == 10'000) rss_start = rss_kib();
  }
  const std::size_t rss_end = rss_kib();
  EXPECT_EQ(consumed, kItems);
  EXPECT_LE(max_ahead, static_cast<long>(capacity));
  // Keeping every result would add 80 MB; the bound is far below that.
  EXPECT_LT(rss_end, rss_start + 4 * 1024) << rss_start << " KiB -> " << rss_end << " KiB";
  std::printf("[ figures  ] imap over %ld items: at most %ld ahead, VmRSS %zu -> %zu KiB\n", kItems,
              max_ahead, rss_start, rss_end);
}

// ---------------------------------------------------------------- chunking

/// Tasks the pool's workers have finished so far, summed over the workers.
std::uint64_t tasks_finished(inorder::Pool<int>& pool) {
  std::uint64_t n = 0;
  for (const auto& w : pool.stats().workers) n += w.tasks;
  return n;
}

int fails_on_tens_plus_3(int i) {
  if (i % 10 == 3) throw std::out_of_range("item " + std::to_string(i));
  return i * 2;
}

TEST_F(PoolTest, ChunkedMapGivesTheSameResultsAsOneItemPerTask) {
  const int n = static_cast<int>(inorder_test::volume(5000, 500));
  inorder::Pool<int> pool({.workers = 2});
  auto f = [](int i) { return i * 3 + 1; };
  const std::vector<int> items = iota_vector(n);
  const std::vector<int> expected = pool.chunksize(1).map(f, items);
  ASSERT_EQ(expected.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) ASSERT_EQ(expected[static_cast<std::size_t>(i)], f(i));
  // `view` is the pool itself (automatic chunking) or a view with a chunksize.
  auto check = [&](auto& view) {
    EXPECT_EQ(view.map(f, items), expected);
    std::vector<int> unordered = view.unordered_map(f, items);
    std::sort(unordered.begin(), unordered.end());
    EXPECT_EQ(unordered, expected);
    std::vector<int> lazy;
    for (int v : view.imap(f, std::views::iota(0, n))) lazy.push_back(v);
    EXPECT_EQ(lazy, expected);
    auto results = view.unordered_imap(f, items);
    std::size_t seen = 0;
    for (auto it = results.begin(); it != results.end(); ++it, ++seen)
      ASSERT_EQ(*it, f(static_cast<int>(it.index())));
    EXPECT_EQ(seen, static_cast<std::size_t>(n));
  };
  check(pool);
  for (std::size_t size : {2U, 3U, 7U, 64U, 1000U, 100000U}) {
    SCOPED_TRACE("chunksize " + std::to_string(size));
    auto view = pool.chunksize(size);
    check(view);
  }
  // star() and a result that is not trivially copyable travel in chunks too.
  inorder::Pool<std::string> strings({.workers = 2});
  std::vector<std::pair<int, std::string>> pairs;
  for (int i = 0; i < 200; ++i)
    pairs.emplace_back(i, std::string(static_cast<std::size_t>(i % 7), 'x'));
  auto join = [](int i, const std::string& s) { return std::to_string(i) + s; };
  const auto one = strings.star().chunksize(1).map(join, pairs);
  EXPECT_EQ(strings.star().chunksize(9).map(join, pairs), one);
  EXPECT_EQ(strings.star().map(join, pairs), one);
  EXPECT_EQ(one[15], "15x");
  // bool items (std::vector<bool> holds no bools) go one per task.
  const std::vector<bool> flags{true, false, true};
  EXPECT_EQ(pool.map([](bool b) { return b ? 1 : 0; }, flags), (std::vector<int>{1, 0, 1}));
}

TEST_F(PoolTest, AnExceptionInsideAChunkFailsOnlyItsItem) {
  inorder::Pool<int> pool({.workers = 2});
  // Chunks of 8: items 3, 13, 23 and 33 each share a task with 7 others.
  const std::vector<inorder::Settled<int>> out =
      pool.chunksize(8).map_settled(fails_on_tens_plus_3, iota_vector(40));
  ASSERT_EQ(out.size(), 40U);
  for (int i = 0; i < 40; ++i) {
    const inorder::Settled<int>& s = out[static_cast<std::size_t>(i)];
    if (i % 10 == 3) {
      ASSERT_FALSE(s.ok()) << i;
      EXPECT_EQ(s.error().index(), static_cast<std::size_t>(i));
      EXPECT_EQ(s.error().kind(), inorder::ItemError::Kind::kThrew);
      EXPECT_EQ(s.error().type_name(), "std::out_of_range");
      EXPECT_EQ(s.error().message(), "item " + std::to_string(i));
      EXPECT_GT(s.error().worker_pid(), 0);
      EXPECT_EQ(std::string(s.error().what()).rfind("item " + std::to_string(i) + ": ", 0), 0U);
    } else {
      ASSERT_TRUE(s.ok()) << i << ": " << s.error().what();
      EXPECT_EQ(s.value(), i * 2);
    }
  }
  EXPECT_EQ(pool.stats().restarts, 0U) << "an exception is caught in the worker, per item";
  // map throws the lowest failing index; the lazy forms go on past each failure.
  try {
    (void)pool.chunksize(8).map(fails_on_tens_plus_3, iota_vector(40));
    ADD_FAILURE() << "map should have thrown";
  } catch (const inorder::ItemError& e) {
    EXPECT_EQ(e.index(), 3U);
  }
  for (bool ordered : {true, false}) {
    auto results = ordered
                       ? pool.chunksize(8).imap(fails_on_tens_plus_3, iota_vector(40))
                       : pool.chunksize(8).unordered_imap(fails_on_tens_plus_3, iota_vector(40));
    std::vector<std::size_t> failed;
    std::size_t values = 0;
    for (auto it = results.begin(); it != results.end(); ++it) {
      try {
        EXPECT_EQ(static_cast<std::size_t>(*it), it.index() * 2);
        ++values;
      } catch (const inorder::ItemError& e) {
        EXPECT_EQ(e.index(), it.index());
        failed.push_back(e.index());
      }
    }
    std::sort(failed.begin(), failed.end());
    EXPECT_EQ(failed, (std::vector<std::size_t>{3, 13, 23, 33}));
    EXPECT_EQ(values, 36U);
  }
}

TEST_F(PoolTest, ACrashInsideAChunkFailsOnlyTheCrashingItem) {
  inorder::Pool<int> pool({.workers = 2});
  auto task = [](int i) {
    if (i == 13) raise(SIGKILL);
    if (i == 26) std::abort();
    return i * 2;
  };
  // Chunks of 8: items 8..15 and 24..31 lose their worker. Each such chunk is
  // run again one item per task, so only 13 and 26 fail.
  const std::vector<inorder::Settled<int>> out =
      pool.chunksize(8).map_settled(task, iota_vector(40));
  ASSERT_EQ(out.size(), 40U);
  for (int i = 0; i < 40; ++i) {
    const inorder::Settled<int>& s = out[static_cast<std::size_t>(i)];
    if (i == 13 || i == 26) {
      ASSERT_FALSE(s.ok()) << i;
      EXPECT_EQ(s.error().index(), static_cast<std::size_t>(i));
      EXPECT_TRUE(s.error().crashed());
      EXPECT_EQ(s.error().type_name(), "inorder::WorkerCrashed");
    } else {
      ASSERT_TRUE(s.ok()) << i << ": " << s.error().what();
      EXPECT_EQ(s.value(), i * 2);
    }
  }
  // Two workers lost per crashing item: its chunk's, then its own run alone.
  EXPECT_TRUE(wait_until([&] { return pool.stats().restarts >= 4; }));
  EXPECT_EQ(pool.stats().restarts, 4U);
  // Input order holds around the re-runs; completion order keeps every item.
  for (bool ordered : {true, false}) {
    auto results = ordered ? pool.chunksize(8).imap(task, iota_vector(40))
                           : pool.chunksize(8).unordered_imap(task, iota_vector(40));
    std::vector<int> values;
    std::vector<std::size_t> crashed;
    for (auto it = results.begin(); it != results.end(); ++it) {
      try {
        values.push_back(*it);
        EXPECT_EQ(static_cast<std::size_t>(values.back()), it.index() * 2);
      } catch (const inorder::ItemError& e) {
        EXPECT_TRUE(e.crashed());
        crashed.push_back(e.index());
      }
    }
    std::vector<int> expected;
    for (int i = 0; i < 40; ++i)
      if (i != 13 && i != 26) expected.push_back(i * 2);
    if (!ordered) {
      std::sort(values.begin(), values.end());
      std::sort(crashed.begin(), crashed.end());
    }
    EXPECT_EQ(values, expected);
    EXPECT_EQ(crashed, (std::vector<std::size_t>{13, 26}));
  }
}

TEST_F(PoolTest, ATimeoutInsideAChunkFailsOnlyTheHungItem) {
  inorder::Pool<int> pool({.workers = 2});
  auto task = [](int i) {
    if (i == 5) std::this_thread::sleep_for(std::chrono::hours(1));  // a hung item
    return i;
  };
  // Chunks of 4 with 200 ms per item: the chunk 4..7 is stopped after 800 ms,
  // then its items run alone with 200 ms each.
  std::vector<int> values;
  std::vector<std::size_t> failed;
  auto results =
      pool.chunksize(4).timeout(std::chrono::milliseconds(200)).imap(task, iota_vector(12));
  for (auto it = results.begin(); it != results.end(); ++it) {
    try {
      values.push_back(*it);
    } catch (const inorder::ItemError& e) {
      EXPECT_TRUE(e.timed_out()) << e.what();
      EXPECT_EQ(e.type_name(), "inorder::TaskTimeout");
      failed.push_back(e.index());
    }
  }
  EXPECT_EQ(values, (std::vector<int>{0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(failed, (std::vector<std::size_t>{5}));
}

TEST_F(PoolTest, ChunksizeZeroIsRefused) {
  inorder::Pool<int> pool({.workers = 1});
  try {
    (void)pool.chunksize(0);
    ADD_FAILURE() << "chunksize(0) should throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("chunksize() must be at least 1"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW((void)pool.star().timeout(std::chrono::seconds(1)).chunksize(0),
               std::invalid_argument);
  EXPECT_EQ(pool.chunksize(1).map([](int i) { return i; }, iota_vector(3)), iota_vector(3));
}

TEST_F(PoolTest, AutomaticChunkingPutsFewerTasksThanItems) {
  const int n = static_cast<int>(inorder_test::volume(20000, 4000));
  inorder::Pool<int> pool({.workers = 2});
  auto f = [](int i) { return i + 1; };
  // chunksize(1): one task per item.
  const std::uint64_t before_one = tasks_finished(pool);
  EXPECT_EQ(pool.chunksize(1).map(f, iota_vector(n)).size(), static_cast<std::size_t>(n));
  EXPECT_TRUE(wait_until([&] { return tasks_finished(pool) - before_one >= std::uint64_t(n); }));
  EXPECT_EQ(tasks_finished(pool) - before_one, std::uint64_t(n));
  // The default: tiny items travel many to a task, and the results are the same.
  const std::uint64_t before = tasks_finished(pool);
  const std::vector<int> out = pool.map(f, iota_vector(n));
  ASSERT_EQ(out.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) ASSERT_EQ(out[static_cast<std::size_t>(i)], i + 1);
  const std::uint64_t tasks = tasks_finished(pool) - before;
  EXPECT_LT(tasks, std::uint64_t(n) / 10) << tasks << " tasks for " << n << " items";
  std::printf("[ figures  ] automatic chunking: %d items in about %llu tasks\n", n,
              static_cast<unsigned long long>(tasks));
  // An explicit size gives ceil(n / size) tasks.
  const std::uint64_t before_fixed = tasks_finished(pool);
  EXPECT_EQ(pool.chunksize(100).map(f, iota_vector(1000)).size(), 1000U);
  EXPECT_TRUE(wait_until([&] { return tasks_finished(pool) - before_fixed >= 10; }));
  EXPECT_EQ(tasks_finished(pool) - before_fixed, 10U);
}

// Completion order is kept chunk by chunk: the chunk holding item 0 waits in
// its worker until the parent has taken every other chunk's items.
TEST_F(PoolTest, UnorderedMapWithChunksDeliversEachChunkAsItCompletes) {
  SharedBlock<Gates> g;
  inorder::Pool<int> pool({.workers = 2});
  constexpr int kItems = 16;
  const auto out = pool.chunksize(4)
                       .progress([g = g.get()](std::size_t done, std::size_t) {
                         g->taken.store(static_cast<int>(done));
                       })
                       .unordered_map(
                           [g = g.get()](int i) {
                             if (i == 0)
                               while (g->taken.load() < kItems - 4) sched_yield();
                             return i * 10;
                           },
                           iota_vector(kItems));
  ASSERT_EQ(out.size(), static_cast<std::size_t>(kItems));
  // The held chunk (items 0..3) comes last, its items in input order.
  EXPECT_EQ(std::vector<int>(out.end() - 4, out.end()), (std::vector<int>{0, 10, 20, 30}));
  std::vector<int> sorted = out;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, times_ten(kItems));
  // A failure: the lowest failing index among the items that ran.
  try {
    (void)pool.chunksize(4).unordered_map(fails_on_tens_plus_3, iota_vector(30));
    ADD_FAILURE() << "unordered_map should have thrown";
  } catch (const inorder::ItemError& e) {
    EXPECT_EQ(e.index() % 10, 3U);
    EXPECT_EQ(e.type_name(), "std::out_of_range");
  }
}

TEST_F(PoolTest, ProgressCountsItemsNotChunks) {
  inorder::Pool<int> pool({.workers = 2});
  std::vector<std::pair<std::size_t, std::size_t>> calls;
  auto record = [&calls](std::size_t done, std::size_t total) { calls.emplace_back(done, total); };
  EXPECT_EQ(pool.chunksize(10).progress(record).map([](int i) { return i; }, iota_vector(95)),
            iota_vector(95));
  ASSERT_EQ(calls.size(), 95U);
  for (std::size_t k = 0; k < 95; ++k) EXPECT_EQ(calls[k], std::make_pair(k + 1, std::size_t{95}));
}

TEST_F(PoolTest, LazyCallsKeepAtMostCapacityItemsInFlightWhateverTheChunksize) {
  inorder::Pool<int> pool({.workers = 2});
  const std::size_t capacity = pool.stats().capacity;
  const int n = static_cast<int>(inorder_test::volume(20000, 2000));
  auto check = [&](auto& view, std::size_t size) {
    int pulled = 0;
    auto input = std::views::iota(0, n) | std::views::transform([&pulled](int i) {
                   ++pulled;
                   return i;
                 });
    int consumed = 0;
    int max_ahead = 0;
    for (int v : view.imap([](int i) { return i + 1; }, input)) {
      ASSERT_EQ(v, consumed + 1);
      ++consumed;
      max_ahead = std::max(max_ahead, pulled - consumed);
    }
    EXPECT_EQ(consumed, n);
    EXPECT_LE(static_cast<std::size_t>(max_ahead), capacity) << "chunksize " << size;
  };
  check(pool, 0);  // automatic
  for (std::size_t size : {16U, 100000U}) {
    auto view = pool.chunksize(size);
    check(view, size);
  }
}

// ---------------------------------------------------------------- lifecycle

TEST_F(PoolTest, WorkersAreForkedOnceAndReusedAcrossCalls) {
  inorder::Pool<int> pool({.workers = 2});
  std::set<pid_t> before;
  for (const auto& w : pool.stats().workers) before.insert(w.pid);
  auto f = [](int i) { return i + 1; };
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(pool.map(f, iota_vector(50)).size(), 50U);
    EXPECT_EQ(pool.unordered_map(f, iota_vector(50)).size(), 50U);
    int n = 0;
    for (int v : pool.imap(f, iota_vector(50))) EXPECT_EQ(v, ++n);
    for (int v : pool.unordered_imap(f, iota_vector(50))) EXPECT_GT(v, 0);
    EXPECT_EQ(pool.background().map(f, iota_vector(50)).get().size(), 50U);
  }
  std::set<pid_t> after;
  for (const auto& w : pool.stats().workers) after.insert(w.pid);
  EXPECT_EQ(before, after);
  EXPECT_EQ(pool.stats().restarts, 0U);
}

// Options::max_tasks_per_worker reaches the pool's queue: every 5 items a
// worker is replaced between items, without a restart and in input order.
TEST_F(PoolTest, MaxTasksPerWorkerRecyclesThePoolsWorkersBetweenItems) {
  inorder::Pool<std::pair<int, int>> pool({.workers = 2, .max_tasks_per_worker = 5});
  const auto got = pool.map(
      [](int i) {
        return std::pair<int, int>{i, static_cast<int>(getpid())};
      },
      iota_vector(100));
  ASSERT_EQ(got.size(), 100U);
  std::set<int> pids;
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(got[static_cast<std::size_t>(i)].first, i);
    pids.insert(got[static_cast<std::size_t>(i)].second);
  }
  EXPECT_GE(pids.size(), 20U);
  EXPECT_EQ(pool.stats().restarts, 0U);
  EXPECT_GE(pool.stats().recycled, 18U);
}

TEST_F(PoolTest, LeavingALazyRangeEarlyLetsTheNextCallRun) {
  inorder::Pool<int> pool({.workers = 2});
  auto f = [](int i) { return i; };
  std::vector<int> first;
  for (int v : pool.imap(f, iota_vector(1000)) | std::views::take(3)) first.push_back(v);
  EXPECT_EQ(first, (std::vector<int>{0, 1, 2}));
  {
    auto r = pool.unordered_imap(f, iota_vector(1000));
    (void)r.begin();
    // A second call on this thread while the range is unfinished would wait for itself.
    EXPECT_THROW((void)pool.map(f, iota_vector(3)), std::logic_error);
  }
  EXPECT_EQ(pool.map(f, iota_vector(3)), (std::vector<int>{0, 1, 2}));
}

TEST_F(PoolTest, CloseWaitsForTheCallInProgressThenRefusesNewCalls) {
  SharedBlock<Gates> g;
  inorder::Pool<int> pool({.workers = 2});
  auto fut = pool.background().map(
      [g = g.get()](int i) {
        g->started.fetch_add(1);
        while (g->release.load() == 0) sched_yield();
        return i;
      },
      iota_vector(4));
  ASSERT_TRUE(wait_until([&] { return g->started.load() >= 1; }));
  std::thread closer([&] { pool.close(); });
  g->release.store(1);
  closer.join();
  EXPECT_EQ(fut.get(), iota_vector(4));
  EXPECT_THROW((void)pool.map([](int i) { return i; }, iota_vector(3)), inorder::QueueClosed);
  EXPECT_THROW((void)pool.stats(), inorder::QueueClosed);
  pool.close();  // idempotent
}

TEST_F(PoolTest, TerminateEndsABackgroundCallInProgress) {
  SharedBlock<Gates> g;
  inorder::Pool<int> pool({.workers = 2, .shutdown_grace = std::chrono::milliseconds(50)});
  auto fut = pool.background().map(
      [g = g.get()](int i) {
        g->started.fetch_add(1);
        std::this_thread::sleep_for(std::chrono::hours(1));  // never finishes by itself
        return i;
      },
      iota_vector(4));
  ASSERT_TRUE(wait_until([&] { return g->started.load() >= 1; }));
  pool.terminate();
  EXPECT_THROW((void)fut.get(), inorder::QueueClosed);
  EXPECT_THROW((void)pool.map([](int i) { return i; }, iota_vector(3)), inorder::QueueClosed);
}

TEST_F(PoolTest, WorkerInitAndACallableFixedAtConstructionCarryStateThatCannotBeEncoded) {
  // worker_init: per-process state the callables read through a global.
  static std::string* table = nullptr;
  inorder::Pool<std::string> pool(
      {.workers = 2, .worker_init = [](unsigned) { table = new std::string("abcdefghij"); }});
  const auto out =
      pool.map([](int i) { return table->substr(static_cast<std::size_t>(i), 2); }, iota_vector(4));
  EXPECT_EQ(out, (std::vector<std::string>{"ab", "bc", "cd", "de"}));
  EXPECT_EQ(table, nullptr) << "worker_init runs in the workers only";

  // A std::function made before the pool: its address is valid in the workers.
  const auto fn = std::make_unique<const std::function<std::string(int)>>(
      [prefix = std::string("item-")](int i) { return prefix + std::to_string(i); });
  inorder::Pool<std::string> pool2({.workers = 2});
  const auto out2 = pool2.map([f = fn.get()](int i) { return (*f)(i); }, iota_vector(3));
  EXPECT_EQ(out2, (std::vector<std::string>{"item-0", "item-1", "item-2"}));
}

}  // namespace
