// bench/compare_python.cpp: the `py-imap-1` and `py-imap-100` systems of
// inorder-compare. Runs bench/imap.py in a python3 subprocess:
//     python3 imap.py WORKLOAD TASKS WORKERS CHUNKSIZE
// The script builds multiprocessing.Pool(WORKERS), warms it up, times
// pool.imap(task, range(TASKS), CHUNKSIZE) while checking every result's
// position, and prints the elapsed seconds as its only line on stdout. It
// exits non-zero (with a message on stderr, passed through) when a result is
// out of order. Interpreter and pool start-up are not timed, as for the other
// systems.
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "compare_systems.hpp"

namespace compare {

std::optional<std::string> find_python() {
  if (const char* p = std::getenv("INORDER_PYTHON"); p != nullptr && *p != '\0') {
    if (::access(p, X_OK) == 0) return std::string(p);
    return std::nullopt;
  }
  const char* path = std::getenv("PATH");
  std::string_view rest = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!rest.empty()) {
    const auto colon = rest.find(':');
    const std::string_view dir = colon == 0 ? std::string_view(".") : rest.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
    std::string candidate(dir);
    candidate += "/python3";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

RunResult run_python(Workload w, unsigned workers, long tasks, int chunksize,
                     const std::string& python, const std::string& script) {
  if (::access(script.c_str(), R_OK) != 0) {
    RunResult r;
    r.skipped = true;
    r.error = "cannot read " + script;
    return r;
  }
  std::vector<std::string> args = {python,
                                   script,
                                   info(w).name,
                                   std::to_string(tasks),
                                   std::to_string(workers),
                                   std::to_string(chunksize)};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int out[2];
  if (::pipe(out) != 0) return RunResult::failure("pipe failed");
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(out[0]);
    ::close(out[1]);
    return RunResult::failure("fork failed");
  }
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::close(out[0]);
    ::close(out[1]);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  std::string text;
  char buf[256];
  for (;;) {
    const ssize_t k = ::read(out[0], buf, sizeof buf);
    if (k > 0) {
      text.append(buf, static_cast<std::size_t>(k));
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    break;
  }
  ::close(out[0]);
  const int status = wait_child(pid);
  if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
      RunResult r;
      r.skipped = true;
      r.error = "cannot run " + python;
      return r;
    }
    return RunResult::failure("imap.py failed (exit status " +
                              std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
  }
  char* end = nullptr;
  const double seconds = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || !(seconds > 0.0))
    return RunResult::failure("imap.py printed no elapsed time: '" + text + "'");
  return RunResult::measured(tasks, seconds);
}

}  // namespace compare
