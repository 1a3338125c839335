// Process meters from getrusage (CPU time at microsecond resolution, peak RSS) and /proc/self/statm
// (current RSS); the phase timer reads the monotonic clock and process CPU time at each switch.
#include "frugal/cost/meters.h"

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "frugal/base/error.h"

namespace frugal::cost {

namespace {

double to_seconds(const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) * 1e-6; }

double process_cpu_seconds() {
  rusage usage{};
  FRUGAL_CHECK(getrusage(RUSAGE_SELF, &usage) == 0, "getrusage failed");
  return to_seconds(usage.ru_utime) + to_seconds(usage.ru_stime);
}

double monotonic_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

ProcessSample read_process_sample() {
  ProcessSample s;
  s.wall_seconds = monotonic_seconds();
  rusage usage{};
  FRUGAL_CHECK(getrusage(RUSAGE_SELF, &usage) == 0, "getrusage failed");
  s.cpu_user_seconds = to_seconds(usage.ru_utime);
  s.cpu_system_seconds = to_seconds(usage.ru_stime);
  s.peak_rss_bytes = int64_t(usage.ru_maxrss) * 1024;  // Linux reports KiB
  // statm: size resident shared text lib data dt, in pages.
  std::ifstream statm("/proc/self/statm");
  int64_t size_pages = 0, resident_pages = 0;
  if (statm >> size_pages >> resident_pages) s.rss_bytes = resident_pages * int64_t(sysconf(_SC_PAGESIZE));
  else s.rss_bytes = s.peak_rss_bytes;  // no /proc: the high-water mark is the best bound we have
  return s;
}

int online_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
}

double cpu_utilization(const ProcessSample& begin, const ProcessSample& end, int cores) {
  FRUGAL_CHECK(cores >= 1, "cpu_utilization needs cores >= 1");
  double wall = end.wall_seconds - begin.wall_seconds;
  if (wall <= 0) return 0.0;
  double busy = (end.cpu_seconds() - begin.cpu_seconds()) / (wall * cores);
  return std::clamp(busy, 0.0, 1.0);
}

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::data_wait: return "data_wait";
    case Phase::forward: return "forward";
    case Phase::backward: return "backward";
    case Phase::optimizer: return "optimizer";
    case Phase::evaluation: return "evaluation";
    case Phase::checkpoint: return "checkpoint";
    case Phase::other: return "other";
  }
  return "other";
}

PhaseTimer::PhaseTimer() : start_(Clock::now()), since_(start_), cpu_since_(process_cpu_seconds()) {}

Phase PhaseTimer::switch_to(Phase phase) {
  Clock::time_point now = Clock::now();
  double cpu_now = process_cpu_seconds();
  seconds_[size_t(current_)] += std::chrono::duration<double>(now - since_).count();
  cpu_seconds_[size_t(current_)] += cpu_now - cpu_since_;
  since_ = now;
  cpu_since_ = cpu_now;
  Phase previous = current_;
  current_ = phase;
  return previous;
}

double PhaseTimer::seconds(Phase phase) const {
  double s = seconds_[size_t(phase)];
  if (phase == current_) s += std::chrono::duration<double>(Clock::now() - since_).count();
  return s;
}

double PhaseTimer::cpu_seconds(Phase phase) const {
  double s = cpu_seconds_[size_t(phase)];
  if (phase == current_) s += process_cpu_seconds() - cpu_since_;
  return s;
}

PhaseTotals PhaseTimer::totals() const {
  Clock::time_point now = Clock::now();
  double cpu_now = process_cpu_seconds();
  PhaseTotals t;
  t.seconds = seconds_;
  t.cpu_seconds = cpu_seconds_;
  t.seconds[size_t(current_)] += std::chrono::duration<double>(now - since_).count();
  t.cpu_seconds[size_t(current_)] += cpu_now - cpu_since_;
  t.wall_seconds = std::chrono::duration<double>(now - start_).count();
  for (double c : t.cpu_seconds) t.cpu_total_seconds += c;
  return t;
}

double PhaseTimer::wall_seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

}  // namespace frugal::cost
