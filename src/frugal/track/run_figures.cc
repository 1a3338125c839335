// Run figures from a summary or the latest rows (see run_figures.h). Parsing never throws: a row or
// summary that is not what we expect gives empty figures.
#include "frugal/track/run_figures.h"

#include <nlohmann/json.hpp>

namespace frugal::track {
namespace {

using json = nlohmann::json;

json parse_object(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_object() ? j : json::object();
}

std::optional<double> number(const json& object, const char* key) {
  if (!object.is_object()) return std::nullopt;
  auto it = object.find(key);
  if (it == object.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

// {"usd": {"value": V, "source": S}, ...} as in summaries and (live cost) rows.
void read_cost(const json& cost, RunFigures& f) {
  if (!cost.is_object()) return;
  const std::pair<const char*, std::optional<SourcedValue>*> keys[] = {{"usd", &f.usd}, {"kwh", &f.kwh},
                                                                       {"co2_kg", &f.co2_kg}};
  for (const auto& [key, out] : keys) {
    auto it = cost.find(key);
    if (it == cost.end() || !it->is_object()) continue;
    std::optional<double> v = number(*it, "value");
    if (!v) continue;
    auto source = it->find("source");
    *out = SourcedValue{*v, source != it->end() && source->is_string() ? source->get<std::string>() : ""};
  }
}

// The quality a person looks for first: accuracy where there is one, else bits per char, else loss.
void read_quality(const json& metrics, RunFigures& f) {
  for (const char* key : {"val_accuracy", "test_accuracy", "val_bits_per_char", "test_bits_per_char", "val_loss"}) {
    if (std::optional<double> v = number(metrics, key)) {
      f.quality_key = key;
      f.quality = v;
      return;
    }
  }
}

}  // namespace

RunFigures run_figures(const RunRecord& run, const std::optional<MetricRow>& last_train,
                       const std::optional<MetricRow>& last_eval) {
  RunFigures f;
  const json summary = parse_object(run.summary_json);
  if (last_train) {
    const json row = parse_object(last_train->json);
    f.step = last_train->step;
    f.loss = number(row, "loss");
    f.samples_per_s = number(row, "samples_per_s");
    f.tokens_per_s = number(row, "tokens_per_s");
    f.wall_s = number(row, "time_s");
    if (auto it = row.find("cost"); it != row.end()) read_cost(*it, f);
  }
  if (last_eval) {
    const json row = parse_object(last_eval->json);
    if (!f.step || last_eval->step > *f.step) {
      f.step = last_eval->step;
      if (std::optional<double> t = number(row, "time_s")) f.wall_s = t;
      if (auto it = row.find("cost"); it != row.end()) read_cost(*it, f);
    }
    read_quality(row, f);
  }
  // A finished run's summary is the authority (it holds the whole run's totals).
  if (!summary.empty()) {
    if (std::optional<double> w = number(summary, "wall_s")) f.wall_s = w;
    if (auto it = summary.find("cost"); it != summary.end()) read_cost(*it, f);
    if (auto it = summary.find("metrics"); it != summary.end() && it->is_object()) {
      RunFigures q;
      read_quality(*it, q);
      if (q.quality) f.quality_key = q.quality_key, f.quality = q.quality;
    }
    if (std::optional<double> s = number(summary, "steps")) f.step = int64_t(*s);
  }
  return f;
}

}  // namespace frugal::track
