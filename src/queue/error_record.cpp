// src/queue/error_record.cpp: writing and reading the error record of a slot.
#include <string>
#include <utility>

#include "inorder/codec.hpp"
#include "inorder/errors.hpp"
#include "queue/error_record.hpp"

namespace inorder::detail {

void write_error(ResultSink& sink, const std::string& type, const std::string& message) noexcept {
  std::string msg = message;
  for (;;) {
    const std::pair<std::string, std::string> record{type, msg};
    const std::size_t n = encoded_size(record);
    try {
      Writer w(sink.reserve(n));
      encode(w, record);
      return;
    } catch (...) {
      // Only ResultTooLarge can get here: shorten the message and retry. The
      // inline area always holds a short record (inline_bytes >= 64).
      if (msg.empty()) {
        sink.reserved = 0;
        return;
      }
      msg.resize(msg.size() / 2);
    }
  }
}

void throw_recorded_error(const ResultView& view) {
  std::string type = "inorder::UnknownError";
  std::string message;
  if (view.len != 0) {
    auto record = decode_from<std::pair<std::string, std::string>>(view.data, view.len);
    type = std::move(record.first);
    message = std::move(record.second);
  }
  if (type == "inorder::WorkerCrashed")
    throw WorkerCrashed(std::move(type), std::move(message), view.pid, view.seq);
  if (type == "inorder::TaskTimeout")
    throw TaskTimeout(std::move(type), std::move(message), view.pid, view.seq);
  throw TaskError(std::move(type), std::move(message), view.pid, view.seq);
}

}  // namespace inorder::detail
