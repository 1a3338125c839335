// Process meters and the phase timer: CPU time grows with work, utilization arithmetic, and phase
// times that add up to the wall time with nested scopes restoring the enclosing phase.
#include "frugal/cost/meters.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <thread>
#include <vector>

#include "frugal/base/timer.h"

namespace frugal::cost {
namespace {

// Keeps one core busy for `seconds` of wall time; returns a value so the loop is not removed.
double busy_for(double seconds) {
  Timer t;
  volatile double x = 1.0;
  while (t.seconds() < seconds)
    for (int i = 0; i < 10000; ++i) x = x * 1.0000001 + 1e-9;
  return x;
}

void sleep_for(double seconds) { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); }

TEST(ProcessSample, CountsCpuTimeAndMemory) {
  ProcessSample a = read_process_sample();
  std::vector<char> touched(32 << 20, 1);  // 32 MiB resident
  busy_for(0.15);
  ProcessSample b = read_process_sample();
  EXPECT_GT(b.wall_seconds - a.wall_seconds, 0.149);
  EXPECT_GT(b.cpu_seconds(), a.cpu_seconds());
  EXPECT_LE(b.cpu_seconds() - a.cpu_seconds(), (b.wall_seconds - a.wall_seconds) * online_cores() + 0.02);
  EXPECT_GT(b.rss_bytes, int64_t(32) << 20);
  EXPECT_GE(b.peak_rss_bytes, b.rss_bytes - (int64_t(1) << 20));
  EXPECT_GT(touched[12345], 0);
  double u = cpu_utilization(a, b, 1);
  EXPECT_GT(u, 0.0);
  EXPECT_LE(u, 1.0);
}

TEST(ProcessSample, UtilizationArithmetic) {
  ProcessSample a, b;
  a.wall_seconds = 10, a.cpu_user_seconds = 1, a.cpu_system_seconds = 0.5;
  b.wall_seconds = 14, b.cpu_user_seconds = 4, b.cpu_system_seconds = 1.5;  // 4 CPU s in 4 s wall
  EXPECT_DOUBLE_EQ(cpu_utilization(a, b, 4), 0.25);
  EXPECT_DOUBLE_EQ(cpu_utilization(a, b, 1), 1.0);  // clamped: more CPU than one core can give
  EXPECT_DOUBLE_EQ(cpu_utilization(a, a, 2), 0.0);  // no time passed
  EXPECT_GE(online_cores(), 1);
}

TEST(PhaseTimer, PhasesAddUpToWallTime) {
  Timer outside;
  PhaseTimer timer;
  sleep_for(0.02);  // other
  {
    auto s = timer.scope(Phase::data_wait);
    sleep_for(0.03);
  }
  {
    auto s = timer.scope(Phase::forward);
    busy_for(0.04);
  }
  {
    auto s = timer.scope(Phase::backward);
    sleep_for(0.02);
  }
  {
    auto s = timer.scope(Phase::evaluation);
    sleep_for(0.02);
    {
      auto inner = timer.scope(Phase::checkpoint);
      EXPECT_EQ(timer.current(), Phase::checkpoint);
      sleep_for(0.02);
    }
    EXPECT_EQ(timer.current(), Phase::evaluation);  // the enclosing phase resumes
    sleep_for(0.01);
  }
  EXPECT_EQ(timer.current(), Phase::other);
  PhaseTotals t = timer.totals();
  double outside_seconds = outside.seconds();

  double sum = 0, cpu_sum = 0;
  for (int p = 0; p < phase_count; ++p) sum += t.seconds[size_t(p)], cpu_sum += t.cpu_seconds[size_t(p)];
  EXPECT_NEAR(sum, t.wall_seconds, 1e-9 * t.wall_seconds);
  EXPECT_NEAR(cpu_sum, t.cpu_total_seconds, 1e-12);
  EXPECT_NEAR(t.wall_seconds, outside_seconds, 0.05 * outside_seconds);  // the 5%
  EXPECT_GE(t[Phase::data_wait], 0.03);
  EXPECT_GE(t[Phase::forward], 0.04);
  EXPECT_GE(t[Phase::backward], 0.02);
  EXPECT_GE(t[Phase::evaluation], 0.03);
  EXPECT_GE(t[Phase::checkpoint], 0.02);
  EXPECT_GE(t[Phase::other], 0.02);
  EXPECT_EQ(t[Phase::optimizer], 0.0);
  // The busy phase used CPU; sleeping phases almost none.
  EXPECT_GT(t.cpu_seconds[size_t(Phase::forward)], t.cpu_seconds[size_t(Phase::data_wait)]);
  EXPECT_STREQ(phase_name(Phase::data_wait), "data_wait");
  EXPECT_STREQ(phase_name(Phase::optimizer), "optimizer");
}

TEST(PhaseTimer, RunningPhaseIsIncludedInReadings) {
  PhaseTimer timer;
  auto s = timer.scope(Phase::optimizer);
  sleep_for(0.02);
  EXPECT_GE(timer.seconds(Phase::optimizer), 0.02);
  EXPECT_GE(timer.wall_seconds(), timer.seconds(Phase::optimizer));
  EXPECT_EQ(timer.switch_to(Phase::forward), Phase::optimizer);
}

}  // namespace
}  // namespace frugal::cost
