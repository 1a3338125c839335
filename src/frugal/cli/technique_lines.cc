// The run summary's lines for the techniques a run used (RunSummary::techniques), in words where a
// technique has a known shape; any other as its JSON (everything is in `--json` too).
#include "frugal/cli/technique_lines.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "frugal/base/format.h"
#include "frugal/base/machine.h"
#include "frugal/base/units.h"

namespace frugal::cli {

using nlohmann::json;

namespace {

// Issue 21's techniques (train/sampling/) and packed data; false for any other name.
bool sampling_line(const std::string& name, const json& f) {
  auto num = [&](const char* key) { return f.value(key, 0.0); };
  auto count = [&](const char* key) { return (long long)f.value(key, int64_t(0)); };
  if (name == "seq_warmup") {
    std::printf("  sequence-length warmup: %lld -> %lld tokens over %lld steps (%s); trained on %lld tokens, %.0f%% of "
                "the full context's\n", count("start"), count("context"), count("warmup_steps"),
                f.value("mode", "").c_str(), count("tokens_trained"),
                100 * num("tokens_trained") / std::max(1.0, num("tokens_full_context")));
  } else if (name == "curriculum") {
    std::printf("  curriculum: %s by %s, %s pacing from %g of the data; all data from step %lld, mean pool %.0f%%\n",
                f.value("order", "").c_str(), f.value("score", "").c_str(), f.value("pacing", "").c_str(), num("start"),
                count("full_pool_step"), 100 * num("mean_pool_fraction"));
    if (f.contains("total_with_scoring"))
      std::printf("    with the scoring run: %s, %s, %s in all\n", usd_text(f["total_with_scoring"].value("usd", 0.0)).c_str(),
                  energy_text(f["total_with_scoring"].value("kwh", 0.0)).c_str(),
                  duration_text(f["total_with_scoring"].value("wall_s", 0.0)).c_str());
  } else if (name == "selective_backprop") {
    std::printf("  selective backprop: backward on %lld of %lld samples scored (keep %g, from step %lld); scoring "
                "forwards %s\n", count("samples_backward"), count("samples_scored"), num("keep"), count("start_step"),
                duration_text(num("scoring_s")).c_str());
  } else if (name == "importance_sampling") {
    std::printf("  importance sampling: %lld epochs drawn by loss (smoothing %g%s), largest probability %.1fx uniform\n",
                count("epochs_sampled"), num("smoothing"), f.value("reweight", false) ? ", reweighted" : "",
                num("max_probability_x_n"));
  } else if (name == "packed_data") {
    std::printf("  packed data: %lld samples streamed by %lld loader threads (shuffle buffer %lld), %lld blocks "
                "decompressed\n", count("samples"), count("workers"), count("shuffle_buffer"), count("blocks_decompressed"));
  } else {
    return false;
  }
  return true;
}

}  // namespace

void print_technique_lines(const std::map<std::string, json>& techniques) {
  for (const auto& [name, figures] : techniques) {
    if (name == "prune" && figures.contains("units_total")) {  // [prune], in words (per layer: --json)
      const std::string structure = figures.value("structure", "");
      const std::string what = structure.find('+') != std::string::npos ? structure + " units"
                               : structure == "mlp"                      ? "MLP units"
                                                                         : structure;
      std::printf("  prune: %.1f%% of %s removed (%lld of %lld; target %.1f%%), %s scores, %s, %s",
                  100 * figures.value("sparsity", 0.0), what.c_str(),
                  (long long)(figures.value("units_total", int64_t(0)) - figures.value("units_kept", int64_t(0))),
                  (long long)figures.value("units_total", int64_t(0)), 100 * figures.value("target_sparsity", 0.0),
                  figures.value("score", "").c_str(), figures.value("scope", "").c_str(),
                  figures.value("schedule", "").c_str());
      if (figures.contains("compact_params"))
        std::printf("; the compacted model (model.toml) has %lld parameters",
                    (long long)figures.value("compact_params", int64_t(0)));
      std::printf("\n");
      continue;
    }
    if (name == "data_pruning" && figures.contains("total_with_scoring")) {  // issue 21, in words
      const json& total = figures["total_with_scoring"];
      const json& up = figures["scoring_cost"];
      std::printf("  data pruning: kept %lld of %lld training rows (%s by %s, fraction %g); with the scoring run %s: "
                  "%s, %s, %s in all\n", (long long)figures.value("kept", int64_t(0)), (long long)figures.value("of", int64_t(0)),
                  figures.value("keep", "").c_str(), figures.value("score", "").c_str(), figures.value("fraction", 0.0),
                  up.is_object() ? up.value("run_id", "?").c_str() : "(cost unknown)",
                  usd_text(total.value("usd", 0.0)).c_str(), energy_text(total.value("kwh", 0.0)).c_str(),
                  duration_text(total.value("wall_s", 0.0)).c_str());
      continue;
    }
    if (name == "dedup") {
      std::printf("  dedup %s: removed %lld of %lld %ss (%s of %s) from the training text\n", figures.value("mode", "").c_str(),
                  (long long)figures.value("removed", int64_t(0)), (long long)figures.value("units", int64_t(0)),
                  figures.value("unit", "").c_str(), bytes_text(figures.value("bytes_removed", int64_t(0))).c_str(),
                  bytes_text(figures.value("bytes", int64_t(0))).c_str());
      continue;
    }
    if (sampling_line(name, figures)) continue;
    if (name == "federated" && figures.contains("bytes")) {  // issue 19, in words
      const std::string split = figures.value("split", "") == "dirichlet"
                                    ? "dirichlet alpha " + number_text(figures.value("alpha", 0.0)) : "iid";
      std::printf("  federated %s: %lld rounds of %lld of %lld clients (%s, label skew %.3f), %lld local epochs; "
                  "%s exchanged", figures.value("algorithm", "").c_str(), (long long)figures.value("rounds", int64_t(0)),
                  (long long)figures.value("clients_per_round", int64_t(0)), (long long)figures.value("clients", int64_t(0)),
                  split.c_str(), figures.value("label_skew", 0.0), (long long)figures.value("local_epochs", int64_t(0)),
                  bytes_text(int64_t(figures.value("bytes", 0.0))).c_str());
      if (figures.contains("bytes_measured"))
        std::printf(" (%s sent between %lld ranks)", bytes_text(int64_t(figures.value("bytes_measured", 0.0))).c_str(),
                    (long long)figures.value("world_size", int64_t(0)));
      if (figures.contains("target_accuracy")) {
        const json& round = figures["target_round"];
        if (round.is_number())
          std::printf("; val accuracy %.2f%% first reached in round %lld, after %s", 100 * figures.value("target_accuracy", 0.0),
                      (long long)round.get<int64_t>(), bytes_text(int64_t(figures["target_bytes"].get<double>())).c_str());
        else
          std::printf("; val accuracy %.2f%% not reached", 100 * figures.value("target_accuracy", 0.0));
      }
      std::printf("\n");
      continue;
    }
    std::printf("  %s: %s\n", name.c_str(), figures.dump().c_str());
  }
}

}  // namespace frugal::cli
