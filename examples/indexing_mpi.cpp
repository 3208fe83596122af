// Indexing documents across the ranks of an MPI job, with progress per batch.
//
//   mpirun -n 3 ./indexing_mpi [documents=3000] [workers per rank=2]
//
// The same job as examples/indexing.cpp, spread over every rank of the job.
// Rank 0 generates the documents and puts them into an
// inorder::mpi::ParallelQueue in batches, each batch followed by a BatchDone
// marker (a pass-through value, which never leaves rank 0). Every rank,
// rank 0 included, indexes documents in its own worker processes. Rank 0 takes
// the results out with get() in put order, so a marker coming out proves its
// whole batch is indexed, whichever ranks did the work. The consumer checks
// that promise as it goes and the program exits with status 1 if a check fails.
#include <inorder/mpi.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <vector>

// The job itself (documents, the task, the order check), shared with
// examples/indexing.cpp. index_document is a plain function, as an MPI task
// must be: a function pointer or a lambda without captures.
#include "indexing_job.hpp"

using namespace indexing;

int main(int argc, char** argv) {
  std::optional<unsigned long> documents = 3000;
  std::optional<unsigned long> workers = 2;
  if (argc > 1) documents = parse_count(argv[1]);
  if (argc > 2) workers = parse_count(argv[2]);
  if (argc > 3 || !documents || !workers || *workers > 1024) {
    std::fprintf(stderr, "usage: mpirun -n N %s [documents=3000] [workers per rank=2]\n", argv[0]);
    return 2;
  }

  // Every rank: fork this rank's workers, start MPI, check that all ranks run
  // this same binary. Then every rank but 0 serves tasks until rank 0 is done.
  inorder::mpi::Session mpi(argc, argv, {.workers_per_rank = static_cast<unsigned>(*workers)});
  if (!mpi.is_root()) return mpi.serve();

  const std::vector<std::string> vocabulary = make_vocabulary(4000);
  const std::vector<std::uint32_t> batches = plan_batches(*documents);
  Consumer consumer(batches.size());

  std::printf("ranks: %d\n", mpi.size());
  std::printf("indexing %lu documents in %zu batches with %lu workers per rank\n", *documents,
              batches.size(), *workers);
  const auto started = std::chrono::steady_clock::now();

  inorder::mpi::ParallelQueue<Item> queue(mpi);
  try {
    // One thread produces and consumes. try_put() returns false when the
    // window (SessionOptions::window positions) is full: then take the next
    // result, which makes room. Memory stays bounded however many documents.
    std::uint64_t id = 0;
    for (std::size_t b = 0; b < batches.size(); ++b) {
      for (std::uint32_t i = 0; i < batches[b]; ++i, ++id) {
        const std::string text = make_document(id, vocabulary);
        while (!queue.try_put(index_document, id, text)) consumer.take(*queue.get());
      }
      const Item marker = BatchDone{static_cast<std::uint32_t>(b + 1), batches[b]};
      while (!queue.try_put(marker)) consumer.take(*queue.get());
    }
    queue.stop();
    while (auto item = queue.get()) consumer.take(*item);
  } catch (const std::exception& e) {
    // A failed document would come out of get() at its own position as a
    // TaskError naming its rank and host; index_document fails only when
    // memory runs out, so here any failure fails the run.
    consumer.fail(std::string("get(): ") + e.what());
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  consumer.check_complete(*documents);
  for (const auto& r : queue.stats().ranks)
    std::printf("rank %d (%s): %llu documents\n", r.rank, r.host.c_str(),
                static_cast<unsigned long long>(r.completed));
  std::printf("documents: %llu (%.1f MiB, %llu slow), words: %llu\n",
              static_cast<unsigned long long>(consumer.indexed),
              static_cast<double>(consumer.total_bytes) / (1 << 20),
              static_cast<unsigned long long>(consumer.slow),
              static_cast<unsigned long long>(consumer.total_words));
  std::printf("elapsed: %.2f s, throughput: %.0f documents/s\n", seconds,
              static_cast<double>(consumer.indexed) / seconds);
  if (!consumer.errors.empty()) {
    std::printf("FAILED: %zu check(s) failed\n", consumer.errors.size());
    return 1;
  }
  std::printf("all results arrived in put order\n");
  return 0;
}
