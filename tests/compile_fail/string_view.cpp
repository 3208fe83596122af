// Must NOT compile: a std::string_view is trivially copyable, but it points into the
// sender's memory, so inorder refuses it with a message that names the replacement.
#include <string_view>

#include "inorder/codec.hpp"

static_assert(!inorder::Encodable<std::string_view>, "checking the concept alone must not fail");

int main() {
  const std::string_view word = "dangling in the worker";
  return static_cast<int>(inorder::encoded_size(word));
}
