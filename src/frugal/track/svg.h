// Inline SVG charts for the report: line charts (several series overlaid, nice ticks, legend) and
// horizontal bars, written as text with every label escaped. Limits: linear axes only; at most
// kMaxPlotPoints points per series (min/max-preserving downsampling beyond); no interactivity.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace frugal::track {

// Text for HTML and SVG (element content and attribute values): & < > " ' escaped.
std::string html_escape(const std::string& text);

// Axis ticks at "nice" numbers (1, 2 or 5 x 10^k apart) covering [lo, hi]: the first tick <= lo,
// the last >= hi, about `target` of them (at least 2). A zero-width range is widened around lo.
struct Ticks {
  double step = 1;
  std::vector<double> values;
};
Ticks nice_ticks(double lo, double hi, int target = 5);
// A tick value as text with as many decimals as the step needs ("0.25", "1500", "2e+06" past 1e6).
std::string tick_text(double value, double step);

using Point = std::pair<double, double>;  // (x, y)
constexpr size_t kMaxPlotPoints = 2000;

// At most `max_points` of `points` (sorted by x): the first and last point, then per bucket of
// consecutive points its minimum and its maximum in y, in x order. Points as given when few enough.
std::vector<Point> downsample(const std::vector<Point>& points, size_t max_points = kMaxPlotPoints);

struct Series {
  std::string run_id;  // data-run attribute
  std::string label;   // legend text
  int style = 0;       // colour and dash pattern index (one per run)
  std::vector<Point> points;
};

struct LineChart {
  std::string id;  // data-chart attribute, e.g. "loss-step"
  std::string title, x_label, y_label;
  std::vector<Series> series;
  std::vector<std::string> notes;  // under the chart (skipped points, derived axes, downsampling)
  bool x_from_zero = true;         // steps, seconds and dollars start at 0
};

// A <figure class="chart"> holding the SVG (viewBox, scales to its container's width) and a
// <figcaption> with the notes. Each series is `<g class="series" data-run=".." data-points="N"
// data-rows="M">` (N plotted points after downsampling, M given) holding one <polyline> of N
// points and, when N <= 60, one <circle> per point.
std::string line_chart_svg(const LineChart& chart);

// Horizontal bars, one group per category, one bar per run (colour of the run's style); values
// labelled with `value_texts` (same shape as values: [category][run]).
struct BarChart {
  std::string id, title, unit_label;
  std::vector<std::string> categories;
  std::vector<Series> runs;  // label and style only
  std::vector<std::vector<double>> values;
  std::vector<std::vector<std::string>> value_texts;
};
std::string bar_chart_svg(const BarChart& chart);

// A run's stroke colour and dash pattern ("" = solid), distinct for 8 runs and in greyscale print.
const char* series_colour(int style);
const char* series_dash(int style);

}  // namespace frugal::track
