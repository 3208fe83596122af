// Must not compile: a lambda that captures runs in another process, maybe on
// another host, where its captured state does not exist. The error must say so.
#include "inorder/mpi.hpp"

void use(inorder::mpi::Session& session) {
  inorder::mpi::ParallelQueue<int> q(session);
  const int offset = 3;
  q.put([offset](int x) { return x + offset; }, 1);
}
