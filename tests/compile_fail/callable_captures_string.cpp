// Must not compile: the lambda captures a std::string, so its bytes cannot be
// copied to a worker process. inorder says to pass the string as an argument.
#include <inorder/parallel_queue.hpp>

#include <string>

int main() {
  inorder::ParallelQueue<std::size_t> q({.workers = 1});
  std::string text = "hello";
  q.put([text] { return text.size(); });
}
