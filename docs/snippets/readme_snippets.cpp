// The C++ blocks of README.md (other than the quickstart, which is
// examples/quickstart.cpp), run with their results checked.
#include <inorder/inorder.hpp>

#include <cstddef>
#include <ranges>
#include <string>
#include <vector>

#include "snippet_check.hpp"

namespace {

// What the README's `use(r)` stands for: here, a running sum and count.
long long used_sum = 0;
std::size_t used_count = 0;
void use(int r) {
  used_sum += r;
  ++used_count;
}

void pool_section(snippets::Checker& check) {
  inorder::Pool<int> pool({.workers = 2});
  std::vector<int> squares = pool.map([](int x) { return x * x; }, std::views::iota(0, 1000));
  for (int r : pool.imap([](int x) { return x + 1; }, std::views::iota(0, 1'000'000))) use(r);

  bool squares_ok = squares.size() == 1000;
  for (std::size_t i = 0; squares_ok && i < squares.size(); ++i)
    squares_ok = squares[i] == static_cast<int>(i * i);
  check.expect(squares_ok, "map over iota(0, 1000) gives the squares in input order");
  check.expect(used_count == 1'000'000, "imap delivers all million results");
  check.expect(used_sum == 1'000'000LL * 1'000'001LL / 2, "imap results are x + 1");
}

}  // namespace

int main() {
  snippets::Checker check("readme_snippets");
  check.run("Pool", [&] { pool_section(check); });
  return check.exit_code();
}
