// bench/compare_tbb.cpp: the `tbb` system of inorder-compare (threads, not
// processes): oneTBB parallel_pipeline with a serial_in_order input filter
// that hands out indices, a parallel filter that runs the task, and a
// serial_in_order output filter that checks each result in order. It runs
// inside a task_arena of `workers` threads; the calling thread is one of them,
// so with one worker the whole pipeline runs on one thread.
//
// Built only when meson finds oneTBB; otherwise tbb_available() is false.
#include <algorithm>
#include <exception>
#include <string>
#include <thread>

#include "compare_systems.hpp"

#ifdef INORDER_COMPARE_HAVE_TBB
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_pipeline.h>
#include <oneapi/tbb/task_arena.h>
#endif

namespace compare {

#ifdef INORDER_COMPARE_HAVE_TBB
namespace {

template <class R>
RunResult drive(const Job<R>& job, unsigned workers, long n, std::size_t tokens) {
  // oneTBB caps its worker threads at the number of cores minus one unless
  // told otherwise; the skewed workload asks for more threads than cores.
  tbb::global_control allow(tbb::global_control::max_allowed_parallelism,
                            std::max<std::size_t>(workers, std::thread::hardware_concurrency()));
  tbb::task_arena arena(static_cast<int>(workers));
  // Returns "" or what went wrong; cancels nothing, the pipeline runs to the end
  // but stops checking after the first bad result.
  auto pipeline = [&](long count) -> std::string {
    long next = 0;
    long expect = 0;
    std::string error;
    tbb::parallel_pipeline(
        tokens, tbb::make_filter<void, long>(tbb::filter_mode::serial_in_order,
                                             [&next, count](tbb::flow_control& fc) -> long {
                                               if (next >= count) {
                                                 fc.stop();
                                                 return 0;
                                               }
                                               return next++;
                                             }) &
                    tbb::make_filter<long, R>(tbb::filter_mode::parallel,
                                              [&job](long i) -> R { return job.fn(i); }) &
                    tbb::make_filter<R, void>(tbb::filter_mode::serial_in_order,
                                              [&expect, &error, &job](const R& r) {
                                                if (error.empty() && !job.check(expect, r))
                                                  error = out_of_order(expect);
                                                ++expect;
                                              }));
    if (error.empty() && expect != count) error = "pipeline delivered a wrong number of results";
    return error;
  };

  try {
    std::string error;
    arena.execute([&] { error = pipeline(static_cast<long>(tokens)); });  // warm-up
    if (!error.empty()) return RunResult::failure("warm-up: " + error);
    const auto start = SteadyClock::now();
    arena.execute([&] { error = pipeline(n); });
    const double seconds = seconds_since(start);
    if (!error.empty()) return RunResult::failure(error);
    return RunResult::measured(n, seconds);
  } catch (const std::exception& e) {
    return RunResult::failure(std::string("tbb: ") + e.what());
  }
}

}  // namespace

bool tbb_available() { return true; }

RunResult run_tbb(Workload w, unsigned workers, long tasks, std::size_t tokens) {
  return with_job(w, [&](const auto& job) { return drive(job, workers, tasks, tokens); });
}

#else

bool tbb_available() { return false; }

RunResult run_tbb(Workload, unsigned, long, std::size_t) {
  RunResult r;
  r.skipped = true;
  r.error = "built without oneTBB (install libtbb-dev and reconfigure)";
  return r;
}

#endif

}  // namespace compare
