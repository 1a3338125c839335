// Evaluation and generation with a trained model (see evaluate.h).
#include "frugal/train/evaluate.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "frugal/autograd/ops.h"
#include "frugal/base/error.h"
#include "frugal/base/rng.h"
#include "frugal/data/loader.h"

namespace frugal::train {

namespace {

// Argmax per row of logits (N, C) compared with targets (N).
int64_t count_correct(const Tensor& logits, const Tensor& targets) {
  Tensor l = logits.contiguous();
  const float* p = l.data<float>();
  const int64_t* t = targets.contiguous().data<int64_t>();
  int64_t n = l.size(0), c = l.size(1), correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = p + i * c;
    int64_t best = 0;
    for (int64_t j = 1; j < c; ++j)
      if (row[j] > row[best]) best = j;
    correct += best == t[i];
  }
  return correct;
}

// Evaluation allocates other sizes than a training step (bigger batches, no gradients); the
// allocator's cache is emptied around it so the two working sets never sit in memory together.
struct CacheReleaseScope {
  CacheReleaseScope() { Storage::release_cache(); }
  ~CacheReleaseScope() { Storage::release_cache(); }
};
}  // namespace

EvalMetrics evaluate_classifier(nn::Module& model, const data::Dataset& split, int64_t batch_size) {
  EvalMetrics out;
  if (split.size() == 0) return out;
  CacheReleaseScope release_cache;
  autograd::NoGradGuard no_grad;
  bool was_training = model.is_training();
  model.eval();
  double loss_sum = 0;
  int64_t correct = 0;
  const int64_t n = split.size();
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    int64_t end = std::min(n, begin + batch_size);
    Tensor x = split.inputs.slice_view(0, begin, end);
    Tensor y = split.targets.slice_view(0, begin, end);
    Tensor logits = model(x);
    CrossEntropyOptions options;
    options.reduction = Reduction::sum;
    loss_sum += cross_entropy(logits, y.contiguous(), options).item();
    correct += count_correct(logits, y);
  }
  model.train(was_training);
  out.samples = n;
  out.loss = loss_sum / double(n);
  out.accuracy = double(correct) / double(n);
  return out;
}

EvalMetrics evaluate_language_model(nn::Module& model, const Tensor& tokens, int64_t batch, int64_t context,
                                    int64_t max_tokens) {
  EvalMetrics out;
  CacheReleaseScope release_cache;
  autograd::NoGradGuard no_grad;
  bool was_training = model.is_training();
  model.eval();
  Tensor stream = tokens;
  if (max_tokens > 0 && stream.numel() > max_tokens + 1) stream = stream.slice_view(0, 0, max_tokens + 1);
  double loss_sum = 0;
  int64_t count = 0;
  for (auto& [x, y] : data::sequential_windows(stream, batch, context)) {
    Tensor logits = model(x);  // (B, T, V)
    int64_t v = logits.size(-1);
    CrossEntropyOptions options;
    options.reduction = Reduction::sum;
    loss_sum += cross_entropy(reshape(logits, {-1, v}), reshape(y, {-1}), options).item();
    count += y.numel();
  }
  model.train(was_training);
  out.samples = count;
  out.loss = count ? loss_sum / double(count) : 0.0;
  out.bits_per_char = out.loss / std::log(2.0);
  return out;
}

int64_t default_start(const data::CharVocab& vocab) {
  FRUGAL_CHECK(vocab.size() > 0, "an empty vocabulary");
  for (char start : {'\n', ' '})
    if (vocab.chars().find(start) != std::string::npos) return vocab.encode(std::string(1, start)).to_vector<int64_t>()[0];
  return 0;  // the smallest byte of the training text
}

std::string sample_text(nn::Module& model, const data::CharVocab& vocab, int64_t context, const std::string& prompt,
                        int64_t tokens, double temperature, uint64_t seed, const SampleCallback& on_token) {
  autograd::NoGradGuard no_grad;
  model.eval();
  std::vector<int64_t> ids;
  if (!prompt.empty()) ids = vocab.encode(prompt).to_vector<int64_t>();
  else ids.push_back(default_start(vocab));
  Rng rng(seed, 0, RandomPurpose::sample);
  std::string out;
  for (int64_t step = 0; step < tokens; ++step) {
    int64_t start = std::max<int64_t>(0, int64_t(ids.size()) - context);
    std::vector<int64_t> window(ids.begin() + start, ids.end());
    Tensor x = Tensor::from_vector(window, {1, int64_t(window.size())});
    Tensor logits = model(x);  // (1, T, V)
    Tensor last = logits.select_view(1, logits.size(1) - 1).contiguous();  // (1, V)
    std::vector<float> z = last.to_vector<float>();
    int64_t next = 0;
    if (temperature <= 0) {
      next = int64_t(std::max_element(z.begin(), z.end()) - z.begin());
    } else {
      double zmax = *std::max_element(z.begin(), z.end()), total = 0;
      std::vector<double> p(z.size());
      for (size_t i = 0; i < z.size(); ++i) total += p[i] = std::exp((z[i] - zmax) / temperature);
      double u = rng.uniform_double() * total;
      next = int64_t(p.size()) - 1;
      for (size_t i = 0; i < p.size(); ++i) {
        if ((u -= p[i]) <= 0) { next = int64_t(i); break; }
      }
    }
    ids.push_back(next);
    const std::string piece = vocab.decode(std::vector<int64_t>{next});
    out += piece;
    if (on_token && !on_token(piece, step + 1)) break;
  }
  return out;
}


}  // namespace frugal::train
