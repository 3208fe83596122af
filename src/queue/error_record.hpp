// src/queue/error_record.hpp: the (type name, message) record that stands in
// a slot's result area when its task failed. Written by a worker (exception)
// or the supervisor (crash, timeout); read back by the getter, which throws
// the matching TaskError subclass.
#pragma once

#include <string>

#include "inorder/detail/core.hpp"

namespace inorder::detail {

/// Decodes the (type, message) record of an error slot and throws the
/// matching TaskError subclass.
[[noreturn]] void throw_recorded_error(const ResultView& view);

/// Encodes an error record (type name, message) into the slot's result area.
/// Never throws: the message is cut to fit when the spill area refuses it.
void write_error(ResultSink& sink, const std::string& type, const std::string& message) noexcept;

}  // namespace inorder::detail
