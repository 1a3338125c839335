// `frugal report` opened in headless Chromium: two tiny real runs (an MLP at two learning rates),
// the report of one and of both, each loaded by tests/e2e/browser_check.py over the DevTools pipe at
// desktop (1280 px) and phone (390 px) width. Checks the DOM (one series per run and chart, as many
// points as metrics.jsonl has rows, axis labels, legend, run ids, the ledger), no console error, no
// network request, a non-trivial screenshot and a PDF. Also: the checker itself catches an http image
// and a console.error; unknown runs and unwritable paths are exit 2. Needs Debian's chromium
// (scripts/setup.sh --test); without it the test fails saying so.
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "e2e/browser.h"
#include "e2e/cli_helpers.h"

namespace frugal::e2e {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const char* kJob =
    "[run]\nname = \"tiny\"\nseed = 3\nthreads = 1\nstore = \"runs.db\"\n"
    "[data]\nkind = \"csv\"\ntrain = \"data.csv\"\nval_fraction = 0.2\n"
    "[model]\nkind = \"mlp\"\nhidden = [16]\n"
    "[optim]\nlr = 0.01\n"
    "[train]\nsteps = 36\nbatch_size = 16\nlog_every = 3\neval_every = 6\n"
    "[cost]\ninstance = \"c7i.2xlarge\"\n";

json run_checker(const std::string& args) { return run_browser_checker(args); }

// Train and eval rows of a run directory's metrics.jsonl (the report must plot exactly these).
std::pair<size_t, size_t> row_counts(const fs::path& dir) {
  std::ifstream in(dir / "metrics.jsonl");
  std::string line;
  size_t train = 0, eval = 0;
  while (std::getline(in, line)) {
    json row = json::parse(line, nullptr, false);
    if (!row.is_object()) continue;
    train += row.value("kind", "") == "train";
    eval += row.value("kind", "") == "eval";
  }
  return {train, eval};
}

// The DOM of one page against the runs it shows: run id -> (train rows, eval rows).
void check_dom(const json& dom, const std::map<std::string, std::pair<size_t, size_t>>& runs, const std::string& where) {
  SCOPED_TRACE(where);
  EXPECT_EQ(dom["scripts"], 0);
  std::vector<std::string> ids = dom["runs"];
  ASSERT_EQ(ids.size(), runs.size());
  for (const std::string& id : ids) EXPECT_TRUE(runs.count(id)) << id;
  std::map<std::string, json> charts;
  for (const json& c : dom["charts"]) charts[c["chart"]] = c;
  for (const char* id : {"loss-step", "loss-time", "loss-usd", "quality-step", "quality-time", "quality-usd", "throughput-step"}) {
    SCOPED_TRACE(id);
    ASSERT_TRUE(charts.count(id));
    const json& c = charts[id];
    const bool eval = std::string(id).rfind("quality", 0) == 0;
    ASSERT_EQ(c["series"].size(), runs.size());
    for (const json& s : c["series"]) {
      const size_t expected = eval ? runs.at(s["run"]).second : runs.at(s["run"]).first;
      EXPECT_EQ(s["points"].get<size_t>(), expected) << s.dump();
      EXPECT_EQ(s["polyline_points"].get<size_t>(), expected) << s.dump();
      EXPECT_EQ(s["circles"].get<size_t>(), expected) << s.dump();  // few points: each drawn
    }
    ASSERT_EQ(c["legend"].size(), runs.size());
    for (const json& label : c["legend"]) EXPECT_TRUE(runs.count(label)) << label;
    ASSERT_EQ(c["axis_labels"].size(), 2u);
    EXPECT_GE(c["ticks"].get<int>(), 4);
    EXPECT_FALSE(c["title"].get<std::string>().empty());
  }
  EXPECT_EQ(charts["loss-step"]["axis_labels"][0], "Step");
  EXPECT_EQ(charts["loss-step"]["axis_labels"][1], "Training loss");
  EXPECT_EQ(charts["loss-time"]["axis_labels"][0], "Wall time (s)");
  EXPECT_EQ(charts["quality-step"]["axis_labels"][1], "Validation accuracy (%)");
  EXPECT_EQ(charts["throughput-step"]["axis_labels"][1], "Samples per second");
  // Rows without a cost figure (before the live-cost rows) plot dollars from wall time, labelled so.
  const std::string usd_label = charts["loss-usd"]["axis_labels"][0];
  EXPECT_TRUE(usd_label == "Cost (USD)" || usd_label == "Cost (USD, estimated from wall time x price)") << usd_label;
  ASSERT_TRUE(charts.count("memory"));
  EXPECT_EQ(charts["memory"]["bars"].get<size_t>(), 8 * runs.size());
  EXPECT_GE(dom["cost_rows"].get<int>(), 5);
  // Nothing wider than the window: readable on a phone without scrolling sideways.
  EXPECT_LE(dom["body_width"].get<int>(), dom["viewport_width"].get<int>());
}

void check_page(const fs::path& page, int width, const std::map<std::string, std::pair<size_t, size_t>>& runs,
                json* dom_out = nullptr) {
  const std::string stem = page.stem().string() + "-" + std::to_string(width);
  const fs::path png = page.parent_path() / (stem + ".png"), pdf = page.parent_path() / (stem + ".pdf");
  json r = run_checker(std::string("'") + page.string() + "' --width " + std::to_string(width) + " --screenshot '" + png.string() +
                       "' --pdf '" + pdf.string() + "'");
  std::printf("screenshot %s (%d px wide), pdf %s\n", png.c_str(), width, pdf.c_str());
  EXPECT_TRUE(r["console_errors"].empty()) << r["console_errors"].dump();
  EXPECT_TRUE(r["requests"].empty()) << r["requests"].dump();
  EXPECT_GT(r.value("screenshot_bytes", 0), 10000) << png;
  EXPECT_GT(r.value("pdf_bytes", 0), 10000) << pdf;
  ASSERT_TRUE(r.contains("dom") && r["dom"].is_object()) << r.dump();
  check_dom(r["dom"], runs, page.filename().string() + " at " + std::to_string(width) + " px");
  if (dom_out) *dom_out = r["dom"];
}

TEST(ReportBrowser, TheCheckerCatchesNetworkRequestsAndConsoleErrors) {
  ASSERT_TRUE(chromium_installed()) << "chromium is not installed: run scripts/setup.sh --test";
  Scratch s("report_browser_checker");
  json r = run_checker(std::string("--self-test '") + s.dir().string() + "'");
  EXPECT_EQ(r["caught_request"], true) << r.dump();
  EXPECT_EQ(r["caught_console_error"], true) << r.dump();
}

TEST(ReportBrowser, OneRunAndTwoRunsRenderWithTheirRows) {
  ASSERT_TRUE(chromium_installed()) << "chromium is not installed: run scripts/setup.sh --test";
  Scratch s("report_browser");
  write_file(s / "data.csv", csv_rows(320));
  write_file(s / "job.toml", kJob);
  json a = run_json(s, "train job.toml --json --quiet --out a");
  json b = run_json(s, "train job.toml --json --quiet --out b --set optim.lr=0.05");
  const std::string id_a = a.value("run_id", ""), id_b = b.value("run_id", "");
  ASSERT_FALSE(id_a.empty());
  ASSERT_FALSE(id_b.empty());
  const auto rows_a = row_counts(s / "a"), rows_b = row_counts(s / "b");
  ASSERT_GE(rows_a.first, 10u);  // 36 steps, a row every 3
  ASSERT_GE(rows_a.second, 5u);  // an evaluation every 6

  CommandResult one = s.frugal("report " + id_a + " --store runs.db --html one.html");
  ASSERT_EQ(one.exit_code, 0) << one.err;
  CommandResult two = s.frugal("report " + id_a + " b --store runs.db --html two.html");  // an id and a directory
  ASSERT_EQ(two.exit_code, 0) << two.err;
  EXPECT_FALSE(fs::exists(s / "two.html.tmp-0"));

  check_page(s / "one.html", 1280, {{id_a, rows_a}});
  json dom;
  check_page(s / "two.html", 1280, {{id_a, rows_a}, {id_b, rows_b}}, &dom);
  check_page(s / "two.html", 390, {{id_a, rows_a}, {id_b, rows_b}});
  // The ledger: B against A, naming the key that differs, with compare's verdict.
  ASSERT_EQ(dom["comparisons"].size(), 1u);
  const json& c = dom["comparisons"][0];
  EXPECT_EQ(c["a"], id_a);
  EXPECT_EQ(c["b"], id_b);
  EXPECT_EQ(c["differences"], 1);
  json compare = json::parse(s.frugal("compare " + id_a + " b --store runs.db --json").out, nullptr, false);
  ASSERT_TRUE(compare.is_object());
  EXPECT_EQ(c["verdict"], compare["verdict"]);

  // The text form, and the errors.
  CommandResult text = s.frugal("report " + id_a + " b --store runs.db");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find(id_a + "  (completed)"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("phases: "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(compare["verdict"].get<std::string>()), std::string::npos) << text.out;
  CommandResult unknown = s.frugal("report nosuchrun --store runs.db --html x.html");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("nosuchrun"), std::string::npos) << unknown.err;
  EXPECT_FALSE(fs::exists(s / "x.html"));
  CommandResult unwritable = s.frugal("report " + id_a + " --store runs.db --html no/such/dir/r.html");
  EXPECT_EQ(unwritable.exit_code, 2);
  EXPECT_NE(unwritable.err.find("no/such/dir/r.html"), std::string::npos) << unwritable.err;
}

}  // namespace
}  // namespace frugal::e2e
