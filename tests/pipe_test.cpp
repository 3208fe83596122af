// tests/pipe_test.cpp: inorder::Pipe between a test process and children it forks.
#include <inorder/pipe.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace {

using inorder::Pipe;
using inorder::PipeClosed;
using namespace std::chrono_literals;

class PipeTest : public inorder_test::LeakCheck {};

/// Forks a child that runs `body` and _exits with its return value.
template <class F>
pid_t fork_child(F body) {
  const pid_t pid = fork();
  if (pid == 0) {
    int rc = 1;
    try {
      rc = body();
    } catch (...) {
      rc = 99;
    }
    _exit(rc);
  }
  return pid;
}

int wait_child(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct Point3 {
  int x, y, z;
};

TEST_F(PipeTest, CarriesMessagesBothWaysInSendOrder) {
  auto [anchor, point] = Pipe::pair();
  const pid_t child = fork_child([&point = point] {
    for (int i = 0; i < 1000; ++i) {
      const int v = point.recv<int>();
      if (v != i) return 2;
      point.send(std::to_string(v * 2));
    }
    auto m = point.recv<std::map<std::string, std::vector<int>>>();
    point.send(m.at("a").size());
    const auto p = point.recv<Point3>();
    point.send(p.x + p.y + p.z);
    return 0;
  });
  for (int i = 0; i < 1000; ++i) {
    anchor.send(i);
    ASSERT_EQ(anchor.recv<std::string>(), std::to_string(i * 2));
  }
  anchor.send(std::map<std::string, std::vector<int>>{{"a", {1, 2, 3}}});
  EXPECT_EQ(anchor.recv<std::size_t>(), 3u);
  anchor.send(Point3{1, 2, 3});
  EXPECT_EQ(anchor.recv<int>(), 6);
  EXPECT_EQ(wait_child(child), 0);
}

TEST_F(PipeTest, MessagesQueueUpWhileTheReceiverIsBusy) {
  auto [anchor, point] = Pipe::pair();
  for (int i = 0; i < 100; ++i) anchor.send(i);
  const pid_t child = fork_child([&point = point] {
    long sum = 0;
    for (int i = 0; i < 100; ++i) sum += point.recv<int>();
    return sum == 4950 ? 0 : 2;
  });
  EXPECT_EQ(wait_child(child), 0);
}

TEST_F(PipeTest, MessageLargerThanTheRingArrivesWhole) {
  auto [anchor, point] = Pipe::pair(false, 64);
  std::string big(1 << 20, 'x');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  const pid_t child = fork_child([&point = point] {
    const auto s = point.recv<std::string>();
    point.send(s);  // echo: the child's sends stream through the ring too
    return 0;
  });
  anchor.send(big);
  EXPECT_EQ(anchor.recv<std::string>(), big);
  EXPECT_EQ(wait_child(child), 0);
}

TEST_F(PipeTest, TryRecvForReturnsEmptyWhenNothingArrives) {
  auto [anchor, point] = Pipe::pair();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(anchor.try_recv_for<int>(30ms), std::nullopt);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);  // never early
  EXPECT_EQ(point.try_recv<int>(), std::nullopt);
  point.send(7);
  EXPECT_EQ(anchor.try_recv_for<int>(1s), 7);
  EXPECT_THROW((void)anchor.try_recv_for<int>(-1ms), std::invalid_argument);
}

TEST_F(PipeTest, OneWayPipeOnlyLetsTheAnchorSend) {
  auto [anchor, point] = Pipe::pair(true);
  EXPECT_THROW(point.send(1), std::logic_error);
  EXPECT_THROW((void)anchor.try_recv<int>(), std::logic_error);
  const pid_t child = fork_child([&point = point] { return point.recv<int>() == 5 ? 0 : 2; });
  anchor.send(5);
  EXPECT_EQ(wait_child(child), 0);
}

TEST_F(PipeTest, RecvThrowsOnceTheChildExitedAndItsMessagesAreConsumed) {
  auto [anchor, point] = Pipe::pair();
  const pid_t child = fork_child([&point = point] {
    point.send(1);
    point.send(2);
    return 0;  // _exit without closing: the parent must notice the process is gone
  });
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_EQ(anchor.recv<int>(), 1);
  EXPECT_EQ(anchor.recv<int>(), 2);
  EXPECT_THROW((void)anchor.recv<int>(), PipeClosed);
  EXPECT_THROW((void)anchor.try_recv_for<int>(10s), PipeClosed);
  EXPECT_FALSE(anchor.peer_alive());
}

TEST_F(PipeTest, ChildWaitingForAClosedAnchorGetsPipeClosed) {
  auto [anchor, point] = Pipe::pair();
  inorder_test::SharedBlock<std::atomic<int>> ready;
  const pid_t child = fork_child([&point = point, &ready] {
    point.claim();
    ready->store(1);
    try {
      (void)point.recv<int>();
    } catch (const PipeClosed&) {
      return 0;
    }
    return 2;
  });
  ASSERT_TRUE(inorder_test::wait_until([&] { return ready->load() == 1; }));
  anchor.close();
  EXPECT_EQ(wait_child(child), 0);
}

TEST_F(PipeTest, SenderBlockedOnAFullRingGetsPipeClosedWhenTheReceiverDies) {
  auto [anchor, point] = Pipe::pair(false, 64);
  const pid_t child = fork_child([&point = point] {
    point.claim();
    return 0;  // never reads
  });
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_THROW(anchor.send(std::string(4096, 'x')), PipeClosed);
}

TEST_F(PipeTest, AWaitingRecvDoesNotHangWhenThePeerIsKilled) {
  auto [anchor, point] = Pipe::pair();
  const pid_t child = fork_child([&point = point] {
    point.send(1);
    for (;;) pause();
    return 0;
  });
  EXPECT_EQ(anchor.recv<int>(), 1);
  kill(child, SIGKILL);
  EXPECT_THROW((void)anchor.recv<int>(), PipeClosed);
  EXPECT_EQ(wait_child(child), 128 + SIGKILL);
}

TEST_F(PipeTest, RejectsATinyCapacity) {
  EXPECT_THROW((void)Pipe::pair(false, 8), std::invalid_argument);
}

}  // namespace
