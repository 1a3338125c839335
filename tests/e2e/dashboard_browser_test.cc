// `frugal dashboard` in headless Chromium while a run trains: the runs list and the running run's
// page load with no console error (the page's script runs under the dashboard's
// Content-Security-Policy) and no request outside the dashboard's own origin, and the run's curve
// grows on the page by itself (the page polls its fragment) as the training logs rows. Needs Debian's
// chromium (scripts/setup.sh --test); without it the test fails saying so.
#include <chrono>
#include <thread>

#include <nlohmann/json.hpp>

#include "csv_data.h"
#include "e2e/browser.h"
#include "e2e/cli_helpers.h"
#include "e2e/dashboard_server.h"
#include "e2e/process.h"

namespace frugal::e2e {
namespace {

using json = nlohmann::json;

const char* kJob =
    "[run]\nname = \"tiny\"\nseed = 1\nthreads = 1\nstore = \"runs.db\"\n"
    "[data]\nkind = \"csv\"\ntrain = \"data.csv\"\nval_fraction = 0.2\n"
    "[model]\nkind = \"mlp\"\nhidden = [16]\n"
    "[train]\nepochs = 2\nbatch_size = 16\nlog_every = 2\n";

// The rows behind the running run's training-loss curve on its page, as the page shows them now (its
// points stop at the plot's 2000 once downsampled).
// (No single quote in it: it travels in single quotes through the shell.)
const char* kLossRows =
    "(() => { const g = document.querySelector(\"figure[data-chart=loss-step] g.series\");"
    " return g ? Number(g.getAttribute(\"data-rows\")) : -1; })()";

TEST(DashboardBrowser, ARunningRunsPageFollowsItInChromium) {
  ASSERT_TRUE(chromium_installed()) << "chromium is not installed: run scripts/setup.sh --test";
  Scratch s("dashboard_browser");
  write_file(s / "data.csv", frugal::testing::four_class_csv(400));
  write_file(s / "job.toml", kJob);
  ASSERT_EQ(s.frugal("train job.toml --quiet --out first --set train.epochs=1").exit_code, 0);
  DashboardServer server(s, {"--port", "0", "--store", "runs.db"});
  ASSERT_GT(server.port(), 0) << server.err();
  // Running for the whole check (it is killed at the end): 400 epochs took only ~8 s, which a loaded
  // machine spent starting Chromium twice, and a run that ended stops its page polling. A row every
  // 5 steps of batch 4.
  Process train(s, {"train", "job.toml", "--quiet", "--out", "live", "--set", "train.epochs=20000", "--set",
                    "train.log_every=5", "--set", "train.batch_size=4"},
                "live");
  std::string live_id;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (live_id.empty() && std::chrono::steady_clock::now() < deadline && !train.done()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    live_id = running_run_id(server.port());
  }
  ASSERT_FALSE(live_id.empty()) << "the run never showed as running";
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());

  json list = run_browser_checker("--url '" + base + "/' --screenshot '" + (s / "list.png").string() + "'");
  EXPECT_TRUE(list["console_errors"].empty()) << list["console_errors"].dump();
  EXPECT_TRUE(list["requests"].empty()) << "requests outside the dashboard: " << list["requests"].dump();

  json page = run_browser_checker("--url '" + base + "/runs/" + live_id + "' --screenshot '" +
                                  (s / "live.png").string() + "' --wait-change '" + kLossRows +
                                  "' --wait-timeout 20");
  train.kill_with(SIGKILL);
  train.wait();
  std::printf("screenshots %s, %s\n", (s / "list.png").c_str(), (s / "live.png").c_str());
  EXPECT_TRUE(page["console_errors"].empty()) << page["console_errors"].dump();
  EXPECT_TRUE(page["requests"].empty()) << "requests outside the dashboard: " << page["requests"].dump();
  const json& change = page["wait_change"];
  ASSERT_TRUE(change.is_object()) << page.dump();
  EXPECT_GT(change["first"].get<int>(), 0) << change.dump();  // the curve is on the page from the start
  EXPECT_TRUE(change["changed"].get<bool>()) << "the page did not follow the run: " << change.dump();
  EXPECT_GT(change["last"].get<int>(), change["first"].get<int>()) << change.dump();
  // It followed by polling its own fragment: same-origin requests, and nothing else.
  bool polled = false;
  for (const json& r : page["same_origin_requests"])
    polled = polled || r.get<std::string>().find("/runs/" + live_id + "/fragment") != std::string::npos;
  EXPECT_TRUE(polled) << page["same_origin_requests"].dump();
  EXPECT_GT(page.value("screenshot_bytes", 0), 10000);
}

}  // namespace
}  // namespace frugal::e2e
