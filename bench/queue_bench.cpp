// bench/queue_bench.cpp: Google Benchmark programs for inorder.
//
//   BM_TinyTaskThroughput/workers:N  a producer thread puts 200,000 trivial tasks
//                                    per iteration while the benchmark thread gets
//                                    them and checks their order; items/s and
//                                    ns_per_task (wall clock).
//   BM_PutGetLatencyIdle             one put + one get on an idle one-worker queue;
//                                    Time is the mean round trip, p50_us / p99_us
//                                    come from per-round-trip steady_clock samples.
//   BM_PipeRoundTrip                 anchor for the above: 8 bytes to a forked child
//                                    and back over two pipes, same counters.
//   BM_CodecString/bytes:N, BM_CodecMap/entries:100
//                                    encode + decode of one value in this process.
//   BM_LargeResult/bytes:N           put -> get of a task returning N bytes.
//   BM_QueueLifecycle/workers:N      one whole life of a queue: construct, put one
//                                    task and get it, destroy. construct_us,
//                                    first_task_us and destroy_us are the medians
//                                    of each phase (docs/benchmarks.md, "Queue
//                                    lifetime").
//
// Every queue but BM_QueueLifecycle's is constructed before the timed loop.
// Times of the queue benchmarks are wall-clock (UseRealTime): the benchmark thread
// mostly waits, so its CPU time says little. The whole program runs in well under
// a minute.
#include <benchmark/benchmark.h>
#include <inorder/inorder.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.hpp"

namespace {

using SteadyClock = std::chrono::steady_clock;

// Nearest-rank percentile (p in (0, 1]) of samples, in microseconds. Sorts samples.
double percentile_us(std::vector<double>& samples_ns, double p) {
  if (samples_ns.empty()) return 0.0;
  std::sort(samples_ns.begin(), samples_ns.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(samples_ns.size())));
  const std::size_t index = std::clamp<std::size_t>(rank, 1, samples_ns.size()) - 1;
  return samples_ns[index] / 1000.0;
}

void set_latency_counters(benchmark::State& state, std::vector<double>& samples_ns) {
  state.counters["p50_us"] = benchmark::Counter(percentile_us(samples_ns, 0.50));
  state.counters["p99_us"] = benchmark::Counter(percentile_us(samples_ns, 0.99));
}

double ns_since(SteadyClock::time_point start) {
  return std::chrono::duration<double, std::nano>(SteadyClock::now() - start).count();
}

// ---------------------------------------------------------------------------
// Throughput of trivial tasks: one producer thread, the benchmark thread consumes.

constexpr long kTinyBatch = 200'000;  // tasks per iteration

void BM_TinyTaskThroughput(benchmark::State& state) {
  const auto workers = static_cast<unsigned>(state.range(0));
  inorder::ParallelQueue<long> queue({.workers = workers});

  // Warm up: workers running, shared pages touched. Puts stay within the
  // queue's capacity: this thread gets only after it has put them all.
  const long warm = static_cast<long>(queue.stats().capacity);
  for (long i = 0; i < warm; ++i) queue.put([](long x) { return x + 1; }, i);
  for (long i = 0; i < warm; ++i) {
    if (queue.get() != std::optional<long>(i + 1)) {
      state.SkipWithError("warm-up: result out of order");
      return;
    }
  }

  long next = 0;  // first value of the current batch; distinct across batches
  double loop_ns = 0.0;
  for (auto _ : state) {
    const auto start = SteadyClock::now();
    const long base = next;
    std::exception_ptr producer_error;
    std::thread producer([&queue, &producer_error, base] {
      try {
        for (long i = 0; i < kTinyBatch; ++i) queue.put([](long x) { return x + 1; }, base + i);
      } catch (const inorder::QueueClosed&) {
        // The consumer stopped the queue after an error; it reports that error.
      } catch (...) {
        producer_error = std::current_exception();
      }
    });

    const char* error = nullptr;
    try {
      for (long i = 0; i < kTinyBatch; ++i) {
        const std::optional<long> r = queue.get();
        if (!r) {
          error = "get() returned end of stream";
          break;
        }
        if (*r != base + i + 1) {
          error = "result out of put order";
          break;
        }
        benchmark::DoNotOptimize(*r);
      }
    } catch (const std::exception&) {
      error = "get() threw";
    }
    if (error != nullptr) queue.stop();  // unblocks the producer: put() throws QueueClosed
    producer.join();
    if (error == nullptr && producer_error) error = "put() threw";
    if (error != nullptr) {
      state.SkipWithError(error);
      break;
    }
    next += kTinyBatch;
    loop_ns += ns_since(start);
  }

  const auto tasks = state.iterations() * kTinyBatch;
  state.SetItemsProcessed(tasks);
  if (tasks > 0) state.counters["ns_per_task"] = loop_ns / static_cast<double>(tasks);
}
BENCHMARK(BM_TinyTaskThroughput)
    ->ArgName("workers")
    ->Arg(1)
    ->Arg(2)
    ->Iterations(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------
// Round trip on an idle queue, and the pipe anchor.

constexpr benchmark::IterationCount kRoundTrips = 20'000;

void BM_PutGetLatencyIdle(benchmark::State& state) {
  inorder::ParallelQueue<long> queue({.workers = 1});
  for (long i = 0; i < 100; ++i) {  // warm-up round trips
    queue.put([](long x) { return x + 1; }, i);
    if (queue.get() != std::optional<long>(i + 1)) {
      state.SkipWithError("warm-up: wrong result");
      return;
    }
  }

  std::vector<double> samples_ns;
  samples_ns.reserve(static_cast<std::size_t>(state.max_iterations));
  long i = 0;
  for (auto _ : state) {
    const auto start = SteadyClock::now();
    queue.put([](long x) { return x + 1; }, i);
    const std::optional<long> r = queue.get();
    samples_ns.push_back(ns_since(start));
    if (r != std::optional<long>(i + 1)) {
      state.SkipWithError("wrong result");
      break;
    }
    benchmark::DoNotOptimize(r);
    ++i;
  }
  set_latency_counters(state, samples_ns);
}
BENCHMARK(BM_PutGetLatencyIdle)
    ->Iterations(kRoundTrips)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

using bench::read_all;
using bench::write_all;

void BM_PipeRoundTrip(benchmark::State& state) {
  int to_child[2];
  int from_child[2];
  if (::pipe2(to_child, O_CLOEXEC) != 0) {
    state.SkipWithError("pipe2 failed");
    return;
  }
  if (::pipe2(from_child, O_CLOEXEC) != 0) {
    ::close(to_child[0]);
    ::close(to_child[1]);
    state.SkipWithError("pipe2 failed");
    return;
  }
  const pid_t child = ::fork();
  if (child < 0) {
    for (int fd : {to_child[0], to_child[1], from_child[0], from_child[1]}) ::close(fd);
    state.SkipWithError("fork failed");
    return;
  }
  if (child == 0) {
    // Echo 8-byte messages until the parent closes its end. Only system calls here.
    ::close(to_child[1]);
    ::close(from_child[0]);
    std::array<char, 8> msg{};
    while (read_all(to_child[0], msg.data(), msg.size())) {
      if (!write_all(from_child[1], msg.data(), msg.size())) break;
    }
    ::_exit(0);
  }
  ::close(to_child[0]);
  ::close(from_child[1]);
  const int out = to_child[1];
  const int in = from_child[0];

  bool ok = true;
  std::uint64_t counter = 0;
  for (int w = 0; w < 100 && ok; ++w) {  // warm-up round trips
    std::uint64_t back = 0;
    ok = write_all(out, &counter, sizeof counter) && read_all(in, &back, sizeof back) &&
         back == counter;
    ++counter;
  }

  std::vector<double> samples_ns;
  samples_ns.reserve(static_cast<std::size_t>(state.max_iterations));
  if (!ok) state.SkipWithError("warm-up: pipe round trip failed");
  for (auto _ : state) {
    if (!ok) break;
    const auto start = SteadyClock::now();
    std::uint64_t back = 0;
    ok = write_all(out, &counter, sizeof counter) && read_all(in, &back, sizeof back);
    samples_ns.push_back(ns_since(start));
    if (!ok || back != counter) {
      ok = false;
      state.SkipWithError("pipe round trip failed");
      break;
    }
    ++counter;
  }

  ::close(out);  // the child sees end of file and exits
  ::close(in);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  set_latency_counters(state, samples_ns);
}
BENCHMARK(BM_PipeRoundTrip)->Iterations(kRoundTrips)->UseRealTime()->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------------------
// Codec: encode + decode of one value, in this process.

template <class T>
void run_codec(benchmark::State& state, const T& value) {
  std::vector<std::byte> buf;
  {  // check the round trip once, outside the timed loop
    const std::size_t n = inorder::encoded_size(value);
    buf.resize(n);
    inorder::Writer w(buf.data());
    inorder::encode(w, value);
    if (inorder::decode_from<T>(buf.data(), n) != value) {
      state.SkipWithError("codec round trip changed the value");
      return;
    }
  }
  std::size_t bytes = 0;
  for (auto _ : state) {
    const std::size_t n = inorder::encoded_size(value);
    if (buf.size() < n) buf.resize(n);
    inorder::Writer w(buf.data());
    inorder::encode(w, value);
    benchmark::ClobberMemory();
    T back = inorder::decode_from<T>(buf.data(), n);
    benchmark::DoNotOptimize(back);
    bytes = n;
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes));
}

void BM_CodecString(benchmark::State& state) {
  const std::string value(static_cast<std::size_t>(state.range(0)), 's');
  run_codec(state, value);
}
BENCHMARK(BM_CodecString)->ArgName("bytes")->Arg(100)->Arg(64 << 10)->MinTime(0.3);

void BM_CodecMap(benchmark::State& state) {
  std::map<std::string, int> value;
  for (int i = 0; i < state.range(0); ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "key_%03d", i);
    value.emplace(key, i);
  }
  run_codec(state, value);
}
BENCHMARK(BM_CodecMap)->ArgName("entries")->Arg(100)->MinTime(0.3);

// ---------------------------------------------------------------------------
// Large results: a worker builds an N-byte vector, the parent gets it.

void BM_LargeResult(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  inorder::ParallelQueue<std::vector<char>> queue({.workers = 1});
  const auto make = [](std::size_t n) { return std::vector<char>(n, 'r'); };
  queue.put(make, std::size_t{4096});  // warm-up
  if (auto r = queue.get(); !r || r->size() != 4096) {
    state.SkipWithError("warm-up: wrong result");
    return;
  }

  for (auto _ : state) {
    queue.put(make, size);
    const std::optional<std::vector<char>> r = queue.get();
    if (!r || r->size() != size || r->front() != 'r' || r->back() != 'r') {
      state.SkipWithError("wrong result");
      break;
    }
    benchmark::DoNotOptimize(r->data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}
BENCHMARK(BM_LargeResult)
    ->ArgName("bytes")
    ->Arg(1 << 20)
    ->Arg(64 << 20)
    ->MinTime(1.0)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

// A queue's whole life, phase by phase: what a program that makes short-lived
// queues or pools pays. Construction forks the supervisor (which forks the
// workers without the constructor waiting); the first task waits for a worker
// to exist; destruction waits until every process has exited and is reaped.
void BM_QueueLifecycle(benchmark::State& state) {
  const auto workers = static_cast<unsigned>(state.range(0));
  std::vector<double> construct_ns, first_ns, destroy_ns;
  for (auto _ : state) {
    const auto t0 = SteadyClock::now();
    std::optional<inorder::ParallelQueue<int>> q;
    q.emplace(inorder::Options{.workers = workers});
    const auto t1 = SteadyClock::now();
    q->put([](int x) { return x + 1; }, 41);
    const std::optional<int> r = q->get();
    const auto t2 = SteadyClock::now();
    q.reset();
    const auto t3 = SteadyClock::now();
    if (r != 42) {
      state.SkipWithError("wrong result");
      break;
    }
    construct_ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
    first_ns.push_back(std::chrono::duration<double, std::nano>(t2 - t1).count());
    destroy_ns.push_back(std::chrono::duration<double, std::nano>(t3 - t2).count());
  }
  state.counters["construct_us"] = benchmark::Counter(percentile_us(construct_ns, 0.50));
  state.counters["first_task_us"] = benchmark::Counter(percentile_us(first_ns, 0.50));
  state.counters["destroy_us"] = benchmark::Counter(percentile_us(destroy_ns, 0.50));
}
BENCHMARK(BM_QueueLifecycle)->ArgName("workers")->Arg(1)->Arg(2)->UseRealTime()->Iterations(200);

BENCHMARK_MAIN();
