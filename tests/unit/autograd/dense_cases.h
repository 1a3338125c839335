// The dense-op cases (matmul, linear, conv2d shapes and options) that the mixed-precision tests
// run in each precision: one list, so bf16 and fp16 are checked on the same ops.
#pragma once

#include <functional>
#include <vector>

#include "frugal/autograd/ops.h"
#include "test_util.h"

namespace frugal::testing {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

struct Case {
  const char* name;
  std::vector<Shape> shapes;
  Fn fn;
};

inline std::vector<Case> dense_cases() {
  Conv2dOptions padded;
  padded.padding_h = padded.padding_w = 1;
  Conv2dOptions grouped;
  grouped.groups = 2, grouped.stride_h = 2, grouped.stride_w = 2, grouped.padding_h = 1;
  return {
      {"matmul 2d", {{37, 53}, {53, 29}}, [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }},
      {"matmul broadcast batch", {{3, 17, 33}, {33, 9}}, [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }},
      {"matmul transposed operand", {{6, 53}, {29, 53}},
       [](const std::vector<Tensor>& in) { return matmul(in[0], transpose(in[1], 0, 1)); }},
      {"matmul batched", {{2, 3, 8, 16}, {2, 3, 16, 5}}, [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }},
      {"matmul tiny", {{1, 1}, {1, 1}}, [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }},
      {"linear", {{4, 7, 40}, {24, 40}, {24}}, [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); }},
      {"linear no bias", {{1, 13}, {5, 13}}, [](const std::vector<Tensor>& in) { return linear(in[0], in[1]); }},
      {"conv2d padded", {{2, 3, 11, 9}, {8, 3, 3, 3}, {8}},
       [padded](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2], padded); }},
      {"conv2d grouped strided", {{2, 4, 10, 10}, {6, 2, 3, 3}},
       [grouped](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], Tensor(), grouped); }},
      {"conv2d 1x1", {{1, 5, 4, 4}, {7, 5, 1, 1}, {7}},
       [](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2]); }},
  };
}

// Random inputs of a case; `seed` keeps the two precisions' tests on different values.
inline std::vector<Tensor> case_inputs(const Case& c, uint64_t seed, DType dtype = DType::f32) {
  std::vector<Tensor> inputs;
  for (size_t i = 0; i < c.shapes.size(); ++i) inputs.push_back(random_tensor(c.shapes[i], seed + i, dtype));
  return inputs;
}

}  // namespace frugal::testing
