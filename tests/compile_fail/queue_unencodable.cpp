// Must NOT compile: ParallelQueue<R> with an R that is neither trivially
// copyable nor hooked. The message must name the inorder::codec<T> hook.
#include <inorder/parallel_queue.hpp>

#include <string>

struct Label {
  std::string text;
  int weight = 0;
};

int main() {
  inorder::ParallelQueue<Label> queue({.workers = 1});
  return queue.exhausted() ? 1 : 0;
}
