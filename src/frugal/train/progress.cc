#include "frugal/train/progress.h"

#include <cmath>

namespace frugal::train {

std::string Progress::fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

std::string Progress::duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  char buffer[32];
  int64_t s = int64_t(seconds + 0.5);
  if (s >= 3600) std::snprintf(buffer, sizeof buffer, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
  else if (s >= 60) std::snprintf(buffer, sizeof buffer, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  else std::snprintf(buffer, sizeof buffer, "%llds", (long long)s);
  return buffer;
}

bool Progress::due(int64_t step, int64_t steps, double elapsed_s) const {
  if (quiet_) return false;
  // Redraw a bar at most 10 times a second; plain lines every 5 seconds; always the last step.
  return step >= steps || elapsed_s - last_draw_s_ >= (bar_ ? 0.1 : 5.0);
}

void Progress::update(int64_t epoch, int64_t epochs, int64_t step, int64_t steps, double loss, const char* rate_unit,
                      double rate, double elapsed_s, const std::string& cost) {
  if (!due(step, steps, elapsed_s)) return;
  last_draw_s_ = elapsed_s;
  double fraction = steps > 0 ? double(step) / double(steps) : 0;
  double eta = fraction > 0 ? elapsed_s * (1 - fraction) / fraction : NAN;
  std::string text, rest;
  if (epochs > 0) text += "epoch " + std::to_string(std::min(epoch + 1, epochs)) + "/" + std::to_string(epochs) + " ";
  if (unit_.empty()) rest += "step " + std::to_string(step) + "/" + std::to_string(steps);
  else rest += std::to_string(step) + "/" + std::to_string(steps) + " " + unit_;
  if (std::isfinite(loss)) rest += "  loss " + fixed(loss, 4);
  if (rate > 0) rest += "  " + fixed(rate, 0) + " " + rate_unit;
  rest += "  ETA " + duration(eta);
  if (!cost.empty()) rest += "  " + cost;
  if (bar_) {
    // The bar takes what is left of 100 columns, up to 24; none when fewer than 5 are left.
    const int width = std::min(24, 100 - int(text.size() + rest.size()) - 3);
    if (width >= 5) {
      int filled = int(fraction * width);
      text += '[';
      text.append(size_t(filled), '#').append(size_t(width - filled), '.');
      text += "] ";
    }
  }
  text += rest;
  if (bar_) {
    std::fprintf(out_, "\r\033[K%s", text.c_str());
    drawn_ = true;
  } else {
    std::fprintf(out_, "%s\n", text.c_str());
  }
  std::fflush(out_);
}

void Progress::line(const std::string& text) {
  if (quiet_) return;
  if (drawn_) std::fprintf(out_, "\r\033[K");
  std::fprintf(out_, "%s\n", text.c_str());
  drawn_ = false;
  last_draw_s_ = -1e9;  // redraw the bar right after a message
  std::fflush(out_);
}

void Progress::finish() {
  if (drawn_) std::fprintf(out_, "\n");
  drawn_ = false;
  std::fflush(out_);
}

}  // namespace frugal::train
