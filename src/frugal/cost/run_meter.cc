// The run's cost meters (see run_meter.h): pricing with the user's overrides, the carry-over of
// earlier processes' meters through checkpoints and the heartbeat, running totals and the summary.
// Limits: the arithmetic is the one the training loop did inline before this type existed, kept
// so that checkpoints and summaries of older and newer versions agree.
#include "frugal/cost/run_meter.h"

#include <algorithm>
#include <utility>

#include "frugal/base/error.h"
#include "frugal/base/value_text.h"
#include "frugal/cost/peak.h"

namespace frugal::cost {

namespace {

const std::string phase_key_prefix = "cost.phase.";

std::string phase_key(int phase) { return phase_key_prefix + phase_name(Phase(phase)); }

}  // namespace

double PricedInstance::usd_per_hour() const { return price_per_hour(instance, pricing); }

double PricedInstance::carbon_g_per_kwh() const { return user_carbon_g_per_kwh.value_or(instance.carbon_g_per_kwh); }

PricedInstance price_instance(const std::string& catalog_path, const PriceRequest& request) {
  PricedInstance out;
  out.catalog_path = catalog_path;
  out.user_catalog = request.user_catalog;
  out.catalog = load_catalog(catalog_path);
  if (!request.user_catalog.empty()) out.catalog.merge(request.user_catalog);
  try {
    out.instance = out.catalog.at(request.instance);
  } catch (const InputError& e) {
    throw InputError(request.where + " instance = \"" + request.instance + "\": " + e.what());
  }
  out.pricing = request.pricing;
  out.billing = request.billing;
  Instance& instance = out.instance;
  if (request.usd_per_hour) {
    // The user's price is what the machine costs them, whichever pricing is named.
    instance.usd_per_hour = instance.spot_usd_per_hour = *request.usd_per_hour;
    instance.user_keys.insert({"usd_per_hour", "spot_usd_per_hour"});
  }
  if (request.tdp_w) {
    // Idle power keeps its share of the full-load power.
    double idle_share = instance.tdp_w > 0 ? instance.idle_w / instance.tdp_w : idle_fraction_default;
    instance.tdp_w = *request.tdp_w;
    instance.idle_w = idle_share * *request.tdp_w;
    instance.user_keys.insert({"tdp_w", "idle_w"});
  }
  out.user_carbon_g_per_kwh = request.carbon_g_per_kwh;
  return out;
}

CarriedMeters read_carried_meters(const std::map<std::string, std::string>& values, const std::string& path) {
  ValueReader r(values, path);
  CarriedMeters m;
  m.wall_s = r.real("wall_s");
  m.train_compute_s = r.real("train_compute_s");
  m.data_wait_s = r.real("data_wait_s");
  m.checkpoint_s = r.real("checkpoint_s");
  m.lost_s = r.real("lost_s");
  m.interruptions = r.integer("interruptions");
  // Checkpoints of versions before the cost layer have no cost.* values: those meters start at 0.
  for (int i = 0; i < phase_count; ++i)
    if (r.has(phase_key(i))) m.phase_s[size_t(i)] = r.real(phase_key(i));
  if (r.has("cost.energy_j")) m.energy_j = r.real("cost.energy_j");
  if (r.has("cost.energy_source")) m.energy_source = r.text("cost.energy_source");
  // Versions before the FLOP counter: none of the checkpoint's samples were counted.
  if (r.has("cost.flops_forward")) {
    m.flops_forward = r.real("cost.flops_forward");
    m.flops_backward = r.real("cost.flops_backward");
    m.flops_eval = r.real("cost.flops_eval");
    m.flops_uncounted_samples = r.integer("cost.flops_uncounted_samples");
  } else if (r.has("samples_seen")) {
    m.flops_uncounted_samples = r.integer("samples_seen");
  }
  return m;
}

RunMeter::RunMeter(PricedInstance priced, std::string powercap_root)
    : priced_(std::move(priced)),
      process_start_(read_process_sample()),
      energy_(power_model(priced_.instance), std::move(powercap_root), process_start_) {}

void RunMeter::resume(const CarriedMeters& carried, std::optional<LastBeat> last_beat) {
  carried_ = carried;
  CarriedMeters& c = carried_;
  flops_forward_ = c.flops_forward;
  flops_backward_ = c.flops_backward;
  flops_eval_ = c.flops_eval;
  if (last_beat && last_beat->wall_s >= c.wall_s && last_beat->checkpoint_s >= c.checkpoint_s) {
    double writing = last_beat->checkpoint_s - c.checkpoint_s;  // this checkpoint's write and any later
    c.lost_s += std::max(0.0, last_beat->wall_s - c.wall_s - writing);
    c.wall_s = last_beat->wall_s;
    c.checkpoint_s = last_beat->checkpoint_s;
  }
  ++c.interruptions;
  // The checkpoint's phases end where it was packed; the rest of the earlier processes' wall time
  // (its own write, work lost after it) is unattributed, so it counts as "other" and, for energy,
  // at the earlier processes' mean power (an estimate).
  double attributed = 0;
  for (double v : c.phase_s) attributed += v;
  if (attributed > 0 && c.wall_s > attributed) {
    c.energy_j *= c.wall_s / attributed;
    c.energy_source = source_estimated;
  }
  c.phase_s[size_t(Phase::other)] += std::max(0.0, c.wall_s - attributed);
}

double RunMeter::wall_s() const { return carried_.wall_s + phases_.wall_seconds(); }
double RunMeter::lost_s() const { return carried_.lost_s; }
double RunMeter::checkpoint_s() const { return carried_.checkpoint_s + checkpoint_s_; }
int64_t RunMeter::interruptions() const { return carried_.interruptions; }
double RunMeter::train_compute_s() const { return carried_.train_compute_s + train_compute_s_; }
double RunMeter::carried_data_wait_s() const { return carried_.data_wait_s; }

void RunMeter::add_train_compute(double seconds) { train_compute_s_ += seconds; }
void RunMeter::add_checkpoint_write(double seconds) { checkpoint_s_ += seconds; }

void RunMeter::add_flops(double forward, double backward) {
  flops_forward_ += forward;
  flops_backward_ += backward;
}

void RunMeter::add_eval_flops(double flops) { flops_eval_ += flops; }

void RunMeter::add_other_processes(double energy_j, double flops_forward, double flops_backward, double flops_eval) {
  carried_.energy_j += energy_j;
  flops_forward_ += flops_forward;
  flops_backward_ += flops_backward;
  flops_eval_ += flops_eval;
}

double RunMeter::own_energy_j() const { return energy_.joules().value; }
std::string RunMeter::own_energy_source() const { return energy_.source(); }

void RunMeter::sample() { energy_.sample(); }

CostTotals RunMeter::totals() const {
  CostTotals c;
  PhaseTotals now = phases_.totals();
  c.wall_s = carried_.wall_s + now.wall_seconds;
  for (size_t i = 0; i < c.phase_s.size(); ++i) c.phase_s[i] = carried_.phase_s[i] + now.seconds[i];
  double joules = carried_.energy_j + energy_.joules().value;
  // Energy estimated for any part of the run makes the whole figure an estimate.
  std::string source = carried_.energy_source == source_estimated ? source_estimated : energy_.source();
  c.kwh = {joules / 3.6e6, source};
  c.co2_kg = carbon_kg(c.kwh.value, priced_.instance, priced_.user_carbon_g_per_kwh);
  c.usd = dollars(priced_.instance, c.wall_s, priced_.pricing, priced_.billing);
  c.hours = {c.wall_s / 3600.0, source_measured};
  return c;
}

void RunMeter::save(std::map<std::string, std::string>& values, double data_wait_s) {
  sample();
  const CostTotals c = totals();
  for (int i = 0; i < phase_count; ++i) values[phase_key(i)] = value_text(c.phase_s[size_t(i)]);
  // The joules themselves, not kWh x 3.6e6, which may differ in the last bit.
  values["cost.energy_j"] = value_text(carried_.energy_j + energy_.joules().value);
  values["cost.energy_source"] = c.kwh.source;
  // Read after the phases, as the trainer did: the time between counts as "other" on resume.
  values["wall_s"] = value_text(wall_s());
  values["train_compute_s"] = value_text(train_compute_s());
  values["data_wait_s"] = value_text(carried_.data_wait_s + data_wait_s);
  values["checkpoint_s"] = value_text(checkpoint_s());
  values["lost_s"] = value_text(lost_s());
  values["interruptions"] = value_text(interruptions());
  values["cost.flops_forward"] = value_text(flops_forward_);
  values["cost.flops_backward"] = value_text(flops_backward_);
  values["cost.flops_eval"] = value_text(flops_eval_);
  values["cost.flops_uncounted_samples"] = value_text(carried_.flops_uncounted_samples);
}

CostSummary RunMeter::summary(std::optional<int64_t> flops_per_sample, const std::string& peak_precision,
                              int threads) {
  FRUGAL_CHECK(peak_precision == "fp32" || peak_precision == "bf16", "peak_precision must be fp32 or bf16");
  sample();
  const CostTotals c = totals();
  const Instance& instance = priced_.instance;
  CostSummary s;
  s.usd = c.usd;
  s.kwh = c.kwh;
  s.co2_kg = c.co2_kg;
  s.hours = c.hours;
  s.instance = instance.name;
  s.pricing = pricing_name(priced_.pricing);
  s.billing = billing_name(priced_.billing);
  s.usd_per_hour = priced_.usd_per_hour();
  s.carbon_g_per_kwh = priced_.carbon_g_per_kwh();
  s.energy_method = energy_.method();
  s.catalog = priced_.catalog_path;
  s.user_catalog = priced_.user_catalog;
  s.phase_s = c.phase_s;
  s.wall_s = c.wall_s;
  // CPU time and utilization of this process (getrusage), over its wall time.
  const ProcessSample process_now = read_process_sample();
  s.cpu_s = process_now.cpu_seconds() - process_start_.cpu_seconds();
  s.cpu_utilization = cpu_utilization(process_start_, process_now, threads);
  s.peak_precision = peak_precision;
  s.flops_per_sample = flops_per_sample;
  double forward = flops_forward_, backward = flops_backward_;
  s.flops_source = source_counted;
  const int64_t uncounted = carried_.flops_uncounted_samples;
  if (uncounted == 0) s.flops_eval = flops_eval_;  // else the older version's evaluations are unknown
  if (uncounted > 0) {
    if (!flops_per_sample) {
      s.mfu_note = "unknown: the run went on from a checkpoint of an older version, which counted no FLOPs for its " +
                   std::to_string(uncounted) + " samples, and the model's FLOPs per sample are not known";
      return s;
    }
    // What those samples cost as the older versions estimated it: forward, and backward twice that.
    forward += double(*flops_per_sample) * double(uncounted);
    backward += 2.0 * double(*flops_per_sample) * double(uncounted);
    s.flops_source = source_estimated;
  }
  const double flops = forward + backward;
  s.flops = flops;
  s.flops_forward = forward;
  s.flops_backward = backward;
  if (c.wall_s > 0) s.flops_per_s = flops / c.wall_s;
  if (flops <= 0) {
    s.mfu_note = "unknown: no FLOPs were counted (no matmul, convolution or attention ran in training)";
    return s;
  }
  s.projections = standard_projections(priced_, flops, priced_.pricing);
  std::optional<double> peak = instance.peak(peak_precision);
  const char* peak_source = instance.from_user("peak_tflops") ? source_user : source_catalog;
  if ((!peak || *peak <= 0) && instance.name == "local") {
    // This machine: measure its peak (FMA and bf16 dot-product loops on the run's threads, about a
    // second).
    const PeakFlops measured = measure_peak_flops(threads);
    peak = peak_precision == "bf16" ? measured.bf16 : measured.fp32;
    peak_source = source_measured;
  }
  if (peak && *peak > 0 && c.wall_s > 0) {
    s.mfu = flops / c.wall_s / *peak;
    s.mfu_peak_flops = {*peak, peak_source};
  } else {
    s.mfu_note = "unknown: instance '" + instance.name + "' states no " + peak_precision +
                 " peak FLOP/s (set peak_tflops in a user catalog, [cost] catalog)";
  }
  return s;
}

std::vector<Projection> standard_projections(const PricedInstance& priced, double flops, Pricing pricing) {
  // fp32 is the precision frugal trains its dense ops in by default; 30% of peak is the typical MFU
  // of well-tuned training. Each projection's method string states both.
  static const char* const projected[] = {"c7i.2xlarge", "a2-highgpu-1g", "p5.48xlarge", "runpod-rtx4090"};
  constexpr double efficiency = 0.3;
  std::vector<Projection> out;
  for (const char* name : projected) {
    if (!priced.catalog.contains(name) || !priced.catalog.at(name).peak("fp32")) continue;
    out.push_back(project(priced.catalog.at(name), flops, "fp32", efficiency, pricing));
  }
  return out;
}

}  // namespace frugal::cost
