// tests/mpi/queue_test.cpp: the ordering contract of inorder::mpi::ParallelQueue,
// run under mpirun (tests/mpi/run.sh). Every rank makes the Session; rank 0
// runs the GoogleTest cases, the others serve until rank 0's Session ends.
//
// Flags (after the GoogleTest ones): --no-root-tasks makes rank 0 only deal,
// so every task crosses MPI. The run with INORDER_MPI_MAX_MESSAGE set small
// forces large payloads through the split path.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../test_util.hpp"
#include "inorder/mpi.hpp"

namespace {

inorder::mpi::Session* g_session = nullptr;

/// A scratch directory shared by the test and its tasks (all ranks run on this host).
std::string scratch_dir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/inorder-mpi-test-XXXXXX";
    const char* d = mkdtemp(tmpl);
    if (d == nullptr) throw std::runtime_error("mkdtemp failed");
    return std::string(d);
  }();
  return dir;
}

bool file_exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

void touch(const std::string& path) {
  const int fd = open(path.c_str(), O_CREAT | O_WRONLY, 0600);
  if (fd >= 0) close(fd);
}

// ---- tasks: plain functions and lambdas without captures -------------------

std::uint64_t square_after(std::uint64_t i, std::uint32_t micros) {
  std::this_thread::sleep_for(std::chrono::microseconds(micros));
  return i * i;
}

std::uint64_t fail_at(std::uint64_t i, std::uint64_t throw_at, std::uint64_t crash_at) {
  if (i == throw_at) throw std::out_of_range("position " + std::to_string(i));
  if (i == crash_at) std::abort();
  return i;
}

/// Dies by SIGKILL the first time (marker absent), returns on the retry.
std::uint64_t killed_once(std::string marker, std::uint64_t i) {
  if (!file_exists(marker)) {
    touch(marker);
    raise(SIGKILL);
  }
  return i;
}

/// Returns only once `gate` exists: holds its position until the test opens it.
std::uint64_t wait_for_gate(std::string gate, std::uint64_t i) {
  while (!file_exists(gate)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return i;
}

std::string big_result(std::uint64_t bytes, char fill) {
  std::string s(bytes, fill);
  s.front() = 'A';
  s.back() = 'Z';
  return s;
}

std::uint64_t checksum(std::string s) {
  std::uint64_t h = s.size();
  for (std::size_t i = 0; i < s.size(); i += 4093) h = h * 31 + static_cast<unsigned char>(s[i]);
  return h + static_cast<unsigned char>(s.back());
}

class MpiQueue : public ::testing::Test {
 protected:
  void SetUp() override { alarm(120); }  // a hang fails this run long before meson's timeout
  void TearDown() override { alarm(0); }
  inorder::mpi::Session& session() { return *g_session; }
};

TEST_F(MpiQueue, EmitsInPutOrderUnderRandomTaskDurations) {
  const auto seed = static_cast<std::uint32_t>(std::random_device{}());
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::uint32_t> micros(0, 3000);
  inorder::mpi::ParallelQueue<std::uint64_t> q(session());
  constexpr std::uint64_t kTasks = 400;
  std::uint64_t next = 0;
  for (std::uint64_t i = 0; i < kTasks; ++i) {
    EXPECT_EQ(q.put(square_after, i, micros(rng)), i);
    if (i % 3 == 0) {
      if (auto r = q.try_get()) {
        EXPECT_EQ(*r, next * next);
        ++next;
      }
    }
  }
  q.stop();
  while (auto r = q.get()) {
    EXPECT_EQ(*r, next * next) << "seed " << seed;
    ++next;
  }
  EXPECT_EQ(next, kTasks);
  EXPECT_TRUE(q.exhausted());
}

TEST_F(MpiQueue, PassThroughValuesKeepTheirPlace) {
  inorder::mpi::ParallelQueue<std::uint64_t> q(session());
  for (std::uint64_t i = 0; i < 200; ++i) {
    if (i % 10 == 9)
      q.put(std::uint64_t{1'000'000 + i});  // a marker, in order, never leaving rank 0
    else
      q.put([](std::uint64_t x) { return x * 2; }, i);
  }
  q.stop();
  std::uint64_t i = 0;
  while (auto r = q.get()) {
    EXPECT_EQ(*r, i % 10 == 9 ? 1'000'000 + i : 2 * i) << "position " << i;
    ++i;
  }
  EXPECT_EQ(i, 200U);
}

TEST_F(MpiQueue, ExceptionAndCrashFailOnlyTheirOwnPositions) {
  inorder::mpi::ParallelQueue<std::uint64_t> q(session());
  constexpr std::uint64_t kThrowAt = 17, kCrashAt = 41;
  for (std::uint64_t i = 0; i < 60; ++i) q.put(fail_at, i, kThrowAt, kCrashAt);
  q.stop();
  for (std::uint64_t i = 0; i < 60; ++i) {
    if (i == kThrowAt) {
      try {
        (void)q.get();
        ADD_FAILURE() << "no exception at " << i;
      } catch (const inorder::TaskError& e) {
        EXPECT_EQ(e.type_name(), "std::out_of_range");
        EXPECT_EQ(e.message(), "position 17");
        const auto* where = dynamic_cast<const inorder::mpi::RemoteFailure*>(&e);
        ASSERT_NE(where, nullptr);
        EXPECT_EQ(where->global_sequence(), i);
        EXPECT_GE(where->rank(), 0);
        EXPECT_LT(where->rank(), session().size());
        EXPECT_FALSE(where->host().empty());
        EXPECT_NE(std::string(e.what()).find("on rank"), std::string::npos) << e.what();
      }
    } else if (i == kCrashAt) {
      EXPECT_THROW((void)q.get(), inorder::WorkerCrashed);
    } else {
      const auto r = q.get();
      ASSERT_TRUE(r.has_value());
      EXPECT_EQ(*r, i);
    }
  }
  EXPECT_FALSE(q.get().has_value());
}

TEST_F(MpiQueue, WorkerKilledBySigkillIsRetriedOnAFreshWorker) {
  // The Session runs with retries = 1 (main below).
  inorder::mpi::ParallelQueue<std::uint64_t> q(session());
  std::vector<std::string> markers;
  for (std::uint64_t i = 0; i < 6; ++i) {
    markers.push_back(scratch_dir() + "/killed-" + std::to_string(i));
    q.put(killed_once, markers.back(), i);
  }
  q.stop();
  std::uint64_t i = 0;
  while (auto r = q.get()) EXPECT_EQ(*r, i++);
  EXPECT_EQ(i, 6U);
  for (const auto& m : markers) EXPECT_TRUE(file_exists(m)) << m << ": the first attempt never ran";
}

TEST_F(MpiQueue, GetAnyGivesCompletionOrder) {
  inorder::mpi::ParallelQueue<std::uint64_t> q(session());
  const std::string gate = scratch_dir() + "/gate";
  q.put(wait_for_gate, gate, std::uint64_t{0});  // held until the others are out
  for (std::uint64_t i = 1; i <= 20; ++i) q.put([](std::uint64_t x) { return x; }, i);
  q.stop();
  std::set<std::uint64_t> seen;
  for (int k = 0; k < 20; ++k) {
    const auto r = q.get_any();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->first, r->second);
    EXPECT_NE(r->first, 0U);
    seen.insert(r->first);
  }
  EXPECT_EQ(seen.size(), 20U);
  touch(gate);
  const auto last = q.get_any();
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->first, 0U);
  EXPECT_FALSE(q.get_any().has_value());
}

TEST_F(MpiQueue, EmptyInputEndsAtOnce) {
  inorder::mpi::ParallelQueue<int> q(session());
  q.stop();
  EXPECT_FALSE(q.get().has_value());
  EXPECT_TRUE(q.exhausted());
  EXPECT_THROW(q.put([](int x) { return x; }, 1), inorder::QueueClosed);
}

TEST_F(MpiQueue, HundredMebibyteArgumentAndResultArriveWhole) {
  constexpr std::uint64_t kBytes = std::uint64_t{100} << 20;
  inorder::mpi::ParallelQueue<std::string> q(session());
  q.put(big_result, kBytes, 'x');
  q.stop();
  const auto r = q.get();
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->size(), kBytes);
  EXPECT_EQ(r->front(), 'A');
  EXPECT_EQ(r->back(), 'Z');
  EXPECT_EQ((*r)[kBytes / 2], 'x');
}

TEST_F(MpiQueue, HundredMebibyteArgumentArrivesWhole) {
  constexpr std::uint64_t kBytes = std::uint64_t{100} << 20;
  std::string arg(kBytes, 'y');
  arg.back() = 'Z';
  const std::uint64_t expected = checksum(arg);
  inorder::mpi::ParallelQueue<std::uint64_t> q(session());
  q.put(checksum, std::move(arg));
  q.stop();
  const auto r = q.get();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, expected);
}

TEST_F(MpiQueue, EveryRankGetsWork) {
  inorder::mpi::ParallelQueue<std::uint64_t> q(session());
  for (std::uint64_t i = 0; i < 200; ++i) q.put(square_after, i, std::uint32_t{2000});
  q.stop();
  std::uint64_t n = 0;
  while (auto r = q.get()) {
    EXPECT_EQ(*r, n * n);
    ++n;
  }
  const auto st = q.stats();
  for (const auto& r : st.ranks) {
    std::printf("rank %d (%s): %llu tasks in %llu chunks\n", r.rank, r.host.c_str(),
                static_cast<unsigned long long>(r.completed),
                static_cast<unsigned long long>(r.chunks));
    if (r.rank != 0 || session().size() == 1) {
      EXPECT_GT(r.completed, 0U) << "rank " << r.rank << " got no work";
    }
  }
}

/// Tasks dealt and chunks sent, summed over the ranks, since `before`.
std::pair<std::uint64_t, std::uint64_t> dealt_since(const inorder::mpi::QueueStats& before,
                                                    const inorder::mpi::QueueStats& after) {
  std::uint64_t tasks = 0, chunks = 0;
  for (std::size_t r = 0; r < after.ranks.size(); ++r) {
    tasks += after.ranks[r].dispatched - before.ranks[r].dispatched;
    chunks += after.ranks[r].chunks - before.ranks[r].chunks;
  }
  return {tasks, chunks};
}

// Chunks carry about chunk_work (2 ms) of each rank's measured time per task.
// Tasks of 2 ms on ranks of 2 workers take at least 1 ms per task, so once
// measured they go out one or two at a time. (Measured by the workers' busy
// time, which a worker that never idles adds up only every 1024 tasks, such
// a stream read now and then as "no time at all" and went out in chunks of
// max_chunk.)
TEST_F(MpiQueue, TasksOfTwoMillisecondsGoOutOneOrTwoAtATime) {
  inorder::mpi::ParallelQueue<std::uint64_t> q(session());
  // Measured first: the Session keeps what earlier queues' tasks took.
  constexpr std::uint64_t kWarmUp = 60, kTasks = 300;
  std::uint64_t n = 0;
  for (std::uint64_t i = 0; i < kWarmUp; ++i) q.put(square_after, i, std::uint32_t{2000});
  for (; n < kWarmUp; ++n) EXPECT_EQ(q.get(), n * n);
  const auto before = q.stats();
  for (std::uint64_t i = kWarmUp; i < kWarmUp + kTasks; ++i)
    q.put(square_after, i, std::uint32_t{2000});
  q.stop();
  while (auto r = q.get()) {
    EXPECT_EQ(*r, n * n);
    ++n;
  }
  EXPECT_EQ(n, kWarmUp + kTasks);
  const auto after = q.stats();
  const auto [tasks, chunks] = dealt_since(before, after);
  ASSERT_GT(chunks, 0U);
  const double per_chunk = static_cast<double>(tasks) / static_cast<double>(chunks);
  std::printf("[ figures  ] %llu tasks of 2 ms in %llu chunks: %.1f per chunk; per task:",
              static_cast<unsigned long long>(tasks), static_cast<unsigned long long>(chunks),
              per_chunk);
  for (const auto& r : after.ranks)
    std::printf(" rank %d %.2f ms", r.rank, static_cast<double>(r.per_task.count()) / 1e6);
  std::printf("\n");
  EXPECT_LE(per_chunk, 2.5);
  // Each rank that ran tasks here measured about 1 ms per task (2 ms over 2
  // workers; more on a busy machine), never "no time" and never the lump of
  // a whole streak.
  for (std::size_t k = 0; k < after.ranks.size(); ++k) {
    const auto& r = after.ranks[k];
    if (r.completed - before.ranks[k].completed < 20) continue;
    EXPECT_GE(r.per_task, std::chrono::microseconds(300)) << "rank " << r.rank;
    EXPECT_LE(r.per_task, std::chrono::milliseconds(10)) << "rank " << r.rank;
  }
}

// A producer that puts one task per result taken (the window full) keeps
// the ranks in whole chunks: credits that come back a few at a time are not
// dealt a few tasks at a time.
TEST_F(MpiQueue, TinyTasksPutOnePerResultGoOutInWholeChunks) {
  inorder::mpi::ParallelQueue<std::uint64_t> q(session());
  const auto before = q.stats();
  constexpr std::uint64_t kTasks = 30'000;
  std::uint64_t next = 0;
  for (std::uint64_t i = 0; i < kTasks; ++i) {
    while (!q.try_put([](std::uint64_t x) { return x; }, i)) {
      const auto r = q.get();
      ASSERT_TRUE(r.has_value());
      ASSERT_EQ(*r, next++);
    }
  }
  q.stop();
  while (auto r = q.get()) ASSERT_EQ(*r, next++);
  EXPECT_EQ(next, kTasks);
  const auto [tasks, chunks] = dealt_since(before, q.stats());
  ASSERT_GT(chunks, 0U);
  const double per_chunk = static_cast<double>(tasks) / static_cast<double>(chunks);
  std::printf("[ figures  ] %llu tiny tasks, one put per get: %llu chunks, %.1f per chunk\n",
              static_cast<unsigned long long>(tasks), static_cast<unsigned long long>(chunks),
              per_chunk);
  // Dealt as credits came back, this was 6 to 7 tasks per chunk; whole
  // chunks give 40 to 300 here (fewer under the sanitizers).
  EXPECT_GE(per_chunk, 12.0);
}

TEST_F(MpiQueue, PutIntoAWindowFullOfUntakenResultsThrowsInsteadOfHanging) {
  inorder::mpi::ParallelQueue<std::uint64_t> q(session());
  constexpr std::uint64_t kWindow = 8192;  // SessionOptions::window, left at its default
  for (std::uint64_t i = 0; i < kWindow; ++i) q.put([](std::uint64_t x) { return x; }, i);
  EXPECT_FALSE(q.try_put([](std::uint64_t x) { return x; }, kWindow));
  EXPECT_THROW(q.put([](std::uint64_t x) { return x; }, kWindow), std::logic_error);
  EXPECT_EQ(q.get(), 0U);  // one taken: room for one more
  EXPECT_EQ(q.put([](std::uint64_t x) { return x; }, kWindow), kWindow);
}

std::uint64_t cube(std::uint64_t x) { return x * x * x; }

TEST_F(MpiQueue, PoolMapKeepsItemOrderAndUnorderedMapGetsEveryItem) {
  inorder::mpi::Pool<std::uint64_t> pool(session(), 16);
  std::vector<std::uint64_t> items(300);
  for (std::uint64_t i = 0; i < items.size(); ++i) items[i] = i;
  const auto ordered = pool.map(cube, items);
  ASSERT_EQ(ordered.size(), items.size());
  for (std::uint64_t i = 0; i < items.size(); ++i) EXPECT_EQ(ordered[i], i * i * i);
  auto unordered = pool.unordered_map([](std::uint64_t x) { return x + 1; }, items);
  std::sort(unordered.begin(), unordered.end());
  for (std::uint64_t i = 0; i < items.size(); ++i) EXPECT_EQ(unordered[i], i + 1);
}

TEST_F(MpiQueue, PoolImapIsLazyAndRethrowsAtTheFailedItem) {
  inorder::mpi::Pool<std::uint64_t> pool(session(), 8);
  // An endless input: only lookahead items are ever put ahead of the reader.
  std::uint64_t n = 0;
  for (const std::uint64_t r : pool.imap(cube, std::views::iota(std::uint64_t{0}))) {
    EXPECT_EQ(r, n * n * n);
    if (++n == 100) break;
  }
  EXPECT_EQ(n, 100U);
  std::uint64_t seen = 0;
  try {
    for (const std::uint64_t r : pool.imap([](std::uint64_t x) { return fail_at(x, 5, 1000); },
                                           std::views::iota(0U, 10U))) {
      EXPECT_EQ(r, seen++);
    }
    ADD_FAILURE() << "no exception";
  } catch (const inorder::TaskError& e) {
    EXPECT_EQ(e.type_name(), "std::out_of_range");
  }
  EXPECT_EQ(seen, 5U);
}

}  // namespace

int main(int argc, char** argv) {
  bool root_tasks = true;
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--no-root-tasks") == 0) root_tasks = false;
  // The 100 MiB cases copy their payloads several times per rank; under the
  // sanitizers on a busy machine that can outlast the default 5 s heartbeat
  // bound, so it scales like every other time bound of the suite.
  const auto heartbeat =
      std::chrono::milliseconds(static_cast<long>(5000 * inorder_test::time_scale()));
  inorder::mpi::Session session(argc, argv,
                                {.workers_per_rank = 2,
                                 .retries = 1,
                                 .heartbeat_timeout = heartbeat,
                                 .root_runs_tasks = root_tasks});
  if (!session.is_root()) return session.serve();
  std::printf("ranks: %d\n", session.size());
  g_session = &session;
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  std::string cmd = "rm -rf " + scratch_dir();
  if (std::system(cmd.c_str()) != 0)
    std::fprintf(stderr, "could not remove %s\n", scratch_dir().c_str());
  return rc;
}
