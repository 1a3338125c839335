// Process meters: wall time, CPU time (user + system, all threads), resident memory, and a phase
// timer that splits a run's wall time into data_wait / forward / backward / optimizer / evaluation
// / checkpoint / other. Limits: Linux (getrusage, /proc/self/statm); one PhaseTimer per thread.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>

namespace frugal::cost {

struct ProcessSample {
  double wall_seconds = 0;        // monotonic clock, arbitrary origin: only differences matter
  double cpu_user_seconds = 0;    // this process, all threads
  double cpu_system_seconds = 0;
  int64_t rss_bytes = 0;          // resident now
  int64_t peak_rss_bytes = 0;     // high-water mark since the process started

  double cpu_seconds() const { return cpu_user_seconds + cpu_system_seconds; }
};

ProcessSample read_process_sample();

// Logical CPUs this process may run on (the affinity mask), at least 1.
int online_cores();

// Fraction of `cores` busy with this process between two samples, in [0, 1]:
// CPU seconds / (wall seconds x cores). 0 when no wall time passed.
double cpu_utilization(const ProcessSample& begin, const ProcessSample& end, int cores);

enum class Phase { data_wait, forward, backward, optimizer, evaluation, checkpoint, other };
inline constexpr int phase_count = 7;
const char* phase_name(Phase phase);

// One consistent snapshot of a PhaseTimer: the phase seconds add up to wall_seconds.
struct PhaseTotals {
  std::array<double, phase_count> seconds{}, cpu_seconds{};
  double wall_seconds = 0, cpu_total_seconds = 0;
  double operator[](Phase phase) const { return seconds[size_t(phase)]; }
};

// Attributes every instant since construction to exactly one phase, so the phase times add up to
// the wall time. Time outside any scope counts as `other`; a nested scope takes over until it
// ends, then the enclosing phase resumes (an evaluation's forward pass stays "evaluation" unless
// the caller opens a forward scope inside it).
class PhaseTimer {
 public:
  PhaseTimer();

  class Scope {
   public:
    Scope(PhaseTimer& timer, Phase phase) : timer_(&timer), previous_(timer.switch_to(phase)) {}
    ~Scope() { if (timer_) timer_->switch_to(previous_); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    PhaseTimer* timer_;
    Phase previous_;
  };

  [[nodiscard]] Scope scope(Phase phase) { return Scope(*this, phase); }
  // Enters `phase` now and returns the phase that was running.
  Phase switch_to(Phase phase);
  Phase current() const { return current_; }

  // Totals up to now (the running interval included), all read at one instant.
  PhaseTotals totals() const;
  // Single figures up to now; each reads the clock again, so prefer totals() for a report.
  double seconds(Phase phase) const;
  double cpu_seconds(Phase phase) const;
  double wall_seconds() const;

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point start_, since_;
  double cpu_since_ = 0;
  Phase current_ = Phase::other;
  std::array<double, phase_count> seconds_{}, cpu_seconds_{};
};

}  // namespace frugal::cost
