// Energy: without RAPL the estimate follows the documented power model and is never zero; with a
// fake powercap tree the counters are summed over packages and DRAM, across a wraparound, and an
// unreadable counter falls back to an estimate that says so.
#include "frugal/cost/energy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "cost_test_files.h"
#include "frugal/base/error.h"
#include "frugal/base/timer.h"
#include "frugal/cost/catalog.h"

namespace frugal::cost {
namespace {

using testing::TempDir;

ProcessSample at(double wall, double cpu) {
  ProcessSample s;
  s.wall_seconds = wall;
  s.cpu_user_seconds = cpu;
  return s;
}

// A powercap tree like /sys/class/powercap: package zone, its core and dram subzones, and psys.
void write_zone(const TempDir& dir, const std::string& zone, const std::string& name, uint64_t energy,
                uint64_t max_range) {
  dir.write("powercap/" + zone + "/name", name + "\n");
  dir.write("powercap/" + zone + "/energy_uj", std::to_string(energy) + "\n");
  dir.write("powercap/" + zone + "/max_energy_range_uj", std::to_string(max_range) + "\n");
}

TEST(EnergyMeter, WithoutRaplABusyLoopIsEstimatedAndNotZero) {
  TempDir dir;  // an empty powercap root: no counters, as on this machine
  PowerModel model{100.0, 20.0, 1};
  ProcessSample begin = read_process_sample();
  EnergyMeter meter(model, dir.path("missing"), begin);
  Timer t;
  volatile double x = 1;
  while (t.seconds() < 0.2) x = x * 1.0000001 + 1e-9;
  ProcessSample end = read_process_sample();
  meter.sample(end);
  EXPECT_EQ(meter.source(), "estimated");
  EXPECT_EQ(meter.kwh().source, "estimated");
  EXPECT_TRUE(meter.zones().empty());
  double wall = end.wall_seconds - begin.wall_seconds;
  double idle_only = model.idle_w * wall;
  // Busy CPU time adds to the idle share; the total cannot exceed TDP for the whole time.
  double cpu = end.cpu_seconds() - begin.cpu_seconds();
  ASSERT_GT(cpu, 0.0);
  EXPECT_NEAR(meter.joules().value, idle_only + (model.tdp_w - model.idle_w) * std::min(cpu, wall), 1e-9);
  EXPECT_GT(meter.joules().value, idle_only);
  EXPECT_LE(meter.joules().value, model.tdp_w * (wall + 0.01));
  EXPECT_GT(meter.kwh().value, 0.0);
  EXPECT_DOUBLE_EQ(meter.kwh().value, meter.joules().value / 3.6e6);
  EXPECT_NE(meter.method().find("estimated: power = idle 20 W + (TDP 100 W - idle)"), std::string::npos)
      << meter.method();
  EXPECT_GT(x, 0);
}

TEST(EnergyMeter, EstimateFollowsThePowerModel) {
  TempDir dir;
  // Driven by made-up samples so the arithmetic is exact.
  EnergyMeter meter(PowerModel{100.0, 20.0, 4}, dir.path("missing"), at(1000, 5));
  auto shifted = [&](double wall, double cpu) { return at(1000 + wall, 5 + cpu); };
  meter.sample(shifted(10, 0));   // idle 10 s: 20 W x 10 s
  EXPECT_NEAR(meter.joules().value, 200.0, 1e-6);
  meter.sample(shifted(20, 20));  // 20 CPU s over 10 s on 4 cores = 50%: (20 + 80 x 0.5) x 10
  EXPECT_NEAR(meter.joules().value, 200.0 + 600.0, 1e-6);
  meter.sample(shifted(30, 80));  // 60 CPU s over 10 s on 4 cores: clamped to 100% = 100 W
  EXPECT_NEAR(meter.joules().value, 800.0 + 1000.0, 1e-6);
  meter.sample(shifted(30, 80));  // no time passed: nothing added
  EXPECT_NEAR(meter.joules().value, 1800.0, 1e-6);
}

TEST(EnergyMeter, ReadsRaplPackagesAndDramAcrossAWraparound) {
  TempDir dir;
  const uint64_t range = 1'000'000'000;  // 1 kJ in uJ
  write_zone(dir, "intel-rapl:0", "package-0", 999'000'000, range);
  write_zone(dir, "intel-rapl:0:0", "core", 5'000'000, range);   // inside the package: not added
  write_zone(dir, "intel-rapl:0:1", "dram", 100'000'000, range);
  write_zone(dir, "intel-rapl:1", "psys", 7'000'000, range);     // whole platform: not added
  dir.write("powercap/intel-rapl/enabled", "1\n");               // the control type folder
  EnergyMeter meter(PowerModel{100.0, 20.0, 1}, dir.path("powercap"));
  ASSERT_EQ(meter.source(), "measured");
  ASSERT_EQ(meter.zones().size(), 2u);

  dir.write("powercap/intel-rapl:0/energy_uj", "999500000\n");   // +0.5 J
  dir.write("powercap/intel-rapl:0:1/energy_uj", "100250000\n");  // +0.25 J
  dir.write("powercap/intel-rapl:0:0/energy_uj", "900000000\n");  // ignored
  meter.sample();
  EXPECT_NEAR(meter.joules().value, 0.75, 1e-9);

  dir.write("powercap/intel-rapl:0/energy_uj", "1500000\n");  // wrapped: 0.5 J to the top + 1.5 J
  meter.sample();
  EXPECT_NEAR(meter.joules().value, 0.75 + 2.0, 1e-9);
  EXPECT_EQ(meter.kwh().source, "measured");
  EXPECT_NEAR(meter.kwh().value, 2.75 / 3.6e6, 1e-15);
  EXPECT_NE(meter.method().find("measured: Linux powercap RAPL"), std::string::npos);
}

TEST(EnergyMeter, UnreadableCountersMeanEstimated) {
  TempDir dir;
  write_zone(dir, "intel-rapl:0", "package-0", 1000, 1'000'000);
  dir.write("powercap/intel-rapl:0/energy_uj", "");  // as when the file is not readable
  EnergyMeter meter(PowerModel{50.0, 10.0, 1}, dir.path("powercap"));
  EXPECT_EQ(meter.source(), "estimated");
  EXPECT_NE(meter.method().find("not readable"), std::string::npos);
}

TEST(EnergyMeter, CounterLostMidRunFallsBackToEstimated) {
  TempDir dir;
  write_zone(dir, "intel-rapl:0", "package-0", 1'000'000, 1'000'000'000);
  EnergyMeter meter(PowerModel{50.0, 10.0, 1}, dir.path("powercap"));
  ASSERT_EQ(meter.source(), "measured");
  dir.write("powercap/intel-rapl:0/energy_uj", "3000000\n");
  meter.sample();
  EXPECT_NEAR(meter.joules().value, 2.0, 1e-9);
  std::filesystem::remove(dir.path("powercap/intel-rapl:0/energy_uj"));
  meter.sample();
  EXPECT_EQ(meter.source(), "estimated");
  EXPECT_GT(meter.joules().value, 2.0);  // the idle share of the time since the last reading
  EXPECT_NE(meter.method().find("became unreadable"), std::string::npos);
}

TEST(Carbon, EnergyTimesIntensityWithItsSource) {
  Instance inst;
  inst.carbon_g_per_kwh = 400;
  Figure c = carbon_kg(2.5, inst);
  EXPECT_DOUBLE_EQ(c.value, 1.0);
  EXPECT_EQ(c.source, "catalog");
  Figure u = carbon_kg(2.5, inst, 100.0);
  EXPECT_DOUBLE_EQ(u.value, 0.25);
  EXPECT_EQ(u.source, "user");
  EXPECT_THROW(carbon_kg(1.0, inst, -5.0), InputError);
  inst.tdp_w = 80, inst.idle_w = 20;
  PowerModel m = power_model(inst, 3);
  EXPECT_EQ(m.tdp_w, 80);
  EXPECT_EQ(m.idle_w, 20);
  EXPECT_EQ(m.cores, 3);
}

}  // namespace
}  // namespace frugal::cost
