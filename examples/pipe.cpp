// examples/pipe.cpp: a Pipe between the parent and a Skprocess, both ways and
// one way. The Anchor stays in the parent; the Point is given to the process,
// whose child uses it after start().
#include <inorder/inorder.hpp>

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

// Two-way: the parent sends numbers, the process answers with their squares
// until it receives 0.
class Squarer : public inorder::Skprocess<> {
 public:
  explicit Squarer(inorder::Pipe::Point point) : pipe_(std::move(point)) {}

  void on_run() override {
    const long n = pipe_.recv<long>();
    if (n == 0) {
      stop();  // looked at between hooks: no further run begins
      return;
    }
    pipe_.send(n * n);
  }

 private:
  inorder::Pipe::Point pipe_;
};

// One-way: only the parent sends; the process adds up what it receives in
// one run and hands back the sum.
class Summer : public inorder::Skprocess<long> {
 public:
  explicit Summer(inorder::Pipe::Point point) : pipe_(std::move(point)) { config.runs = 1; }

  void on_run() override {
    for (auto v = pipe_.recv<std::vector<long>>(); !v.empty(); v = pipe_.recv<std::vector<long>>())
      for (const long x : v) sum_ += x;
  }
  long on_result() override { return sum_; }

 private:
  inorder::Pipe::Point pipe_;
  long sum_ = 0;
};

int main() {
  bool ok = true;

  auto [anchor, point] = inorder::Pipe::pair();
  Squarer squarer(std::move(point));
  squarer.start();
  for (long n = 1; n <= 5; ++n) {
    anchor.send(n);
    const long sq = anchor.recv<long>();
    std::printf("%ld^2 = %ld\n", n, sq);
    ok = ok && sq == n * n;
  }
  anchor.send(0L);
  squarer.result();  // waits for the process; throws inorder::ProcessError if it failed

  auto [to_summer, summer_end] = inorder::Pipe::pair(/*one_way=*/true);
  Summer summer(std::move(summer_end));
  summer.start();
  to_summer.send(std::vector<long>{1, 2, 3});
  to_summer.send(std::vector<long>{4, 5, 6, 7, 8, 9, 10});
  to_summer.send(std::vector<long>{});  // empty: the end
  const long sum = summer.result();
  std::printf("sum = %ld\n", sum);
  ok = ok && sum == 55;

  if (!ok) std::printf("MISMATCH\n");
  return ok ? 0 : 1;
}
