// Tests of cross_entropy, mse_loss, layer_norm, batch_norm and scaled_dot_product_attention:
// gradcheck in f64 for every option, fast f32 kernels against the reference kernels (forward and
// backward) on random shapes, PyTorch semantics on hand-picked cases, errors and determinism.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "frugal/autograd/gradcheck.h"
#include "frugal/autograd/ops.h"
#include "frugal/base/parallel.h"
#include "frugal/kernels/kernels.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::all_close;
using testing::random_leaf;
using testing::random_tensor;
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

Tensor targets_of(const std::vector<int64_t>& values) {
  return Tensor::from_vector(values, {int64_t(values.size())});
}

// Forward and backward (with a fixed random output gradient) of fn on copies of `inputs`.
struct PathRun {
  Tensor out;
  std::vector<Tensor> grads;
};
PathRun run(const Fn& fn, const std::vector<Tensor>& inputs, bool reference) {
  kernels::ReferenceModeGuard guard(reference);
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) {
    Tensor leaf = t.clone();
    leaf.set_requires_grad(true);
    leaves.push_back(leaf);
  }
  PathRun result;
  result.out = fn(leaves);
  autograd::backward(result.out, random_tensor(result.out.shape(), 99, result.out.dtype()));
  for (const Tensor& leaf : leaves) result.grads.push_back(leaf.grad());
  return result;
}

// Fast f32 kernels against the f32 reference kernels, forward and every input gradient.
void expect_fast_matches_reference(const Fn& fn, const std::vector<Tensor>& inputs, const std::string& what,
                                   double atol = 1e-5, double rtol = 1e-4) {
  PathRun fast = run(fn, inputs, false), reference = run(fn, inputs, true);
  EXPECT_TRUE(all_close(fast.out, reference.out, atol, rtol)) << what << " forward";
  for (size_t i = 0; i < inputs.size(); ++i)
    EXPECT_TRUE(all_close(fast.grads[i], reference.grads[i], atol, rtol)) << what << " gradient of input " << i;
}

const char* reduction_name(Reduction r) {
  return r == Reduction::mean ? "mean" : r == Reduction::sum ? "sum" : "none";
}

// ---- cross entropy ----

TEST(CrossEntropy, GradcheckEveryOption) {
  Tensor logits = random_leaf({6, 4}, 1, -2.0, 2.0);
  // Rows 1 and 4 are ignored under the default ignore_index; a second case ignores class 2.
  const std::vector<std::pair<std::vector<int64_t>, int64_t>> cases = {
      {{0, -100, 3, 1, -100, 2}, -100}, {{0, 2, 3, 1, 2, 2}, 2}, {{3, 1, 0, 0, 2, 1}, -100}};
  for (auto [targets, ignore] : cases)
    for (double smoothing : {0.0, 0.1})
      for (Reduction reduction : {Reduction::mean, Reduction::sum, Reduction::none}) {
        CrossEntropyOptions options;
        options.reduction = reduction;
        options.label_smoothing = smoothing;
        options.ignore_index = ignore;
        Tensor t = targets_of(targets);
        auto r = gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t, options); }, {logits});
        EXPECT_TRUE(r.ok) << reduction_name(reduction) << " smoothing " << smoothing << " ignore " << ignore << ": "
                          << r.message;
      }
}

// Values from PyTorch 1.13 (F.cross_entropy, f64) on the same inputs.
TEST(CrossEntropy, MatchesPyTorchWithSmoothingAndIgnoredRows) {
  Tensor logits = Tensor::from_vector<double>({1.0, 2.0, 0.5, 0.1, -0.3, 0.7, 2.0, 0.0, -1.0, -0.5, 0.25, 1.5}, {4, 3});
  logits.set_requires_grad(true);
  Tensor t = targets_of({1, -100, 0, 2});
  struct Case {
    Reduction reduction;
    double smoothing;
    std::vector<double> expected;
  };
  const std::vector<Case> cases = {
      {Reduction::mean, 0.0, {0.32872222248901073}},
      {Reduction::mean, 0.1, {0.4481666669334552}},
      {Reduction::sum, 0.0, {0.9861666674670322}},
      {Reduction::sum, 0.1, {1.3445000008003656}},
      {Reduction::none, 0.0, {0.4643687841079449, 0.0, 0.16984601955628567, 0.35195186380280163}},
      {Reduction::none, 0.1, {0.5477021174412783, 0.0, 0.3365126862229524, 0.46028519713613497}}};
  for (const Case& c : cases) {
    CrossEntropyOptions options;
    options.reduction = c.reduction;
    options.label_smoothing = c.smoothing;
    std::vector<double> got = cross_entropy(logits, t, options).to_vector<double>();
    ASSERT_EQ(got.size(), c.expected.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], c.expected[i], 1e-12) << reduction_name(c.reduction) << " " << c.smoothing;
  }
  CrossEntropyOptions options;
  options.label_smoothing = 0.1;
  autograd::backward(cross_entropy(logits, t, options));
  const std::vector<double> expected_grad = {
      0.06596352142960524,  -0.10160053804052362, 0.035637016610918386, 0, 0, 0,
      -0.029846199617331266, 0.026953955350420385, 0.002892244266910906,
      0.0206166209386139,   0.056056498165239214, -0.07667311910385312};
  std::vector<double> grad = logits.grad().to_vector<double>();
  for (size_t i = 0; i < grad.size(); ++i) EXPECT_NEAR(grad[i], expected_grad[i], 1e-12) << i;
}

TEST(CrossEntropy, MeanDividesByRowsNotIgnored) {
  Tensor logits = random_tensor({5, 3}, 2, DType::f64);
  CrossEntropyOptions none;
  none.reduction = Reduction::none;
  Tensor t = targets_of({2, -100, 0, -100, 1});
  std::vector<double> rows = cross_entropy(logits, t, none).to_vector<double>();
  EXPECT_EQ(rows[1], 0.0);
  EXPECT_EQ(rows[3], 0.0);
  EXPECT_NEAR(cross_entropy(logits, t).item(), (rows[0] + rows[2] + rows[4]) / 3.0, 1e-14);
}

TEST(CrossEntropy, TargetOutOfRangeNamesRowAndValue) {
  Tensor logits = random_tensor({3, 4}, 3);
  for (int64_t bad : {4, -1, 17}) {
    try {
      cross_entropy(logits, targets_of({0, bad, 1}));
      ADD_FAILURE() << "no error for target " << bad;
    } catch (const InputError& e) {
      std::string message = e.what();
      EXPECT_NE(message.find("row 1"), std::string::npos) << message;
      EXPECT_NE(message.find(std::to_string(bad)), std::string::npos) << message;
    }
  }
  EXPECT_THROW(cross_entropy(logits, targets_of({0, 1})), InputError);                     // wrong length
  EXPECT_THROW(cross_entropy(logits, targets_of({0, 1, 2}).to(DType::i32)), InputError);  // wrong dtype
  EXPECT_THROW(cross_entropy(random_tensor({3}, 4), targets_of({0, 1, 2})), InputError);  // not (N, C)
}

TEST(CrossEntropy, FastMatchesReference) {
  const std::vector<Shape> shapes = {{1, 1}, {1, 2}, {3, 7}, {17, 33}, {64, 1000}, {300, 10}, {5, 4099}};
  for (const Shape& shape : shapes)
    for (double smoothing : {0.0, 0.1})
      for (Reduction reduction : {Reduction::mean, Reduction::sum, Reduction::none}) {
        const int64_t N = shape[0], C = shape[1];
        std::vector<int64_t> targets;
        Rng rng(5, uint64_t(N * 1000 + C), RandomPurpose::test);
        for (int64_t n = 0; n < N; ++n) targets.push_back(n % 5 == 3 ? -100 : int64_t(rng.below(uint64_t(C))));
        Tensor t = targets_of(targets);
        CrossEntropyOptions options;
        options.reduction = reduction;
        options.label_smoothing = smoothing;
        expect_fast_matches_reference(
            [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t, options); },
            {random_tensor(shape, 6, DType::f32, -4.0, 4.0)},
            shape_str(shape) + " " + reduction_name(reduction) + " smoothing " + std::to_string(smoothing));
      }
  // Large logits: most softmax terms underflow to 0 in f32, the loss must not.
  Tensor t = targets_of({0, 5, 9, 3});
  expect_fast_matches_reference([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t); },
                                {random_tensor({4, 200}, 7, DType::f32, -60.0, 60.0)}, "large logits");
}

// ---- mse ----

TEST(MseLoss, GradcheckAndValues) {
  Tensor x = random_leaf({3, 4}, 7), y = random_leaf({3, 4}, 8);
  for (Reduction reduction : {Reduction::mean, Reduction::sum, Reduction::none}) {
    auto r = gradcheck([&](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1], reduction); }, {x, y});
    EXPECT_TRUE(r.ok) << reduction_name(reduction) << ": " << r.message;
  }
  Tensor a = Tensor::from_vector<double>({1.0, 2.0, 3.0}, {3}), b = Tensor::from_vector<double>({0.0, 4.0, 3.5}, {3});
  EXPECT_DOUBLE_EQ(mse_loss(a, b, Reduction::sum).item(), 1.0 + 4.0 + 0.25);
  EXPECT_DOUBLE_EQ(mse_loss(a, b).item(), 5.25 / 3.0);
  EXPECT_THROW(mse_loss(a, Tensor::zeros({4}, DType::f64)), InputError);
}

TEST(MseLoss, FastMatchesReference) {
  for (Shape shape : std::vector<Shape>{{1}, {7}, {33, 17}, {100003}})
    for (Reduction reduction : {Reduction::mean, Reduction::sum, Reduction::none})
      expect_fast_matches_reference(
          [&](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1], reduction); },
          {random_tensor(shape, 9), random_tensor(shape, 10)}, shape_str(shape) + " " + reduction_name(reduction));
}

// ---- layer norm ----

TEST(LayerNorm, GradcheckWithAndWithoutAffine) {
  for (Shape shape : std::vector<Shape>{{3, 5}, {2, 3, 4}, {4, 1}})
    for (bool with_weight : {false, true})
      for (bool with_bias : {false, true}) {
        const int64_t C = shape.back();
        Tensor x = random_leaf(shape, 11, -2.0, 2.0);
        Tensor w = with_weight ? random_leaf({C}, 12, 0.5, 1.5) : Tensor();
        Tensor b = with_bias ? random_leaf({C}, 13) : Tensor();
        auto r = gradcheck([&](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2]); }, {x, w, b});
        EXPECT_TRUE(r.ok) << shape_str(shape) << " weight " << with_weight << " bias " << with_bias << ": "
                          << r.message;
      }
}

TEST(LayerNorm, NormalizesEachRow) {
  Tensor x = random_tensor({4, 64}, 14, DType::f64, -3.0, 5.0);
  std::vector<double> y = layer_norm(x, Tensor(), Tensor(), 0.0).to_vector<double>();
  for (int64_t m = 0; m < 4; ++m) {
    double total = 0, squares = 0;
    for (int64_t c = 0; c < 64; ++c) total += y[size_t(m * 64 + c)], squares += y[size_t(m * 64 + c)] * y[size_t(m * 64 + c)];
    EXPECT_NEAR(total / 64, 0.0, 1e-12);
    EXPECT_NEAR(squares / 64, 1.0, 1e-12);  // biased variance
  }
}

TEST(LayerNorm, FastMatchesReference) {
  for (Shape shape : std::vector<Shape>{{1, 1}, {1, 7}, {5, 17}, {33, 300}, {1000, 64}, {2, 3, 129}, {70, 768}})
    for (bool affine : {false, true}) {
      const int64_t C = shape.back();
      Tensor x = random_tensor(shape, 15, DType::f32, -3.0, 3.0);
      std::vector<Tensor> inputs = affine ? std::vector<Tensor>{x, random_tensor({C}, 16, DType::f32, 0.5, 1.5),
                                                                random_tensor({C}, 17)}
                                          : std::vector<Tensor>{x};
      expect_fast_matches_reference(
          [&](const std::vector<Tensor>& in) {
            return affine ? layer_norm(in[0], in[1], in[2]) : layer_norm(in[0], Tensor(), Tensor());
          },
          inputs, shape_str(shape) + (affine ? " affine" : ""));
    }
}

// ---- batch norm ----

TEST(BatchNorm, GradcheckTrainingAndEval) {
  for (Shape shape : std::vector<Shape>{{5, 3}, {2, 3, 2, 3}, {3, 2, 1, 1}})
    for (bool training : {true, false})
      for (bool affine : {false, true}) {
        const int64_t C = shape[1];
        Tensor x = random_leaf(shape, 18, -2.0, 2.0);
        Tensor w = affine ? random_leaf({C}, 19, 0.5, 1.5) : Tensor();
        Tensor b = affine ? random_leaf({C}, 20) : Tensor();
        Tensor running_mean = random_tensor({C}, 21, DType::f64);
        Tensor running_var = random_tensor({C}, 22, DType::f64, 0.5, 2.0);
        auto r = gradcheck(
            [&](const std::vector<Tensor>& in) {
              return batch_norm(in[0], in[1], in[2], running_mean, running_var, training);
            },
            {x, w, b});
        EXPECT_TRUE(r.ok) << shape_str(shape) << " training " << training << " affine " << affine << ": "
                          << r.message;
      }
}

// x (4, 2); channel 0 holds {1, 3, -1, 2}: mean 1.25, squared deviations sum 8.75, so biased
// variance 2.1875 and unbiased 8.75 / 3. Channel 1 holds {-2, 0.5, 4, 1}: mean 0.875, squared
// deviations 8.265625 + 0.140625 + 9.765625 + 0.015625 = 18.1875, unbiased 6.0625.
TEST(BatchNorm, RunningStatsFollowPyTorchRule) {
  Tensor x = Tensor::from_vector<double>({1.0, -2.0, 3.0, 0.5, -1.0, 4.0, 2.0, 1.0}, {4, 2});
  Tensor running_mean = Tensor::from_vector<double>({0.5, -1.0}, {2});
  Tensor running_var = Tensor::from_vector<double>({2.0, 0.5}, {2});
  Tensor y = batch_norm(x, Tensor(), Tensor(), running_mean, running_var, true, 0.1, 1e-5);
  std::vector<double> rm = running_mean.to_vector<double>(), rv = running_var.to_vector<double>();
  EXPECT_NEAR(rm[0], 0.9 * 0.5 + 0.1 * 1.25, 1e-15);
  EXPECT_NEAR(rm[1], 0.9 * -1.0 + 0.1 * 0.875, 1e-15);
  EXPECT_NEAR(rv[0], 0.9 * 2.0 + 0.1 * (8.75 / 3.0), 1e-15);
  EXPECT_NEAR(rv[1], 0.9 * 0.5 + 0.1 * 6.0625, 1e-15);
  // Normalization uses the biased batch variance (PyTorch gives -0.16903046459079718 here).
  EXPECT_NEAR(y.at({0, 0}), (1.0 - 1.25) / std::sqrt(2.1875 + 1e-5), 1e-14);
  EXPECT_NEAR(y.at({0, 0}), -0.16903046459079718, 1e-14);
  // Eval uses the running stats and leaves them alone.
  Tensor y_eval = batch_norm(x, Tensor(), Tensor(), running_mean, running_var, false, 0.1, 1e-5);
  EXPECT_NEAR(y_eval.at({1, 1}), (0.5 - rm[1]) / std::sqrt(rv[1] + 1e-5), 1e-14);
  EXPECT_EQ(running_mean.to_vector<double>(), rm);
  // f32 running stats are updated by the same rule.
  Tensor rm32 = Tensor::from_vector<float>({0.5f, -1.0f}, {2}), rv32 = Tensor::from_vector<float>({2.0f, 0.5f}, {2});
  batch_norm(x.to(DType::f32), Tensor(), Tensor(), rm32, rv32, true, 0.1, 1e-5);
  EXPECT_NEAR(rm32.at({0}), 0.575, 1e-6);
  EXPECT_NEAR(rv32.at({0}), 2.0916666666666667, 1e-6);
}

TEST(BatchNorm, Errors) {
  EXPECT_THROW(batch_norm(random_tensor({2, 3, 4}, 23), Tensor(), Tensor(), Tensor(), Tensor(), true), InputError);
  EXPECT_THROW(batch_norm(random_tensor({1, 3}, 23), Tensor(), Tensor(), Tensor(), Tensor(), true), InputError);
  EXPECT_THROW(batch_norm(random_tensor({4, 3}, 23), Tensor(), Tensor(), Tensor(), Tensor(), false), InputError);
  EXPECT_THROW(batch_norm(random_tensor({4, 3}, 23), Tensor::ones({2}), Tensor(), Tensor(), Tensor(), true),
               InputError);
}

TEST(BatchNorm, FastMatchesReference) {
  for (Shape shape : std::vector<Shape>{{2, 3}, {7, 5}, {64, 300}, {2, 3, 1, 1}, {3, 5, 7, 9}, {8, 16, 14, 14}})
    for (bool training : {true, false})
      for (bool affine : {false, true}) {
        const int64_t C = shape[1];
        Tensor running_mean = random_tensor({C}, 24), running_var = random_tensor({C}, 25, DType::f32, 0.5, 2.0);
        Tensor x = random_tensor(shape, 26, DType::f32, -2.0, 3.0);
        std::vector<Tensor> inputs = affine ? std::vector<Tensor>{x, random_tensor({C}, 27, DType::f32, 0.5, 1.5),
                                                                  random_tensor({C}, 28)}
                                            : std::vector<Tensor>{x};
        expect_fast_matches_reference(
            [&](const std::vector<Tensor>& in) {
              // Fresh running stats per call: both paths start from the same values.
              Tensor rm = running_mean.clone(), rv = running_var.clone();
              return affine ? batch_norm(in[0], in[1], in[2], rm, rv, training)
                            : batch_norm(in[0], Tensor(), Tensor(), rm, rv, training);
            },
            inputs, shape_str(shape) + (training ? " training" : " eval") + (affine ? " affine" : ""));
      }
}

// batch_norm_relu is relu(batch_norm(...)) fused: the same values and gradients bit for bit, on
// the fast kernels and on the reference ones, f32 and f64, training and eval.
TEST(BatchNormRelu, BitIdenticalToTheTwoOps) {
  for (DType dtype : {DType::f32, DType::f64})
    for (bool reference : {false, true})
      for (Shape shape : std::vector<Shape>{{7, 5}, {3, 5, 7, 9}, {16, 32, 28, 28}})
        for (bool training : {true, false}) {
          if (dtype == DType::f64 && !reference && shape[0] == 16) continue;  // f64 runs the reference kernels anyway
          const int64_t C = shape[1];
          Tensor x = random_tensor(shape, 40, dtype, -2.0, 3.0);
          Tensor w = random_tensor({C}, 41, dtype, -1.0, 1.5), b = random_tensor({C}, 42, dtype);
          Tensor rm = random_tensor({C}, 43, dtype), rv = random_tensor({C}, 44, dtype, 0.5, 2.0);
          auto unfused = [&](const std::vector<Tensor>& in) {
            Tensor m = rm.clone(), v = rv.clone();
            return relu(batch_norm(in[0], in[1], in[2], m, v, training));
          };
          auto fused = [&](const std::vector<Tensor>& in) {
            Tensor m = rm.clone(), v = rv.clone();
            return batch_norm_relu(in[0], in[1], in[2], m, v, training);
          };
          PathRun a = run(unfused, {x, w, b}, reference), f = run(fused, {x, w, b}, reference);
          const std::string what = std::string(dtype_name(dtype)) + (reference ? " reference " : " fast ") +
                                   shape_str(shape) + (training ? " training" : " eval");
          EXPECT_TRUE(testing::same_bits(a.out, f.out)) << what << " forward";
          for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(testing::same_bits(a.grads[i], f.grads[i])) << what << " grad " << i;
        }
}

TEST(BatchNormRelu, GradcheckAndRunningStats) {
  Tensor x = random_leaf({4, 3, 2, 2}, 45, -2.0, 2.0);
  Tensor w = random_leaf({3}, 46, 0.5, 1.5), b = random_leaf({3}, 47);
  Tensor rm = random_tensor({3}, 48, DType::f64), rv = random_tensor({3}, 49, DType::f64, 0.5, 2.0);
  auto r = gradcheck([&](const std::vector<Tensor>& in) { return batch_norm_relu(in[0], in[1], in[2], rm, rv, true); },
                     {x, w, b});
  EXPECT_TRUE(r.ok) << r.message;
  // The running statistics move exactly as batch_norm moves them.
  Tensor rm1 = rm.clone(), rv1 = rv.clone(), rm2 = rm.clone(), rv2 = rv.clone();
  batch_norm(x.detach(), Tensor(), Tensor(), rm1, rv1, true);
  batch_norm_relu(x.detach(), Tensor(), Tensor(), rm2, rv2, true);
  EXPECT_TRUE(testing::same_bits(rm1, rm2));
  EXPECT_TRUE(testing::same_bits(rv1, rv2));
}

// ---- attention ----

TEST(Attention, GradcheckCausalAndNot) {
  for (int64_t T : {1, 5, 70})
    for (int64_t D : {3, 16})
      for (bool causal : {false, true}) {
        const Shape shape = T == 70 ? Shape{1, 1, T, D} : Shape{2, 2, T, D};
        Tensor q = random_leaf(shape, 29, -2.0, 2.0), k = random_leaf(shape, 30, -2.0, 2.0), v = random_leaf(shape, 31);
        auto r = gradcheck(
            [&](const std::vector<Tensor>& in) { return scaled_dot_product_attention(in[0], in[1], in[2], causal); },
            {q, k, v});
        EXPECT_TRUE(r.ok) << "T " << T << " D " << D << " causal " << causal << ": " << r.message;
      }
}

TEST(Attention, GradcheckDifferentKeyLength) {
  for (auto [Tq, Tk] : std::vector<std::pair<int64_t, int64_t>>{{5, 7}, {7, 5}})
    for (bool causal : {false, true}) {
      Tensor q = random_leaf({1, 2, Tq, 4}, 32), k = random_leaf({1, 2, Tk, 4}, 33), v = random_leaf({1, 2, Tk, 4}, 34);
      auto r = gradcheck(
          [&](const std::vector<Tensor>& in) { return scaled_dot_product_attention(in[0], in[1], in[2], causal); },
          {q, k, v});
      EXPECT_TRUE(r.ok) << Tq << " " << Tk << " causal " << causal << ": " << r.message;
    }
}

// The reference kernel against softmax(q k^T / sqrt(D)) v written out for one small case.
TEST(Attention, MatchesDirectFormula) {
  const int64_t T = 4, D = 3;
  Tensor q = random_tensor({1, 1, T, D}, 35, DType::f64), k = random_tensor({1, 1, T, D}, 36, DType::f64),
         v = random_tensor({1, 1, T, D}, 37, DType::f64);
  for (bool causal : {false, true}) {
    Tensor out = scaled_dot_product_attention(q, k, v, causal);
    for (int64_t i = 0; i < T; ++i) {
      std::vector<double> w(size_t(T), 0.0);
      double total = 0;
      for (int64_t j = 0; j < (causal ? i + 1 : T); ++j) {
        double s = 0;
        for (int64_t d = 0; d < D; ++d) s += q.at({0, 0, i, d}) * k.at({0, 0, j, d});
        w[size_t(j)] = std::exp(s / std::sqrt(double(D)));
        total += w[size_t(j)];
      }
      for (int64_t d = 0; d < D; ++d) {
        double expected = 0;
        for (int64_t j = 0; j < T; ++j) expected += w[size_t(j)] / total * v.at({0, 0, j, d});
        EXPECT_NEAR(out.at({0, 0, i, d}), expected, 1e-14) << "causal " << causal << " row " << i;
      }
    }
  }
}

TEST(Attention, FastMatchesReference) {
  const std::vector<std::pair<Shape, int64_t>> cases = {  // q shape, key length
      {{1, 1, 1, 1}, 1},   {{1, 1, 1, 3}, 1},    {{2, 3, 5, 3}, 5},    {{1, 2, 64, 16}, 64}, {{1, 1, 65, 16}, 65},
      {{2, 2, 130, 32}, 130}, {{1, 1, 300, 64}, 300}, {{1, 2, 70, 8}, 100}, {{1, 2, 100, 8}, 70}, {{1, 1, 129, 5}, 129}};
  for (auto [shape, Tk] : cases)
    for (bool causal : {false, true}) {
      Shape kv_shape = {shape[0], shape[1], Tk, shape[3]};
      expect_fast_matches_reference(
          [&](const std::vector<Tensor>& in) { return scaled_dot_product_attention(in[0], in[1], in[2], causal); },
          {random_tensor(shape, 38, DType::f32, -2.0, 2.0), random_tensor(kv_shape, 39, DType::f32, -2.0, 2.0),
           random_tensor(kv_shape, 40)},
          shape_str(shape) + " Tk " + std::to_string(Tk) + (causal ? " causal" : ""));
    }
  // Peaked softmax (scores spread over hundreds): the online rescaling must stay exact.
  Shape shape = {1, 2, 150, 16};
  expect_fast_matches_reference(
      [&](const std::vector<Tensor>& in) { return scaled_dot_product_attention(in[0], in[1], in[2], true); },
      {random_tensor(shape, 41, DType::f32, -6.0, 6.0), random_tensor(shape, 42, DType::f32, -6.0, 6.0),
       random_tensor(shape, 43)},
      "peaked");
}

TEST(Attention, ShapeErrors) {
  Tensor q = random_tensor({1, 2, 5, 4}, 41);
  EXPECT_THROW(scaled_dot_product_attention(q, random_tensor({1, 2, 5, 3}, 42), random_tensor({1, 2, 5, 3}, 43)),
               InputError);
  EXPECT_THROW(scaled_dot_product_attention(q, q, random_tensor({1, 2, 6, 4}, 44)), InputError);
  EXPECT_THROW(scaled_dot_product_attention(random_tensor({2, 5, 4}, 45), q, q), InputError);
}

// ---- strided inputs and partial gradients ----

TEST(NnOps, NonContiguousInputsMatchPackedCopies) {
  // GPT layout: heads split from (B, T, H, D) by a permuted view.
  Tensor qkv = random_tensor({2, 9, 3, 8}, 56);
  Tensor view = qkv.permute_view({0, 2, 1, 3});  // (B, H, T, D), strided
  Tensor packed = view.contiguous();
  for (bool reference : {false, true}) {
    kernels::ReferenceModeGuard guard(reference);
    EXPECT_TRUE(all_close(scaled_dot_product_attention(view, view, view),
                          scaled_dot_product_attention(packed, packed, packed), 0, 0));
    Tensor x = random_tensor({6, 5}, 57).transpose_view(0, 1);  // (5, 6), strided
    EXPECT_TRUE(all_close(layer_norm(x, Tensor(), Tensor()), layer_norm(x.contiguous(), Tensor(), Tensor()), 0, 0));
  }
}

TEST(NnOps, GradientOnlyForParameters) {
  // x without grad: the backward must still give weight and bias gradients (and skip dx).
  Tensor x = random_tensor({4, 6}, 58, DType::f64);
  Tensor w = random_leaf({6}, 59), b = random_leaf({6}, 60);
  Tensor g = random_tensor({4, 6}, 61, DType::f64);
  autograd::backward(layer_norm(x, w, b), g);
  Tensor x_leaf = x.clone();
  x_leaf.set_requires_grad(true);
  Tensor w2 = w.detach().clone(), b2 = b.detach().clone();
  w2.set_requires_grad(true);
  b2.set_requires_grad(true);
  autograd::backward(layer_norm(x_leaf, w2, b2), g);
  EXPECT_TRUE(all_close(w.grad(), w2.grad(), 0, 0));
  EXPECT_TRUE(all_close(b.grad(), b2.grad(), 0, 0));
  Tensor img = random_tensor({3, 6, 2, 2}, 62);
  Tensor w32 = random_tensor({6}, 63);
  w32.set_requires_grad(true);
  autograd::backward(sum(batch_norm(img, w32, Tensor(), Tensor(), Tensor(), true)));
  ASSERT_TRUE(w32.grad().defined());
  // sum over (n, s) of xhat is 0 for every channel, so d sum(y) / d weight = 0.
  for (double v : w32.grad().to_vector<double>()) EXPECT_NEAR(v, 0.0, 1e-5);
}

// ---- determinism: fixed partitions give bit-identical results for any thread count ----

TEST(NnOps, FastKernelsIndependentOfThreadCount) {
  const int threads = num_threads();
  Tensor logits = random_tensor({200, 301}, 46, DType::f32, -3.0, 3.0);
  std::vector<int64_t> target_values;
  for (int64_t n = 0; n < 200; ++n) target_values.push_back((n * 7) % 301);
  Tensor t = targets_of(target_values);
  Tensor x = random_tensor({300, 129}, 47), w = random_tensor({129}, 48), b = random_tensor({129}, 49);
  Tensor img = random_tensor({8, 6, 9, 9}, 50);
  Tensor q = random_tensor({2, 2, 150, 16}, 51), k = random_tensor({2, 2, 150, 16}, 52), v = random_tensor({2, 2, 150, 16}, 53);
  const std::vector<std::pair<std::string, Fn>> ops = {
      {"cross_entropy", [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t); }},
      {"layer_norm", [&](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2]); }},
      {"batch_norm", [&](const std::vector<Tensor>& in) {
         return batch_norm(in[0], in[1], in[2], Tensor(), Tensor(), true);
       }},
      {"attention", [&](const std::vector<Tensor>& in) { return scaled_dot_product_attention(in[0], in[1], in[2]); }}};
  const std::vector<std::vector<Tensor>> inputs = {
      {logits}, {x, w, b}, {img, random_tensor({6}, 54), random_tensor({6}, 55)}, {q, k, v}};
  for (size_t o = 0; o < ops.size(); ++o) {
    set_num_threads(1);
    PathRun one = run(ops[o].second, inputs[o], false);
    set_num_threads(2);
    PathRun two = run(ops[o].second, inputs[o], false);
    EXPECT_TRUE(all_close(two.out, one.out, 0, 0)) << ops[o].first;
    for (size_t i = 0; i < one.grads.size(); ++i) EXPECT_TRUE(all_close(two.grads[i], one.grads[i], 0, 0)) << ops[o].first;
  }
  set_num_threads(threads);
}

}  // namespace
}  // namespace frugal
