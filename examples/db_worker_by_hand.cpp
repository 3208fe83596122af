// examples/db_worker_by_hand.cpp: the database worker of examples/db_worker.cpp
// written without inorder, with fork, pipes, signals and a shared-memory block,
// the way it is usually written by hand. docs/comparison.md puts the two side
// by side. Same requirements: take queries from the parent, run them on a
// connection opened in the worker (retrying a failed open), time out a query
// that runs too long, keep timing statistics, answer the parent, close the
// connection at the end.
//
// usage: db_worker_by_hand [DATABASE_FILE]   (default: a temporary file)
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>
#include <vector>

namespace {

// Statistics shared with the parent: a process-shared mutex and two numbers.
struct Stats {
  pthread_mutex_t lock;
  double total_seconds;
  long queries;
};

// Length-prefixed messages over a pipe; false when the other end is gone.
bool write_all(int fd, const void* p, std::size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}
bool read_all(int fd, void* p, std::size_t n) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    const ssize_t r = read(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}
bool send_message(int fd, const std::string& s) {
  const auto n = static_cast<std::uint32_t>(s.size());
  return write_all(fd, &n, sizeof n) && write_all(fd, s.data(), n);
}
bool recv_message(int fd, std::string& s) {
  std::uint32_t n = 0;
  if (!read_all(fd, &n, sizeof n)) return false;
  s.resize(n);
  return read_all(fd, s.data(), n);
}

// The per-query timeout: SIGALRM interrupts the running statement.
sqlite3* volatile g_db = nullptr;
extern "C" void on_alarm(int) {
  if (g_db != nullptr) sqlite3_interrupt(g_db);
}

sqlite3* connect_with_retry(const std::string& path, int attempts) {
  for (int i = 0; i < attempts; ++i) {
    sqlite3* db = nullptr;
    if (sqlite3_open(path.c_str(), &db) == SQLITE_OK) return db;
    sqlite3_close(db);
    std::this_thread::sleep_for(std::chrono::milliseconds(10 << i));
  }
  return nullptr;
}

// Query message: "<id>\t<sql>"; answer: "ok\t<name>", "empty" or "error\t<why>".
std::string run_query(sqlite3* db, const std::string& msg, unsigned timeout_s) {
  const auto tab = msg.find('\t');
  if (tab == std::string::npos) return "error\tmalformed query";
  const long id = std::strtol(msg.c_str(), nullptr, 10);
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, msg.c_str() + tab + 1, -1, &st, nullptr) != SQLITE_OK)
    return std::string("error\t") + sqlite3_errmsg(db);
  sqlite3_bind_int64(st, 1, id);
  alarm(timeout_s);
  const int rc = sqlite3_step(st);
  alarm(0);
  std::string answer;
  if (rc == SQLITE_ROW) {
    answer = std::string("ok\t") + reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  } else if (rc == SQLITE_DONE) {
    answer = "empty";
  } else if (rc == SQLITE_INTERRUPT) {
    answer = "error\ttimeout";
  } else {
    answer = std::string("error\t") + sqlite3_errmsg(db);
  }
  sqlite3_finalize(st);
  return answer;
}

[[noreturn]] void worker(const std::string& path, int requests, int answers, Stats* stats) {
  signal(SIGINT, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, nullptr);
  sqlite3* db = connect_with_retry(path, 3);
  if (db == nullptr) _exit(2);
  g_db = db;
  std::string query;
  for (;;) {
    pollfd pfd{requests, POLLIN, 0};
    const int ready = poll(&pfd, 1, 100);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) continue;                   // no query yet
    if (!recv_message(requests, query)) break;  // parent closed: stop
    const auto start = std::chrono::steady_clock::now();
    const std::string answer = run_query(db, query, 30);
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    pthread_mutex_lock(&stats->lock);
    stats->total_seconds += took.count();
    stats->queries += 1;
    pthread_mutex_unlock(&stats->lock);
    if (!send_message(answers, answer)) break;
  }
  g_db = nullptr;
  sqlite3_close(db);
  _exit(0);  // not exit(): the parent's stdio buffers must not be flushed twice
}

std::string make_database(const char* given) {
  std::string path = given != nullptr ? given : "";
  if (path.empty()) {
    char name[] = "/tmp/db_worker_by_hand.XXXXXX";
    const int fd = mkstemp(name);
    if (fd < 0) return "";
    close(fd);
    path = name;
  }
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_exec(db,
               "DROP TABLE IF EXISTS users; CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);"
               "INSERT INTO users VALUES (123, 'ada'), (456, 'grace'), (789, 'edsger');",
               nullptr, nullptr, nullptr);
  sqlite3_close(db);
  return path;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string path = make_database(argc > 1 ? argv[1] : nullptr);
  if (path.empty()) return 1;

  // Shared statistics, two pipes, then the worker.
  void* mem =
      mmap(nullptr, sizeof(Stats), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return 1;
  auto* stats = new (mem) Stats{};
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutex_init(&stats->lock, &attr);
  pthread_mutexattr_destroy(&attr);
  int to_worker[2];
  int from_worker[2];
  if (pipe2(to_worker, O_CLOEXEC) != 0 || pipe2(from_worker, O_CLOEXEC) != 0) return 1;
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    close(to_worker[1]);
    close(from_worker[0]);
    worker(path, to_worker[0], from_worker[1], stats);
  }
  close(to_worker[0]);
  close(from_worker[1]);
  signal(SIGPIPE, SIG_IGN);  // a dead worker must not kill the parent

  const std::vector<std::string> queries = {
      "123\tSELECT name FROM users WHERE id = ?", "456\tSELECT name FROM users WHERE id = ?",
      "789\tSELECT name FROM users WHERE id = ?", "1\tSELECT name FROM users WHERE id = ?"};
  std::vector<std::string> results;
  for (const auto& q : queries) {
    std::string answer = "error\tworker gone";
    if (send_message(to_worker[1], q)) {
      pollfd pfd{from_worker[0], POLLIN, 0};
      if (poll(&pfd, 1, 30'000) > 0 && !recv_message(from_worker[0], answer))
        answer = "error\tworker gone";
    }
    results.push_back(answer);
  }

  // Stop: close the request pipe, wait for the worker, read the statistics.
  close(to_worker[1]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  close(from_worker[0]);
  for (const auto& r : results) std::printf("%s\n", r.c_str());
  if (stats->queries > 0)
    std::printf("avg query time: %.6f s over %ld queries\n",
                stats->total_seconds / static_cast<double>(stats->queries), stats->queries);
  const bool ok = results.size() == 4 && results[0] == "ok\tada" && results[1] == "ok\tgrace" &&
                  results[2] == "ok\tedsger" && results[3] == "empty" && stats->queries == 4 &&
                  WIFEXITED(status) && WEXITSTATUS(status) == 0;
  pthread_mutex_destroy(&stats->lock);
  munmap(mem, sizeof(Stats));
  if (argc <= 1) unlink(path.c_str());
  return ok ? 0 : 1;
}
