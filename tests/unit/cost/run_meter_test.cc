// RunMeter: the user's price and power overrides and their sources; the meters' checkpoint values
// read back bit-exact; the resume arithmetic (heartbeat, lost work, "other" time, energy scaled to
// the unattributed time); totals that agree with the billing and energy functions; the summary's
// counted FLOPs (carried through checkpoints, estimated for checkpoints of versions that counted
// none), MFU (or why it is unknown) and projections.
#include "frugal/cost/run_meter.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>

#include "cost_test_files.h"
#include "frugal/base/error.h"
#include "frugal/base/value_text.h"

namespace frugal::cost {
namespace {

using testing::TempDir;

const std::string shipped = std::string(FRUGAL_SOURCE_DIR) + "/catalog/instances.toml";

// Two entries a user catalog adds: one stating fp32 and bf16 peaks, one stating none.
const std::string user_entries = std::string(testing::kBoxEntry) + R"(
[instance.nopeak]
provider = "acme"
region = "moon-1"
vcpus = 2
memory_gib = 8
usd_per_hour = 0.25
spot_usd_per_hour = 0.1
tdp_w = 40
carbon_g_per_kwh = 300
source = "acme price list"
date = "2024-06"
)";

uint64_t bits(double v) { return std::bit_cast<uint64_t>(v); }

// Runs `body`, expecting an InputError whose message contains every fragment.
template <typename F>
void expect_input_error(F body, std::initializer_list<std::string> fragments) {
  try {
    body();
    ADD_FAILURE() << "expected InputError";
  } catch (const InputError& e) {
    std::string message = e.what();
    for (const std::string& f : fragments) EXPECT_NE(message.find(f), std::string::npos) << message << "\nmissing: " << f;
  }
}

PricedInstance priced_as(const std::string& instance, const std::string& user_catalog = "") {
  PriceRequest request;
  request.instance = instance;
  request.user_catalog = user_catalog;
  return price_instance(shipped, request);
}

// A powercap tree whose one package counter never moves: energy "measured" and exactly 0 J, so
// the carried energy comes back bit for bit.
std::string still_rapl(const TempDir& dir) {
  dir.write("powercap/intel-rapl:0/name", "package-0\n");
  dir.write("powercap/intel-rapl:0/energy_uj", "123456\n");
  dir.write("powercap/intel-rapl:0/max_energy_range_uj", "1000000000\n");
  return dir.path("powercap");
}

double phase_sum(const std::array<double, phase_count>& phases) {
  double sum = 0;
  for (double v : phases) sum += v;
  return sum;
}

// The checkpoint of a process that ran 100 s: 90 s in phases, 5 s writing earlier checkpoints,
// 2 s of work lost to an earlier interruption, 9 kJ measured.
CarriedMeters hundred_seconds() {
  CarriedMeters c;
  c.wall_s = 100;
  c.train_compute_s = 70;
  c.data_wait_s = 10;
  c.checkpoint_s = 5;
  c.lost_s = 2;
  c.interruptions = 1;
  c.phase_s[size_t(Phase::data_wait)] = 10;
  c.phase_s[size_t(Phase::forward)] = 50;
  c.phase_s[size_t(Phase::backward)] = 30;
  c.energy_j = 9000;
  c.energy_source = "measured";
  return c;
}

TEST(PriceInstance, CatalogEntryAsShipped) {
  PricedInstance p = priced_as("c7i.2xlarge");
  const Instance& entry = p.catalog.at("c7i.2xlarge");
  EXPECT_EQ(p.instance.name, "c7i.2xlarge");
  EXPECT_TRUE(p.instance.user_keys.empty());
  EXPECT_EQ(p.catalog_path, shipped);
  EXPECT_EQ(p.user_catalog, "");
  EXPECT_EQ(p.usd_per_hour(), entry.usd_per_hour);
  EXPECT_EQ(p.carbon_g_per_kwh(), entry.carbon_g_per_kwh);
  EXPECT_EQ(dollars(p.instance, 3600, p.pricing, p.billing).source, "catalog");
  EXPECT_EQ(carbon_kg(1.0, p.instance, p.user_carbon_g_per_kwh).source, "catalog");

  PriceRequest spot;
  spot.instance = "c7i.2xlarge";
  spot.pricing = Pricing::spot;
  spot.billing = Billing::per_hour;
  PricedInstance s = price_instance(shipped, spot);
  EXPECT_EQ(s.pricing, Pricing::spot);
  EXPECT_EQ(s.billing, Billing::per_hour);
  EXPECT_EQ(s.usd_per_hour(), entry.spot_usd_per_hour);
}

TEST(PriceInstance, UserPriceReplacesBothPricesAndSaysUser) {
  PriceRequest request;
  request.instance = "c7i.2xlarge";
  request.usd_per_hour = 1.25;
  for (Pricing pricing : {Pricing::on_demand, Pricing::spot}) {
    request.pricing = pricing;
    PricedInstance p = price_instance(shipped, request);
    EXPECT_EQ(p.instance.usd_per_hour, 1.25);
    EXPECT_EQ(p.instance.spot_usd_per_hour, 1.25);
    EXPECT_EQ(p.usd_per_hour(), 1.25);
    EXPECT_EQ(p.instance.user_keys, (std::set<std::string>{"usd_per_hour", "spot_usd_per_hour"}));
    Figure usd = dollars(p.instance, 3600, p.pricing, p.billing);
    EXPECT_EQ(usd.value, 1.25);
    EXPECT_EQ(usd.source, "user");
  }
}

TEST(PriceInstance, UserTdpKeepsTheIdleShare) {
  PriceRequest request;
  request.instance = "c7i.2xlarge";  // tdp_w 29, idle_w 7
  request.tdp_w = 58;
  PricedInstance p = price_instance(shipped, request);
  EXPECT_EQ(p.instance.tdp_w, 58.0);
  EXPECT_EQ(bits(p.instance.idle_w), bits(7.0 / 29.0 * 58.0));
  EXPECT_EQ(p.instance.user_keys, (std::set<std::string>{"tdp_w", "idle_w"}));
  EXPECT_EQ(p.usd_per_hour(), p.catalog.at("c7i.2xlarge").usd_per_hour);  // the price is untouched
}

TEST(PriceInstance, UserCarbonIntensity) {
  PriceRequest request;
  request.instance = "c7i.2xlarge";
  request.carbon_g_per_kwh = 20;
  PricedInstance p = price_instance(shipped, request);
  EXPECT_EQ(p.carbon_g_per_kwh(), 20.0);
  EXPECT_TRUE(p.instance.user_keys.empty());  // the entry keeps its own; the run uses the user's
  TempDir dir;
  RunMeter meter(p, dir.path("missing"));
  meter.sample();
  CostTotals c = meter.totals();
  EXPECT_EQ(c.co2_kg.source, "user");
  EXPECT_EQ(c.co2_kg.value, c.kwh.value * 20.0 / 1000.0);
}

TEST(PriceInstance, UserCatalogAndUnknownInstance) {
  TempDir dir;
  const std::string mine = dir.write("mine.toml", user_entries);
  PricedInstance p = priced_as("box", mine);
  EXPECT_EQ(p.user_catalog, mine);
  EXPECT_EQ(p.usd_per_hour(), 0.5);
  EXPECT_TRUE(p.catalog.contains("c7i.2xlarge"));  // merged over the shipped catalog

  PriceRequest request;
  request.instance = "c7i.2xlarg";
  request.where = "job.toml: [cost]";
  expect_input_error([&] { price_instance(shipped, request); },
                     {"job.toml: [cost] instance = \"c7i.2xlarg\": unknown instance 'c7i.2xlarg'", "c7i.2xlarge"});
  request.where = "[cost]";
  expect_input_error([&] { price_instance(shipped, request); }, {"[cost] instance = \"c7i.2xlarg\": unknown instance"});
  request.instance = "box";
  request.user_catalog = dir.path("absent.toml");
  expect_input_error([&] { price_instance(shipped, request); }, {dir.path("absent.toml")});
}

TEST(RunMeter, TotalsAgreeWithBillingAndEnergy) {
  TempDir dir;
  PriceRequest request;
  request.instance = "c7i.2xlarge";
  request.billing = Billing::per_hour;  // any use bills one whole hour: a visible figure
  RunMeter meter(price_instance(shipped, request), dir.path("missing"));
  meter.resume(hundred_seconds(), std::nullopt);
  {
    auto in_forward = meter.phase(Phase::forward);
    volatile double x = 1;
    for (int i = 0; i < 200000; ++i) x = x * 1.0000001 + 1e-9;
  }
  meter.sample();
  CostTotals c = meter.totals();
  EXPECT_GT(c.wall_s, 100.0);
  EXPECT_LT(c.wall_s, 200.0);
  EXPECT_NEAR(phase_sum(c.phase_s), c.wall_s, 1e-9 * c.wall_s);
  EXPECT_GT(c.phase_s[size_t(Phase::forward)], 50.0);  // the carried 50 s and this process's loop
  EXPECT_EQ(c.hours.source, "measured");
  EXPECT_DOUBLE_EQ(c.hours.value * 3600.0, c.wall_s);
  Figure billed = dollars(meter.priced().instance, c.wall_s, Pricing::on_demand, Billing::per_hour);
  EXPECT_EQ(c.usd.value, billed.value);
  EXPECT_EQ(c.usd.value, meter.priced().usd_per_hour());  // 100-odd seconds bill one hour
  EXPECT_EQ(c.usd.source, "catalog");
  EXPECT_EQ(c.kwh.source, "estimated");  // no RAPL here, and the carried energy was scaled
  EXPECT_GT(c.kwh.value, 9000.0 * (100.0 / 90.0) / 3.6e6);
  EXPECT_EQ(c.co2_kg.value, carbon_kg(c.kwh.value, meter.priced().instance).value);
  EXPECT_EQ(c.co2_kg.source, "catalog");
  // The running clock of rows and the cost clock are the same clock.
  EXPECT_GE(meter.wall_s(), c.wall_s);
  EXPECT_LT(meter.wall_s(), c.wall_s + 1.0);
}

TEST(RunMeter, SavedValuesReadBackBitExact) {
  TempDir dir;
  RunMeter meter(priced_as("c7i.2xlarge"), still_rapl(dir));
  CarriedMeters carried;
  carried.train_compute_s = 0.1 + 0.2;
  carried.data_wait_s = 1.0 / 3.0;
  carried.checkpoint_s = 2.0 / 7.0;
  carried.lost_s = 1e-300;
  carried.interruptions = 3;
  carried.phase_s = {0.1, 1.0 / 3.0, 2.0 / 3.0, 1e-7, 12345.678901234567, 0.7, 5e-324};
  carried.wall_s = phase_sum(carried.phase_s);  // all of it attributed: nothing is rescaled
  carried.energy_j = 7777.777777;  // (x / 3.6e6) x 3.6e6 != x: the joules must travel as joules
  carried.energy_source = "measured";
  carried.flops_forward = 1e17 / 3.0;  // beyond 2^53: the sums must travel bit for bit
  carried.flops_backward = 0.1;
  carried.flops_eval = 1e-300;
  carried.flops_uncounted_samples = 12;
  meter.resume(carried, std::nullopt);
  meter.add_train_compute(0.7);
  meter.add_checkpoint_write(1.0 / 9.0);
  meter.add_flops(12345.0, 1e-3);
  meter.add_flops(7.0, 11.0);
  meter.add_eval_flops(1.0 / 3.0);

  std::map<std::string, std::string> values;
  const double data_wait = 0.9;
  meter.save(values, data_wait);
  const std::string path = "/tmp/checkpoint-3.fck";
  CarriedMeters back = read_carried_meters(values, path);

  EXPECT_EQ(bits(back.train_compute_s), bits(carried.train_compute_s + 0.7));
  EXPECT_EQ(bits(back.data_wait_s), bits(carried.data_wait_s + data_wait));
  EXPECT_EQ(bits(back.checkpoint_s), bits(carried.checkpoint_s + 1.0 / 9.0));
  EXPECT_EQ(bits(back.lost_s), bits(1e-300));
  EXPECT_EQ(back.interruptions, 4);
  EXPECT_EQ(bits(back.energy_j), bits(carried.energy_j));  // the counters did not move
  EXPECT_EQ(bits(back.flops_forward), bits(carried.flops_forward + 12345.0 + 7.0));
  EXPECT_EQ(bits(back.flops_backward), bits(carried.flops_backward + 1e-3 + 11.0));
  EXPECT_EQ(bits(back.flops_forward), bits(meter.flops_forward()));
  EXPECT_EQ(bits(back.flops_backward), bits(meter.flops_backward()));
  EXPECT_EQ(bits(back.flops_eval), bits(1e-300 + 1.0 / 3.0));
  EXPECT_EQ(bits(back.flops_eval), bits(meter.flops_eval()));
  EXPECT_EQ(back.flops_uncounted_samples, 12);
  EXPECT_EQ(back.energy_source, "measured");
  EXPECT_EQ(bits(back.train_compute_s), bits(meter.train_compute_s()));
  EXPECT_EQ(bits(back.checkpoint_s), bits(meter.checkpoint_s()));
  EXPECT_EQ(bits(back.lost_s), bits(meter.lost_s()));
  EXPECT_EQ(back.interruptions, meter.interruptions());
  // Phases this process never entered come back exactly; "other" (where this process's time went)
  // and the wall clock moved on.
  for (Phase phase : {Phase::data_wait, Phase::forward, Phase::backward, Phase::optimizer, Phase::evaluation,
                      Phase::checkpoint})
    EXPECT_EQ(bits(back.phase_s[size_t(phase)]), bits(carried.phase_s[size_t(phase)])) << phase_name(phase);
  EXPECT_GE(back.phase_s[size_t(Phase::other)], carried.phase_s[size_t(Phase::other)]);
  EXPECT_GE(back.wall_s, carried.wall_s);
  EXPECT_GE(back.wall_s, phase_sum(back.phase_s) - 1e-9);  // wall read after the phases
  // Every number is written as the one text that reads back to its bits.
  for (const auto& [key, text] : values) {
    if (key == "cost.energy_source") continue;
    if (key == "interruptions") {
      EXPECT_EQ(text, "4");
      continue;
    }
    if (key == "cost.flops_uncounted_samples") {
      EXPECT_EQ(text, "12");
      continue;
    }
    double v = ValueReader(values, path).real(key);
    EXPECT_EQ(value_text(v), text) << key;
  }
  EXPECT_EQ(values.size(), 6u + phase_count + 2u + 4u);

  // A second process goes on from these values without losing a bit of them.
  RunMeter next(priced_as("c7i.2xlarge"), still_rapl(dir));
  next.resume(back, std::nullopt);
  EXPECT_EQ(bits(next.lost_s()), bits(1e-300));
  EXPECT_EQ(bits(next.train_compute_s()), bits(back.train_compute_s));
  EXPECT_EQ(bits(next.carried_data_wait_s()), bits(back.data_wait_s));
  EXPECT_EQ(next.interruptions(), 5);
  EXPECT_EQ(bits(next.flops_forward()), bits(back.flops_forward));
  EXPECT_EQ(bits(next.flops_backward()), bits(back.flops_backward));
  EXPECT_EQ(bits(next.flops_eval()), bits(back.flops_eval));
}

// A run resumed from a checkpoint adds its FLOPs in the order one never interrupted does, so the
// totals agree bit for bit even where doubles round (here above 2^53).
TEST(RunMeter, ResumedFlopsEqualAnUninterruptedRunsBitForBit) {
  TempDir dir;
  const std::vector<std::pair<double, double>> micro_batches = {
      {9007199254740993.0, 3.0}, {1.0, 1.0}, {1.0, 0.5}, {3.0, 1e-7}, {0.1, 0.2}, {5e15, 7.0}};
  RunMeter uninterrupted(priced_as("c7i.2xlarge"), still_rapl(dir));
  for (auto [f, b] : micro_batches) uninterrupted.add_flops(f, b);
  for (size_t cut = 0; cut <= micro_batches.size(); ++cut) {
    RunMeter first(priced_as("c7i.2xlarge"), still_rapl(dir));
    for (size_t i = 0; i < cut; ++i) first.add_flops(micro_batches[i].first, micro_batches[i].second);
    std::map<std::string, std::string> values;
    first.save(values, 0.0);
    RunMeter second(priced_as("c7i.2xlarge"), still_rapl(dir));
    second.resume(read_carried_meters(values, "c.fck"), std::nullopt);
    for (size_t i = cut; i < micro_batches.size(); ++i) second.add_flops(micro_batches[i].first, micro_batches[i].second);
    EXPECT_EQ(bits(second.flops_forward()), bits(uninterrupted.flops_forward())) << "cut at " << cut;
    EXPECT_EQ(bits(second.flops_backward()), bits(uninterrupted.flops_backward())) << "cut at " << cut;
    CostSummary a = uninterrupted.summary(int64_t(10), "fp32", 1), b = second.summary(int64_t(10), "fp32", 1);
    EXPECT_EQ(bits(*a.flops), bits(*b.flops));
    EXPECT_EQ(b.flops_source, "counted");
  }
}

TEST(RunMeter, ResumeWithAHeartbeatCountsTheLostWork) {
  TempDir dir;
  RunMeter meter(priced_as("c7i.2xlarge"), still_rapl(dir));
  // The interrupted process got to 130 s, 2 s of it writing this checkpoint: 28 s of work lost.
  meter.resume(hundred_seconds(), LastBeat{130, 7});
  EXPECT_EQ(meter.lost_s(), 30.0);
  EXPECT_EQ(meter.checkpoint_s(), 7.0);
  EXPECT_EQ(meter.interruptions(), 2);
  EXPECT_EQ(meter.train_compute_s(), 70.0);
  EXPECT_EQ(meter.carried_data_wait_s(), 10.0);
  EXPECT_GE(meter.wall_s(), 130.0);
  EXPECT_LT(meter.wall_s(), 131.0);

  meter.sample();
  CostTotals c = meter.totals();
  EXPECT_EQ(c.phase_s[size_t(Phase::forward)], 50.0);
  EXPECT_EQ(c.phase_s[size_t(Phase::backward)], 30.0);
  EXPECT_EQ(c.phase_s[size_t(Phase::data_wait)], 10.0);
  // The 40 s no phase of the checkpoint holds count as "other", this process's time added.
  EXPECT_GE(c.phase_s[size_t(Phase::other)], 40.0);
  EXPECT_NEAR(c.phase_s[size_t(Phase::other)] - 40.0, c.wall_s - 130.0, 1e-9);
  EXPECT_NEAR(phase_sum(c.phase_s), c.wall_s, 1e-9 * c.wall_s);
  // Energy of the unattributed time at the earlier processes' mean power: an estimate.
  const double scaled = 9000.0 * (130.0 / 90.0);
  EXPECT_EQ(bits(c.kwh.value), bits(scaled / 3.6e6));
  EXPECT_EQ(c.kwh.source, "estimated");

  std::map<std::string, std::string> values;
  meter.save(values, 0.0);
  EXPECT_EQ(values.at("cost.energy_j"), value_text(scaled));
  EXPECT_EQ(values.at("cost.energy_source"), "estimated");
  EXPECT_EQ(values.at("lost_s"), "30");
  EXPECT_EQ(values.at("checkpoint_s"), "7");
  EXPECT_EQ(values.at("interruptions"), "2");
  EXPECT_EQ(values.at("data_wait_s"), "10");
}

TEST(RunMeter, ResumeWithoutAUsableHeartbeat) {
  TempDir dir;
  const std::string root = still_rapl(dir);
  // No heartbeat; a heartbeat older than the checkpoint (its wall clock, or its checkpoint clock,
  // behind the checkpoint's): the checkpoint's own meters only.
  std::vector<std::optional<LastBeat>> beats = {std::nullopt, LastBeat{90, 7}, LastBeat{130, 4}};
  for (const std::optional<LastBeat>& beat : beats) {
    RunMeter meter(priced_as("c7i.2xlarge"), root);
    meter.resume(hundred_seconds(), beat);
    EXPECT_EQ(meter.lost_s(), 2.0);
    EXPECT_EQ(meter.checkpoint_s(), 5.0);
    EXPECT_EQ(meter.interruptions(), 2);
    EXPECT_LT(meter.wall_s(), 101.0);
    meter.sample();
    CostTotals c = meter.totals();
    EXPECT_NEAR(c.phase_s[size_t(Phase::other)] - 10.0, c.wall_s - 100.0, 1e-9);
    EXPECT_EQ(bits(c.kwh.value), bits(9000.0 * (100.0 / 90.0) / 3.6e6));
    EXPECT_EQ(c.kwh.source, "estimated");
  }
}

TEST(RunMeter, ResumeWhenTheWritesTookAllTheTime) {
  TempDir dir;
  RunMeter meter(priced_as("c7i.2xlarge"), still_rapl(dir));
  meter.resume(hundred_seconds(), LastBeat{101, 8});  // 3 s of writes in 1 s more wall: nothing lost
  EXPECT_EQ(meter.lost_s(), 2.0);
  EXPECT_EQ(meter.checkpoint_s(), 8.0);
  EXPECT_GE(meter.wall_s(), 101.0);
  meter.add_checkpoint_write(0.5);
  EXPECT_EQ(meter.checkpoint_s(), 8.5);
}

TEST(RunMeter, EnergySourceAfterResume) {
  TempDir dir;
  const std::string root = still_rapl(dir);
  // Every second of the checkpoint in a phase: the measured joules stay as they are.
  CarriedMeters all_attributed = hundred_seconds();
  all_attributed.phase_s[size_t(Phase::other)] = 10;
  {
    RunMeter meter(priced_as("c7i.2xlarge"), root);
    meter.resume(all_attributed, std::nullopt);
    meter.sample();
    CostTotals c = meter.totals();
    EXPECT_EQ(bits(c.kwh.value), bits(9000.0 / 3.6e6));
    EXPECT_EQ(c.kwh.source, "measured");
    EXPECT_EQ(bits(c.phase_s[size_t(Phase::forward)]), bits(50.0));
  }
  // An estimate in an earlier process makes the whole run's energy an estimate.
  {
    CarriedMeters estimated = all_attributed;
    estimated.energy_source = "estimated";
    RunMeter meter(priced_as("c7i.2xlarge"), root);
    meter.resume(estimated, std::nullopt);
    meter.sample();
    EXPECT_EQ(meter.totals().kwh.source, "estimated");
  }
  // This process estimating (no RAPL) makes it an estimate too.
  {
    RunMeter meter(priced_as("c7i.2xlarge"), dir.path("missing"));
    meter.resume(all_attributed, std::nullopt);
    meter.sample();
    EXPECT_EQ(meter.totals().kwh.source, "estimated");
  }
  // A checkpoint of an older version: no phases, no energy. Its wall time is all "other", and the
  // energy is this process's only (nothing to scale).
  {
    CarriedMeters old;
    old.wall_s = 60;
    RunMeter meter(priced_as("c7i.2xlarge"), root);
    meter.resume(old, std::nullopt);
    meter.sample();
    CostTotals c = meter.totals();
    EXPECT_GE(c.phase_s[size_t(Phase::other)], 60.0);
    EXPECT_EQ(c.kwh.value, 0.0);
    EXPECT_EQ(c.kwh.source, "measured");
  }
}

std::map<std::string, std::string> checkpoint_values() {
  return {{"wall_s", "100.5"},    {"train_compute_s", "70"}, {"data_wait_s", "10"}, {"checkpoint_s", "5"},
          {"lost_s", "2"},        {"interruptions", "1"},    {"step", "40"},        {"run_id", "abc"},
          {"job_toml", "[run]"}};
}

TEST(ReadCarriedMeters, OlderCheckpointsWithoutCostValues) {
  CarriedMeters m = read_carried_meters(checkpoint_values(), "old.fck");
  EXPECT_EQ(m.wall_s, 100.5);
  EXPECT_EQ(m.train_compute_s, 70.0);
  EXPECT_EQ(m.data_wait_s, 10.0);
  EXPECT_EQ(m.checkpoint_s, 5.0);
  EXPECT_EQ(m.lost_s, 2.0);
  EXPECT_EQ(m.interruptions, 1);
  for (double v : m.phase_s) EXPECT_EQ(v, 0.0);
  EXPECT_EQ(m.energy_j, 0.0);
  EXPECT_EQ(m.energy_source, "");
  EXPECT_EQ(m.flops_forward, 0.0);
  EXPECT_EQ(m.flops_backward, 0.0);
  EXPECT_EQ(m.flops_uncounted_samples, 0);  // no samples_seen either (this test's values)
  // A checkpoint of a version before the FLOP counter: every sample it holds was not counted.
  auto values = checkpoint_values();
  values["samples_seen"] = "640";
  values["cost.energy_j"] = "5";
  EXPECT_EQ(read_carried_meters(values, "old.fck").flops_uncounted_samples, 640);
  // With the counter's values, samples_seen is only the position.
  values["cost.flops_forward"] = "1000";
  values["cost.flops_backward"] = "1900";
  values["cost.flops_eval"] = "300";
  values["cost.flops_uncounted_samples"] = "0";
  CarriedMeters counted = read_carried_meters(values, "new.fck");
  EXPECT_EQ(counted.flops_forward, 1000.0);
  EXPECT_EQ(counted.flops_backward, 1900.0);
  EXPECT_EQ(counted.flops_eval, 300.0);
  EXPECT_EQ(counted.flops_uncounted_samples, 0);
}

TEST(ReadCarriedMeters, CostValuesAsTheTrainerWroteThem) {
  // The trainer wrote cost.* values with nlohmann::json's dump ("3.0", "1e+20"); they still read.
  auto values = checkpoint_values();
  values["cost.phase.forward"] = "3.0";
  values["cost.phase.other"] = "0.25";
  values["cost.energy_j"] = "1e+20";
  values["cost.energy_source"] = "measured";
  CarriedMeters m = read_carried_meters(values, "v5.fck");
  EXPECT_EQ(m.phase_s[size_t(Phase::forward)], 3.0);
  EXPECT_EQ(m.phase_s[size_t(Phase::other)], 0.25);
  EXPECT_EQ(m.phase_s[size_t(Phase::backward)], 0.0);
  EXPECT_EQ(m.energy_j, 1e20);
  EXPECT_EQ(m.energy_source, "measured");
}

TEST(ReadCarriedMeters, MissingOrBadValuesNameThePathAndKey) {
  for (const char* key : {"wall_s", "train_compute_s", "data_wait_s", "checkpoint_s", "lost_s", "interruptions"}) {
    auto values = checkpoint_values();
    values.erase(key);
    expect_input_error([&] { read_carried_meters(values, "runs/a/checkpoint-40.fck"); },
                       {std::string("runs/a/checkpoint-40.fck: checkpoint has no value '") + key + "'"});
  }
  auto values = checkpoint_values();
  values["lost_s"] = "two";
  expect_input_error([&] { read_carried_meters(values, "c.fck"); },
                     {"c.fck: checkpoint value 'lost_s' = 'two': expected a number"});
  values = checkpoint_values();
  values["wall_s"] = "1.5 s";
  expect_input_error([&] { read_carried_meters(values, "c.fck"); },
                     {"c.fck: checkpoint value 'wall_s' = '1.5 s': expected a number"});
  values = checkpoint_values();
  values["interruptions"] = "1.5";
  expect_input_error([&] { read_carried_meters(values, "c.fck"); },
                     {"c.fck: checkpoint value 'interruptions' = '1.5': expected an integer"});
  values = checkpoint_values();
  values["cost.energy_j"] = "";
  expect_input_error([&] { read_carried_meters(values, "c.fck"); },
                     {"c.fck: checkpoint value 'cost.energy_j' = '': expected a number"});
  values = checkpoint_values();
  values["cost.phase.backward"] = "null";
  expect_input_error([&] { read_carried_meters(values, "c.fck"); },
                     {"c.fck: checkpoint value 'cost.phase.backward' = 'null': expected a number"});
  // The FLOP values come together: forward without backward is a damaged checkpoint.
  values = checkpoint_values();
  values["cost.flops_forward"] = "10";
  values["cost.flops_uncounted_samples"] = "0";
  expect_input_error([&] { read_carried_meters(values, "c.fck"); },
                     {"c.fck: checkpoint has no value 'cost.flops_backward'"});
  values["cost.flops_backward"] = "20";
  expect_input_error([&] { read_carried_meters(values, "c.fck"); },
                     {"c.fck: checkpoint has no value 'cost.flops_eval'"});
  values["cost.flops_eval"] = "5";
  values["cost.flops_uncounted_samples"] = "2.5";
  expect_input_error([&] { read_carried_meters(values, "c.fck"); },
                     {"c.fck: checkpoint value 'cost.flops_uncounted_samples' = '2.5': expected an integer"});
}

TEST(RunMeterSummary, FlopsMfuAndProjectionsForACatalogPeak) {
  TempDir dir;
  const std::string mine = dir.write("mine.toml", user_entries);
  RunMeter meter(priced_as("box", mine), dir.path("missing"));
  meter.resume(hundred_seconds(), std::nullopt);
  meter.add_flops(4e5, 7e5);  // two micro-batches
  meter.add_flops(1e5, 3e5);
  meter.add_eval_flops(2e5);  // an evaluation: reported apart, not in flops
  CostSummary s = meter.summary(int64_t(1000), "fp32", 1);
  ASSERT_TRUE(s.flops);
  EXPECT_EQ(*s.flops, 1.5e6);  // what was counted, forward + backward
  EXPECT_EQ(s.flops_forward, 5e5);
  EXPECT_EQ(s.flops_backward, 1e6);
  EXPECT_EQ(s.flops_source, "counted");
  EXPECT_EQ(s.flops_per_sample, int64_t(1000));  // the model's, reported as it is
  EXPECT_EQ(s.flops_eval, 2e5);
  ASSERT_TRUE(s.flops_per_s);
  EXPECT_EQ(*s.flops_per_s, 1.5e6 / s.wall_s);  // achieved: what mfu divides by the peak
  ASSERT_TRUE(s.mfu);
  EXPECT_EQ(s.mfu_peak_flops.value, 1.5e12);
  EXPECT_EQ(s.mfu_peak_flops.source, "user");  // a user catalog stated the peak
  EXPECT_EQ(*s.mfu, *s.flops / s.wall_s / 1.5e12);
  EXPECT_EQ(s.peak_precision, "fp32");
  EXPECT_EQ(s.mfu_note, "");
  // The figures of the totals, and what they were priced with.
  EXPECT_EQ(s.instance, "box");
  EXPECT_EQ(s.pricing, "on-demand");
  EXPECT_EQ(s.billing, "per-second");
  EXPECT_EQ(s.usd_per_hour, 0.5);
  EXPECT_EQ(s.carbon_g_per_kwh, 300.0);
  EXPECT_EQ(s.catalog, shipped);
  EXPECT_EQ(s.user_catalog, mine);
  EXPECT_NE(s.energy_method.find("estimated: power = idle"), std::string::npos) << s.energy_method;
  EXPECT_GT(s.wall_s, 100.0);
  EXPECT_NEAR(phase_sum(s.phase_s), s.wall_s, 1e-9 * s.wall_s);
  EXPECT_EQ(s.usd.value, dollars(meter.priced().instance, s.wall_s, Pricing::on_demand, Billing::per_second).value);
  EXPECT_DOUBLE_EQ(s.hours.value * 3600.0, s.wall_s);
  EXPECT_GE(s.cpu_s, 0.0);
  EXPECT_GE(s.cpu_utilization, 0.0);
  EXPECT_LE(s.cpu_utilization, 1.0);
  // Projections onto the standard instances of the shipped catalog, at fp32 and 30% of peak.
  const std::vector<std::string> names = {"c7i.2xlarge", "a2-highgpu-1g", "p5.48xlarge", "runpod-rtx4090"};
  ASSERT_EQ(s.projections.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    const Projection& p = s.projections[i];
    EXPECT_EQ(p.instance, names[i]);
    EXPECT_EQ(p.precision, "fp32");
    EXPECT_EQ(p.efficiency, 0.3);
    EXPECT_EQ(p.hours.value, project(meter.priced().catalog.at(names[i]), *s.flops, "fp32", 0.3).hours.value);
  }

  // bf16 against the bf16 peak; a shipped entry's peak says "catalog".
  CostSummary bf16 = meter.summary(int64_t(1000), "bf16", 1);
  EXPECT_EQ(bf16.mfu_peak_flops.value, 3e12);
  EXPECT_EQ(bf16.peak_precision, "bf16");
  RunMeter c7i(priced_as("c7i.2xlarge"), dir.path("missing"));
  c7i.add_flops(70, 140);
  CostSummary shipped_peak = c7i.summary(int64_t(10), "fp32", 1);
  ASSERT_TRUE(shipped_peak.mfu);
  EXPECT_EQ(shipped_peak.mfu_peak_flops.source, "catalog");
  EXPECT_EQ(shipped_peak.mfu_peak_flops.value, 0.819e12);
  EXPECT_EQ(*shipped_peak.flops, 210.0);
}

TEST(RunMeterSummary, MfuUnknownWithoutAPeakOrFlops) {
  TempDir dir;
  const std::string mine = dir.write("mine.toml", user_entries);
  RunMeter nopeak(priced_as("nopeak", mine), dir.path("missing"));
  nopeak.add_flops(5e5, 1e6);
  CostSummary s = nopeak.summary(int64_t(1000), "fp32", 1);
  EXPECT_FALSE(s.mfu);
  EXPECT_EQ(*s.flops, 1.5e6);  // FLOPs are known, the peak is not
  EXPECT_EQ(s.mfu_note, "unknown: instance 'nopeak' states no fp32 peak FLOP/s (set peak_tflops in a user catalog, "
                        "[cost] catalog)");
  EXPECT_EQ(s.projections.size(), 4u);

  RunMeter n2(priced_as("n2-standard-8"), dir.path("missing"));  // fp32 peak, no bf16
  n2.add_flops(5e5, 1e6);
  CostSummary b = n2.summary(int64_t(1000), "bf16", 1);
  EXPECT_FALSE(b.mfu);
  EXPECT_EQ(b.mfu_note, "unknown: instance 'n2-standard-8' states no bf16 peak FLOP/s (set peak_tflops in a user "
                        "catalog, [cost] catalog)");

  // A model given by code (no FLOPs per sample): counted FLOPs and an MFU all the same.
  CostSummary custom = n2.summary(std::nullopt, "fp32", 1);
  EXPECT_EQ(custom.flops, 1.5e6);
  EXPECT_EQ(custom.flops_source, "counted");
  EXPECT_FALSE(custom.flops_per_sample);
  ASSERT_TRUE(custom.mfu) << custom.mfu_note;
  EXPECT_EQ(*custom.mfu, 1.5e6 / custom.wall_s / *n2.priced().instance.peak("fp32"));
  EXPECT_EQ(custom.projections.size(), 4u);

  // Nothing counted (no dense op ran in training): 0 FLOPs, and no MFU, with the reason.
  RunMeter idle(priced_as("n2-standard-8"), dir.path("missing"));
  CostSummary none = idle.summary(std::nullopt, "fp32", 1);
  EXPECT_EQ(none.flops, 0.0);
  EXPECT_EQ(none.flops_per_s, 0.0);
  EXPECT_FALSE(none.mfu);
  EXPECT_TRUE(none.projections.empty());
  EXPECT_EQ(none.mfu_note, "unknown: no FLOPs were counted (no matmul, convolution or attention ran in training)");
  EXPECT_GT(none.wall_s, 0.0);  // the cost figures are there all the same
  EXPECT_EQ(none.instance, "n2-standard-8");
}

// A run resumed from a checkpoint of a version that counted no FLOPs: its samples are estimated
// as that version did (forward, and backward twice it), the figure "estimated", and the estimate
// travels on through this version's checkpoints.
TEST(RunMeterSummary, SamplesOfAnOlderCheckpointAreEstimated) {
  TempDir dir;
  std::map<std::string, std::string> old = {{"wall_s", "100"}, {"train_compute_s", "70"}, {"data_wait_s", "10"},
                                            {"checkpoint_s", "5"}, {"lost_s", "0"},          {"interruptions", "0"},
                                            {"samples_seen", "640"}};
  RunMeter meter(priced_as("n2-standard-8"), dir.path("missing"));
  meter.resume(read_carried_meters(old, "old.fck"), std::nullopt);
  meter.add_flops(3000, 5000);
  meter.add_eval_flops(700);
  CostSummary s = meter.summary(int64_t(10), "fp32", 1);
  EXPECT_EQ(s.flops_forward, 3000.0 + 6400.0);
  EXPECT_EQ(s.flops_backward, 5000.0 + 12800.0);
  EXPECT_EQ(s.flops, 3000.0 + 6400.0 + 5000.0 + 12800.0);
  EXPECT_EQ(s.flops_source, "estimated");
  EXPECT_TRUE(s.mfu);
  EXPECT_FALSE(s.flops_eval) << "the older version's evaluations are unknown";

  std::map<std::string, std::string> values;
  meter.save(values, 0.0);
  EXPECT_EQ(values.at("cost.flops_forward"), "3000");  // counted only; the estimate is made at the end
  EXPECT_EQ(values.at("cost.flops_uncounted_samples"), "640");
  RunMeter next(priced_as("n2-standard-8"), dir.path("missing"));
  next.resume(read_carried_meters(values, "new.fck"), std::nullopt);
  CostSummary n = next.summary(int64_t(10), "fp32", 1);
  EXPECT_EQ(n.flops, s.flops);
  EXPECT_EQ(n.flops_source, "estimated");
  EXPECT_FALSE(n.flops_eval);

  // Without the model's FLOPs per sample nothing can stand in for those samples: unknown, and why.
  CostSummary custom = next.summary(std::nullopt, "fp32", 1);
  EXPECT_FALSE(custom.flops);
  EXPECT_FALSE(custom.mfu);
  EXPECT_TRUE(custom.projections.empty());
  EXPECT_EQ(custom.mfu_note, "unknown: the run went on from a checkpoint of an older version, which counted no FLOPs "
                             "for its 640 samples, and the model's FLOPs per sample are not known");
}

TEST(RunMeterSummary, LocalMeasuresItsPeak) {
  TempDir dir;
  RunMeter meter(priced_as("local"), dir.path("missing"));
  meter.add_flops(5e5, 1e6);
  CostSummary s = meter.summary(int64_t(1000), "fp32", 1);
  ASSERT_TRUE(s.mfu) << s.mfu_note;
  EXPECT_EQ(s.mfu_peak_flops.source, "measured");
  EXPECT_GT(s.mfu_peak_flops.value, 1e8);  // any CPU of this century
  EXPECT_EQ(*s.mfu, *s.flops / s.wall_s / s.mfu_peak_flops.value);
}

TEST(StandardProjections, EntriesTheCatalogLacksAreLeftOut) {
  TempDir dir;
  // A catalog of its own, holding one of the standard instances (and one that is not).
  std::string own = std::string(user_entries) + R"(
[instance."p5.48xlarge"]
provider = "aws"
region = "us-east-1"
accelerator = "H100-SXM5-80GB"
accelerator_count = 8
vcpus = 192
memory_gib = 2048
usd_per_hour = 98.32
spot_usd_per_hour = 40
peak_tflops = { fp32 = 536 }
tdp_w = 6160
carbon_g_per_kwh = 380
source = "test"
date = "2024-06"
)";
  PriceRequest request;
  request.instance = "box";
  PricedInstance priced = price_instance(dir.write("own.toml", own), request);
  std::vector<Projection> projections = standard_projections(priced, 1e18, Pricing::spot);
  ASSERT_EQ(projections.size(), 1u);
  EXPECT_EQ(projections[0].instance, "p5.48xlarge");
  Projection expected = project(priced.catalog.at("p5.48xlarge"), 1e18, "fp32", 0.3, Pricing::spot);
  EXPECT_EQ(projections[0].usd.value, expected.usd.value);
}

}  // namespace
}  // namespace frugal::cost
