// Must NOT compile: put() with a std::string_view argument. The user has to read
// the codec's message for string_view (send std::string instead), not only that
// the argument is not encodable.
#include <inorder/parallel_queue.hpp>

#include <string_view>

int main() {
  inorder::ParallelQueue<std::size_t> queue({.workers = 1});
  const std::string_view word = "dangling in the worker";
  queue.put([](std::string_view w) { return w.size(); }, word);
}
