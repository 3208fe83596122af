// Indexing documents in batches, with progress reported per batch.
//
//   indexing [documents=3000] [workers=hardware threads]
//
// A producer thread generates documents (deterministic pseudo-random text) and
// puts them into an inorder::ParallelQueue in batches. Each document is indexed
// in a worker process: its text is split into words, and the word count, the
// number of distinct words and the most frequent word come back. After the last
// document of a batch, the producer puts a BatchDone marker. A consumer thread
// takes results out with get() and, when a marker comes out, knows that every
// document of that batch has been indexed, so it can log the batch as done.
//
// Because get() returns results in put order, the consumer needs no bookkeeping
// of which documents are still outstanding: the marker itself is the proof. The
// consumer checks that promise as it goes (document ids strictly increasing,
// each marker right after its batch, with the right count) and the program
// exits with status 1 if any check fails.
#include <inorder/inorder.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

// The job itself (documents, the task, the order check), shared with
// examples/indexing_mpi.cpp.
#include "indexing_job.hpp"

using namespace indexing;

int main(int argc, char** argv) {
  std::optional<unsigned long> documents = 3000;
  std::optional<unsigned long> workers = inorder::default_workers();
  if (argc > 1) documents = parse_count(argv[1]);
  if (argc > 2) workers = parse_count(argv[2]);
  if (argc > 3 || !documents || !workers || *workers > 1024) {
    std::fprintf(stderr, "usage: %s [documents=3000] [workers=%u]\n", argv[0],
                 inorder::default_workers());
    return 2;
  }

  const std::vector<std::string> vocabulary = make_vocabulary(4000);
  const std::vector<std::uint32_t> batches = plan_batches(*documents);

  // The workers are forked here, before any other thread exists. The window
  // is left at its default (see the comment in the producer).
  inorder::ParallelQueue<Item> queue({.workers = static_cast<unsigned>(*workers)});
  const std::size_t window = queue.stats().window;

  std::printf("indexing %lu documents in %zu batches with %lu workers (window %zu)\n", *documents,
              batches.size(), *workers, window);
  const auto started = std::chrono::steady_clock::now();

  // ----- Producer: documents, then a marker after each batch. ---------------
  bool producer_failed = false;
  std::thread producer([&] {
    try {
      std::uint64_t id = 0;
      for (std::size_t b = 0; b < batches.size(); ++b) {
        for (std::uint32_t i = 0; i < batches[b]; ++i, ++id) {
          // Runs index_document(id, text) in some worker. put() blocks only
          // when `capacity` results are outstanding (backpressure).
          queue.put(index_document, id, make_document(id, vocabulary));
        }
        // A pass-through value: it runs nowhere and is not a task, it just
        // takes the next position in the stream. Since get() returns results
        // in put order, it comes out only after every document of the batch,
        // however the workers shared them out or in which order they finished.
        queue.put(Item{BatchDone{static_cast<std::uint32_t>(b + 1), batches[b]}});
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "producer: %s\n", e.what());
      producer_failed = true;
    }
    // No more input. Everything already put is still indexed and delivered,
    // then get() returns std::nullopt: the consumer's end of stream.
    queue.stop();
  });

  // Slow documents and the window. Without inorder, a simple way to log a
  // batch as done is to index it in parallel, wait for all of it, then start
  // the next batch: every slow document then stalls all the workers. Here a
  // slow document stalls only the worker running it; the others go on with
  // the following documents, across batch boundaries, up to `window - 1`
  // positions past the oldest result not yet returned. Their results wait
  // (in shared memory) until the slow one is done, then come out in order at
  // once. Only when the window is full behind a slow document do the other
  // workers idle; a larger window absorbs longer stalls, at the cost of more
  // results held back.

  // ----- Consumer: check the order, report each batch. ----------------------
  Consumer consumer(batches.size());
  std::thread consuming([&] {
    try {
      while (auto item = queue.get()) consumer.take(*item);
    } catch (const std::exception& e) {
      // A task that throws fails only its own position: get() rethrows it
      // there as inorder::TaskError, and a consumer could log it and carry
      // on. index_document throws only if memory runs out, so here any
      // failure fails the run. stop() also releases a producer blocked in put().
      consumer.fail(std::string("get(): ") + e.what());
      queue.stop();
    }
  });

  producer.join();
  consuming.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  consumer.check_complete(*documents);
  const auto& top_words = consumer.top_words;
  const auto top =
      std::max_element(top_words.begin(), top_words.end(),
                       [](const auto& a, const auto& b) { return a.second < b.second; });
  std::printf("documents: %llu (%.1f MiB, %llu slow), batches: %u\n",
              static_cast<unsigned long long>(consumer.indexed),
              static_cast<double>(consumer.total_bytes) / (1 << 20),
              static_cast<unsigned long long>(consumer.slow), consumer.batches_done);
  std::printf("words: %llu, most common top word: \"%s\" (in %llu documents)\n",
              static_cast<unsigned long long>(consumer.total_words),
              top == top_words.end() ? "" : top->first.c_str(),
              static_cast<unsigned long long>(top == top_words.end() ? 0 : top->second));
  std::printf("elapsed: %.2f s, throughput: %.0f documents/s, workers: %lu\n", seconds,
              static_cast<double>(consumer.indexed) / seconds, *workers);
  const std::size_t failed = consumer.errors.size() + (producer_failed ? 1 : 0);
  if (failed != 0) {
    std::printf("FAILED: %zu check(s) failed\n", failed);
    return 1;
  }
  std::printf("all results arrived in put order\n");
  return 0;
}
