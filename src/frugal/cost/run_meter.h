// What one training run costs, over every process of it: the priced instance (a catalog entry with
// the user's overrides), the meters (wall time split into phases, CPU time, energy, time spent
// writing checkpoints and redoing work an interruption destroyed, the training FLOPs the dense ops
// counted), how they travel through a
// checkpoint, the running totals a budget checks, and the cost summary at the end (figures with
// their sources, projections onto other instances, MFU). Limits: one RunMeter per process, used
// from the training thread; energy is the whole machine's (RAPL) or a model of this process's.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "frugal/cost/billing.h"
#include "frugal/cost/catalog.h"
#include "frugal/cost/energy.h"
#include "frugal/cost/figure.h"
#include "frugal/cost/meters.h"
#include "frugal/cost/projection.h"

namespace frugal::cost {

// The job's [cost] section: which catalog entry the run is priced as and the user's overrides.
struct PriceRequest {
  std::string instance = "local";
  Pricing pricing = Pricing::on_demand;
  Billing billing = Billing::per_second;
  std::string user_catalog;  // merged over the shipped catalog ("" = none)
  std::optional<double> usd_per_hour, tdp_w, carbon_g_per_kwh;
  // Where the request came from, the start of the unknown-instance error: the trainer passes
  // "<job file>: [cost]" (see price_instance).
  std::string where = "[cost]";
};

// The instance a run is priced as: the catalog entry with the request's overrides applied. The
// user's price replaces both on-demand and spot prices (it is what the machine costs them); a user
// TDP keeps the entry's idle share of TDP. Overridden keys are marked as "user" (Instance::user_keys).
struct PricedInstance {
  Catalog catalog;
  Instance instance;
  Pricing pricing = Pricing::on_demand;
  Billing billing = Billing::per_second;
  std::optional<double> user_carbon_g_per_kwh;
  std::string catalog_path, user_catalog;

  double usd_per_hour() const;      // price_per_hour(instance, pricing)
  double carbon_g_per_kwh() const;  // the user's value, else the entry's
};

// Loads the shipped catalog at `catalog_path`, merges the user catalog, picks the entry. Errors are
// InputError: a catalog file's error names that file; an unknown instance reads
// `<where> instance = "NAME": ` and then Catalog::at's message (the suggestion and the known names).
PricedInstance price_instance(const std::string& catalog_path, const PriceRequest& request);

// Running totals of the whole run (every process) at the last sample.
struct CostTotals {
  Figure usd, kwh, co2_kg, hours;
  std::array<double, phase_count> phase_s{};
  double wall_s = 0;
};

// The meters of the earlier processes of a resumed run, as a checkpoint carries them. Values are
// text under these keys (shortest round-trip decimal): "wall_s", "train_compute_s", "data_wait_s",
// "checkpoint_s", "lost_s", "interruptions", "cost.phase.<phase name>", "cost.energy_j",
// "cost.energy_source", "cost.flops_forward", "cost.flops_backward", "cost.flops_eval",
// "cost.flops_uncounted_samples". wall_s is all the wall time spent so far (work kept, work redone,
// checkpoint writes); checkpoint_s the writes before this checkpoint (its own write time reaches
// the next process through the heartbeat). The FLOPs are those of the training kept up to the
// checkpoint (work redone after an interruption counts once, as in a run never interrupted; its
// time is in lost_s).
struct CarriedMeters {
  double wall_s = 0, train_compute_s = 0, data_wait_s = 0, checkpoint_s = 0, lost_s = 0;
  int64_t interruptions = 0;
  std::array<double, phase_count> phase_s{};  // 0 in checkpoints of older versions (no cost.* keys)
  double energy_j = 0;
  std::string energy_source;  // "" when the checkpoint had none
  // FLOPs counted so far (autograd/flops.h): training forward and backward, and evaluation.
  double flops_forward = 0, flops_backward = 0, flops_eval = 0;
  // Samples trained on by versions that did not count FLOPs: a checkpoint without
  // "cost.flops_forward" brings all its samples ("samples_seen") here, and the summary estimates
  // their FLOPs as 3 x the model's forward FLOPs per sample.
  int64_t flops_uncounted_samples = 0;
};

// Reads the carried meters from checkpoint values; InputError naming `path` and the key when one
// is missing or not a number (the cost.* keys may be absent: older checkpoints; then every sample
// of the checkpoint's "samples_seen", when it has one, is uncounted).
CarriedMeters read_carried_meters(const std::map<std::string, std::string>& values, const std::string& path);

// The last heartbeat of the process that was interrupted after the checkpoint: how far its clocks
// had got (cumulative over the run, as CarriedMeters).
struct LastBeat {
  double wall_s = 0, checkpoint_s = 0;
};

// The cost part of a run summary.
struct CostSummary {
  Figure usd, kwh, co2_kg, hours;
  std::string instance, pricing, billing;  // pricing_name, billing_name
  double usd_per_hour = 0, carbon_g_per_kwh = 0;
  std::string energy_method, catalog, user_catalog;  // user_catalog "" = none
  std::array<double, phase_count> phase_s{};
  double wall_s = 0;
  double cpu_s = 0, cpu_utilization = 0;  // this process (getrusage), over its wall time and threads
  // Training FLOPs: what the dense ops of the training micro-batches computed, forward and
  // backward (autograd/flops.h), over the whole run; flops = flops_forward + flops_backward.
  // flops_source "counted", or "estimated" when part of the run came from a checkpoint of a version
  // that did not count (3 x flops_per_sample for each of its samples). Unknown only then, for a
  // model without flops_per_sample. Evaluation is not training: in flops_eval.
  std::optional<double> flops, flops_forward, flops_backward;
  std::string flops_source;  // when flops is known
  // Achieved training FLOP/s: flops / wall_s (what mfu divides by the peak); when flops is known
  // and wall_s > 0.
  std::optional<double> flops_per_s;
  // The forward work of evaluation (periodic and final validation, the test split, a technique's
  // dense work at evaluation_done), counted; not in flops. Unknown when part of the run came from
  // a checkpoint of a version that did not count.
  std::optional<double> flops_eval;
  // The model's forward FLOPs per sample from its config (nn::count_flops_per_sample); unknown for
  // a model given by code.
  std::optional<int64_t> flops_per_sample;
  std::vector<Projection> projections;  // this run's flops on other instances (estimated)
  // MFU: flops / wall_s / the peak of the precision the dense ops ran in: the catalog's (or the
  // user's) peak, or for the "local" instance this machine's peak measured on the run's threads.
  std::optional<double> mfu;
  Figure mfu_peak_flops;     // value and source, when mfu is known
  std::string peak_precision;  // "fp32" or "bf16"
  std::string mfu_note;      // why mfu is unknown, when it is
};

class RunMeter {
 public:
  // Starts this process's clocks now (wall, CPU time, phases, energy). powercap_root: where the
  // RAPL counters are (a parameter so tests can use a fake directory).
  explicit RunMeter(PricedInstance priced, std::string powercap_root = "/sys/class/powercap");

  const PricedInstance& priced() const { return priced_; }
  PhaseTimer& phases() { return phases_; }
  [[nodiscard]] PhaseTimer::Scope phase(Phase phase) { return phases_.scope(phase); }

  // A resumed run: the earlier processes' meters from the checkpoint. With the interrupted
  // process's last heartbeat (the caller passes it only when its run id is this run's and its step
  // is not before the checkpoint's; a beat whose clocks are behind the checkpoint's is ignored here),
  // the work it did after the checkpoint counts as lost (lost_s), its time in wall_s and its
  // checkpoint writes in checkpoint_s; counts one interruption. The part of the earlier wall time
  // no phase accounts for (the checkpoint's own write, lost work) counts as phase "other" and, for
  // energy, at the earlier processes' mean power (the energy source then becomes "estimated").
  // Call once, before the first step.
  void resume(const CarriedMeters& carried, std::optional<LastBeat> last_beat);

  // Wall seconds of the whole run: earlier processes plus this one so far.
  double wall_s() const;
  double lost_s() const;
  double checkpoint_s() const;  // writing checkpoints, all processes
  int64_t interruptions() const;
  double train_compute_s() const;
  // data_wait of earlier processes (this process's wait is its loader's, added by the caller).
  double carried_data_wait_s() const;

  void add_train_compute(double seconds);
  void add_checkpoint_write(double seconds);
  // FLOPs of a training micro-batch (an autograd::FlopCounter's totals), added to the run's.
  void add_flops(double forward, double backward);
  // FLOPs of an evaluation pass (an autograd::FlopCounter's total), added to the run's.
  void add_eval_flops(double flops);
  // The run's counted FLOPs so far (earlier processes' included).
  double flops_forward() const { return flops_forward_; }
  double flops_backward() const { return flops_backward_; }
  double flops_eval() const { return flops_eval_; }

  // Data parallel: the energy and FLOPs of the job's other processes (ranks) since the last call,
  // added to the run's as an earlier process's are (so checkpoints carry them too).
  void add_other_processes(double energy_j, double flops_forward, double flops_backward, double flops_eval);
  // This process's own energy so far in joules (at the last sample; nothing carried), and its source.
  double own_energy_j() const;
  std::string own_energy_source() const;

  // Reads the energy counters (or the process CPU time for the estimate). Call every step or so,
  // so that no RAPL counter wraps twice between samples.
  void sample();
  // Totals of the whole run: times read now, energy at the last sample (call sample() first for
  // "now"). The phases add up to wall_s (within rounding) once resume() has put the unattributed
  // earlier time in "other"; hours = wall_s / 3600 ("measured"); usd bills wall_s.
  CostTotals totals() const;

  // The checkpoint values of the meters now (keys as CarriedMeters), with this process's loader
  // wait `data_wait_s` (the whole run's data wait is carried_data_wait_s() + it). Samples first.
  void save(std::map<std::string, std::string>& values, double data_wait_s);

  // The cost summary now (samples first). flops_per_sample: the model's forward FLOPs per sample,
  // when known (reported, and the estimate for samples of a checkpoint that did not count FLOPs);
  // peak_precision "fp32" or "bf16"; threads: the run's thread count (CPU utilization and the
  // measured local peak). The FLOPs are the counted ones (add_flops).
  CostSummary summary(std::optional<int64_t> flops_per_sample, const std::string& peak_precision, int threads);

 private:
  PricedInstance priced_;
  ProcessSample process_start_;
  PhaseTimer phases_;
  EnergyMeter energy_;
  CarriedMeters carried_;
  double train_compute_s_ = 0, checkpoint_s_ = 0;  // this process
  // The whole run's, from the carried values on: added to in the order a run never interrupted
  // adds, so a resumed run's sums are that run's, bit for bit.
  double flops_forward_ = 0, flops_backward_ = 0, flops_eval_ = 0;
};

// The instances a finished run is projected onto ("this run on X would cost"): a CPU instance, an
// A100, an H100 node and an RTX 4090, at fp32 and an efficiency of 30% of peak (a typical MFU of
// well-tuned training); entries the catalog lacks are left out.
std::vector<Projection> standard_projections(const PricedInstance& priced, double flops, Pricing pricing);

}  // namespace frugal::cost
