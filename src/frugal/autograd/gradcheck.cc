#include "frugal/autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/ops.h"
#include "frugal/base/rng.h"

namespace frugal {

namespace {
double projected(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                 const std::vector<Tensor>& inputs, const std::vector<double>& r) {
  autograd::NoGradGuard no_grad;
  std::vector<double> out = fn(inputs).to_vector<double>();
  double total = 0;
  for (size_t i = 0; i < out.size(); ++i) total += out[i] * r[i];
  return total;
}
}  // namespace

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& options) {
  GradcheckResult result;
  for (const Tensor& t : inputs)
    FRUGAL_CHECK(!t.defined() || !t.requires_grad() || t.dtype() == DType::f64, "gradcheck needs f64 inputs");
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) t.impl()->grad.reset();

  Tensor out = fn(inputs);
  FRUGAL_CHECK(out.dtype() == DType::f64, "gradcheck: fn must return f64");
  Rng rng(options.seed, 0, RandomPurpose::test);
  std::vector<double> r(size_t(out.numel()));
  for (double& v : r) v = rng.uniform_double() * 2 - 1;
  if (out.requires_grad()) autograd::backward(out, Tensor::from_vector(r, out.shape()));

  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.defined() || !x.requires_grad()) continue;
    FRUGAL_CHECK(x.is_contiguous(), "gradcheck: inputs must be contiguous");
    std::vector<double> analytic = x.grad().defined() ? x.grad().to_vector<double>()
                                                      : std::vector<double>(size_t(x.numel()), 0.0);
    double* p = x.data<double>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      double saved = p[i];
      p[i] = saved + options.eps;
      double plus = projected(fn, inputs, r);
      p[i] = saved - options.eps;
      double minus = projected(fn, inputs, r);
      p[i] = saved;
      double numeric = (plus - minus) / (2 * options.eps);
      double error = std::fabs(numeric - analytic[size_t(i)]);
      if (!(error <= result.max_abs_error)) result.max_abs_error = std::isnan(error) ? INFINITY : error;
      if (result.ok && !(error <= options.atol + options.rtol * std::fabs(numeric))) {
        result.ok = false;
        std::ostringstream msg;
        msg.precision(10);
        msg << "input " << k << " element " << i << ": analytic " << analytic[size_t(i)]
            << " vs numeric " << numeric;
        result.message = msg.str();
      }
    }
  }
  return result;
}

}  // namespace frugal
