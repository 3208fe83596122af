// bench/pool_overhead.cpp: per-item overhead of Pool::map over tiny items.
// Run through bench/pool_overhead.sh, which runs Python's
// multiprocessing.Pool.map on the same item count in the same run.
// usage: inorder-pool-overhead [items=200000] [workers=2]
#include <inorder/inorder.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ranges>
#include <vector>

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 200000;
  const unsigned workers = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 2;
  inorder::Pool<int> pool({.workers = workers});
  std::vector<double> us_per_item;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<int> out = pool.map([](int x) { return x + 1; }, std::views::iota(0, n));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (out.size() != static_cast<std::size_t>(n) || out.back() != n) return 1;
    us_per_item.push_back(s * 1e6 / n);
  }
  std::sort(us_per_item.begin(), us_per_item.end());
  std::printf("inorder Pool<int>::map, %d items, %u workers: median %.3f us/item (5 runs)\n", n,
              workers, us_per_item[2]);
}
