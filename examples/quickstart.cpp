// The first program from the README: square numbers in worker processes and
// print them in the order they were put, whichever worker finished first.
#include <inorder/inorder.hpp>

#include <cstdio>
#include <string>

int main() {
  inorder::ParallelQueue<std::string> queue({.workers = 2});

  for (int i = 1; i <= 5; ++i)
    queue.put([](int n) { return std::to_string(n) + "^2 = " + std::to_string(n * n); }, i);
  queue.put(std::string("done"));  // a value, passed through in order
  queue.stop();                    // no more input; everything put is delivered

  while (auto line = queue.get())  // std::nullopt at the end of the stream
    std::printf("%s\n", line->c_str());
}
