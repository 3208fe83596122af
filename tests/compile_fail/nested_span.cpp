// Must NOT compile: the span is nested inside standard containers; the message must
// still name the span's problem, not just "the map cannot be encoded".
#include <map>
#include <span>
#include <vector>

#include "inorder/codec.hpp"

int main() {
  static const int numbers[] = {1, 2, 3};
  const std::map<int, std::vector<std::span<const int>>> table{{1, {std::span(numbers)}}};
  inorder::Writer counter;
  inorder::encode(counter, table);
  return static_cast<int>(counter.size());
}
