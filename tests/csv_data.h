// A 4-class problem in 16 features as CSV text (header x0..x15,label), made with a fixed LCG so every
// run of every test sees the same file. Shared by the tests that train on a small real CSV.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace frugal::testing {

inline std::string four_class_csv(int rows) {
  std::string out;
  for (int i = 0; i < 16; ++i) {
    out += 'x';
    out += std::to_string(i);
    out += ',';
  }
  out += "label\n";
  uint64_t state = 12345;
  auto uniform = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return double(state >> 11) / double(1ull << 53);
  };
  for (int r = 0; r < rows; ++r) {
    int label = int(uniform() * 4);
    for (int i = 0; i < 16; ++i) {
      double x = (uniform() + uniform() + uniform() - 1.5) * 2 + (i % 4 == label ? 0.8 : 0.0);
      char buffer[32];
      std::snprintf(buffer, sizeof buffer, "%.4f,", x);
      out += buffer;
    }
    out += std::to_string(label);
    out += '\n';
  }
  return out;
}

}  // namespace frugal::testing
