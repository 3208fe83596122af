// examples/db_worker.cpp: a database worker process. The parent tells it
// queries; it answers each one through its own SQLite connection, with
// retries, a time limit per query and timing statistics for free.
//
//   db_worker [directory for the database file]   (default /tmp)
#include <inorder/inorder.hpp>

#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using Query = std::pair<std::string, long>;  // SQL with one parameter, and its value
using Rows = std::vector<std::string>;

class DatabaseWorker : public inorder::Skprocess<> {
 public:
  explicit DatabaseWorker(inorder::Reconnect<sqlite3*> db) : db_(std::move(db)) {
    // runs: unset, so it runs until stop()
    config.attempts = 3;        // two more attempts after a failure
    config.timeouts.run = 30s;  // a query that takes longer is killed (and retried)
  }

  void on_prerun() override {
    if (!query_) query_ = listen<Query>(100ms);  // a retry keeps the query it failed on
  }

  void on_run() override {
    if (!query_) return;
    if (query_->second == 456 && !failed_once_) {  // simulate a dropped connection, once
      failed_once_ = true;
      db_.reset();
      throw std::runtime_error("connection lost");
    }
    sqlite3_stmt* st = nullptr;  // db_.get() opens this process's connection on first use
    if (sqlite3_prepare_v2(db_.get(), query_->first.c_str(), -1, &st, nullptr) != SQLITE_OK)
      throw std::runtime_error(sqlite3_errmsg(db_.get()));
    sqlite3_bind_int64(st, 1, query_->second);
    rows_.clear();
    while (sqlite3_step(st) == SQLITE_ROW)
      rows_.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
    sqlite3_finalize(st);
  }

  void on_postrun() override {
    if (query_) tell(rows_);
    query_.reset();
  }
  // No on_finish needed: the connection is closed when the process ends.

 private:
  inorder::Reconnect<sqlite3*> db_;
  std::optional<Query> query_;
  Rows rows_;
  bool failed_once_ = false;
};

int main(int argc, char** argv) {
  std::string path = std::string(argc > 1 ? argv[1] : "/tmp") + "/db_worker-XXXXXX";
  const int fd = mkstemp(path.data());
  if (fd < 0) return std::perror("mkstemp"), 1;
  close(fd);

  inorder::Reconnect<sqlite3*> db(
      [&path] {
        sqlite3* h = nullptr;
        if (sqlite3_open(path.c_str(), &h) != SQLITE_OK) throw std::runtime_error("cannot open db");
        return h;
      },
      [](sqlite3*& h) { sqlite3_close(h); });
  sqlite3_exec(db.get(),
               "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);"
               "INSERT INTO users VALUES (123, 'ada'), (456, 'grace'), (789, 'edsger');",
               nullptr, nullptr, nullptr);

  DatabaseWorker worker(db);  // the parent's open connection is not what the child uses
  worker.start();

  const std::vector<Query> queries = {{"SELECT name FROM users WHERE id = ?", 123},
                                      {"SELECT name FROM users WHERE id = ?", 456},
                                      {"SELECT name FROM users WHERE id = ?", 789},
                                      {"SELECT name FROM users WHERE id > ? ORDER BY id", 0}};
  std::vector<Rows> results;
  for (const Query& q : queries) {
    worker.tell(q);
    results.push_back(worker.listen<Rows>(10s).value_or(Rows{"<no answer>"}));
  }
  worker.stop();
  worker.result();  // waits; throws inorder::ProcessError if the attempts ran out

  const inorder::TimerStats t = worker.timer(inorder::Hook::kRun);
  std::printf("run hook: %llu calls, mean %.3f ms, max %.3f ms, p90 %.3f ms\n",
              static_cast<unsigned long long>(t.count()), t.mean() * 1e3, t.max() * 1e3,
              t.percentile(90) * 1e3);

  const std::vector<Rows> expected = {{"ada"}, {"grace"}, {"edsger"}, {"ada", "grace", "edsger"}};
  for (std::size_t i = 0; i < queries.size(); ++i) {
    std::string line;
    for (const auto& r : results[i]) line += r + " ";
    std::printf("%s [%ld] -> %s\n", queries[i].first.c_str(), queries[i].second, line.c_str());
  }
  db.reset();
  unlink(path.c_str());
  if (results != expected) return std::fprintf(stderr, "db_worker: wrong answers\n"), 1;
  return 0;
}
