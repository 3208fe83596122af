// bench/pool_overhead.cpp: per-item overhead of Pool::map over tiny items,
// with the default (automatic) chunking and with one task per item
// (.chunksize(1)). Run through bench/pool_overhead.sh, which runs Python's
// multiprocessing.Pool.map on the same item count in the same run.
// usage: inorder-pool-overhead [items=200000] [workers=2]
// Prints one line per form; the last field of each is its median us/item,
// which pool_overhead.sh reads.
#include <inorder/inorder.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ranges>
#include <vector>

namespace {

/// Median us/item of 5 runs of `p.map(x + 1)` over 0..n-1 (p: a Pool or a
/// PoolView); -1 on a wrong result.
template <class P>
double median_us_per_item(P& p, int n) {
  std::vector<double> us_per_item;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<int> out = p.map([](int x) { return x + 1; }, std::views::iota(0, n));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (out.size() != static_cast<std::size_t>(n) || out.back() != n) return -1;
    us_per_item.push_back(s * 1e6 / n);
  }
  std::sort(us_per_item.begin(), us_per_item.end());
  return us_per_item[2];
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 200000;
  const unsigned workers = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 2;
  inorder::Pool<int> pool({.workers = workers});
  const double automatic = median_us_per_item(pool, n);
  auto one_per_task = pool.chunksize(1);
  const double one = median_us_per_item(one_per_task, n);
  if (automatic < 0 || one < 0) return 1;
  std::printf(
      "inorder Pool<int>::map default chunking, %d items, %u workers: median %.3f us/item "
      "(5 runs)\n",
      n, workers, automatic);
  std::printf(
      "inorder Pool<int>::map chunksize=1, %d items, %u workers: median %.3f us/item "
      "(5 runs)\n",
      n, workers, one);
}
