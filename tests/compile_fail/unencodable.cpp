// Must NOT compile: Label is neither trivially copyable nor hooked, so encoding it has
// to stop at inorder's static_assert that says how to fix it.
#include <string>
#include <vector>

#include "inorder/codec.hpp"

struct Label {
  std::string text;
  int weight = 0;
};

static_assert(!inorder::Encodable<Label>, "checking the concept alone must not fail to compile");

int main() {
  const std::vector<std::byte> bytes = inorder::encode_to_vector(Label{"x", 1});
  return static_cast<int>(bytes.size());
}
