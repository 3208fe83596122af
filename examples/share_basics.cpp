// Share: a counter, a log, a list and a value kept up to date by the workers
// of a Pool, read by the parent afterwards. The Share is made before the Pool,
// so every worker inherits its arena; the task captures the handles (and a
// pointer to the Share, for transactions) by value.
#include <inorder/inorder.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

int main() {
  inorder::Share share;  // first: workers forked after it see the same state
  auto runs = share.counter<long>("runs");
  auto progress = share.log("progress");
  auto seen = share.list<int>("seen");
  auto best = share.value<std::pair<int, int>>("best", {-1, 0});  // (score, item)
  inorder::Share* shared = &share;

  inorder::Pool<int> pool({.workers = 4});
  std::vector<int> items;
  for (int i = 1; i <= 40; ++i) items.push_back(i);

  const std::vector<int> scores = pool.map(
      [=](int item) {
        const int score = (item * 37) % 101;
        seen.push_back(item);
        best.update([&](std::pair<int, int>& b) {  // read-modify-write, atomically
          if (score > b.first) b = {score, item};
        });
        // One transaction: no other worker's increment or log line can come
        // between this increment and its log line, so the log reads 1, 2, 3...
        shared->transaction([&] {
          const long n = ++runs;
          progress.info("run " + std::to_string(n) + ": item " + std::to_string(item));
        });
        return score;
      },
      items);

  const auto [score, item] = best.get();
  std::printf("runs: %ld, items seen: %zu, best: item %d (score %d)\n", runs.load(), seen.size(),
              item, score);
  const std::vector<std::string> lines = progress.messages();
  std::printf("first log line: %s\nlast log line:  %s\n", lines.front().c_str(),
              lines.back().c_str());

  // Checks, so that this example also serves as a test.
  bool ok = runs.load() == 40 && seen.size() == 40 && lines.size() == 40;
  for (std::size_t i = 0; i < lines.size(); ++i)
    ok = ok && lines[i].rfind("run " + std::to_string(i + 1) + ":", 0) == 0;
  int want = -1;
  for (int s : scores) want = std::max(want, s);
  ok = ok && score == want;
  std::printf("%s\n", ok ? "ok" : "MISMATCH");
  return ok ? 0 : 1;
}
