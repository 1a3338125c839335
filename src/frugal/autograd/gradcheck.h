// gradcheck: compares backward() against central finite differences, in f64.
// It checks J^T r for a fixed random r (one backward), against d(sum(f(x) * r))/dx by central
// differences for every input element, so its cost is 2 forwards per input element: keep inputs small.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "frugal/tensor/tensor.h"

namespace frugal {

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0;  // over all checked elements
  std::string message;       // first failing element, or empty
};

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-4;
  uint64_t seed = 1234;
};

// `inputs` must be f64; those with requires_grad are checked. fn may return any shape.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& options = {});

}  // namespace frugal
