// docs/snippets/snippet_check.hpp: what every snippet program uses to check
// that the code shown in the docs does what the docs say.
//
// Each program in docs/snippets/ holds the code blocks of one doc page
// (scripts/check_docs.py finds every block there) and a main() that runs them
// on small inputs. A Checker counts mismatches; main() returns its exit code,
// so a snippet that compiles but misbehaves fails its meson test. The program
// also fails when it leaves a child process behind (a worker or a zombie), and
// an alarm ends it if it hangs.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>

namespace snippets {

class Checker {
 public:
  /// Arms a watchdog: a hang kills the program (SIGALRM) and fails its test.
  /// Scaled like every bound of the test suite: by INORDER_TIMEOUT_MULTIPLIER,
  /// and by 4 under AddressSanitizer.
  explicit Checker(const char* program, unsigned watchdog_seconds = 30) : program_(program) {
    double scale = 1.0;
    if (const char* env = std::getenv("INORDER_TIMEOUT_MULTIPLIER"))
      scale = std::max(1.0, std::strtod(env, nullptr));
#if defined(__SANITIZE_ADDRESS__)
    scale *= 4;
#endif
    alarm(static_cast<unsigned>(watchdog_seconds * scale));
  }

  /// Records a mismatch when `ok` is false.
  void expect(bool ok, const std::string& what) {
    if (!ok) {
      ++failures_;
      std::fprintf(stderr, "%s: FAILED: %s\n", program_, what.c_str());
    }
  }

  /// Runs `snippet`, reporting an exception that escapes it as a failure.
  void run(const char* name, const std::function<void()>& snippet) {
    try {
      snippet();
    } catch (const std::exception& e) {
      expect(false, std::string(name) + " threw: " + e.what());
    } catch (...) {
      expect(false, std::string(name) + " threw a non-std exception");
    }
  }

  /// 0 when every check passed and no child process is left; 1 otherwise.
  int exit_code() {
    // waitpid(-1) with WNOHANG: ECHILD means no child at all; a pid is a
    // zombie just reaped; 0 is a child still running.
    errno = 0;
    const bool no_child = waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD;
    expect(no_child, "a child process (worker or zombie) was left behind");
    if (failures_ == 0) std::fprintf(stderr, "%s: all snippets behaved as documented\n", program_);
    return failures_ == 0 ? 0 : 1;
  }

 private:
  const char* program_;
  int failures_ = 0;
};

/// What `snippet` writes to stdout (through stdio), captured in a temporary
/// file; stdout is restored afterwards, also when `snippet` throws.
inline std::string capture_stdout(const std::function<void()>& snippet) {
  std::fflush(stdout);
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::tmpfile(), &std::fclose);
  if (!file) return "<tmpfile failed>";
  {
    struct Redirect {
      int saved = dup(STDOUT_FILENO);
      explicit Redirect(int to) { dup2(to, STDOUT_FILENO); }
      ~Redirect() {
        std::fflush(stdout);
        dup2(saved, STDOUT_FILENO);
        close(saved);
      }
    } redirect(fileno(file.get()));
    snippet();
  }
  std::string text;
  std::rewind(file.get());
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) text.append(buffer, n);
  return text;
}

}  // namespace snippets
