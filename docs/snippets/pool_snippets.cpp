// The C++ blocks of docs/pool.md, run with their results checked. Each block
// sits in a namespace of its own, with the small functions it names (`f`,
// `use`, `report`, `Model`, ...) defined there.
#include <inorder/inorder.hpp>

#include <algorithm>
#include <chrono>
#include <coroutine>
#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <future>
#include <map>
#include <memory>
#include <ranges>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "snippet_check.hpp"

namespace {

using snippets::Checker;

std::vector<int> sorted(std::vector<int> v) {
  std::sort(v.begin(), v.end());
  return v;
}

namespace intro {

void run(Checker& check) {
  const std::vector<int> items{3, 1, 4, 1, 5};
  inorder::Pool<int> pool({.workers = 4});
  std::vector<int> squares = pool.map([](int x) { return x * x; }, items);
  check.expect(squares == std::vector<int>{9, 1, 16, 1, 25}, "intro: squares in input order");
}

}  // namespace intro

namespace map_call {

void run(Checker& check) {
  inorder::Pool<std::string> pool({.workers = 2});
  std::vector<std::string> out =
      pool.map([](int n) { return std::to_string(n * n); }, std::vector<int>{1, 2, 3});
  // out == {"1", "4", "9"}, whichever worker finished first
  check.expect(out == std::vector<std::string>{"1", "4", "9"}, "map: {\"1\", \"4\", \"9\"}");
}

}  // namespace map_call

namespace unordered_map_call {

// The first item takes longer than the others.
int slow_or_fast(int x) {
  if (x == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return x * 10;
}

void run(Checker& check) {
  const std::vector<int> items{0, 1, 2, 3, 4, 5};
  inorder::Pool<int> pool({.workers = 2});
  std::vector<int> out = pool.unordered_map(slow_or_fast, items);  // fastest first
  check.expect(sorted(out) == std::vector<int>{0, 10, 20, 30, 40, 50},
               "unordered_map: every result once, in some order");
}

}  // namespace unordered_map_call

namespace imap_call {

void run(Checker& check) {
  inorder::Pool<long> pool({.workers = 2});
  long total = 0;
  for (long v : pool.imap([](long i) { return i * 2; }, std::views::iota(0L, 1'000'000L)))
    total += v;
  check.expect(total == 1'000'000L * 999'999L, "imap: the sum of 2i over a million items");
}

}  // namespace imap_call

namespace imap_take {

int f(int x) { return x + 100; }
std::vector<int> used;
void use(int v) { used.push_back(v); }

void run(Checker& check) {
  inorder::Pool<int> pool({.workers = 2});
  auto huge_input = std::views::iota(0);  // no end: only what is consumed is put
  for (int v : pool.imap(f, huge_input) | std::views::take(3)) use(v);
  check.expect(used == std::vector<int>{100, 101, 102}, "imap | take(3): the first three");
  const std::vector<int> again = pool.map(f, std::vector<int>{7});
  check.expect(again == std::vector<int>{107}, "the pool takes the next call after take(3)");
}

}  // namespace imap_take

namespace unordered_imap_call {

int f(int x) { return x * x; }

void run(Checker& check) {
  const std::vector<int> items{1, 2, 3};
  inorder::Pool<int> pool({.workers = 2});
  const std::string printed = snippets::capture_stdout([&] {
    auto results = pool.unordered_imap(f, items);
    for (auto it = results.begin(); it != results.end(); ++it)
      std::printf("item %zu -> %d\n", it.index(), *it);
  });
  std::set<std::string> lines;
  for (std::size_t start = 0, end = 0; (end = printed.find('\n', start)) != std::string::npos;
       start = end + 1)
    lines.insert(printed.substr(start, end - start));
  check.expect(lines == std::set<std::string>{"item 0 -> 1", "item 1 -> 4", "item 2 -> 9"},
               "unordered_imap: each item once, with its input index");
}

}  // namespace unordered_imap_call

namespace star_modifier {

void run(Checker& check) {
  inorder::Pool<std::string> pool({.workers = 2});
  std::vector<std::pair<int, std::string>> items{{1, "a"}, {2, "b"}};
  auto out = pool.star().map([](int n, const std::string& s) { return s + std::to_string(n); },
                             items);  // {"a1", "b2"}
  check.expect(out == std::vector<std::string>{"a1", "b2"}, "star: {\"a1\", \"b2\"}");
}

}  // namespace star_modifier

namespace timeout_modifier {

// Item 2 never finishes on its own: the time limit ends it.
int f(int x) {
  if (x == 2) std::this_thread::sleep_for(std::chrono::seconds(20));
  return x;
}

void run(Checker& check) {
  const std::vector<int> items{0, 1, 2, 3};
  inorder::Pool<int> pool({.workers = 2});
  const std::string printed = snippets::capture_stdout([&] {
    try {
      auto out = pool.timeout(std::chrono::milliseconds(200)).map(f, items);
    } catch (const inorder::ItemError& e) {
      if (e.timed_out()) std::printf("item %zu took too long\n", e.index());
    }
  });
  check.expect(printed == "item 2 took too long\n", "timeout: item 2 is reported as too slow");
  check.expect(pool.stats().restarts == 1, "timeout: the worker that ran item 2 was replaced");
}

}  // namespace timeout_modifier

namespace background_modifier {

int f(int x) { return -x; }
int other_work_done = 0;
void do_other_work() { ++other_work_done; }

void run(Checker& check) {
  const std::vector<int> items{1, 2, 3};
  inorder::Pool<int> pool({.workers = 2});
  std::future<std::vector<int>> later = pool.background().map(f, items);
  do_other_work();
  std::vector<int> out = later.get();  // rethrows the call's error
  check.expect(out == std::vector<int>{-1, -2, -3}, "background: the future holds the results");
  check.expect(other_work_done == 1, "background: the caller went on meanwhile");
}

}  // namespace background_modifier

namespace asynced_modifier {

// An eager coroutine type: it runs at once, and get() waits for its co_return.
template <class T>
class MyTask {
 public:
  struct promise_type {
    std::promise<T> outcome;
    MyTask get_return_object() { return MyTask(outcome.get_future()); }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_value(T value) { outcome.set_value(std::move(value)); }
    void unhandled_exception() { outcome.set_exception(std::current_exception()); }
  };

  T get() { return result_.get(); }

 private:
  explicit MyTask(std::future<T> result) : result_(std::move(result)) {}
  std::future<T> result_;
};

int f(int x) { return x + 1; }

MyTask<std::vector<int>> compute(inorder::Pool<int>& pool, std::vector<int> items) {
  std::vector<int> out = co_await pool.asynced().map(f, items);
  co_return out;
}

void run(Checker& check) {
  inorder::Pool<int> pool({.workers = 2});
  MyTask<std::vector<int>> task = compute(pool, {10, 20, 30});
  check.expect(task.get() == std::vector<int>{11, 21, 31}, "asynced: co_await yields the vector");
}

}  // namespace asynced_modifier

namespace progress_modifier {

int f(int x) { return 2 * x; }

// What the page's `log(...)` stands for: keeps the last line and a count.
std::string last_line;
std::size_t lines_logged = 0;
[[gnu::format(printf, 1, 2)]] void log(const char* format, ...) {
  char line[128];
  std::va_list args;
  va_start(args, format);
  std::vsnprintf(line, sizeof line, format, args);
  va_end(args);
  last_line = line;
  ++lines_logged;
}

void run(Checker& check) {
  const std::vector<int> items{1, 2, 3, 4, 5};
  inorder::Pool<int> pool({.workers = 2});
  // As the page shows it:
  // clang-format off
  auto out = pool.progress().map(f, items);  // "1234/5000 items (25%)  410.2/s  ETA 9.2s"
  auto out2 = pool.progress([](std::size_t done, std::size_t total) {
    log("%zu of %zu", done, total);
  }).map(f, items);
  // clang-format on
  const std::vector<int> doubled{2, 4, 6, 8, 10};
  check.expect(out == doubled && out2 == doubled, "progress: the results are unchanged");
  check.expect(lines_logged == items.size(), "progress(callback): called once per item");
  check.expect(last_line == "5 of 5", "progress(callback): (done, total) ends at (5, 5)");
}

}  // namespace progress_modifier

namespace map_errors {

int f(int x) {
  if (x == 3) throw std::out_of_range("no entry 3");
  return x;
}

// The block calls each accessor only to show it, so their [[nodiscard]]
// results go unused.
void run(Checker& check) {
  const std::vector<int> items{0, 1, 2, 3, 4, 5};
  inorder::Pool<int> pool({.workers = 2});
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-result"
  try {
    auto out = pool.map(f, items);
  } catch (const inorder::ItemError& e) {
    e.index();      // position of the failed item in the input, from 0
    e.type_name();  // "std::out_of_range", or "inorder::WorkerCrashed", "inorder::TaskTimeout"
    e.message();    // what() of the original exception
    e.kind();       // ItemError::Kind::kThrew, kCrashed or kTimedOut
    e.crashed();    // the worker died running it (a signal, abort, exit)
    e.timed_out();  // it ran past its time limit
    e.what();       // "item 3: task failed in worker 4242: std::out_of_range: ..."
  }
#pragma GCC diagnostic pop

  // What the comments above say, checked on the same call.
  try {
    (void)pool.map(f, items);
    check.expect(false, "map throws the item's failure");
  } catch (const inorder::ItemError& e) {
    check.expect(e.index() == 3, "index() is the failed item's position");
    check.expect(e.type_name() == "std::out_of_range", "type_name() is the task's type");
    check.expect(e.message() == "no entry 3", "message() is the task's what()");
    check.expect(e.kind() == inorder::ItemError::Kind::kThrew && !e.crashed() && !e.timed_out(),
                 "kind() is kThrew for a task that threw");
    const std::string what = e.what();
    check.expect(what == "item 3: task failed in worker " + std::to_string(e.worker_pid()) +
                             ": std::out_of_range: no entry 3",
                 "what() starts with the item's index");
  }
  check.expect(pool.map(f, std::vector<int>{1}) == std::vector<int>{1},
               "the pool is ready for the next call");
}

}  // namespace map_errors

namespace imap_errors {

int f(int x) {
  if (x == 1) throw std::runtime_error("one");
  return x;
}
std::vector<int> used;
void use(int v) { used.push_back(v); }
std::vector<std::size_t> reported;
void report(std::size_t index, const char* what) {
  reported.push_back(index);
  std::fprintf(stderr, "expected failure: %s\n", what);
}

void run(Checker& check) {
  const std::vector<int> items{0, 1, 2};
  inorder::Pool<int> pool({.workers = 2});
  auto results = pool.imap(f, items);
  for (auto it = results.begin(); it != results.end(); ++it) {
    try {
      use(*it);
    } catch (const inorder::ItemError& e) {
      report(e.index(), e.what());
    }
  }
  check.expect(used == std::vector<int>{0, 2}, "imap: the items around the failure are used");
  check.expect(reported == std::vector<std::size_t>{1}, "imap: item 1 is reported at its place");
}

}  // namespace imap_errors

namespace map_settled_call {

// Parses a number; throws std::invalid_argument for text that is not one.
int parse(const std::string& text) { return std::stoi(text); }
std::vector<std::string> lines;
void print(const char* format, ...) {
  va_list args;
  va_start(args, format);
  char buffer[256];
  std::vsnprintf(buffer, sizeof buffer, format, args);
  va_end(args);
  lines.emplace_back(buffer);
}

void run(Checker& check) {
  inorder::Pool<int> pool({.workers = 2});
  const std::vector<std::string> texts{"12", "x", "30"};
  std::vector<inorder::Settled<int>> out = pool.map_settled(parse, texts);
  for (const inorder::Settled<int>& item : out) {
    if (item.ok())
      print("%d", item.value());
    else
      print("item %zu failed: %s", item.error().index(), item.error().type_name().c_str());
  }
  // prints 12, "item 1 failed: std::invalid_argument", 30
  check.expect(
      lines == std::vector<std::string>{"12", "item 1 failed: std::invalid_argument", "30"},
      "map_settled: every value and the one error, in input order");
}

}  // namespace map_settled_call

namespace worker_init_state {

// A stand-in for a model loaded from a file: it keeps the file's name and
// scores a text by its length.
class Model {
 public:
  explicit Model(std::string path) : path_(std::move(path)) {}
  [[nodiscard]] float score(const std::string& text) const {
    return path_ == "weights.bin" ? 0.5F * static_cast<float>(text.size()) : -1.0F;
  }

 private:
  std::string path_;
};

// As the page shows it:
// clang-format off
Model* model = nullptr;  // at namespace scope; each worker sets its own copy

void run(Checker& check) {
  const std::vector<std::string> texts{"ab", "abcd", ""};
  inorder::Pool<float> pool({.workers = 4, .worker_init = [](unsigned) {
    model = new Model("weights.bin");  // opened in the worker, never sent
  }});
  auto scores = pool.map([](const std::string& text) { return model->score(text); }, texts);
  // clang-format on
  check.expect(scores == std::vector<float>{1.0F, 2.0F, 0.0F}, "worker_init: each worker's model");
  check.expect(model == nullptr, "worker_init: this process's copy stays unset");
}

}  // namespace worker_init_state

namespace fixed_state {

std::map<std::string, int> load_table() { return {{"one", 1}, {"two", 2}, {"three", 3}}; }

void run(Checker& check) {
  const std::vector<std::string> keys{"three", "one", "two"};
  const auto table = std::make_unique<const std::map<std::string, int>>(load_table());
  inorder::Pool<int> pool({.workers = 2});  // forked after the table exists
  auto values = pool.map([t = table.get()](const std::string& key) { return t->at(key); }, keys);
  check.expect(values == std::vector<int>{3, 1, 2}, "the workers read the inherited table");
}

}  // namespace fixed_state

}  // namespace

int main() {
  Checker check("pool_snippets");
  check.run("intro", [&] { intro::run(check); });
  check.run("map", [&] { map_call::run(check); });
  check.run("unordered_map", [&] { unordered_map_call::run(check); });
  check.run("imap", [&] { imap_call::run(check); });
  check.run("imap | take", [&] { imap_take::run(check); });
  check.run("unordered_imap", [&] { unordered_imap_call::run(check); });
  check.run("star", [&] { star_modifier::run(check); });
  check.run("timeout", [&] { timeout_modifier::run(check); });
  check.run("background", [&] { background_modifier::run(check); });
  check.run("asynced", [&] { asynced_modifier::run(check); });
  check.run("progress", [&] { progress_modifier::run(check); });
  check.run("map errors", [&] { map_errors::run(check); });
  check.run("imap errors", [&] { imap_errors::run(check); });
  check.run("map_settled", [&] { map_settled_call::run(check); });
  check.run("worker_init", [&] { worker_init_state::run(check); });
  check.run("fixed state", [&] { fixed_state::run(check); });
  return check.exit_code();
}
