// The C++ block of docs/errors.md, run with its results checked.
#include <inorder/inorder.hpp>

#include <stdexcept>
#include <string>

#include "snippet_check.hpp"

namespace {

int look_up(int index) {
  if (index == 3) throw std::out_of_range("index 3 is past the end");
  return index * 10;
}

// "A task's failure comes back at its own position". The block calls each
// accessor only to show it: `r` and their [[nodiscard]] results go unused.
void failure_at_its_position(snippets::Checker& check) {
  inorder::ParallelQueue<int> queue({.workers = 2});
  queue.put(look_up, 3);
  queue.put(look_up, 4);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-result"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
  try {
    auto r = queue.get();
  } catch (const inorder::TaskError& e) {
    e.type_name();   // "std::out_of_range", "int", "MyError", or "inorder::..." below
    e.message();     // what() of a std::exception, empty otherwise
    e.worker_pid();  // the worker process the task ran in
    e.sequence();    // the task's (wrapped) sequence number
    e.what();        // "task failed in worker 4242: std::out_of_range: index 3 ..."
  }
#pragma GCC diagnostic pop
  const auto next = queue.get();
  check.expect(next == 40, "the get() after a failed position returns the next result");

  // What the comments above say, checked on a second failure.
  const std::uint32_t seq = queue.put(look_up, 3);
  try {
    (void)queue.get();
    check.expect(false, "get() throws at a failed task's position");
  } catch (const inorder::TaskError& e) {
    check.expect(e.type_name() == "std::out_of_range", "type_name() is the demangled type");
    check.expect(e.message() == "index 3 is past the end", "message() is the task's what()");
    check.expect(e.worker_pid() > 0 && e.worker_pid() != getpid(), "worker_pid() is a worker");
    check.expect(e.sequence() == seq, "sequence() is what put() returned");
    const std::string what = e.what();
    check.expect(what == "task failed in worker " + std::to_string(e.worker_pid()) +
                             ": std::out_of_range: index 3 is past the end",
                 "what() names the worker, the type and the message");
  }
}

}  // namespace

int main() {
  snippets::Checker check("errors_snippets");
  check.run("failure_at_its_position", [&] { failure_at_its_position(check); });
  return check.exit_code();
}
