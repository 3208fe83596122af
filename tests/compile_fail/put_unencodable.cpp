// Must NOT compile: put() with an argument of a type that is neither trivially
// copyable nor hooked. The message must say how to make it encodable.
#include <inorder/parallel_queue.hpp>

#include <string>

struct Label {
  std::string text;
  int weight = 0;
};

int main() {
  inorder::ParallelQueue<int> queue({.workers = 1});
  queue.put([](const Label& label) { return label.weight; }, Label{"x", 1});
}
