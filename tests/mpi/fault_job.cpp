// tests/mpi/fault_job.cpp: MPI jobs that end badly on purpose, driven by
// tests/mpi/run.sh, which checks how and how fast they end.
//
//   fault_job busy       every rank writes its pid to $INORDER_MPI_TEST_DIR/rank<N>.pid;
//                        rank 0 deals short tasks forever and prints "ready" once every
//                        rank has answered; run.sh then SIGKILLs or SIGSTOPs rank 2.
//                        The heartbeat bound is 2 s.
//   fault_job mismatch   a normal job; run.sh starts it MPMD next to fault_job_variant,
//                        the same source built with another INORDER_TEST_VARIANT, which
//                        the start-up check must refuse.
#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "inorder/mpi.hpp"

#ifndef INORDER_TEST_VARIANT
#define INORDER_TEST_VARIANT 1
#endif

namespace {

int tick(int i) {
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return i + 1;
}

int busy(inorder::mpi::Session& s) {
  if (const char* dir = std::getenv("INORDER_MPI_TEST_DIR")) {
    std::ofstream(std::string(dir) + "/rank" + std::to_string(s.rank()) + ".pid")
        << getpid() << "\n";
  }
  if (!s.is_root()) return s.serve();
  inorder::mpi::ParallelQueue<int> q(s);
  bool ready = false;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int i = 0;
  while (std::chrono::steady_clock::now() < give_up) {
    q.put(tick, i);
    if (i++ > 16) (void)q.get();
    if (!ready && i % 64 == 0) {
      bool all = true;
      for (const auto& r : q.stats().ranks) all = all && r.completed > 0;
      if (all) {
        std::printf("ready\n");
        std::fflush(stdout);
        ready = true;
      }
    }
  }
  std::printf("rank 0 gave up waiting for the fault\n");
  return 3;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  inorder::mpi::Session session(
      argc, argv, {.workers_per_rank = 1, .heartbeat_timeout = std::chrono::milliseconds(2000)});
  if (mode == "busy") return busy(session);
  if (!session.is_root()) return session.serve();
  std::printf("variant %d: the job started, which it must not\n", INORDER_TEST_VARIANT);
  return 0;
}
