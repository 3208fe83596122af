// Must NOT compile: Pool::map over std::string_view items. The items reach the
// workers through put(), and the message must be the one for string_view.
#include <inorder/pool.hpp>

#include <string_view>
#include <vector>

int main() {
  inorder::Pool<std::size_t> pool({.workers = 1});
  const std::vector<std::string_view> words{"dangling"};
  const auto sizes = pool.map([](std::string_view w) { return w.size(); }, words);
  return static_cast<int>(sizes.size());
}
