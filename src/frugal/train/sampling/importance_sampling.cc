// Importance sampling by loss (importance_sampling.h).
#include "frugal/train/sampling/importance_sampling.h"

#include <algorithm>
#include <numeric>

#include "frugal/autograd/ops.h"
#include "frugal/base/format.h"
#include "frugal/base/rng.h"
#include "frugal/train/sampling/sampling.h"

namespace frugal::train {

namespace {
constexpr uint64_t kImportanceStream = 0x696d706f72740000ull;  // "import"
}

std::vector<double> importance_probabilities(const std::vector<float>& losses, double smoothing) {
  const size_t n = losses.size();
  double sum = 0;
  for (float l : losses) sum += std::max(0.0, double(l));
  const double mean = n ? sum / double(n) : 0;
  std::vector<double> p(n, n ? 1.0 / double(n) : 0.0);
  const double total = sum + smoothing * mean * double(n);
  if (!(total > 0)) return p;
  for (size_t i = 0; i < n; ++i) p[i] = (std::max(0.0, double(losses[i])) + smoothing * mean) / total;
  return p;
}

std::vector<int64_t> importance_draw(const std::vector<double>& probabilities, int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<double> cdf(probabilities.size());
  std::partial_sum(probabilities.begin(), probabilities.end(), cdf.begin());
  const double total = cdf.empty() ? 0 : cdf.back();
  Rng rng(seed, mix_key(kImportanceStream, uint64_t(epoch)), RandomPurpose::user);
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double u = rng.uniform_double() * total;
    const auto it = std::upper_bound(cdf.begin(), cdf.end(), u);
    out[size_t(i)] = std::min<int64_t>(int64_t(it - cdf.begin()), int64_t(cdf.size()) - 1);
  }
  return out;
}

ImportanceSampling::ImportanceSampling(ImportanceSamplingSpec spec, int64_t samples)
    : spec_(spec), samples_(samples), losses_(size_t(samples), 0.0f) {}

std::vector<int64_t> ImportanceSampling::epoch_order(int64_t epoch, std::vector<int64_t> shuffled) {
  if (epoch < spec_.start_epoch) return shuffled;
  // A new epoch takes the live table; the same epoch again (a resume mid-way) keeps its snapshot.
  if (epoch != snapshot_epoch_) {
    snapshot_ = losses_;
    snapshot_epoch_ = epoch;
    ++epochs_sampled_;
  }
  probabilities_ = importance_probabilities(snapshot_, spec_.smoothing);
  const std::vector<double>& p = probabilities_;
  max_probability_ratio_ = p.empty() ? 0 : *std::max_element(p.begin(), p.end()) * double(samples_);
  return importance_draw(p, int64_t(shuffled.size()), seed_, epoch);
}

void ImportanceSampling::on(Event event, TrainState& state) {
  switch (event) {
    case Event::run_start:
      FRUGAL_CHECK(state.loader != nullptr, "[importance_sampling] needs a classification loader");
      seed_ = state.job.run.seed;
      state.loader->set_epoch_order(
          [this](int64_t epoch, std::vector<int64_t> shuffled) { return epoch_order(epoch, std::move(shuffled)); });
      state.progress.line("importance_sampling: epochs from " + std::to_string(spec_.start_epoch) +
                          " drawn by loss (smoothing " + number_text(spec_.smoothing) + " x the mean loss" +
                          (spec_.reweight ? ", reweighted" : "") + ")");
      break;
    case Event::after_loss: {
      const std::vector<double> row_losses = per_row_cross_entropy(state.logits.detach(), state.batch.targets);
      const std::vector<int64_t> rows = state.batch.sample_indices.to_vector<int64_t>();
      for (size_t i = 0; i < rows.size(); ++i) losses_[size_t(rows[i])] = float(row_losses[i]);
      if (spec_.reweight && state.batch.epoch >= spec_.start_epoch && state.batch.epoch == snapshot_epoch_) {
        // Unbiased: row i weighs 1 / (N p_i); the loop's mean loss is replaced by the weighted mean.
        // p is the epoch's (start_epoch drew this epoch's order from it, also in a resumed process).
        const std::vector<double>& p = probabilities_;
        std::vector<float> w(rows.size());
        for (size_t i = 0; i < rows.size(); ++i) w[i] = float(1.0 / (double(samples_) * p[size_t(rows[i])]));
        CrossEntropyOptions options;
        options.reduction = Reduction::none;
        options.label_smoothing = state.job.train.label_smoothing;
        Tensor per_row = cross_entropy(state.logits, state.batch.targets, options);  // (B)
        Tensor weights = Tensor::from_vector(w, {int64_t(w.size())}).to(per_row.dtype());
        state.loss = mean(mul(per_row, weights));
      }
      break;
    }
    case Event::run_end: {
      nlohmann::json f;
      f["smoothing"] = spec_.smoothing;
      f["start_epoch"] = spec_.start_epoch;
      f["reweight"] = spec_.reweight;
      f["epochs_sampled"] = epochs_sampled_;
      f["max_probability_x_n"] = max_probability_ratio_;
      state.summary->techniques[name()] = f;
      break;
    }
    default:
      break;
  }
}

void ImportanceSampling::save_state(TechniqueState& out) const {
  out.put("snapshot_epoch", snapshot_epoch_);
  out.put("epochs_sampled", epochs_sampled_);
  out.put("max_probability_x_n", max_probability_ratio_);
  out.put_tensor("losses", Tensor::from_vector(losses_, {samples_}));
  if (snapshot_epoch_ >= 0) out.put_tensor("snapshot", Tensor::from_vector(snapshot_, {samples_}));
}

void ImportanceSampling::load_state(const TechniqueState& in) {
  if (in.empty()) return;
  snapshot_epoch_ = in.integer("snapshot_epoch");
  epochs_sampled_ = in.integer("epochs_sampled");
  max_probability_ratio_ = in.real("max_probability_x_n");
  bool have_losses = false;
  for (const auto& [key, tensor] : in.tensors()) {
    if (tensor.numel() != samples_)
      in.fail(key + " has " + std::to_string(tensor.numel()) + " entries, expected " + std::to_string(samples_));
    if (key == "losses") losses_ = tensor.to(DType::f32).contiguous().to_vector<float>(), have_losses = true;
    if (key == "snapshot") snapshot_ = tensor.to(DType::f32).contiguous().to_vector<float>();
  }
  if (!have_losses) in.fail("the loss table (losses) is missing");
  if (snapshot_epoch_ >= 0 && snapshot_.size() != size_t(samples_)) in.fail("the epoch's snapshot is missing");
}

}  // namespace frugal::train
