// Curriculum by difficulty (curriculum.h).
#include "frugal/train/sampling/curriculum.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_set>

#include "frugal/base/format.h"
#include "frugal/base/rng.h"
#include "frugal/train/sampling/sample_scores.h"
#include "frugal/train/sampling/sampling.h"

namespace frugal::train {

namespace {

// Keys the curriculum's random draws apart from every other use of the seed.
constexpr uint64_t kCurriculumStream = 0x6375727269630000ull;  // "curric"

const char* pacing_name(CurriculumPacing p) {
  return p == CurriculumPacing::linear ? "linear" : p == CurriculumPacing::root ? "root" : "step";
}
const char* order_name(CurriculumOrder o) {
  return o == CurriculumOrder::easy ? "easy" : o == CurriculumOrder::anti ? "anti" : "random";
}

int64_t pool_size(const CurriculumSpec& spec, const CurriculumPlan& plan, int64_t step, int64_t samples) {
  const int64_t t = std::max<int64_t>(0, step - plan.first_step);
  const int64_t steps = std::max<int64_t>(1, plan.total_steps - plan.first_step);
  const double fraction = curriculum_pool_fraction(spec, t, steps);
  return std::clamp<int64_t>(int64_t(std::ceil(fraction * double(samples) - 1e-9)), 1, samples);
}

}  // namespace

double curriculum_pool_fraction(const CurriculumSpec& spec, int64_t t, int64_t steps) {
  const double x = double(t) / (spec.full_at * double(std::max<int64_t>(1, steps)));
  if (x >= 1) return 1.0;
  double f = x;
  if (spec.pacing == CurriculumPacing::root) f = std::sqrt(x);
  if (spec.pacing == CurriculumPacing::step) f = std::floor(x * double(spec.stages)) / double(spec.stages);
  return std::min(1.0, spec.start + (1 - spec.start) * f);
}

std::vector<int64_t> curriculum_ranking(const CurriculumSpec& spec, const std::vector<float>& scores, uint64_t seed) {
  const int64_t n = int64_t(scores.size());
  std::vector<int64_t> rows(static_cast<size_t>(n));
  std::iota(rows.begin(), rows.end(), 0);
  if (spec.order == CurriculumOrder::random) {
    Rng rng(seed, mix_key(kCurriculumStream, 1), RandomPurpose::user);
    for (int64_t i = n - 1; i > 0; --i) std::swap(rows[size_t(i)], rows[rng.below(uint64_t(i + 1))]);
    return rows;
  }
  const bool easy = spec.order == CurriculumOrder::easy;
  std::stable_sort(rows.begin(), rows.end(), [&](int64_t a, int64_t b) {
    const float sa = scores[size_t(a)], sb = scores[size_t(b)];
    if (std::isnan(sa) || std::isnan(sb)) return !std::isnan(sa) && std::isnan(sb);
    return easy ? sa < sb : sa > sb;
  });
  return rows;
}

std::vector<int64_t> curriculum_epoch_order(const CurriculumSpec& spec, const CurriculumPlan& plan,
                                            const std::vector<int64_t>& ranking, int64_t epoch,
                                            std::vector<int64_t> shuffled) {
  const int64_t n = int64_t(shuffled.size());
  if ((epoch + 1) * plan.steps_per_epoch <= plan.first_step) return shuffled;
  std::vector<int64_t> order;
  order.reserve(size_t(n));
  std::unordered_set<int64_t> taken;
  for (int64_t b = 0; b * plan.batch_size < n; ++b) {
    const int64_t step = epoch * plan.steps_per_epoch + b / plan.grad_accum;
    const int64_t rows = std::min(plan.batch_size, n - b * plan.batch_size);
    if (step < plan.first_step) {  // an epoch that starts in the scoring phase: its batches as shuffled
      order.insert(order.end(), shuffled.begin() + b * plan.batch_size, shuffled.begin() + b * plan.batch_size + rows);
      continue;
    }
    const int64_t pool = pool_size(spec, plan, step, n);
    Rng rng(plan.seed, mix_key(mix_key(kCurriculumStream, uint64_t(epoch)), uint64_t(b)), RandomPurpose::user);
    taken.clear();
    for (int64_t i = 0; i < rows; ++i) {
      int64_t pick = int64_t(rng.below(uint64_t(pool)));
      // Without repeats within a batch while the pool allows it (rejection: pool >> batch usually).
      while (pool >= rows && !taken.insert(pick).second) pick = int64_t(rng.below(uint64_t(pool)));
      order.push_back(ranking[size_t(pick)]);
    }
  }
  return order;
}

Curriculum::Curriculum(CurriculumSpec spec, const PreparedData& data) : spec_(std::move(spec)), samples_(data.train_size()) {
  if (spec_.score == "self") {
    scores_.assign(size_t(samples_), std::numeric_limits<float>::quiet_NaN());
  } else {
    SampleScores file = read_sample_scores(spec_.scores, data.train);
    scores_ = file.get(spec_.score);
    file_cost_ = file.cost;
    file_fingerprint_ = file.fingerprint;
  }
}

EventSet Curriculum::events() const {
  EventSet set = event_set({Event::run_start, Event::step_end, Event::run_end});
  if (spec_.score == "self") set |= event_set({Event::after_loss});
  return set;
}

const std::vector<int64_t>& Curriculum::ranking() {
  if (ranking_.empty()) ranking_ = curriculum_ranking(spec_, scores_, plan_.seed);
  return ranking_;
}

void Curriculum::record_losses(const TrainState& state) {
  if (state.step >= plan_.first_step) return;
  const std::vector<double> losses = per_row_cross_entropy(state.logits.detach(), state.batch.targets);
  const std::vector<int64_t> rows = state.batch.sample_indices.to_vector<int64_t>();
  for (size_t i = 0; i < rows.size(); ++i) scores_[size_t(rows[i])] = float(losses[i]);
}

void Curriculum::on(Event event, TrainState& state) {
  switch (event) {
    case Event::run_start: {
      FRUGAL_CHECK(state.loader != nullptr, "[curriculum] needs a classification loader");
      plan_.total_steps = state.total_steps;
      plan_.steps_per_epoch = state.steps_per_epoch;
      plan_.batch_size = state.job.train.batch_size;
      plan_.grad_accum = state.job.train.grad_accum;
      plan_.seed = state.job.run.seed;
      plan_.first_step = spec_.score == "self" ? std::min(state.total_steps, spec_.self_epochs * state.steps_per_epoch) : 0;
      state.loader->set_epoch_order([this](int64_t epoch, std::vector<int64_t> shuffled) {
        // The scores are final from first_step on (self: recorded before it), so the ranking is too.
        if ((epoch + 1) * plan_.steps_per_epoch <= plan_.first_step) return shuffled;
        return curriculum_epoch_order(spec_, plan_, ranking(), epoch, std::move(shuffled));
      });
      state.progress.line(std::string("curriculum: ") + order_name(spec_.order) + " first by " +
                          (spec_.score == "self" ? "the model's own loss after " + std::to_string(spec_.self_epochs) +
                                                       " epoch(s) on all data"
                                                 : spec_.score + " from " + spec_.scores) +
                          ", " + pacing_name(spec_.pacing) + " pacing from " + number_text(100 * spec_.start) +
                          "% to all data at " + number_text(100 * spec_.full_at) + "% of its steps");
      break;
    }
    case Event::after_loss:
      record_losses(state);
      break;
    case Event::step_end: {
      // state.step is the step just done + 1.
      const int64_t done = state.step - 1;
      const double fraction = done < plan_.first_step ? 1.0 : double(pool_size(spec_, plan_, done, samples_)) / double(samples_);
      pool_sum_ += fraction;
      if (fraction >= 1.0 && done >= plan_.first_step && full_step_ < 0) full_step_ = done;
      break;
    }
    case Event::run_end: {
      nlohmann::json f;
      f["score"] = spec_.score;
      if (!spec_.scores.empty()) f["scores"] = spec_.scores;
      f["pacing"] = pacing_name(spec_.pacing);
      f["order"] = order_name(spec_.order);
      f["start"] = spec_.start;
      f["full_at"] = spec_.full_at;
      f["first_step"] = plan_.first_step;
      f["full_pool_step"] = full_step_;
      f["mean_pool_fraction"] = state.step > 0 ? pool_sum_ / double(state.step) : 0.0;
      if (!file_cost_.is_null()) {  // the scoring run's bill, not in this run's meters: counted in the total
        f["scoring_cost"] = file_cost_;
        f["total_with_scoring"] = total_with_scoring(state.summary->cost, file_cost_);
      }
      state.summary->techniques[name()] = f;
      break;
    }
    default:
      break;
  }
}

void Curriculum::save_state(TechniqueState& out) const {
  out.put("pool_sum", pool_sum_);
  out.put("full_step", full_step_);
  // Self scoring: the losses recorded so far (the later epochs' order is built from them).
  if (spec_.score == "self") out.put_tensor("scores", Tensor::from_vector(scores_, {samples_}));
}

void Curriculum::load_state(const TechniqueState& in) {
  if (in.empty()) return;
  pool_sum_ = in.real("pool_sum");
  full_step_ = in.integer("full_step");
  if (spec_.score != "self") return;
  for (const auto& [key, tensor] : in.tensors())
    if (key == "scores") {
      if (tensor.numel() != samples_) in.fail("scores has " + std::to_string(tensor.numel()) + " entries, expected " + std::to_string(samples_));
      scores_ = tensor.to(DType::f32).contiguous().to_vector<float>();
      return;
    }
  in.fail("the recorded losses (scores) are missing");
}

}  // namespace frugal::train
