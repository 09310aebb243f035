// Logging: one spdlog logger per component ("gateway", "imaging", "modem", ...), all writing to
// stderr with the component name, thread id and source location. Use the FF_LOG_* macros so the
// file:line of the call is recorded.
#pragma once

#include <memory>
#include <string_view>

#include <spdlog/spdlog.h>

namespace faxflow {

// Returns (creating on first use) the logger for a component. Thread-safe.
std::shared_ptr<spdlog::logger> Logger(std::string_view component);

// Sets the level of every logger: trace, debug, info, warn, error, off.
void SetLogLevel(std::string_view level);

}  // namespace faxflow

#define FF_LOG_DEBUG(logger, ...) SPDLOG_LOGGER_DEBUG(logger, __VA_ARGS__)
#define FF_LOG_INFO(logger, ...) SPDLOG_LOGGER_INFO(logger, __VA_ARGS__)
#define FF_LOG_WARN(logger, ...) SPDLOG_LOGGER_WARN(logger, __VA_ARGS__)
#define FF_LOG_ERROR(logger, ...) SPDLOG_LOGGER_ERROR(logger, __VA_ARGS__)
