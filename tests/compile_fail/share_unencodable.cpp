// Must NOT compile: a Share value of a type the codec cannot encode has to stop
// at the Share's static_assert, which says why and where to look.
#include <string>

#include "inorder/share.hpp"

struct Label {
  std::string text;
  int weight = 0;
};

int main() {
  inorder::Share share;
  auto v = share.value<Label>("label");
  return v.get().weight;
}
