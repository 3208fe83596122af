// A consumer of the installed libinorder-mpi: squares on two ranks, in order.
#include <inorder/mpi.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  inorder::mpi::Session mpi(argc, argv, {.workers_per_rank = 1});
  if (!mpi.is_root()) return mpi.serve();
  inorder::mpi::ParallelQueue<int> q(mpi);
  for (int i = 0; i < 10; ++i) q.put([](int x) { return x * x; }, i);
  q.stop();
  int expect = 0, sum = 0;
  while (auto r = q.get()) {
    if (*r != expect * expect) return 1;
    sum += *r;
    ++expect;
  }
  std::printf("sum of squares on %d ranks: %d\n", mpi.size(), sum);
  return 0;
}
