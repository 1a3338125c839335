#include "frugal/base/error.h"

#include <cerrno>
#include <cstring>

namespace frugal {

void fail_check(const char* condition, const char* file, int line, const std::string& message) {
  std::string text = std::string(file) + ":" + std::to_string(line) + ": check failed: " + condition;
  if (!message.empty()) text += ": " + message;
  throw InternalError(text);
}

bool is_storage_failure(int error_number) {
  return error_number == ENOSPC || error_number == EDQUOT || error_number == EIO || error_number == EFBIG;
}

void fail_system(const std::string& message, int error_number) {
  std::string text = message + ": " + std::strerror(error_number);
  if (is_storage_failure(error_number)) throw IoError(text);
  throw InputError(text);
}

}  // namespace frugal
