// Errors at the edges of frugal: bad input (exit code 2) versus internal faults (exit code 1).
// InputError carries where the problem is (file, key, line or byte offset) and what was expected.
#pragma once

#include <stdexcept>
#include <string>

namespace frugal {

// Bad user input: a file, a job key, a command-line value. The CLI maps it to exit code 2.
class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& message) : std::runtime_error(message) {}
};

// A broken internal invariant; the CLI maps it to exit code 1.
class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& message) : std::logic_error(message) {}
};

[[noreturn]] void fail_check(const char* condition, const char* file, int line, const std::string& message);

}  // namespace frugal

// FRUGAL_CHECK(cond, msg): an invariant that holds for every valid call; throws InternalError.
#define FRUGAL_CHECK(cond, ...)                                                            \
  do {                                                                                     \
    if (!(cond)) ::frugal::fail_check(#cond, __FILE__, __LINE__, ::std::string(__VA_ARGS__)); \
  } while (0)
