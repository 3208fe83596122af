// Must NOT compile: ParallelQueue<R> with R = std::string_view. The message must
// say that string_view holds a pointer and to use std::string.
#include <inorder/parallel_queue.hpp>

#include <string_view>

int main() {
  inorder::ParallelQueue<std::string_view> queue({.workers = 1});
  return queue.exhausted() ? 1 : 0;
}
