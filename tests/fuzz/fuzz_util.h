// Shared by the libFuzzer targets of tests/fuzz: an expected refusal is an InputError (the CLI's
// exit 2); anything else escaping a parser (another exception, a crash, a sanitizer report) is a
// finding. FUZZ_CHECK states an invariant of an accepted input; a broken one aborts, so libFuzzer
// keeps the input as a crash.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "frugal/base/error.h"

#define FUZZ_CHECK(cond)                                                               \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "FUZZ_CHECK failed: %s at %s:%d\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)

namespace frugal::fuzz {

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

// Runs `parse`; returns true when it accepted the input, false when it refused it with an InputError.
template <typename F>
bool accepted(F&& parse) {
  try {
    parse();
    return true;
  } catch (const InputError&) {
    return false;
  }
}

}  // namespace frugal::fuzz
