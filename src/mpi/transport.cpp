// src/mpi/transport.cpp: see transport.hpp.
#include "transport.hpp"

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include "wire.hpp"

namespace inorder::mpi::detail {
namespace {

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw std::runtime_error(std::string("inorder::mpi: ") + what + " failed");
}

}  // namespace

void abort_job(const std::string& message) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, kAbortStatus);
  std::_Exit(kAbortStatus);  // not reached: MPI_Abort does not return
}

std::chrono::microseconds Backoff::next() noexcept {
  ++rounds_;
  if (rounds_ <= kSpins) return std::chrono::microseconds(0);
  // 10 us, doubling, capped: latency stays low after a short gap, and a long
  // idle period costs about a thousand wake-ups a second.
  const int shift = std::min(rounds_ - kSpins, 7);
  return std::min(kMaxSleep, std::chrono::microseconds(10 << shift));
}

void Backoff::pause() {
  const auto d = next();
  if (d.count() == 0) return;
  std::this_thread::sleep_for(d);
}

Transport::Transport(std::chrono::milliseconds stall_limit)
    : part_limit_(INT_MAX), stall_limit_(stall_limit) {
  if (const char* s = std::getenv("INORDER_MPI_MAX_MESSAGE")) {
    const unsigned long long v = std::strtoull(s, nullptr, 10);
    if (v >= 4096 && v < INT_MAX) part_limit_ = static_cast<std::size_t>(v);
  }
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  last_send_.assign(static_cast<std::size_t>(size), std::chrono::steady_clock::now());
}

void Transport::send(int dest, int tag, std::vector<std::byte> bytes) {
  auto buf = std::make_shared<const std::vector<std::byte>>(std::move(bytes));
  last_send_[static_cast<std::size_t>(dest)] = std::chrono::steady_clock::now();
  if (buf->size() <= part_limit_) {
    Outgoing o{MPI_REQUEST_NULL, buf};
    check(MPI_Isend(buf->data(), static_cast<int>(buf->size()), MPI_BYTE, dest, tag, MPI_COMM_WORLD,
                    &o.req),
          "MPI_Isend");
    sends_.push_back(std::move(o));
    return;
  }
  BigHeader h{};
  h.total = buf->size();
  h.part = part_limit_;
  h.tag = tag;
  auto head = std::make_shared<std::vector<std::byte>>(sizeof h);
  std::memcpy(head->data(), &h, sizeof h);
  Outgoing o{MPI_REQUEST_NULL, head};
  check(MPI_Isend(head->data(), static_cast<int>(head->size()), MPI_BYTE, dest, kTagBig,
                  MPI_COMM_WORLD, &o.req),
        "MPI_Isend");
  sends_.push_back(std::move(o));
  for (std::size_t off = 0; off < buf->size(); off += part_limit_) {
    const std::size_t n = std::min(part_limit_, buf->size() - off);
    Outgoing p{MPI_REQUEST_NULL, buf};
    check(MPI_Isend(buf->data() + off, static_cast<int>(n), MPI_BYTE, dest, kTagPiece,
                    MPI_COMM_WORLD, &p.req),
          "MPI_Isend");
    sends_.push_back(std::move(p));
  }
}

bool Transport::poll_sends() {
  bool any = false;
  std::size_t kept = 0;
  for (std::size_t i = 0; i < sends_.size(); ++i) {
    int done = 0;
    check(MPI_Test(&sends_[i].req, &done, MPI_STATUS_IGNORE), "MPI_Test");
    if (done) {
      any = true;
      continue;
    }
    if (kept != i) sends_[kept] = std::move(sends_[i]);
    ++kept;
  }
  sends_.resize(kept);
  return any;
}

void Transport::wait(MPI_Request* reqs, int n, int source, const std::function<void()>& idle) {
  Backoff backoff;
  const auto since = std::chrono::steady_clock::now();
  for (;;) {
    int done = 0;
    check(MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE), "MPI_Testall");
    if (done) return;
    if (std::chrono::steady_clock::now() - since > stall_limit_) {
      int self = 0;
      MPI_Comm_rank(MPI_COMM_WORLD, &self);
      abort_job("inorder::mpi: rank " + std::to_string(self) + ": a message from rank " +
                std::to_string(source) + " started arriving " +
                std::to_string(stall_limit_.count()) +
                " ms ago and has not completed (sender stopped or unreachable); ending the job");
    }
    poll_sends();  // our own outgoing parts may be what the peer waits for
    if (idle) idle();
    backoff.pause();
  }
}

bool Transport::try_recv(Message& out, const std::function<void()>& idle) {
  int flag = 0;
  MPI_Status st;
  check(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st), "MPI_Iprobe");
  if (!flag) return false;
  int count = 0;
  MPI_Get_count(&st, MPI_BYTE, &count);
  out.source = st.MPI_SOURCE;
  out.tag = st.MPI_TAG;
  out.bytes.resize(static_cast<std::size_t>(count));
  MPI_Request req = MPI_REQUEST_NULL;
  check(MPI_Irecv(out.bytes.data(), count, MPI_BYTE, out.source, out.tag, MPI_COMM_WORLD, &req),
        "MPI_Irecv");
  wait(&req, 1, out.source, idle);
  if (out.tag != kTagBig) return true;

  BigHeader h{};
  if (out.bytes.size() != sizeof h) throw std::runtime_error("inorder::mpi: bad split header");
  std::memcpy(&h, out.bytes.data(), sizeof h);
  out.tag = h.tag;
  out.bytes.assign(h.total, std::byte{0});
  std::vector<MPI_Request> reqs;
  for (std::size_t off = 0; off < h.total; off += h.part) {
    const std::size_t n = std::min<std::size_t>(h.part, h.total - off);
    reqs.push_back(MPI_REQUEST_NULL);
    check(MPI_Irecv(out.bytes.data() + off, static_cast<int>(n), MPI_BYTE, out.source, kTagPiece,
                    MPI_COMM_WORLD, &reqs.back()),
          "MPI_Irecv");
  }
  wait(reqs.data(), static_cast<int>(reqs.size()), out.source, idle);
  return true;
}

}  // namespace inorder::mpi::detail
