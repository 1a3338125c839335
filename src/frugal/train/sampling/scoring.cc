// Per-sample scores recorded during training (see scoring.h): the sums live in double per row and
// travel through checkpoints as f64 / i64 tensors, so a resumed scoring run writes the same file.
#include "frugal/train/sampling/scoring.h"

#include <chrono>
#include <cmath>

#include "frugal/autograd/autograd.h"
#include "frugal/base/error.h"
#include "frugal/train/sampling/embedding.h"

namespace frugal::train {

SampleQuantities sample_quantities(const Tensor& embedding, const Tensor& logits, const std::vector<int64_t>& targets) {
  const int64_t B = logits.size(0), C = logits.size(1), H = embedding.size(1);
  const std::vector<float> z = logits.contiguous().to_vector<float>();     // (B, C)
  const std::vector<float> h = embedding.contiguous().to_vector<float>();  // (B, H)
  SampleQuantities q;
  for (int64_t b = 0; b < B; ++b) {
    const float* row = z.data() + b * C;
    const int64_t y = targets[size_t(b)];
    int64_t best = 0;
    double max = row[0];
    for (int64_t c = 1; c < C; ++c)
      if (row[c] > row[best]) best = c;
    max = row[best];
    double denominator = 0;
    for (int64_t c = 0; c < C; ++c) denominator += std::exp(double(row[c]) - max);
    double squared = 0;
    for (int64_t c = 0; c < C; ++c) {
      const double p = std::exp(double(row[c]) - max) / denominator;
      const double d = p - (c == y ? 1.0 : 0.0);
      squared += d * d;
    }
    double h_squared = 0;
    for (int64_t k = 0; k < H; ++k) h_squared += double(h[size_t(b * H + k)]) * h[size_t(b * H + k)];
    const double el2n = std::sqrt(squared);
    q.el2n.push_back(el2n);
    // dL/dW = (p - y) h^T and dL/db = p - y: the Frobenius norm of both together.
    q.grand.push_back(el2n * std::sqrt(h_squared + 1.0));
    q.loss.push_back(std::log(denominator) - (double(row[y]) - max));
    q.correct.push_back(best == y ? 1 : 0);
  }
  return q;
}

void ForgettingCounter::add(bool correct) {
  if (last == 1 && !correct) ++events;
  learned = learned || correct;
  last = correct ? 1 : 0;
  ++seen;
}

void ScoreRecorder::on(Event event, TrainState& state) {
  if (event == Event::run_start) {
    if (state.data.is_text) throw InputError("frugal data score: per-sample scores are for classification data");
    const size_t n = size_t(state.data.train.size());
    fingerprint_ = dataset_fingerprint(state.data.train);
    if (count_.empty()) {  // a resumed run loaded them already
      el2n_sum_.assign(n, 0.0), grand_sum_.assign(n, 0.0), loss_sum_.assign(n, 0.0);
      forgetting_.assign(n, ForgettingCounter());
      count_.assign(n, 0);
    }
    if (count_.size() != n) throw InputError("data_score: the checkpoint's scores are for another split size");
  } else if (event == Event::after_loss) {
    record(state);
  } else if (event == Event::run_end) {
    finished_ = state.summary->status == "completed";
    state.summary->techniques[name()] = {{"kinds", kinds_}, {"rows", int64_t(count_.size())},
                                         {"extra_forward_s", extra_forward_s_}};
  }
}

void ScoreRecorder::record(TrainState& state) {
  const auto start = std::chrono::steady_clock::now();
  nn::Module& model = state.model;
  const bool training = model.is_training();
  EmbeddedLogits out;
  {
    // Eval mode: no dropout, batch norm's running statistics left alone, so training is unchanged.
    autograd::NoGradGuard no_grad;
    model.train(false);
    try {
      out = embed_and_classify(model, state.batch.inputs);
    } catch (...) {
      model.train(training);
      throw;
    }
    model.train(training);
  }
  const std::vector<int64_t> targets = state.batch.targets.contiguous().to_vector<int64_t>();
  const std::vector<int64_t> rows = state.batch.sample_indices.contiguous().to_vector<int64_t>();
  const SampleQuantities q = sample_quantities(out.embedding, out.logits, targets);
  for (size_t b = 0; b < targets.size(); ++b) {
    const size_t row = size_t(rows[b]);
    el2n_sum_[row] += q.el2n[b];
    grand_sum_[row] += q.grand[b];
    loss_sum_[row] += q.loss[b];
    forgetting_[row].add(q.correct[b] != 0);
    ++count_[row];
  }
  extra_forward_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void ScoreRecorder::save_state(TechniqueState& out) const {
  const int64_t n = int64_t(count_.size());
  std::vector<int64_t> packed;  // last + 1, learned, events, seen per row
  for (const ForgettingCounter& f : forgetting_) packed.insert(packed.end(), {f.last + 1, f.learned, f.events, f.seen});
  out.put_tensor("el2n_sum", Tensor::from_vector(el2n_sum_, {n}));
  out.put_tensor("grand_sum", Tensor::from_vector(grand_sum_, {n}));
  out.put_tensor("loss_sum", Tensor::from_vector(loss_sum_, {n}));
  out.put_tensor("count", Tensor::from_vector(count_, {n}));
  out.put_tensor("forgetting", Tensor::from_vector(packed, {n, 4}));
  out.put("extra_forward_s", extra_forward_s_);
}

void ScoreRecorder::load_state(const TechniqueState& in) {
  if (in.empty()) return;
  for (const auto& [name, tensor] : in.tensors()) {
    if (name == "el2n_sum") el2n_sum_ = tensor.contiguous().to_vector<double>();
    if (name == "grand_sum") grand_sum_ = tensor.contiguous().to_vector<double>();
    if (name == "loss_sum") loss_sum_ = tensor.contiguous().to_vector<double>();
    if (name == "count") count_ = tensor.contiguous().to_vector<int64_t>();
    if (name == "forgetting") {
      const std::vector<int64_t> packed = tensor.contiguous().to_vector<int64_t>();
      forgetting_.assign(packed.size() / 4, ForgettingCounter());
      for (size_t i = 0; i < forgetting_.size(); ++i)
        forgetting_[i] = {int8_t(packed[4 * i] - 1), packed[4 * i + 1] != 0, packed[4 * i + 2], packed[4 * i + 3]};
    }
  }
  if (count_.empty() || el2n_sum_.size() != count_.size() || forgetting_.size() != count_.size())
    in.fail("the per-sample sums are missing or of different lengths");
  extra_forward_s_ = in.real("extra_forward_s");
}

SampleScores ScoreRecorder::scores() const {
  SampleScores s;
  s.fingerprint = fingerprint_;
  s.samples = int64_t(count_.size());
  int64_t unseen = 0;
  for (int64_t c : count_) unseen += c == 0;
  if (unseen)
    throw InputError("frugal data score: " + std::to_string(unseen) + " of " + std::to_string(count_.size()) +
                     " training rows were never presented: score over at least one full epoch");
  for (const std::string& kind : kinds_) {
    std::vector<float>& v = s.scores[kind];
    for (size_t i = 0; i < count_.size(); ++i) {
      const double n = double(count_[i]);
      v.push_back(kind == "el2n"    ? float(el2n_sum_[i] / n)
                  : kind == "grand" ? float(grand_sum_[i] / n)
                  : kind == "loss"  ? float(loss_sum_[i] / n)
                                    : float(forgetting_[i].score()));
    }
  }
  return s;
}

}  // namespace frugal::train
