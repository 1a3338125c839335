// The score file: safetensors tensors "score.<kind>" f32 (N); metadata frugal.scores.fingerprint,
// frugal.scores.samples and frugal.scores.cost (JSON).
#include "frugal/train/sampling/sample_scores.h"

#include <cmath>
#include <cstdio>
#include <cstring>

#include "frugal/base/error.h"
#include "frugal/io/safetensors.h"

namespace frugal::train {

namespace {

constexpr const char* kPrefix = "score.";

uint64_t fnv1a(uint64_t h, const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

uint64_t hash_tensor(uint64_t h, const Tensor& t) {
  const Tensor c = t.contiguous();
  const std::string head = std::string(dtype_name(c.dtype())) + shape_str(c.shape());
  h = fnv1a(h, head.data(), head.size());
  return fnv1a(h, c.raw_data(), size_t(c.numel()) * dtype_size(c.dtype()));
}

}  // namespace

const std::vector<float>& SampleScores::get(const std::string& kind) const {
  auto found = scores.find(kind);
  if (found != scores.end()) return found->second;
  std::string kinds;
  for (const auto& [name, values] : scores) kinds += (kinds.empty() ? "" : ", ") + name;
  throw InputError(path + ": holds no \"" + kind + "\" scores (it has: " + (kinds.empty() ? "none" : kinds) + ")");
}

std::string dataset_fingerprint(const data::Dataset& dataset) {
  uint64_t h = 1469598103934665603ull;
  if (dataset.inputs.defined()) h = hash_tensor(h, dataset.inputs);
  if (dataset.targets.defined()) h = hash_tensor(h, dataset.targets);
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
  return text;
}

nlohmann::json total_with_scoring(const cost::CostSummary& run, const nlohmann::json& scoring_cost) {
  auto upstream = [&](const char* key) { return scoring_cost.is_object() ? scoring_cost.value(key, 0.0) : 0.0; };
  return {{"usd", run.usd.value + upstream("usd")},
          {"kwh", run.kwh.value + upstream("kwh")},
          {"co2_kg", run.co2_kg.value + upstream("co2_kg")},
          {"hours", run.hours.value + upstream("wall_s") / 3600.0},
          {"wall_s", run.wall_s + upstream("wall_s")}};
}

void write_sample_scores(const std::string& path, const SampleScores& scores) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [kind, values] : scores.scores) {
    FRUGAL_CHECK(int64_t(values.size()) == scores.samples,
                 "score \"" + kind + "\" has " + std::to_string(values.size()) + " values for " +
                     std::to_string(scores.samples) + " samples");
    tensors.emplace_back(kPrefix + kind, Tensor::from_vector(values, {scores.samples}));
  }
  std::map<std::string, std::string> metadata = {{"frugal.scores.fingerprint", scores.fingerprint},
                                                 {"frugal.scores.samples", std::to_string(scores.samples)}};
  if (!scores.cost.is_null()) metadata["frugal.scores.cost"] = scores.cost.dump();
  io::write_safetensors(path, tensors, metadata);
}

SampleScores read_sample_scores(const std::string& path, const data::Dataset& train) {
  io::SafetensorsFile file = io::read_safetensors(path);
  SampleScores out;
  out.path = path;
  auto meta = [&](const char* key) -> const std::string* {
    auto found = file.metadata.find(key);
    return found == file.metadata.end() ? nullptr : &found->second;
  };
  const std::string* fingerprint = meta("frugal.scores.fingerprint");
  const std::string* samples = meta("frugal.scores.samples");
  if (!fingerprint || !samples)
    throw InputError(path + ": not a score file (no frugal.scores.fingerprint / frugal.scores.samples metadata; "
                     "write one with `frugal data score`)");
  out.fingerprint = *fingerprint;
  try {
    out.samples = std::stoll(*samples);
  } catch (const std::exception&) {
    throw InputError(path + ": frugal.scores.samples is \"" + *samples + "\", expected a count");
  }
  const std::string expected = dataset_fingerprint(train);
  if (out.samples != train.size() || out.fingerprint != expected)
    throw InputError(path + ": scores of another data set (" + std::to_string(out.samples) + " samples, fingerprint " +
                     out.fingerprint + "); this job's training split has " + std::to_string(train.size()) +
                     " samples, fingerprint " + expected);
  if (const std::string* cost = meta("frugal.scores.cost")) {
    out.cost = nlohmann::json::parse(*cost, nullptr, /*allow_exceptions=*/false);
    if (out.cost.is_discarded()) throw InputError(path + ": frugal.scores.cost is not JSON");
  }
  for (const auto& [name, tensor] : file.tensors) {
    if (name.rfind(kPrefix, 0) != 0) continue;
    if (tensor.dtype() != DType::f32 || tensor.rank() != 1 || tensor.size(0) != out.samples)
      throw InputError(path + ": tensor " + name + " is " + std::string(dtype_name(tensor.dtype())) + " " +
                       shape_str(tensor.shape()) + ", expected F32 (" + std::to_string(out.samples) + ")");
    const Tensor c = tensor.contiguous();
    const float* v = c.data<float>();
    std::vector<float> values(v, v + out.samples);
    for (int64_t i = 0; i < out.samples; ++i)
      if (!std::isfinite(values[size_t(i)]))
        throw InputError(path + ": " + name + "[" + std::to_string(i) + "] is not finite");
    out.scores[name.substr(std::strlen(kPrefix))] = std::move(values);
  }
  if (out.scores.empty()) throw InputError(path + ": holds no score.<kind> tensors");
  return out;
}

}  // namespace frugal::train
