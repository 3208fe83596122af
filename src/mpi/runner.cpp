// src/mpi/runner.cpp: see runner.hpp.
#include "runner.hpp"

#include <cstring>
#include <exception>
#include <string>
#include <utility>

#include "identity.hpp"
#include "inorder/codec.hpp"
#include "inorder/errors.hpp"

namespace inorder::mpi::detail {

void Runner::fail(const TaskHeader& h, Outcome outcome, const std::string& type,
                  const std::string& msg, const Sink& sink) {
  const auto bytes = encode_to_vector(std::pair<std::string, std::string>(type, msg));
  ResultHeader r{};
  r.epoch = h.epoch;
  r.seq = h.seq;
  r.len = bytes.size();
  r.pid = 0;
  r.outcome = outcome;
  sink(r, bytes.data());
}

void Runner::add_outstanding() {
  if (outstanding_++ == 0) busy_since_ = Clock::now();
}

void Runner::finish_one() {
  ++finished_;
  if (--outstanding_ == 0)
    busy_ns_ += static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - busy_since_).count());
}

void Runner::submit(const TaskHeader& h, const std::byte* payload, const Sink& sink) {
  add_outstanding();
  if (backlog_.empty() && try_start(h, payload, sink)) return;
  backlog_.push_back({h, std::vector<std::byte>(payload, payload + h.len)});
}

bool Runner::pump(const Sink& sink) {
  bool moved = false;
  while (!backlog_.empty() &&
         try_start(backlog_.front().header, backlog_.front().payload.data(), sink)) {
    backlog_.pop_front();
    moved = true;
  }
  return moved;
}

bool Runner::try_start(const TaskHeader& h, const std::byte* payload, const Sink& sink) {
  std::uintptr_t invoker = 0;
  std::uintptr_t fn = 0;
  try {
    invoker = resolve(h.invoker);
    if (h.fn.module != CodeRef::kNone) fn = resolve(h.fn);
  } catch (const std::exception& e) {
    finish_one();
    fail(h, Outcome::kTaskError, "inorder::mpi::UnknownCode", e.what(), sink);
    return true;
  }
  std::uint32_t local = 0;
  std::byte* dst = nullptr;
  try {
    dst = core_.begin_put(h.len, false, inorder::detail::kNoWait, local);
  } catch (const QueueBroken& e) {
    finish_one();
    fail(h, Outcome::kBroken, "", e.what(), sink);
    return true;
  }
  if (dst == nullptr) return false;
  if (h.len != 0) std::memcpy(dst, payload, h.len);
  // A function pointer's bytes are rank 0's address: put this rank's in their place.
  if (h.fn.module != CodeRef::kNone && h.fn_size == sizeof fn) std::memcpy(dst, &fn, sizeof fn);
  inorder::detail::Invoker inv = nullptr;
  static_assert(sizeof inv == sizeof invoker, "a function pointer must fit an address");
  std::memcpy(&inv, &invoker, sizeof inv);
  by_local_[local] = Pending{h.epoch, h.seq};
  core_.commit_put(local, inv, h.len, h.timeout_ms);
  return true;
}

BatchInfo Runner::take_busy() {
  BatchInfo out{busy_ns_, finished_};
  if (outstanding_ > 0) {  // the open period so far; the rest counts next time
    const auto now = Clock::now();
    out.busy_ns += static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(now - busy_since_).count());
    busy_since_ = now;
  }
  busy_ns_ = 0;
  finished_ = 0;
  return out;
}

std::size_t Runner::harvest(const Sink& sink, std::size_t max, Deadline deadline) {
  std::size_t n = 0;
  while (n < max && outstanding_ > backlog_.size()) {
    inorder::detail::ResultView v;
    if (core_.begin_get_any(n == 0 ? deadline : inorder::detail::kNoWait, v) != GetStatus::kReady)
      break;
    struct Release {
      inorder::detail::Core& core;
      const inorder::detail::ResultView& view;
      ~Release() { core.end_get(view); }
    } release{core_, v};
    const auto it = by_local_.find(v.seq);
    if (it == by_local_.end()) continue;  // cannot happen: every put is recorded
    const Pending p = it->second;
    by_local_.erase(it);
    finish_one();
    ++n;
    ResultHeader r{};
    r.epoch = p.epoch;
    r.seq = p.seq;
    r.pid = v.pid;
    if (!v.is_error) {
      r.outcome = Outcome::kValue;
      r.len = v.len;
      sink(r, v.data);
      continue;
    }
    // Rebuild the error through the Core's own decoder, then flatten it.
    Outcome outcome = Outcome::kTaskError;
    std::pair<std::string, std::string> record;
    try {
      core_.throw_task_error(v);
    } catch (const WorkerCrashed& e) {
      outcome = Outcome::kWorkerCrashed;
      record = {e.type_name(), e.message()};
    } catch (const TaskTimeout& e) {
      outcome = Outcome::kTaskTimeout;
      record = {e.type_name(), e.message()};
    } catch (const TaskError& e) {
      record = {e.type_name(), e.message()};
    } catch (const std::exception& e) {
      outcome = Outcome::kBroken;
      record = {"", e.what()};
    }
    const auto bytes = encode_to_vector(record);
    r.outcome = outcome;
    r.len = bytes.size();
    sink(r, bytes.data());
  }
  return n;
}

}  // namespace inorder::mpi::detail
