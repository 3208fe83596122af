// bench/compare_inorder.cpp: the `inorder` system of inorder-compare.
//
// One ParallelQueue<R> per run. A producer thread puts task(i) for i = 0..n-1
// as a function pointer plus the encoded index; the calling thread gets and
// checks every result in order. This is the library's intended use: put and
// get on different threads, so put() blocks only on backpressure.
#include <algorithm>
#include <exception>
#include <optional>
#include <thread>

#include <inorder/inorder.hpp>

#include "compare_systems.hpp"

namespace compare {
namespace {

template <class R>
InorderRun drive(const Job<R>& job, Workload w, unsigned workers, long n,
                 const InorderConfig& config) {
  inorder::Options opts;
  opts.workers = workers;
  opts.window = config.window;
  opts.capacity = config.capacity;
  if (config.inline_bytes) opts.inline_bytes = *config.inline_bytes;
  if (config.max_spill_bytes) opts.max_spill_bytes = *config.max_spill_bytes;
  if (config.worker_cpu >= 0)
    opts.worker_init = [cpu = config.worker_cpu](unsigned) { pin_this_thread(cpu); };

  InorderRun run;
  try {
    inorder::ParallelQueue<R> queue(opts);
    const inorder::Stats stats = queue.stats();
    run.window = stats.window;
    run.capacity = stats.capacity;
    run.inline_bytes = opts.inline_bytes;

    // Warm-up: workers running, the slots of the ring touched. This thread
    // puts before it gets, so puts stay within the capacity. Scalar tasks
    // touch every slot; payload tasks (which write up to 1 MiB each) and 50 us
    // tasks at most 64; skewed tasks (milliseconds each) two per worker.
    long warm = static_cast<long>(stats.capacity);
    if (w == Workload::kSkewed)
      warm = 2L * workers;
    else if (w != Workload::kTiny && w != Workload::k1us)
      warm = std::min(warm, 64L);
    for (long i = 0; i < warm; ++i) queue.put(job.fn, i);
    for (long i = 0; i < warm; ++i) {
      const std::optional<R> r = queue.get();
      if (!r || !job.check(i, *r)) {
        run.result = RunResult::failure("warm-up: " + out_of_order(i));
        return run;
      }
    }

    const ThreadMaskGuard guard;  // restores the getter's mask after a pinned run
    pin_this_thread(config.getter_cpu);
    const auto start = SteadyClock::now();
    std::exception_ptr producer_error;
    std::thread producer([&queue, &producer_error, &job, n, cpu = config.producer_cpu] {
      pin_this_thread(cpu);
      try {
        for (long i = 0; i < n; ++i) queue.put(job.fn, i);
      } catch (const inorder::QueueClosed&) {
        // The consumer stopped the queue after an error and reports it.
      } catch (...) {
        producer_error = std::current_exception();
      }
    });
    std::string error;
    try {
      for (long i = 0; i < n; ++i) {
        const std::optional<R> r = queue.get();
        if (!r || !job.check(i, *r)) {
          error = out_of_order(i);
          break;
        }
      }
    } catch (const std::exception& e) {
      error = std::string("get() threw: ") + e.what();
    }
    if (!error.empty()) queue.stop();  // put() throws QueueClosed: the producer ends
    producer.join();
    const double seconds = seconds_since(start);
    if (error.empty() && producer_error) {
      try {
        std::rethrow_exception(producer_error);
      } catch (const std::exception& e) {
        error = std::string("put() threw: ") + e.what();
      } catch (...) {
        error = "put() threw";
      }
    }
    run.result = error.empty() ? RunResult::measured(n, seconds) : RunResult::failure(error);
  } catch (const std::exception& e) {
    run.result = RunResult::failure(std::string("queue: ") + e.what());
  }
  return run;
}

}  // namespace

InorderRun run_inorder(Workload w, unsigned workers, long tasks, const InorderConfig& config) {
  return with_job(w, [&](const auto& job) { return drive(job, w, workers, tasks, config); });
}

std::size_t ring_bytes(std::size_t capacity, std::size_t inline_bytes) {
  constexpr std::size_t kHeader = 128;  // two cache lines per slot header
  return capacity * (kHeader + 2 * inline_bytes);
}

}  // namespace compare
