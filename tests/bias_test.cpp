// tests/bias_test.cpp: the single-writer bias of put_word and emit
// (src/queue/bias.hpp), alone, on a counter in this process.
//
// The property under test: a revoker's share() returns only when no plain
// store of the owner is in progress, and none starts afterwards, so that a CAS
// after share() can never be overwritten by the owner. The interleaving that
// would break it (the owner inside its store while a revoker revokes) is
// forced with flags, not hoped for.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "ipc/sync.hpp"
#include "queue/bias.hpp"
#include "test_util.hpp"

namespace {

using inorder::detail::Bias;
using inorder_test::wait_until;

/// The barriers a revocation needs; registered as the queue's parent does.
bool barriers_available() { return inorder::detail::enable_light_notify(); }

/// One increment of `word` the way the queue claims (Bias::claim): a plain
/// store by the owner, else share() and a CAS, retried until it lands.
void increment(Bias& bias, std::atomic<std::uint64_t>& word) {
  std::uint64_t expected = word.load(std::memory_order_acquire);
  while (!bias.claim(word, expected, expected + 1)) {
  }
}

TEST(Bias, TheFirstWriterOwnsTheWordUntilAnotherThreadShares) {
  if (!barriers_available()) GTEST_SKIP() << "membarrier(2) refused: no thread becomes owner";
  Bias bias;
  int stores = 0;
  EXPECT_TRUE(bias.try_store([&] { ++stores; })) << "the first writer becomes the owner";
  EXPECT_TRUE(bias.try_store([&] { ++stores; }));
  std::thread other([&] {
    EXPECT_FALSE(bias.try_store([&] { ++stores; })) << "a second thread is not the owner";
    bias.share();
  });
  other.join();
  EXPECT_TRUE(bias.shared());
  EXPECT_FALSE(bias.try_store([&] { ++stores; })) << "after share() the owner must CAS too";
  EXPECT_EQ(stores, 2);
}

TEST(Bias, ShareWaitsForAnOwnerThatIsInsideItsPlainStore) {
  if (!barriers_available()) GTEST_SKIP() << "membarrier(2) refused: no thread becomes owner";
  Bias bias;
  std::atomic<std::uint64_t> word{0};
  std::atomic<bool> inside{false};
  std::atomic<bool> timed_out{false};
  ASSERT_TRUE(bias.try_store([&] { word.store(1); }));  // this thread owns the word

  std::uint64_t seen_after_share = 0;
  std::thread revoker([&] {
    if (!wait_until([&] { return inside.load(); })) {
      timed_out = true;
      return;
    }
    bias.share();  // must not return before the owner's store below
    seen_after_share = word.load(std::memory_order_acquire);
    std::uint64_t expected = seen_after_share;
    EXPECT_TRUE(word.compare_exchange_strong(expected, expected + 1));
  });
  // The owner reads the word, then stays inside its store until the revoker
  // has begun revoking (or, if share() does not wait, finished): a share()
  // that did not wait would let the revoker's CAS land before this store and
  // be overwritten by it.
  const bool stored = bias.try_store([&] {
    const std::uint64_t v = word.load(std::memory_order_relaxed);
    inside = true;
    if (!wait_until([&] { return bias.revoking() || bias.shared(); })) timed_out = true;
    word.store(v + 1, std::memory_order_release);
  });
  revoker.join();
  ASSERT_FALSE(timed_out.load());
  EXPECT_TRUE(stored) << "the owner was past its check when the revocation began";
  EXPECT_EQ(seen_after_share, 2u) << "share() returned before the owner's store finished";
  EXPECT_EQ(word.load(), 3u) << "an increment was lost";
  EXPECT_FALSE(bias.try_store([] {})) << "the word is shared for good";
}

TEST(Bias, ThreadsThatJoinAnOwnerMidStreamLoseNoIncrement) {
  // The owner runs alone for a while, then three threads start writing the
  // same word while it goes on: every increment must count exactly once.
  if (!barriers_available()) GTEST_SKIP() << "membarrier(2) refused: no thread becomes owner";
  const auto kPerThread = static_cast<std::uint64_t>(inorder_test::volume(200'000, 20'000));
  constexpr int kJoiners = 3;
  for (int round = 0; round < 20; ++round) {
    Bias bias;
    std::atomic<std::uint64_t> word{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> joiners;
    for (int t = 0; t < kJoiners; ++t)
      joiners.emplace_back([&] {
        while (!go.load()) std::this_thread::yield();
        for (std::uint64_t i = 0; i < kPerThread; ++i) increment(bias, word);
      });
    for (std::uint64_t i = 0; i < kPerThread; ++i) {
      if (i == kPerThread / 4) go = true;  // the owner is established by now
      increment(bias, word);
    }
    for (auto& t : joiners) t.join();
    ASSERT_EQ(word.load(), kPerThread * (kJoiners + 1)) << "round " << round;
    EXPECT_TRUE(bias.shared());
  }
}

TEST(Bias, AWordNobodyOwnedIsSharedWithoutABarrier) {
  Bias bias;
  bias.share();
  EXPECT_TRUE(bias.shared());
  EXPECT_FALSE(bias.try_store([] {})) << "no thread can take a shared word";
}

}  // namespace
