// examples/share_counter.cpp: ten Skprocess objects, run by a Pool of four
// workers, each counting ten times into one shared counter and logging every
// new value. The counter ends at exactly 100, and the log holds 1..100 in
// order: each increment and its log line are one transaction.
#include <inorder/inorder.hpp>

#include <cstdio>
#include <string>
#include <vector>

// What every ShareCounter is given: handles into the Share (trivially
// copyable, so they travel to the Pool's workers as an item) and the Share
// itself, for transactions (it existed before the workers were forked).
struct Counting {
  inorder::Share::Number<long> counter;
  inorder::Share::Log log;
  inorder::Share* share;
};

class ShareCounter : public inorder::Skprocess<int> {
 public:
  explicit ShareCounter(Counting c) : c_(c) { config.runs = 10; }

  void on_run() override {
    c_.share->transaction([&] { c_.log.info(std::to_string(++c_.counter)); });
    ++runs_;
  }
  int on_result() override { return runs_; }  // what pool.map returns for this object

 private:
  Counting c_;
  int runs_ = 0;
};

int main() {
  inorder::Share share;  // before the Pool: its workers inherit the arena
  const Counting counting{share.counter<long>("counter"), share.log("log"), &share};

  inorder::Pool<int> pool({.workers = 4});
  const std::vector<int> runs = pool.map<ShareCounter>(std::vector<Counting>(10, counting));

  const std::vector<std::string> log = counting.log.messages();
  std::printf("counter = %ld\n", counting.counter.load());
  std::string line = "log =";
  for (const std::string& m : log) line += " " + m;
  std::printf("%s\n", line.c_str());

  // The example checks itself, so CI can run it as a test.
  bool ok = counting.counter.load() == 100 && log.size() == 100 && runs == std::vector<int>(10, 10);
  for (std::size_t i = 0; ok && i < log.size(); ++i) ok = log[i] == std::to_string(i + 1);
  if (!ok) std::printf("MISMATCH\n");
  return ok ? 0 : 1;
}
