// The C++ blocks of docs/parallel_queue.md, run with their results checked.
#include <inorder/inorder.hpp>

#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "snippet_check.hpp"

namespace {

// "A pipeline in twelve lines": the squares come out in put order.
void pipeline(snippets::Checker& check) {
  const std::string printed = snippets::capture_stdout([] {
    // As the page shows it:
    // clang-format off
    inorder::ParallelQueue<std::string> queue({.workers = 2});

    std::thread producer([&] {
      for (int i = 0; i < 1000; ++i)
        queue.put([](int n) { return std::to_string(n * n); }, i);
      queue.stop();  // no more input; everything put is still delivered
    });
    while (auto square = queue.get())  // std::nullopt at end of stream
      std::puts(square->c_str());
    producer.join();
    // clang-format on
  });
  std::string expected;
  for (int i = 0; i < 1000; ++i) expected += std::to_string(i * i) + "\n";
  check.expect(printed == expected, "the pipeline prints 0, 1, 4, ..., 998001 in put order");
}

// "Options": designated initializers, the rest at their defaults.
void options(snippets::Checker& check) {
  inorder::ParallelQueue<int> q({.workers = 4, .window = 64, .inline_bytes = 512});
  const inorder::Stats stats = q.stats();
  check.expect(stats.workers.size() == 4, "Options::workers = 4 forks four workers");
  check.expect(stats.window == 64, "Options::window = 64 is the effective window");
  check.expect(stats.capacity == 128, "capacity defaults to max(64, 2 x window)");
}

// What the page's `load_table()` and `use(*v)` stand for.
std::map<std::string, int> load_table() { return {{"alpha", 1}, {"beta", 2}, {"gamma", 3}}; }
std::vector<int> used;
void use(int v) { used.push_back(v); }

// "SingleTaskQueue": the task captures a table that could not be encoded.
void single_task_queue(snippets::Checker& check) {
  // As the page shows it:
  // clang-format off
  std::map<std::string, int> table = load_table();   // anything, not encodable is fine
  inorder::SingleTaskQueue<int, std::string> q(
      [table](const std::string& key) { return table.at(key); }, {.workers = 2});
  q.put("alpha");
  q.put("beta");
  q.stop();
  while (auto v = q.get()) use(*v);
  // clang-format on

  check.expect(used == std::vector<int>{1, 2}, "the task looks up alpha, beta in put order");
}

// "Put everything, then get everything": the reference design's loop, from
// one thread, far past the ring's capacity (the pending stage).
std::vector<long> results;
void use(long v) { results.push_back(v); }

void put_all_then_get(snippets::Checker& check) {
  // As the page shows it:
  // clang-format off
  inorder::ParallelQueue<long> q({.workers = 2});
  for (long i = 0; i < 1'000'000; ++i) q.put([](long x) { return 2 * x; }, i);
  q.stop();
  while (auto r = q.get()) use(*r);
  // clang-format on

  bool in_order = results.size() == 1'000'000;
  for (std::size_t i = 0; in_order && i < results.size(); ++i)
    in_order = results[i] == 2 * static_cast<long>(i);
  check.expect(in_order, "a million puts, then a million gets, in put order");
}

}  // namespace

int main() {
  snippets::Checker check("parallel_queue_snippets");
  check.run("pipeline", [&] { pipeline(check); });
  check.run("options", [&] { options(check); });
  check.run("single_task_queue", [&] { single_task_queue(check); });
  check.run("put_all_then_get", [&] { put_all_then_get(check); });
  return check.exit_code();
}
