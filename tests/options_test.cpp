// tests/options_test.cpp: the defaults the docs state in prose are the library's.
//
// docs/parallel_queue.md's Options table is read and every row is compared
// with a default-constructed inorder::Options; the window and capacity rules,
// which depend on the worker count, are compared with what stats() reports for
// several counts. The sentences of docs/pool.md and README.md that state the
// same defaults are checked the same way. A row or sentence that drifts from
// the library, or a field of the table this test does not know, fails here.
#include <gtest/gtest.h>
#include <inorder/inorder.hpp>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstddef>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

#ifndef INORDER_SOURCE_ROOT
#error "tests/meson.build defines INORDER_SOURCE_ROOT, where the docs are read from"
#endif

namespace {

class OptionsTest : public inorder_test::LeakCheck {};

std::string read_page(const std::string& relative) {
  std::ifstream in(std::string(INORDER_SOURCE_ROOT) + "/" + relative);
  EXPECT_TRUE(in.good()) << "cannot read " << relative;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> split(const std::string& s, const std::string& by) {
  std::vector<std::string> out;
  std::size_t from = 0;
  for (std::size_t at; (at = s.find(by, from)) != std::string::npos; from = at + by.size())
    out.push_back(s.substr(from, at - from));
  out.push_back(s.substr(from));
  return out;
}

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(' ');
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(' ') - first + 1);
}

/// The "| field | default | meaning |" rows of the page's "## Options" section,
/// as field name -> default cell. A row naming several fields ("`a`, `b`")
/// with a default per field ("1, 2") gives one entry per field.
std::map<std::string, std::string> options_table(const std::string& page) {
  std::map<std::string, std::string> rows;
  const std::size_t section = page.find("\n## Options\n");
  EXPECT_NE(section, std::string::npos) << "no '## Options' section";
  if (section == std::string::npos) return rows;
  const std::size_t end = page.find("\n## ", section + 1);
  std::istringstream lines(page.substr(section, end - section));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("| `", 0) != 0) continue;
    const std::vector<std::string> cells = split(line, " | ");
    if (cells.size() < 3) continue;
    const std::vector<std::string> names = split(cells[0].substr(2), ", ");
    const std::vector<std::string> defaults =
        names.size() == 1 ? std::vector<std::string>{cells[1]} : split(cells[1], ", ");
    EXPECT_EQ(names.size(), defaults.size()) << line;
    for (std::size_t i = 0; i < std::min(names.size(), defaults.size()); ++i)
      rows[trim(names[i].substr(1, names[i].size() - 2))] = trim(defaults[i]);
  }
  return rows;
}

/// A scalar default as the docs write it: "192", "256 MiB", "250 ms", "10 s",
/// "0 (none)". Bytes for MiB, milliseconds for times, the number otherwise.
std::optional<std::uint64_t> quantity(const std::string& cell) {
  // Parsed by hand: std::regex trips a -Wmaybe-uninitialized false positive
  // of GCC 12's libstdc++ under AddressSanitizer, and the suite builds with -Werror.
  std::string rest = cell;
  const std::string none = " (none)";
  if (rest.size() > none.size() && rest.compare(rest.size() - none.size(), none.size(), none) == 0)
    rest.resize(rest.size() - none.size());
  std::size_t digits = 0;
  while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
  if (digits == 0) return std::nullopt;
  std::uint64_t n = std::stoull(rest.substr(0, digits));
  const std::string unit = rest.substr(digits);
  if (unit == " MiB") return n << 20;
  if (unit == " s") return n * 1000;
  if (unit == " ms" || unit.empty()) return n;
  return std::nullopt;
}

/// `text` with every run of whitespace turned into one space.
std::string flatten(const std::string& text) {
  std::string out;
  bool space = false;
  for (const char c : text) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

// The rules the docs state for the defaults that depend on other fields, and
// the same rules computed here, checked below against stats().
constexpr const char* kQueueWindowRule = "1024, at most `capacity` if set";
constexpr const char* kQueueCapacityRule = "max(64, 2 x `window`), rounded up to a power of two";
constexpr const char* kPoolRule =
    "unless `window` is set, `window` and `capacity` are both max(64, 20 x `workers`) (or "
    "`capacity` if set), rounded up to a power of two";
constexpr const char* kReadmeWindowRule = "`window` (1024)";

std::size_t queue_window(std::optional<std::size_t> capacity) {
  const std::size_t w = 1024;
  return capacity ? std::min(w, *capacity) : w;
}

std::size_t queue_capacity(std::size_t window) {
  return std::bit_ceil(std::max<std::size_t>(64, 2 * window));
}

TEST_F(OptionsTest, ParallelQueueOptionsTableStatesTheLibrarysDefaults) {
  const std::map<std::string, std::string> table =
      options_table(read_page("docs/parallel_queue.md"));
  const inorder::Options d{};
  std::map<std::string, bool> checked;
  const auto scalar = [&](const std::string& field, std::uint64_t actual) {
    ASSERT_TRUE(table.contains(field)) << "the table has no row for " << field;
    const std::optional<std::uint64_t> stated = quantity(table.at(field));
    ASSERT_TRUE(stated.has_value()) << field << ": cannot read '" << table.at(field) << "'";
    EXPECT_EQ(*stated, actual) << field << ": the docs say '" << table.at(field) << "'";
    checked[field] = true;
  };
  const auto text = [&](const std::string& field, const std::string& expected) {
    ASSERT_TRUE(table.contains(field)) << "the table has no row for " << field;
    EXPECT_EQ(table.at(field), expected) << field;
    checked[field] = true;
  };

  text("workers", "hardware threads");
  EXPECT_EQ(d.workers, std::max(1U, std::thread::hardware_concurrency()));
  text("window", kQueueWindowRule);
  EXPECT_FALSE(d.window.has_value());  // computed by the rule, checked against stats() below
  text("capacity", kQueueCapacityRule);
  EXPECT_FALSE(d.capacity.has_value());
  text("max_pending", "unbounded");
  EXPECT_FALSE(d.max_pending.has_value());
  scalar("inline_bytes", d.inline_bytes);
  scalar("max_spill_bytes", d.max_spill_bytes);
  text("worker_init", "none");
  EXPECT_FALSE(static_cast<bool>(d.worker_init));
  scalar("task_timeout", static_cast<std::uint64_t>(d.task_timeout.count()));
  scalar("retries", d.retries);
  text("retry_exceptions", d.retry_exceptions ? "true" : "false");
  scalar("max_tasks_per_worker", d.max_tasks_per_worker);
  scalar("max_worker_rss", d.max_worker_rss);
  scalar("max_restarts", d.max_restarts);
  scalar("restart_window", static_cast<std::uint64_t>(d.restart_window.count()));
  scalar("shutdown_grace", static_cast<std::uint64_t>(d.shutdown_grace.count()));
  scalar("first_sequence", d.first_sequence);

  for (const auto& [field, cell] : table)
    EXPECT_TRUE(checked.contains(field))
        << "docs/parallel_queue.md states a default for " << field << " ('" << cell
        << "') that this test does not check: add it here";
}

TEST_F(OptionsTest, QueueWindowAndCapacityFollowTheDocumentedRules) {
  struct Case {
    unsigned workers;
    std::optional<std::size_t> capacity;
  };
  // The window does not grow with the workers; a capacity set below 1024 caps it.
  for (const Case c : {Case{1, {}}, Case{2, {}}, Case{30, {}}, Case{2, 100}}) {
    inorder::ParallelQueue<int> queue({.workers = c.workers, .capacity = c.capacity});
    const inorder::Stats s = queue.stats();
    const std::size_t window = queue_window(c.capacity);
    EXPECT_EQ(s.window, window) << c.workers << " workers";
    EXPECT_EQ(s.capacity, c.capacity ? std::bit_ceil(*c.capacity) : queue_capacity(window))
        << c.workers << " workers";
  }
}

TEST_F(OptionsTest, PoolPageStatesThePoolsOwnWindowAndCapacity) {
  const std::string page = read_page("docs/pool.md");
  // The page wraps lines; compare with single spaces.
  const std::string flat = flatten(page);
  EXPECT_NE(flat.find(kPoolRule), std::string::npos)
      << "docs/pool.md no longer says: " << kPoolRule;
  struct Case {
    unsigned workers;
    std::optional<std::size_t> capacity;
  };
  for (const Case c : {Case{1, {}}, Case{4, {}}, Case{2, 100}}) {
    inorder::Pool<int> pool({.workers = c.workers, .capacity = c.capacity});
    const inorder::Stats s = pool.stats();
    const std::size_t expected =
        std::bit_ceil(c.capacity.value_or(std::max<std::size_t>(64, std::size_t{20} * c.workers)));
    EXPECT_EQ(s.window, expected) << c.workers << " workers";
    EXPECT_EQ(s.capacity, expected) << c.workers << " workers";
  }
}

TEST_F(OptionsTest, ReadmeStatesTheQueuesDefaultWindow) {
  const std::string flat = flatten(read_page("README.md"));
  EXPECT_NE(flat.find(kReadmeWindowRule), std::string::npos)
      << "README.md no longer says: " << kReadmeWindowRule;
  // "1024" is queue_window() without a capacity, whatever the workers.
  for (const unsigned workers : {1U, 30U}) {
    inorder::ParallelQueue<int> queue({.workers = workers});
    EXPECT_EQ(queue.stats().window, std::size_t{1024});
  }
}

}  // namespace
