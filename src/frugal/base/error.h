// Errors at the edges of frugal: bad input (exit code 2), failing storage (exit code 74) and
// internal faults (exit code 1). InputError and IoError carry where the problem is (file, key, line
// or byte offset) and what was expected or what the system said.
#pragma once

#include <stdexcept>
#include <string>

namespace frugal {

// Bad user input: a file, a job key, a command-line value. The CLI maps it to exit code 2.
class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& message) : std::runtime_error(message) {}
};

// The storage failed under a valid request: disk full, quota exceeded, an I/O error. The CLI maps it
// to exit code 74 (EX_IOERR), which a scheduler may retry elsewhere; the input itself was fine.
class IoError : public std::runtime_error {
 public:
  explicit IoError(const std::string& message) : std::runtime_error(message) {}
};

// True for the errno values that mean the storage failed (ENOSPC, EDQUOT, EIO, EFBIG), not the
// request (ENOENT, ENOTDIR, EACCES, ENAMETOOLONG...).
bool is_storage_failure(int error_number);

// Throws IoError for a storage failure, otherwise InputError: "<message>: <system text>".
[[noreturn]] void fail_system(const std::string& message, int error_number);

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
