#include "frugal/base/error.h"

namespace frugal {

void fail_check(const char* condition, const char* file, int line, const std::string& message) {
  std::string text = std::string(file) + ":" + std::to_string(line) + ": check failed: " + condition;
  if (!message.empty()) text += ": " + message;
  throw InternalError(text);
}

}  // namespace frugal
