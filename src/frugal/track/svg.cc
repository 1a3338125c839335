// The report's SVG charts (svg.h): coordinates in a fixed viewBox, text escaped, one class per kind
// of element so a test (and CSS) can find them.
#include "frugal/track/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace frugal::track {
namespace {

constexpr double kWidth = 640, kLeft = 70, kRight = 40, kTop = 34, kPlotHeight = 220, kBottom = 54, kLegendRow = 20;

std::string number(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f", v);
  return buffer;
}

// The legend under a chart: two entries a row, each a short stroke in the run's style and its label.
std::string legend_svg(const std::vector<Series>& series, double top, double* height) {
  std::string out = "<g class=\"legend\">";
  // Two entries a row when the labels fit (a phone's larger text included), else one.
  size_t longest = 0;
  for (const Series& s : series) longest = std::max(longest, s.label.size());
  const size_t columns = longest > 16 ? 1 : 2;
  const double column = (kWidth - kLeft - kRight) / double(columns);
  for (size_t i = 0; i < series.size(); ++i) {
    const double x = kLeft + column * double(i % columns), y = top + kLegendRow * double(i / columns) + 12;
    const Series& s = series[i];
    out += "<g class=\"legend-entry\" data-run=\"" + html_escape(s.run_id) + "\"><line x1=\"" + number(x) + "\" y1=\"" +
           number(y - 4) + "\" x2=\"" + number(x + 26) + "\" y2=\"" + number(y - 4) + "\" stroke=\"" +
           series_colour(s.style) + "\" stroke-width=\"2.5\"";
    if (*series_dash(s.style)) out += std::string(" stroke-dasharray=\"") + series_dash(s.style) + "\"";
    out += "/><text class=\"legend-label\" x=\"" + number(x + 32) + "\" y=\"" + number(y) + "\">" +
           html_escape(s.label) + "</text></g>";
  }
  *height = kLegendRow * double((series.size() + columns - 1) / columns);
  return out + "</g>";
}

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

Ticks nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  if (lo > hi) std::swap(lo, hi);
  if (hi - lo <= std::fabs(lo) * 1e-12) {  // one value: a unit-ish range around it
    const double pad = lo == 0 ? 1 : std::fabs(lo) * 0.5;
    lo -= pad;
    hi += pad;
    if (lo < 0 && lo + pad >= 0) lo = 0;  // keep a positive value's axis from going below zero
  }
  target = std::max(target, 2);
  const double raw = (hi - lo) / double(target - 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * magnitude * (1 + 1e-9)) {
      step = m * magnitude;
      break;
    }
  Ticks t;
  t.step = step;
  const double first = std::floor(lo / step + 1e-9) * step, last = std::ceil(hi / step - 1e-9) * step;
  for (int i = 0;; ++i) {
    double v = first + step * i;
    if (std::fabs(v) < step * 1e-9) v = 0;  // no "-0"
    t.values.push_back(v);
    if (v >= last - step * 1e-9 || i > 1000) break;
  }
  if (t.values.size() < 2) t.values.push_back(first + step);
  return t;
}

std::string tick_text(double value, double step) {
  char buffer[48];
  if (value == 0) return "0";
  if (std::fabs(value) >= 1e6 || (std::fabs(step) < 1e-4 && value != 0)) {
    std::snprintf(buffer, sizeof buffer, "%.3g", value);
    return buffer;
  }
  // Thousands as "250k": a y axis label of six digits would run into the axis title.
  const bool thousands = std::fabs(value) >= 10000 && step >= 100;
  if (thousands) value /= 1000, step /= 1000;
  const int decimals = step >= 1 ? 0 : int(std::ceil(-std::log10(step) - 1e-9));
  std::snprintf(buffer, sizeof buffer, "%.*f%s", decimals, value, thousands ? "k" : "");
  return buffer;
}

std::vector<Point> downsample(const std::vector<Point>& points, size_t max_points) {
  if (points.size() <= max_points || max_points < 4) return points;
  std::vector<Point> out;
  out.reserve(max_points);
  out.push_back(points.front());
  const size_t inner = points.size() - 2, buckets = (max_points - 2) / 2;
  for (size_t b = 0; b < buckets; ++b) {
    const size_t begin = 1 + inner * b / buckets, end = 1 + inner * (b + 1) / buckets;
    if (begin >= end) continue;
    size_t low = begin, high = begin;
    for (size_t i = begin; i < end; ++i) {
      if (points[i].second < points[low].second) low = i;
      if (points[i].second > points[high].second) high = i;
    }
    out.push_back(points[std::min(low, high)]);
    if (low != high) out.push_back(points[std::max(low, high)]);
  }
  out.push_back(points.back());
  return out;
}

const char* series_colour(int style) {
  static const char* colours[] = {"#1f5fa8", "#c4461c", "#2a8a3e", "#7b3fa0", "#b8860b", "#0f7f86", "#a0325a", "#555555"};
  return colours[size_t(style) % 8];
}

const char* series_dash(int style) {
  static const char* dashes[] = {"", "7 4", "2 3", "9 3 2 3", "4 4", "12 4", "1 2", "6 2 2 2 2 2"};
  return dashes[size_t(style) % 8];
}

std::string line_chart_svg(const LineChart& chart) {
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (const Series& s : chart.series)
    for (const Point& p : s.points) {
      x_lo = std::min(x_lo, p.first), x_hi = std::max(x_hi, p.first);
      y_lo = std::min(y_lo, p.second), y_hi = std::max(y_hi, p.second);
    }
  const bool empty = !(x_lo <= x_hi);
  if (empty) x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;
  if (chart.x_from_zero && x_lo > 0) x_lo = 0;
  const Ticks xt = nice_ticks(x_lo, x_hi, 6), yt = nice_ticks(y_lo, y_hi, 5);
  const double x0 = xt.values.front(), x1 = xt.values.back(), y0 = yt.values.front(), y1 = yt.values.back();
  const double plot_w = kWidth - kLeft - kRight;
  auto px = [&](double x) { return kLeft + (x - x0) / (x1 - x0) * plot_w; };
  auto py = [&](double y) { return kTop + kPlotHeight - (y - y0) / (y1 - y0) * kPlotHeight; };

  double legend_height = 0;
  const std::string legend = legend_svg(chart.series, kTop + kPlotHeight + kBottom, &legend_height);
  const double height = kTop + kPlotHeight + kBottom + legend_height + 6;
  std::string out = "<figure class=\"chart\" data-chart=\"" + html_escape(chart.id) + "\"><svg viewBox=\"0 0 " +
                    number(kWidth) + " " + number(height) + "\" role=\"img\" aria-label=\"" + html_escape(chart.title) +
                    "\"><title>" + html_escape(chart.title) + "</title>";
  out += "<text class=\"chart-title\" x=\"" + number(kWidth / 2) + "\" y=\"20\" text-anchor=\"middle\">" +
         html_escape(chart.title) + "</text>";
  out += "<g class=\"axis x\">";
  for (double v : xt.values) {
    const std::string x = number(px(v));
    out += "<line class=\"grid\" x1=\"" + x + "\" y1=\"" + number(kTop) + "\" x2=\"" + x + "\" y2=\"" +
           number(kTop + kPlotHeight) + "\"/><text class=\"tick\" x=\"" + x + "\" y=\"" + number(kTop + kPlotHeight + 16) +
           "\" text-anchor=\"middle\">" + tick_text(v, xt.step) + "</text>";
  }
  out += "<text class=\"axis-label\" x=\"" + number(kLeft + plot_w / 2) + "\" y=\"" + number(kTop + kPlotHeight + 42) +
         "\" text-anchor=\"middle\">" + html_escape(chart.x_label) + "</text></g><g class=\"axis y\">";
  for (double v : yt.values) {
    const std::string y = number(py(v));
    out += "<line class=\"grid\" x1=\"" + number(kLeft) + "\" y1=\"" + y + "\" x2=\"" + number(kWidth - kRight) +
           "\" y2=\"" + y + "\"/><text class=\"tick\" x=\"" + number(kLeft - 6) + "\" y=\"" + number(py(v) + 4) +
           "\" text-anchor=\"end\">" + tick_text(v, yt.step) + "</text>";
  }
  out += "<text class=\"axis-label\" transform=\"translate(14 " + number(kTop + kPlotHeight / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">" + html_escape(chart.y_label) + "</text></g>";
  out += "<rect class=\"frame\" x=\"" + number(kLeft) + "\" y=\"" + number(kTop) + "\" width=\"" + number(plot_w) +
         "\" height=\"" + number(kPlotHeight) + "\"/>";
  if (empty)
    out += "<text class=\"no-data\" x=\"" + number(kLeft + plot_w / 2) + "\" y=\"" + number(kTop + kPlotHeight / 2) +
           "\" text-anchor=\"middle\">no data</text>";
  for (const Series& s : chart.series) {
    const std::vector<Point> shown = downsample(s.points);
    out += "<g class=\"series\" data-run=\"" + html_escape(s.run_id) + "\" data-points=\"" + std::to_string(shown.size()) +
           "\" data-rows=\"" + std::to_string(s.points.size()) + "\"><polyline fill=\"none\" stroke=\"" +
           series_colour(s.style) + "\" stroke-width=\"2\"";
    if (*series_dash(s.style)) out += std::string(" stroke-dasharray=\"") + series_dash(s.style) + "\"";
    out += " points=\"";
    for (size_t i = 0; i < shown.size(); ++i) {
      if (i) out += ' ';
      out += number(px(shown[i].first));
      out += ',';
      out += number(py(shown[i].second));
    }
    out += "\"/>";
    if (shown.size() <= 60)
      for (const Point& p : shown)
        out += "<circle cx=\"" + number(px(p.first)) + "\" cy=\"" + number(py(p.second)) + "\" r=\"2.5\" fill=\"" +
               series_colour(s.style) + "\"/>";
    out += "</g>";
  }
  out += legend + "</svg>";
  if (!chart.notes.empty()) {
    out += "<figcaption>";
    for (const std::string& note : chart.notes) out += "<span class=\"note\">" + html_escape(note) + "</span> ";
    out += "</figcaption>";
  }
  return out + "</figure>";
}

std::string bar_chart_svg(const BarChart& chart) {
  double hi = 0;
  for (const auto& row : chart.values)
    for (double v : row)
      if (std::isfinite(v)) hi = std::max(hi, v);
  const Ticks xt = nice_ticks(0, hi > 0 ? hi : 1, 5);
  const double x1 = xt.values.back(), left = 150, plot_w = kWidth - left - 80, bar = 12, gap = 10;
  const double group = bar * double(std::max<size_t>(chart.runs.size(), 1)) + gap;
  const double plot_h = group * double(chart.categories.size());
  double legend_height = 0;
  const std::string legend = chart.runs.size() > 1 ? legend_svg(chart.runs, kTop + plot_h + 40, &legend_height) : "";
  const double height = kTop + plot_h + 40 + legend_height + 6;
  std::string out = "<figure class=\"chart\" data-chart=\"" + html_escape(chart.id) + "\"><svg viewBox=\"0 0 " +
                    number(kWidth) + " " + number(height) + "\" role=\"img\" aria-label=\"" + html_escape(chart.title) +
                    "\"><title>" + html_escape(chart.title) + "</title><text class=\"chart-title\" x=\"" +
                    number(kWidth / 2) + "\" y=\"20\" text-anchor=\"middle\">" + html_escape(chart.title) + "</text>";
  out += "<g class=\"axis x\">";
  for (double v : xt.values) {
    const std::string x = number(left + v / x1 * plot_w);
    out += "<line class=\"grid\" x1=\"" + x + "\" y1=\"" + number(kTop) + "\" x2=\"" + x + "\" y2=\"" +
           number(kTop + plot_h) + "\"/><text class=\"tick\" x=\"" + x + "\" y=\"" + number(kTop + plot_h + 14) +
           "\" text-anchor=\"middle\">" + tick_text(v, xt.step) + "</text>";
  }
  out += "<text class=\"axis-label\" x=\"" + number(left + plot_w / 2) + "\" y=\"" + number(kTop + plot_h + 32) +
         "\" text-anchor=\"middle\">" + html_escape(chart.unit_label) + "</text></g>";
  for (size_t c = 0; c < chart.categories.size(); ++c) {
    const double top = kTop + group * double(c) + gap / 2;
    out += "<text class=\"category\" x=\"" + number(left - 6) + "\" y=\"" + number(top + group / 2) +
           "\" text-anchor=\"end\">" + html_escape(chart.categories[c]) + "</text>";
    for (size_t r = 0; r < chart.runs.size() && r < chart.values[c].size(); ++r) {
      const double v = std::isfinite(chart.values[c][r]) ? chart.values[c][r] : 0;
      const double y = top + bar * double(r), w = v / x1 * plot_w;
      out += "<rect class=\"bar\" data-run=\"" + html_escape(chart.runs[r].run_id) + "\" x=\"" + number(left) +
             "\" y=\"" + number(y) + "\" width=\"" + number(w) + "\" height=\"" + number(bar - 2) + "\" fill=\"" +
             series_colour(chart.runs[r].style) + "\"/><text class=\"value\" x=\"" + number(left + w + 4) + "\" y=\"" +
             number(y + bar - 3) + "\">" + html_escape(chart.value_texts[c][r]) + "</text>";
    }
  }
  return out + legend + "</svg></figure>";
}

}  // namespace frugal::track
