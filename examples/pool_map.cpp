// Pool::map: count the primes below each limit in worker processes; the
// results come back in the order of the limits, whichever finished first.
#include <inorder/inorder.hpp>

#include <cstdio>
#include <vector>

int count_primes(int limit) {
  int count = 0;
  for (int n = 2; n < limit; ++n) {
    bool prime = true;
    for (int d = 2; d * d <= n && prime; ++d) prime = n % d != 0;
    count += prime ? 1 : 0;
  }
  return count;
}

int main() {
  inorder::Pool<int> pool({.workers = 2});  // workers forked once, reused by every call
  const std::vector<int> limits{100'000, 10, 50'000, 1'000, 20'000};
  const std::vector<int> counts = pool.map(count_primes, limits);
  for (std::size_t i = 0; i < limits.size(); ++i)
    std::printf("primes below %d: %d\n", limits[i], counts[i]);
}
