// Progress output for a training run: a one-line bar redrawn in place on a terminal, or plain log
// lines (at most one every few seconds) when the output is a file or pipe.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace frugal::train {

class Progress {
 public:
  Progress(FILE* out, bool bar, bool quiet) : out_(out), bar_(bar), quiet_(quiet) {}
  // epochs = 0 when the run counts steps only.
  // cost: a short text of the run's cost so far (and forecast), shown last ("" = none). The bar
  // takes what is left of 100 columns (up to 24), so the line stays within them.
  void update(int64_t epoch, int64_t epochs, int64_t step, int64_t steps, double loss, const char* rate_unit,
              double rate, double elapsed_s, const std::string& cost = "");
  // Whether update() at this point would print: callers skip building its figures when not.
  bool due(int64_t step, int64_t steps, double elapsed_s) const;
  // Counts read "500/1000 <unit>" instead of "step 500/1000" (e.g. "tokens" for frugal sample).
  void set_unit(const std::string& unit) { unit_ = unit; }
  void line(const std::string& text);  // a message on its own line
  void finish();                       // ends a drawn bar with a newline
  static std::string fixed(double value, int decimals);
  static std::string duration(double seconds);  // "1h02m", "3m05s", "12s"

 private:
  FILE* out_;
  bool bar_, quiet_;
  std::string unit_;
  bool drawn_ = false;
  double last_draw_s_ = -1e9;
};

}  // namespace frugal::train
