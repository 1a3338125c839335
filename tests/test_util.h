// Helpers shared by tests: random tensors from a fixed seed, and closeness checks that print the
// largest difference (atol + rtol * |reference|), llm.c style.
#pragma once

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "frugal/base/rng.h"
#include "frugal/tensor/tensor.h"

namespace frugal::testing {

// Uniform values in [low, high) from a Philox stream keyed by `seed`.
inline Tensor random_tensor(const Shape& shape, uint64_t seed, DType dtype = DType::f32, double low = -1.0,
                            double high = 1.0) {
  Rng rng(seed, 0, RandomPurpose::test);
  std::vector<double> values(size_t(shape_numel(shape)));
  for (double& v : values) v = low + (high - low) * rng.uniform_double();
  return Tensor::from_vector(values, shape).to(dtype);
}

// Same random values as a f64 leaf that requires grad (for gradcheck).
inline Tensor random_leaf(const Shape& shape, uint64_t seed, double low = -1.0, double high = 1.0) {
  Tensor t = random_tensor(shape, seed, DType::f64, low, high);
  t.set_requires_grad(true);
  return t;
}

// Passes when every |actual - expected| <= atol + rtol * |expected|; reports the worst element.
inline ::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected, double atol,
                                            double rtol) {
  if (actual.shape() != expected.shape())
    return ::testing::AssertionFailure() << "shape " << shape_str(actual.shape()) << " vs expected "
                                         << shape_str(expected.shape());
  std::vector<double> a = actual.to_vector<double>(), e = expected.to_vector<double>();
  double max_diff = 0;
  int64_t worst = -1;
  bool ok = true;
  for (size_t i = 0; i < a.size(); ++i) {
    double diff = std::fabs(a[i] - e[i]);
    bool bad = !(diff <= atol + rtol * std::fabs(e[i]));
    if (std::isnan(e[i]) && std::isnan(a[i])) bad = false, diff = 0;
    if (bad) ok = false;
    if (bad && (worst < 0 || diff > max_diff)) { max_diff = diff; worst = int64_t(i); }
    else if (ok && diff > max_diff) max_diff = diff;
  }
  if (ok) return ::testing::AssertionSuccess() << "max diff " << max_diff;
  return ::testing::AssertionFailure() << "max diff " << max_diff << " at flat index " << worst << ": got "
                                       << a[size_t(worst)] << ", expected " << e[size_t(worst)]
                                       << " (atol " << atol << ", rtol " << rtol << ")";
}

// Same dtype, shape and bytes: the only acceptable difference is none.
inline ::testing::AssertionResult same_bits(const Tensor& actual, const Tensor& expected) {
  if (actual.defined() != expected.defined())
    return ::testing::AssertionFailure() << "defined " << actual.defined() << " vs " << expected.defined();
  if (!actual.defined()) return ::testing::AssertionSuccess();
  if (actual.dtype() != expected.dtype() || actual.shape() != expected.shape())
    return ::testing::AssertionFailure() << actual.str() << " vs " << expected.str();
  Tensor a = actual.contiguous(), e = expected.contiguous();
  if (std::memcmp(a.raw_data(), e.raw_data(), a.nbytes()) != 0)
    return ::testing::AssertionFailure() << "bits differ: " << a.str() << " vs " << e.str();
  return ::testing::AssertionSuccess();
}

// The whole file as bytes ("" if it cannot be read), and the bytes written over a file.
inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

}  // namespace frugal::testing

// Expects `statement` to throw frugal::InputError whose message contains every one of `parts`.
#define EXPECT_INPUT_ERROR(statement, ...)                                                     \
  do {                                                                                         \
    try {                                                                                      \
      statement;                                                                               \
      ADD_FAILURE() << "expected InputError from " #statement;                                 \
    } catch (const ::frugal::InputError& error) {                                              \
      std::string message = error.what();                                                      \
      for (const std::string& part : std::vector<std::string>{__VA_ARGS__})                    \
        EXPECT_NE(message.find(part), std::string::npos) << "message: " << message << "\nmissing: " << part; \
    }                                                                                          \
  } while (0)
