// The report page and its charts without a browser: nice ticks, escaping of store strings,
// downsampling (count, min and max kept), rows without cost (dollars derived and labelled), NaN rows
// skipped and noted, a run without rows or summary, fragment mode. The browser test (tests/e2e/
// report_browser_test.cc) checks the rendered page.
#include <cmath>
#include <regex>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "frugal/track/report.h"
#include "frugal/track/svg.h"

namespace frugal::track {
namespace {

using json = nlohmann::json;

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// The figure of chart `id` in a page.
std::string chart_of(const std::string& page, const std::string& id) {
  size_t start = page.find("data-chart=\"" + id + "\"");
  if (start == std::string::npos) return "";
  return page.substr(start, page.find("</figure>", start) - start);
}

const char* kSummary = R"({"run_id":"r1","status":"completed","steps":4,"wall_s":8.0,
  "metrics":{"train_loss":0.5,"val_accuracy":0.9},
  "cost":{"usd":{"value":0.0006,"source":"catalog"},"kwh":{"value":0.0001,"source":"estimated"},
          "co2_kg":{"value":0.00005,"source":"estimated"},"hours":{"value":0.0167,"source":"measured"},
          "instance":"c7i.large","pricing":"on-demand","billing":"per-second","usd_per_hour":0.36,
          "carbon_g_per_kwh":400,"energy_method":"tdp","catalog":"builtin"},
  "phases":{"forward":2,"backward":4,"other":2},
  "memory":{"weights_bytes":4096,"gradients_bytes":4096,"optimizer_state_bytes":8192,"activations_peak_bytes":1000,
            "workspace_peak_bytes":0,"other_peak_bytes":0,"allocator_cached_bytes":0,"peak_total_bytes":20000},
  "projections":[]})";

ReportRun make_run(const std::string& id, const std::string& name, int train_rows, bool with_cost) {
  ReportRun run;
  run.record.run_id = id;
  run.record.name = name;
  run.record.status = "completed";
  run.record.summary_json = kSummary;
  for (int i = 1; i <= train_rows; ++i) {
    std::string row = "{\"kind\":\"train\",\"step\":" + std::to_string(i) + ",\"loss\":" + std::to_string(2.0 / i) +
                      ",\"samples_per_s\":100,\"time_s\":" + std::to_string(i * 2.0);
    if (with_cost) row += ",\"cost\":{\"usd\":{\"value\":" + std::to_string(i * 0.001) + ",\"source\":\"catalog\"}}";
    run.metrics.push_back({i, "train", row + "}", i * 2.0});
    if (i % 2 == 0)
      run.metrics.push_back({i, "eval", "{\"kind\":\"eval\",\"step\":" + std::to_string(i) +
                                            ",\"val_loss\":0.4,\"val_accuracy\":0.8,\"time_s\":" + std::to_string(i * 2.0) + "}",
                             i * 2.0});
  }
  return run;
}

TEST(Svg, NiceTicksCoverTheRangeAtRoundSteps) {
  Ticks t = nice_ticks(0.13, 0.87, 5);
  EXPECT_DOUBLE_EQ(t.step, 0.2);
  ASSERT_GE(t.values.size(), 2u);
  EXPECT_LE(t.values.front(), 0.13);
  EXPECT_GE(t.values.back(), 0.87);
  EXPECT_NEAR(t.values.front(), 0.0, 1e-12);
  EXPECT_NEAR(t.values.back(), 1.0, 1e-12);

  t = nice_ticks(0, 1234, 6);
  EXPECT_DOUBLE_EQ(t.step, 500);  // 1234 / 5 = 247 -> 500
  EXPECT_EQ(t.values, (std::vector<double>{0, 500, 1000, 1500}));
  EXPECT_EQ(tick_text(1500, 500), "1500");
  EXPECT_EQ(tick_text(0.25, 0.05), "0.25");
  EXPECT_EQ(tick_text(0.0004, 0.0002), "0.0004");
  EXPECT_EQ(tick_text(0, 5e-7), "0");
  EXPECT_EQ(tick_text(250000, 50000), "250k");
  EXPECT_EQ(tick_text(15000, 5000), "15k");
  EXPECT_EQ(tick_text(1500, 500), "1500");
  EXPECT_EQ(tick_text(1.5e-6, 5e-7), "1.5e-06");

  t = nice_ticks(3, 3, 5);  // one value: a range around it, not a division by zero
  EXPECT_LT(t.values.front(), 3);
  EXPECT_GT(t.values.back(), 3);
  t = nice_ticks(-7, 12, 5);
  EXPECT_DOUBLE_EQ(t.step, 5);
  EXPECT_DOUBLE_EQ(t.values.front(), -10);
  EXPECT_DOUBLE_EQ(t.values.back(), 15);
}

TEST(Svg, DownsamplingKeepsEndsMinimaMaximaAndTheBound) {
  std::vector<Point> points;
  for (int i = 0; i < 100000; ++i) points.push_back({double(i), std::sin(i * 0.001) + (i == 54321 ? 50.0 : 0.0) - (i == 777 ? 9.0 : 0.0)});
  std::vector<Point> shown = downsample(points, 2000);
  EXPECT_LE(shown.size(), 2000u);
  EXPECT_GE(shown.size(), 1900u);
  EXPECT_EQ(shown.front(), points.front());
  EXPECT_EQ(shown.back(), points.back());
  bool spike = false, dip = false;
  for (size_t i = 0; i < shown.size(); ++i) {
    spike = spike || shown[i].first == 54321;
    dip = dip || shown[i].first == 777;
    if (i > 0) {
      EXPECT_LT(shown[i - 1].first, shown[i].first);  // still in x order
    }
  }
  EXPECT_TRUE(spike);
  EXPECT_TRUE(dip);
  std::vector<Point> few(points.begin(), points.begin() + 10);
  EXPECT_EQ(downsample(few, 2000), few);
}

TEST(Report, EscapesEveryStoreString) {
  ReportRun run = make_run("evil<script>alert(1)</script>", "a & b <script>x</script>", 3, true);
  run.record.job_toml = "[run]\nname = \"<script>\"\n";
  std::string page = report_html({run, make_run("r2", "plain", 3, true)},
                                 {"", {R"({"a":"r<1>","b":"r2","verdict":"<b>won</b> & more","job_differences":[{"key":"optim.lr","a":"<i>","b":null}]})"}, false});
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_EQ(page.find("<b>won"), std::string::npos);
  EXPECT_EQ(page.find("<i>"), std::string::npos);
  EXPECT_NE(page.find("a &amp; b &lt;script&gt;x&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(page.find("evil&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(page.find("&lt;b&gt;won&lt;/b&gt; &amp; more"), std::string::npos);
  EXPECT_NE(page.find("(not set)"), std::string::npos);
}

TEST(Report, OneSeriesPerRunWithItsRowCountAndTheSectionsOfTheBrief) {
  std::string page = report_html({make_run("a", "a", 6, true), make_run("b", "b", 4, true)}, {});
  std::string loss = chart_of(page, "loss-step");
  ASSERT_FALSE(loss.empty());
  EXPECT_EQ(count(loss, "class=\"series\""), 2u);
  EXPECT_NE(loss.find("data-run=\"a\" data-points=\"6\""), std::string::npos) << loss;
  EXPECT_NE(loss.find("data-run=\"b\" data-points=\"4\""), std::string::npos);
  EXPECT_EQ(count(loss, "<circle"), 10u);
  EXPECT_NE(loss.find(">Step<"), std::string::npos);
  EXPECT_NE(loss.find("legend-label"), std::string::npos);
  std::string quality = chart_of(page, "quality-step");
  EXPECT_NE(quality.find("data-run=\"a\" data-points=\"3\""), std::string::npos);
  EXPECT_NE(quality.find("Validation accuracy (%)"), std::string::npos);
  std::string usd = chart_of(page, "loss-usd");
  EXPECT_NE(usd.find(">Cost (USD)<"), std::string::npos);  // the rows' own dollars: not labelled derived
  EXPECT_EQ(usd.find("estimated from wall time"), std::string::npos);
  for (const char* section : {"Curves", "Throughput", "Phases", "Memory by category", "Cost", "Savings ledger"})
    EXPECT_NE(page.find(std::string(">") + section + "</h2>"), std::string::npos) << section;
  EXPECT_NE(page.find("$0.00060"), std::string::npos);  // usd_text of the summary's dollars
  EXPECT_NE(page.find("<span class=\"source\">catalog</span>"), std::string::npos);
  EXPECT_NE(page.find("@media print"), std::string::npos);
  EXPECT_NE(page.find("@media (max-width:600px)"), std::string::npos);
  EXPECT_NE(page.find("viewBox="), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_EQ(page.find("http://"), std::string::npos);
  EXPECT_EQ(page.find("https://"), std::string::npos);
}

TEST(Report, RowsWithoutCostGetDollarsFromWallTimeAndSaySo) {
  std::string page = report_html({make_run("old", "old", 4, false)}, {});
  std::string usd = chart_of(page, "loss-usd");
  EXPECT_NE(usd.find("Cost (USD, estimated from wall time x price)"), std::string::npos) << usd;
  EXPECT_NE(usd.find("data-points=\"4\""), std::string::npos);
  // x of the last point: 8 s x $0.36/h = $0.0008; the x axis reaches it with a nice tick.
  EXPECT_NE(usd.find(">0.0008<"), std::string::npos) << usd;
  EXPECT_EQ(page.find("Savings ledger"), std::string::npos);  // one run: no ledger
}

TEST(Report, FreeRunsPlotEnergyInsteadOfAllZeroDollars) {
  // A run on a free instance ("local", $0/h) whose rows carry energy: the third panel is energy.
  ReportRun run = make_run("free", "mlp", 3, false);
  json summary = json::parse(kSummary);
  summary["cost"]["usd_per_hour"] = 0;
  run.record.summary_json = summary.dump();
  for (MetricRow& m : run.metrics) {
    json row = json::parse(m.json);
    row["cost"] = {{"usd", {{"value", 0}, {"source", "catalog"}}}, {"kwh", {{"value", 0.0005 * m.step}, {"source", "estimated"}}}};
    m.json = row.dump();
  }
  const std::string page = report_html({run}, {});
  EXPECT_EQ(chart_of(page, "loss-usd"), "");
  const std::string energy = chart_of(page, "loss-energy");
  EXPECT_NE(energy.find(">Energy (Wh)<"), std::string::npos) << energy;
  EXPECT_NE(energy.find("data-points=\"3\""), std::string::npos) << energy;
  EXPECT_NE(page.find("Training loss against energy (no run has a price)"), std::string::npos);
  // One priced run among them brings dollars back for all.
  const std::string priced = report_html({run, make_run("paid", "mlp", 3, true)}, {});
  EXPECT_NE(chart_of(priced, "loss-usd"), "");
  EXPECT_EQ(chart_of(priced, "loss-energy"), "");
}

TEST(Report, ARunStillGoingShowsItsCostSoFarAndTheForecast) {
  ReportRun run = make_run("going", "mlp", 3, true);  // rows with cost.usd = 0.001 x step
  run.record.status = "running";
  run.record.summary_json = "";
  json last = json::parse(run.metrics.back().json);
  last["forecast"] = {{"usd", 0.25}, {"kwh", 0.002}, {"co2_kg", 0.001}, {"wall_s", 60}, {"method", "m"}};
  run.metrics.back().json = last.dump();
  const std::string page = report_html({run}, {});
  const std::string cost = page.substr(page.find("<table class=\"cost\">"));
  EXPECT_NE(cost.find("$0.0030"), std::string::npos) << cost;  // the last row's dollars (step 3)
  EXPECT_NE(cost.find("at step 3; forecast at the end $0.25, 2.0 Wh (estimated)"), std::string::npos) << cost;
}

TEST(Report, CharacterModelsPlotBitsPerCharAndTokensPerSecond) {
  ReportRun run = make_run("gpt", "gpt", 0, true);
  run.metrics.push_back({1, "train", R"({"kind":"train","step":1,"loss":3.0,"samples_per_s":10,"tokens_per_s":640,"time_s":1})", 1});
  run.metrics.push_back({1, "eval", R"({"kind":"eval","step":1,"val_loss":2.0,"val_bits_per_char":2.9,"time_s":1})", 1});
  std::string page = report_html({run}, {});
  EXPECT_NE(chart_of(page, "quality-step").find("Validation bits per char"), std::string::npos);
  EXPECT_NE(chart_of(page, "throughput-step").find("Tokens per second"), std::string::npos);
}

TEST(Report, NonFiniteLossesAreSkippedAndNoted) {
  ReportRun run = make_run("n", "n", 0, true);
  run.metrics.push_back({1, "train", R"({"kind":"train","step":1,"loss":1.5,"time_s":1})", 1});
  run.metrics.push_back({2, "train", R"({"kind":"train","step":2,"loss":null,"time_s":2})", 2});  // NaN as JSON writes it
  run.metrics.push_back({3, "train", R"({"kind":"train","step":3,"loss":1.0,"time_s":3})", 3});
  std::string loss = chart_of(report_html({run}, {}), "loss-step");
  EXPECT_NE(loss.find("data-points=\"2\""), std::string::npos) << loss;
  EXPECT_NE(loss.find("n: 1 row(s) without a finite loss skipped."), std::string::npos);
  EXPECT_EQ(loss.find("nan"), std::string::npos);
}

TEST(Report, RunWithoutRowsOrSummaryAndASingleRow) {
  ReportRun empty;
  empty.record.run_id = "empty";
  empty.record.status = "running";
  ReportRun one = make_run("one", "one", 1, true);
  std::string page = report_html({empty, one}, {});
  EXPECT_NE(page.find("partial: the run is still going"), std::string::npos);
  std::string loss = chart_of(page, "loss-step");
  EXPECT_NE(loss.find("data-run=\"empty\" data-points=\"0\""), std::string::npos);
  EXPECT_NE(loss.find("data-run=\"one\" data-points=\"1\""), std::string::npos);
  EXPECT_EQ(count(loss, "<circle"), 1u);
  // A run going on has no summary, so no price: its rows without cost stay off the dollars plot.
  ReportRun going = make_run("going", "going", 3, false);
  going.record.summary_json.clear();
  std::string usd = chart_of(report_html({going}, {}), "loss-usd");
  EXPECT_NE(usd.find("data-points=\"0\""), std::string::npos) << usd;
  EXPECT_NE(usd.find("going: 3 row(s) without a cost figure or a known price not plotted."), std::string::npos) << usd;
  std::string none = report_html({empty}, {});
  EXPECT_NE(chart_of(none, "loss-step").find("no data"), std::string::npos);
}

TEST(Report, HugeRunsAreDownsampledWithACaption) {
  ReportRun run = make_run("big", "big", 0, true);
  for (int i = 1; i <= 50000; ++i)
    run.metrics.push_back({i, "train", "{\"kind\":\"train\",\"step\":" + std::to_string(i) + ",\"loss\":" +
                                           std::to_string(1.0 + (i % 100) * 0.01) + ",\"time_s\":" + std::to_string(i) + "}", double(i)});
  std::string loss = chart_of(report_html({run}, {}), "loss-step");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(loss, m, std::regex("data-points=\"(\\d+)\" data-rows=\"50000\"")));
  EXPECT_LE(std::stoi(m[1]), 2000);
  EXPECT_NE(loss.find("downsampled"), std::string::npos);
  EXPECT_EQ(count(loss, "<circle"), 0u);
}

TEST(Report, FragmentHasNoDocumentAround) {
  std::string fragment = report_html({make_run("a", "a", 2, true)}, {"", {}, true});
  EXPECT_EQ(fragment.find("<html"), std::string::npos);
  EXPECT_EQ(fragment.find("<head"), std::string::npos);
  EXPECT_EQ(fragment.find("<body"), std::string::npos);
  EXPECT_NE(fragment.find("class=\"frugal-report\""), std::string::npos);
  std::string page = report_html({make_run("a", "a", 2, true)}, {});
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(page.find("Content-Security-Policy"), std::string::npos);
}

}  // namespace
}  // namespace frugal::track
