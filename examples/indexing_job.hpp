// The indexing job that examples/indexing.cpp and examples/indexing_mpi.cpp
// both run, one on a single machine, one across the ranks of an MPI job: the
// document model (IndexResult, BatchDone markers and their codec), the
// deterministic document generator, the task (index_document), the command
// line helpers and the consumer's order check. Each example holds only what
// its queue changes: how the work is put and how the results are taken. Both
// say `using namespace indexing;`.
#pragma once

#include <inorder/codec.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace indexing {

using namespace std::chrono_literals;

// ---------------------------------------------------------------------------
// What comes back from the workers.
//
// Everything that crosses the process boundary (a task's arguments on the way
// out, its result on the way back, a passed-through value) is encoded to bytes
// in shared memory and decoded on the other side. Trivially copyable types
// travel as their raw bytes; std::string, std::vector, std::variant and the
// other standard types are supported out of the box; anything else needs an
// inorder::codec<T> specialization (below, for IndexResult).

// The result of indexing one document. Not trivially copyable (std::string),
// so it gets a codec specialization.
struct IndexResult {
  std::uint64_t doc_id = 0;
  std::uint32_t bytes = 0;      // size of the text that reached the worker
  std::uint32_t words = 0;      // words in the document
  std::uint32_t distinct = 0;   // distinct words
  std::uint32_t top_count = 0;  // occurrences of top_word
  bool slow = false;            // the worker took the slow path for this one
  std::string top_word;         // most frequent word (the smallest one on a tie)
};

// The end-of-batch marker. A plain struct of numbers is trivially copyable, so
// it needs nothing: it travels as its sizeof(BatchDone) raw bytes.
struct BatchDone {
  std::uint32_t batch = 0;  // 1-based batch number
  std::uint32_t count = 0;  // documents in the batch
};

// What get() returns: either a task's result or a marker put by the producer.
using Item = std::variant<IndexResult, BatchDone>;

}  // namespace indexing

// The codec hook: how an IndexResult is written to bytes and read back. Built
// from inorder::encode / inorder::decode of the members, read back in the
// order they were written. It must be declared before the queue uses the type.
template <>
struct inorder::codec<indexing::IndexResult> {
  static void encode(inorder::Writer& w, const indexing::IndexResult& r) {
    inorder::encode(w, r.doc_id);
    inorder::encode(w, r.bytes);
    inorder::encode(w, r.words);
    inorder::encode(w, r.distinct);
    inorder::encode(w, r.top_count);
    inorder::encode(w, r.slow);
    inorder::encode(w, r.top_word);  // std::string: its length, then its characters
  }
  static indexing::IndexResult decode(inorder::Reader& r) {
    indexing::IndexResult out;
    out.doc_id = inorder::decode<std::uint64_t>(r);
    out.bytes = inorder::decode<std::uint32_t>(r);
    out.words = inorder::decode<std::uint32_t>(r);
    out.distinct = inorder::decode<std::uint32_t>(r);
    out.top_count = inorder::decode<std::uint32_t>(r);
    out.slow = inorder::decode<bool>(r);
    out.top_word = inorder::decode<std::string>(r);
    return out;
  }
};

static_assert(inorder::Encodable<indexing::Item>);  // the variant is now encodable as a whole

namespace indexing {

// ---------------------------------------------------------------------------
// Deterministic document generation. Every property of document `id` is a pure
// function of `id`, so the consumer can check what came back without keeping a
// copy of what was sent.

inline constexpr std::uint32_t kMinDocBytes = 100;
inline constexpr std::uint32_t kMaxDocBytes = 64 * 1024;
inline constexpr std::uint32_t kSlowOneIn = 200;  // about 1 document in 200 is slow
inline constexpr auto kSlowDelay = 20ms;          // the extra time a slow document takes

// splitmix64: a small, fast, well-mixed pseudo-random generator.
struct Rng {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  std::uint32_t below(std::uint32_t n) { return static_cast<std::uint32_t>(next() % n); }
};

inline std::uint64_t mix(std::uint64_t id, std::uint64_t salt) {
  return Rng{id * 0x2545f4914f6cdd1dULL ^ salt}.next();
}

// Sizes are spread log-uniformly between 100 bytes and 64 KiB: many small
// documents, a few large ones (about 10 KiB on average).
inline std::uint32_t document_size(std::uint64_t id) {
  const double u = static_cast<double>(mix(id, 1) >> 11) * 0x1.0p-53;
  const double ratio = static_cast<double>(kMaxDocBytes) / kMinDocBytes;
  return static_cast<std::uint32_t>(kMinDocBytes * std::pow(ratio, u));
}

inline bool is_slow(std::uint64_t id) { return mix(id, 2) % kSlowOneIn == 0; }

// A vocabulary of pseudo-words made of syllables.
inline std::vector<std::string> make_vocabulary(std::size_t size) {
  static constexpr std::string_view kSyllables[] = {"ka",  "lo",  "mi", "ne", "ru",  "ta", "shi",
                                                    "vo",  "pe",  "an", "or", "el",  "is", "um",
                                                    "tra", "gen", "bo", "di", "qua", "zen"};
  constexpr auto kCount = static_cast<std::uint32_t>(std::size(kSyllables));
  Rng rng{42};
  std::vector<std::string> words;
  words.reserve(size);
  while (words.size() < size) {
    std::string w;
    for (std::uint32_t n = 1 + rng.below(4); n > 0; --n) w += kSyllables[rng.below(kCount)];
    words.push_back(std::move(w));
  }
  return words;
}

// The text of document `id`: sentences of words drawn from the vocabulary, the
// first ones much more often than the last (roughly as in natural language),
// cut to exactly document_size(id) bytes.
inline std::string make_document(std::uint64_t id, const std::vector<std::string>& vocabulary) {
  const std::uint32_t size = document_size(id);
  const double log_v = std::log(static_cast<double>(vocabulary.size()));
  Rng rng{mix(id, 3)};
  std::string text;
  text.reserve(size + 64);
  while (text.size() < size) {
    const std::uint32_t sentence = 4 + rng.below(13);
    for (std::uint32_t i = 0; i < sentence; ++i) {
      auto k = static_cast<std::size_t>(std::exp(rng.unit() * log_v)) - 1;
      const std::string& w = vocabulary[std::min(k, vocabulary.size() - 1)];
      text += w;
      if (i == 0) text[text.size() - w.size()] -= 'a' - 'A';  // capitalized
      text += (i + 1 == sentence) ? ". " : (rng.below(8) == 0 ? ", " : " ");
    }
    if (rng.below(5) == 0) text += '\n';
  }
  text.resize(size);
  return text;
}

// ---------------------------------------------------------------------------
// The task. It runs in a worker process: a plain function, so what crosses to
// the worker is where its code is (the worker is a fork of this same program,
// or with MPI a worker of another rank running the same executable) plus the
// encoded arguments. `text` arrives as a fresh std::string decoded in the
// worker, so the task may modify it freely.

inline bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

inline IndexResult index_document(std::uint64_t id, std::string text) {
  // A stand-in for a document that needs much more work than the others (a
  // scanned page to OCR, a slow remote lookup, ...).
  if (is_slow(id)) std::this_thread::sleep_for(kSlowDelay);

  for (char& c : text)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');

  std::unordered_map<std::string_view, std::uint32_t> counts;
  counts.reserve(text.size() / 16 + 1);
  const std::string_view all(text);
  std::uint32_t words = 0;
  for (std::size_t i = 0; i < all.size();) {
    while (i < all.size() && !is_letter(all[i])) ++i;
    const std::size_t start = i;
    while (i < all.size() && is_letter(all[i])) ++i;
    if (i > start) {
      ++counts[all.substr(start, i - start)];
      ++words;
    }
  }

  IndexResult r;
  r.doc_id = id;
  r.bytes = static_cast<std::uint32_t>(text.size());
  r.words = words;
  r.distinct = static_cast<std::uint32_t>(counts.size());
  r.slow = is_slow(id);
  std::string_view top;
  for (const auto& [word, n] : counts) {
    if (n > r.top_count || (n == r.top_count && word < top)) {
      top = word;
      r.top_count = n;
    }
  }
  r.top_word = std::string(top);
  return r;
}

// ---------------------------------------------------------------------------
// Command line.

inline std::optional<unsigned long> parse_count(const char* arg) {
  char* end = nullptr;
  const unsigned long v = std::strtoul(arg, &end, 10);
  if (end == arg || *end != '\0' || v == 0 || v > 100'000'000 || arg[0] == '-') return std::nullopt;
  return v;
}

// Batch sizes: 50 to 150 documents each (the last one takes what is left).
inline std::vector<std::uint32_t> plan_batches(std::uint64_t documents) {
  Rng rng{7};
  std::vector<std::uint32_t> sizes;
  for (std::uint64_t left = documents; left > 0;) {
    const std::uint64_t n = std::min<std::uint64_t>(left, 50 + rng.below(101));
    sizes.push_back(static_cast<std::uint32_t>(n));
    left -= n;
  }
  return sizes;
}

// ---------------------------------------------------------------------------
// The consumer's side: checks each item that get() returns against what was
// put, and reports each batch as its marker comes out.

struct Consumer {
  std::size_t total_batches = 0;
  std::size_t print_every = 1;  // print every batch of a short run, about 30 lines of a long one
  std::uint64_t indexed = 0, slow = 0, total_words = 0, total_bytes = 0, in_batch = 0;
  std::uint32_t batches_done = 0;
  std::map<std::string, std::uint64_t> top_words;  // top word -> documents it tops
  std::vector<std::string> errors;

  explicit Consumer(std::size_t batches)
      : total_batches(batches), print_every(batches <= 40 ? 1 : (batches + 29) / 30) {}

  void fail(std::string message) {
    if (errors.size() < 10) std::fprintf(stderr, "order check failed: %s\n", message.c_str());
    errors.push_back(std::move(message));
  }

  // Document ids strictly increasing, each marker right after its batch, with
  // the right count: what get()'s put order promises.
  void take(const Item& item) {
    if (const auto* r = std::get_if<IndexResult>(&item)) {
      if (r->doc_id != indexed)
        fail("expected document " + std::to_string(indexed) + ", got " + std::to_string(r->doc_id));
      if (r->bytes != document_size(r->doc_id) || r->slow != is_slow(r->doc_id))
        fail("document " + std::to_string(r->doc_id) + " came back with wrong contents");
      indexed = r->doc_id + 1;
      ++in_batch;
      slow += r->slow ? 1 : 0;
      total_words += r->words;
      total_bytes += r->bytes;
      ++top_words[r->top_word];
      return;
    }
    const auto& done = std::get<BatchDone>(item);
    if (done.batch != batches_done + 1)
      fail("expected the marker of batch " + std::to_string(batches_done + 1) + ", got batch " +
           std::to_string(done.batch));
    if (done.count != in_batch)
      fail("batch " + std::to_string(done.batch) + " has " + std::to_string(done.count) +
           " documents, but " + std::to_string(in_batch) + " arrived before its marker");
    batches_done = done.batch;
    if (batches_done % print_every == 0 || batches_done == total_batches)
      std::printf("batch %u: %u documents indexed (%llu total, %llu slow)\n", done.batch,
                  done.count, static_cast<unsigned long long>(indexed),
                  static_cast<unsigned long long>(slow));
    in_batch = 0;
  }

  // After the end of the stream: every document and every marker came out.
  void check_complete(unsigned long documents) {
    if (indexed == documents && batches_done == total_batches) return;
    std::fprintf(stderr, "incomplete: %llu of %lu documents, %u of %zu batches\n",
                 static_cast<unsigned long long>(indexed), documents, batches_done, total_batches);
    errors.push_back("incomplete");
  }
};

}  // namespace indexing
