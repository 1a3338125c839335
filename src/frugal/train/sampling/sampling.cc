// The sampling techniques a job switches on (make_sampling_techniques, sampling.h) and their helpers.
#include "frugal/train/sampling/sampling.h"

#include <cmath>
#include <cstring>

#include "frugal/base/error.h"
#include "frugal/train/job_paths.h"
#include "frugal/train/sampling/curriculum.h"
#include "frugal/train/sampling/importance_sampling.h"
#include "frugal/train/sampling/selective_backprop.h"
#include "frugal/train/sampling/seq_warmup.h"

namespace frugal::train {

std::vector<std::unique_ptr<Technique>> make_sampling_techniques(const JobSpec& job, const PreparedData& data) {
  std::vector<std::unique_ptr<Technique>> out;
  require_job_file(job, job.curriculum.scores);  // named with where the path came from
  if (job.seq_warmup.enabled) out.push_back(std::make_unique<SeqWarmup>(job.seq_warmup, job.model.gpt.context));
  if (job.curriculum.enabled) out.push_back(std::make_unique<Curriculum>(job.curriculum, data));
  if (job.importance_sampling.enabled)
    out.push_back(std::make_unique<ImportanceSampling>(job.importance_sampling, data.train_size()));
  if (job.selective_backprop.enabled) out.push_back(std::make_unique<SelectiveBackprop>(job.selective_backprop));
  return out;
}

std::vector<double> per_row_cross_entropy(const Tensor& logits, const Tensor& targets) {
  FRUGAL_CHECK(logits.rank() == 2 && targets.rank() == 1 && targets.size(0) == logits.size(0),
               "per_row_cross_entropy needs logits (B, C) and targets (B)");
  const Tensor values = logits.to(DType::f32).contiguous();  // (B, C)
  const Tensor labels = targets.to(DType::i64).contiguous();  // (B)
  const int64_t B = values.size(0), C = values.size(1);
  const float* x = values.data<float>();
  const int64_t* y = labels.data<int64_t>();
  std::vector<double> out(size_t(B), 0.0);
  for (int64_t b = 0; b < B; ++b) {
    const float* row = x + b * C;
    double top = row[0];
    for (int64_t c = 1; c < C; ++c) top = std::max(top, double(row[c]));
    double sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += std::exp(double(row[c]) - top);
    FRUGAL_CHECK(y[b] >= 0 && y[b] < C, "per_row_cross_entropy: a target outside [0, classes)");
    out[size_t(b)] = top + std::log(sum) - double(row[y[b]]);
  }
  return out;
}

namespace {

Tensor take(const Tensor& from, const std::vector<int64_t>& rows) {
  if (!from.defined()) return from;
  const Tensor source = from.contiguous();
  Shape shape = source.shape();
  const int64_t B = shape[0];
  shape[0] = int64_t(rows.size());
  Tensor out = Tensor::empty(shape, source.dtype());
  const size_t row_bytes = B > 0 ? source.nbytes() / size_t(B) : 0;
  const char* src = static_cast<const char*>(source.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  for (size_t i = 0; i < rows.size(); ++i) {
    FRUGAL_CHECK(rows[i] >= 0 && rows[i] < B, "take_rows: a row outside the batch");
    std::memcpy(dst + i * row_bytes, src + size_t(rows[i]) * row_bytes, row_bytes);
  }
  return out;
}

}  // namespace

data::Batch take_rows(const data::Batch& batch, const std::vector<int64_t>& rows) {
  data::Batch out;
  out.inputs = take(batch.inputs, rows);
  out.targets = take(batch.targets, rows);
  out.sample_indices = take(batch.sample_indices, rows);
  out.epoch = batch.epoch;
  out.index = batch.index;
  return out;
}

}  // namespace frugal::train
