// The [prune] technique (see prune.h).
#include "frugal/train/compress/prune.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "frugal/base/error.h"
#include "frugal/base/format.h"

namespace frugal::train {

namespace {

std::string percent(double fraction) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f%%", 100.0 * fraction);
  return text;
}

// Parameters a unit's masked rows hold (its share of every owned tensor).
int64_t params_per_unit(const PruneLayer& p) {
  if (p.structure == PruneStructure::weights) return 1;
  int64_t n = 0;
  for (const PruneSlice& s : p.owned)
    if (s.masked) n += s.tensor.numel() / p.units;
  return n;
}

const char* score_name(PruneScore s) { return s == PruneScore::taylor ? "taylor" : "magnitude"; }

std::string structures_text(const PruneSpec& spec) {
  std::string out;
  for (PruneStructure s : spec.structures) out += std::string(out.empty() ? "" : "+") + prune_structure_name(s);
  return out;
}

}  // namespace

nlohmann::json prune_report(const std::vector<PruneLayer>& layers, const PruneMasks& masks, const PruneSpec& spec) {
  nlohmann::json rows = nlohmann::json::array();
  int64_t units = 0, kept = 0, params = 0, params_removed = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    const int64_t k = kept_count(masks[l]);
    rows.push_back({{"layer", layers[l].name},
                    {"structure", prune_structure_name(layers[l].structure)},
                    {"kept", k},
                    {"total", layers[l].units}});
    units += layers[l].units, kept += k;
    params += layers[l].units * params_per_unit(layers[l]);
    params_removed += (layers[l].units - k) * params_per_unit(layers[l]);
  }
  return {{"structure", structures_text(spec)},
          {"score", score_name(spec.score)},
          {"scope", spec.global ? "global" : "layer"},
          {"schedule", spec.gradual ? "gradual" : "oneshot"},
          {"target_sparsity", spec.sparsity},
          {"sparsity", units ? double(units - kept) / double(units) : 0.0},
          {"units_kept", kept},
          {"units_total", units},
          {"params_removed", params_removed},
          {"params_in_pruned_layers", params},
          {"layers", rows}};
}

std::string prune_line(const std::vector<PruneLayer>& layers, const PruneMasks& masks, const PruneSpec& spec) {
  const nlohmann::json r = prune_report(layers, masks, spec);
  const int64_t total = r["units_total"], kept = r["units_kept"];
  const std::string structures = structures_text(spec);
  const std::string what = spec.structures.size() > 1 ? structures + " units" : structures == "mlp" ? "MLP units" : structures;
  // Structured: the rows zeroed are only part of what compaction removes (the columns reading them
  // go too), so the parameter count is left to the compacted model's.
  const std::string zeroed = structures == "weights"
                                 ? "; " + std::to_string(r["params_removed"].get<int64_t>()) + " weights zeroed"
                                 : "";
  return percent(r["sparsity"].get<double>()) + " of " + what + " removed (" + std::to_string(total - kept) + " of " +
         std::to_string(total) + ") over " + std::to_string(layers.size()) + " layers, " + score_name(spec.score) +
         " scores, " + (spec.global ? "global" : "per-layer") + " ranking" + zeroed;
}

Pruning::Pruning(const JobSpec& job, nn::Module& model) : job_(job), spec_(job.prune) {
  layers_ = find_prune_layers(model, job.model, spec_, job.path);
  masks_ = full_masks(layers_);
  for (const PruneLayer& p : layers_) taylor_.emplace_back(size_t(p.units), 0.0);
}

bool Pruning::structured() const { return layers_.front().structure != PruneStructure::weights; }

void Pruning::prune_now(TrainState& state, int64_t step) {
  const std::vector<std::vector<double>> scores =
      spec_.score == PruneScore::taylor ? taylor_ : magnitude_scores(layers_);
  choose_pruned(layers_, scores, target_sparsity(schedule_, step), spec_.global, masks_);
  apply_masks(layers_, masks_);
  for (auto& t : taylor_) std::fill(t.begin(), t.end(), 0.0);
  state.progress.line("prune: step " + std::to_string(step) + ", " + prune_line(layers_, masks_, spec_));
}

void Pruning::on(Event event, TrainState& state) {
  switch (event) {
    case Event::run_start:
      schedule_ = resolve_prune_schedule(spec_, state.total_steps);
      if (state.step == 0 && is_pruning_step(schedule_, 0)) prune_now(state, 0);  // the loaded model, before training
      apply_masks(layers_, masks_);
      break;
    case Event::before_optimizer_step:
      if (spec_.score == PruneScore::taylor && state.step < schedule_.end && !state.skip_step)
        accumulate_taylor(layers_, taylor_);
      break;
    case Event::after_optimizer_step:
      if (is_pruning_step(schedule_, state.step)) prune_now(state, state.step);
      else apply_masks(layers_, masks_);
      break;
    case Event::fit_end:
      apply_masks(layers_, masks_);  // on weights early stopping may have restored
      state.progress.line("prune: at the end, " + prune_line(layers_, masks_, spec_));
      if (structured() && spec_.compact) {
        compact_ = compact_model(state.model.state_dict(), job_.model, layers_, masks_);
        state.model_to_save = [this] { return compact_->tensors; };
        std::ofstream(std::filesystem::path(state.out_dir) / "model.toml") << compact_job_toml(job_, compact_->model);
        int64_t params = 0;
        for (const auto& [name, t] : compact_->tensors) params += t.numel();
        state.progress.line("prune: the compacted model has " + std::to_string(params) + " parameters (dense: " +
                            std::to_string(state.model.num_parameters()) + "); model.safetensors holds it, model.toml " +
                            "describes it");
      }
      break;
    case Event::run_end: {
      nlohmann::json report = prune_report(layers_, masks_, spec_);
      if (compact_) {
        int64_t params = 0;
        for (const auto& [name, t] : compact_->tensors) params += t.numel();
        report["compact_params"] = params;
        report["model_file"] = "model.toml";
      }
      state.summary->techniques["prune"] = report;
      break;
    }
    default: break;
  }
}

void Pruning::save_state(TechniqueState& out) const {
  for (size_t l = 0; l < layers_.size(); ++l) {
    Tensor mask = Tensor::empty({layers_[l].units}, DType::f32);
    float* m = mask.data<float>();
    for (int64_t u = 0; u < layers_[l].units; ++u) m[u] = masks_[l][size_t(u)];
    out.put_tensor("mask." + layers_[l].name, mask);
    if (spec_.score == PruneScore::taylor) {
      Tensor t = Tensor::empty({layers_[l].units}, DType::f64);
      std::copy(taylor_[l].begin(), taylor_[l].end(), t.data<double>());
      out.put_tensor("taylor." + layers_[l].name, t);
    }
  }
}

void Pruning::load_state(const TechniqueState& in) {
  std::map<std::string, Tensor> tensors(in.tensors().begin(), in.tensors().end());
  for (size_t l = 0; l < layers_.size(); ++l) {
    auto mask = tensors.find("mask." + layers_[l].name);
    if (mask == tensors.end() || mask->second.numel() != layers_[l].units)
      in.fail("no mask of " + std::to_string(layers_[l].units) + " units for " + layers_[l].name);
    const Tensor m = mask->second.to(DType::f32).contiguous();
    for (int64_t u = 0; u < layers_[l].units; ++u) masks_[l][size_t(u)] = m.data<float>()[u] != 0;
    if (spec_.score == PruneScore::taylor) {
      auto t = tensors.find("taylor." + layers_[l].name);
      if (t == tensors.end() || t->second.numel() != layers_[l].units)
        in.fail("no taylor scores for " + layers_[l].name);
      const Tensor d = t->second.to(DType::f64).contiguous();
      std::copy(d.data<double>(), d.data<double>() + layers_[l].units, taylor_[l].begin());
    }
  }
}

}  // namespace frugal::train
