// tests/reconnect_test.cpp: inorder::Reconnect opens one resource per process.
#include <inorder/reconnect.hpp>
#include <inorder/skprocess.hpp>

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace {

using inorder::Reconnect;

class ReconnectTest : public inorder_test::LeakCheck {};

struct Counters {
  std::atomic<int> opens{0};
  std::atomic<int> closes{0};
  std::atomic<int> bad{0};
};

int wait_child(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// A connection to the SQLite file `file`, opened once per process, that
/// counts its opens and closes in shared memory.
Reconnect<sqlite3*> counted_connection(const std::string& file, Counters* counters) {
  return Reconnect<sqlite3*>(
      [counters, file] {
        sqlite3* h = nullptr;
        if (sqlite3_open(file.c_str(), &h) != SQLITE_OK) throw std::runtime_error("open");
        sqlite3_busy_timeout(h, 20000);
        counters->opens.fetch_add(1);
        return h;
      },
      [counters](sqlite3*& h) {
        sqlite3_close(h);
        counters->closes.fetch_add(1);
      });
}

/// Rows of table t, or -1 if the query failed.
int row_count(sqlite3* db) {
  int rows = -1;
  const int rc = sqlite3_exec(
      db, "SELECT count(*) FROM t",
      [](void* out, int, char** v, char**) {
        *static_cast<int*>(out) = std::atoi(v[0]);
        return 0;
      },
      &rows, nullptr);
  return rc == SQLITE_OK ? rows : -1;
}

/// A fresh SQLite file with an empty table t, reached through a counted
/// connection; the file is removed at the end of the test.
struct SqliteFile {
  SqliteFile() = default;
  ~SqliteFile() {
    db.reset();
    if (fd >= 0) unlink(path);
  }
  SqliteFile(const SqliteFile&) = delete;
  SqliteFile& operator=(const SqliteFile&) = delete;
  [[nodiscard]] bool made() const { return ok; }

  // Initialized in this order: the file, then its connection, then the table.
  char path[32] = "/tmp/inorder-reconnect-XXXXXX";
  int fd = mkstemp(path);
  inorder_test::SharedBlock<Counters> counters;
  Reconnect<sqlite3*> db = counted_connection(path, counters.get());
  bool ok = fd >= 0 && close(fd) == 0 &&
            sqlite3_exec(db.get(), "CREATE TABLE t (worker INTEGER, n INTEGER)", nullptr, nullptr,
                         nullptr) == SQLITE_OK;
};

TEST_F(ReconnectTest, OpensOncePerProcessAndNeverUsesTheParentsResource) {
  inorder_test::SharedBlock<Counters> c;
  Counters* counters = c.get();
  Reconnect<int> conn([counters] { return counters->opens.fetch_add(1) + 1; },
                      [counters](int&) { counters->closes.fetch_add(1); });
  EXPECT_FALSE(conn.is_open());
  const int parent_id = conn.get();
  EXPECT_EQ(parent_id, 1);
  EXPECT_EQ(conn.get(), parent_id);  // second use: the same one
  pid_t kids[3];
  for (pid_t& k : kids) {
    k = fork();
    if (k == 0) {
      if (conn.is_open()) counters->bad.fetch_add(1);  // inherited, not ours
      const int mine = conn.get();
      if (mine == parent_id || conn.get() != mine || *conn != mine) counters->bad.fetch_add(1);
      inorder::close_reconnects();
      _exit(0);
    }
  }
  for (pid_t k : kids) EXPECT_EQ(wait_child(k), 0);
  EXPECT_EQ(counters->bad.load(), 0);
  EXPECT_EQ(counters->opens.load(), 4);   // the parent's and one per child
  EXPECT_EQ(counters->closes.load(), 3);  // each child closed its own, not the parent's
  EXPECT_EQ(conn.get(), parent_id);       // the parent's is still open and still the same
  conn.reset();
  EXPECT_EQ(counters->closes.load(), 4);
  EXPECT_EQ(conn.get(), 5);  // reopened after reset()
}

TEST_F(ReconnectTest, CopiesOpenTheirOwnAndTheDestructorCloses) {
  int opens = 0, closes = 0;
  {
    Reconnect<int> a([&] { return ++opens; }, [&](int&) { ++closes; });
    Reconnect<int> b = a;
    EXPECT_EQ(a.get(), 1);
    EXPECT_EQ(b.get(), 2);
  }
  EXPECT_EQ(closes, 2);
  EXPECT_THROW(Reconnect<int>(nullptr), std::invalid_argument);
}

TEST_F(ReconnectTest, FourProcessesInsertThroughTheirOwnSqliteConnections) {
  SqliteFile file;
  ASSERT_TRUE(file.made()) << "mkstemp or CREATE TABLE failed";
  Counters* counters = file.counters.get();
  Reconnect<sqlite3*>& db = file.db;
  constexpr int kRows = 250;
  pid_t kids[4];
  for (int w = 0; w < 4; ++w) {
    kids[w] = fork();
    if (kids[w] == 0) {
      int rc = 0;
      sqlite3* h = db.get();
      rc |= sqlite3_exec(h, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
      for (int i = 0; i < kRows && rc == SQLITE_OK; ++i) {
        const std::string sql =
            "INSERT INTO t VALUES (" + std::to_string(w) + ", " + std::to_string(i) + ")";
        rc |= sqlite3_exec(h, sql.c_str(), nullptr, nullptr, nullptr);
      }
      rc |= sqlite3_exec(h, "COMMIT", nullptr, nullptr, nullptr);
      inorder::close_reconnects();
      _exit(rc == SQLITE_OK ? 0 : 1);
    }
  }
  for (pid_t k : kids) EXPECT_EQ(wait_child(k), 0);
  const int rows = row_count(db.get());
  EXPECT_EQ(rows, 4 * kRows);
  EXPECT_EQ(counters->opens.load(), 5);   // the parent's and one per child
  EXPECT_EQ(counters->closes.load(), 4);  // the children's, each by its own process
}

/// Inserts `rows` rows through its own connection: the Reconnect member was
/// copied from the parent's, which had its connection open at start().
class Inserter : public inorder::Skprocess<int> {
 public:
  Inserter(Reconnect<sqlite3*> db, int worker) : db_(std::move(db)), worker_(worker) {
    config.runs = 50;
  }
  void on_run() override {
    const std::string sql = "INSERT INTO t VALUES (" + std::to_string(worker_) + ", " +
                            std::to_string(current_run()) + ")";
    if (sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK)
      throw std::runtime_error(sqlite3_errmsg(db_.get()));
  }
  int on_result() override { return static_cast<int>(current_run()); }

 private:
  Reconnect<sqlite3*> db_;
  int worker_;
};

TEST_F(ReconnectTest, FourSkprocessesInsertThroughTheirOwnConnectionsClosedAtTheEnd) {
  SqliteFile file;
  ASSERT_TRUE(file.made()) << "mkstemp or CREATE TABLE failed";
  Counters* counters = file.counters.get();
  Reconnect<sqlite3*>& db = file.db;
  {
    std::vector<std::unique_ptr<Inserter>> procs;
    for (int w = 0; w < 4; ++w) procs.push_back(std::make_unique<Inserter>(db, w));
    for (auto& p : procs) p->start();
    for (auto& p : procs) EXPECT_EQ(p->result(), 50);
  }
  const int rows = row_count(db.get());
  EXPECT_EQ(rows, 4 * 50);
  EXPECT_EQ(counters->opens.load(), 5);   // the parent's and one per process
  EXPECT_EQ(counters->closes.load(), 4);  // each child closed its own as it finished
}

}  // namespace
