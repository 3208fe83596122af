// Must NOT compile: the string_view is nested in a put() argument; the message
// must still be the one for string_view.
#include <inorder/parallel_queue.hpp>

#include <map>
#include <string_view>
#include <vector>

using Table = std::map<int, std::vector<std::string_view>>;

int main() {
  inorder::ParallelQueue<std::size_t> queue({.workers = 1});
  const Table table{{1, {"dangling"}}};
  queue.put([](const Table& t) { return t.size(); }, table);
}
