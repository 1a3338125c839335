// `frugal dashboard` as a user runs it: a store with one finished run, served on a free loopback
// port; pages, JSON API and /metrics (parsed by prometheus_client's parser and checked against the
// store); only GET/HEAD; traversal, oversized and malformed requests refused with the server still
// answering; SIGTERM stops it with exit 0; a running run's rows and step appear live; bad options
// exit 2. Limits: prometheus_client must be installed for /usr/bin/python3 (setup.sh --test).
#include <chrono>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "csv_data.h"
#include "e2e/cli_helpers.h"
#include "e2e/dashboard_server.h"
#include "e2e/process.h"

namespace frugal::e2e {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const char* kJob =
    "[run]\nname = \"tiny\"\nseed = 1\nthreads = 1\nstore = \"runs.db\"\n"
    "[data]\nkind = \"csv\"\ntrain = \"data.csv\"\nval_fraction = 0.2\n"
    "[model]\nkind = \"mlp\"\nhidden = [16]\n"
    "[train]\nepochs = 2\nbatch_size = 16\nlog_every = 2\n";

class Dashboard : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new Scratch("dashboard");
    write_file(*scratch_ / "data.csv", frugal::testing::four_class_csv(200));
    write_file(*scratch_ / "job.toml", kJob);
    summary_ = new json(run_json(*scratch_, "train job.toml --quiet --json --out out"));
    server_ = new DashboardServer(*scratch_, {"--port", "0", "--store", "runs.db"});
  }
  static void TearDownTestSuite() {
    delete server_;
    delete summary_;
    delete scratch_;
  }
  void SetUp() override {
    ASSERT_GT(server_->port(), 0) << "first line: " << server_->first_line() << "\nstderr: " << server_->err();
  }
  static std::string run_id() { return summary_->value("run_id", ""); }
  static int port() { return server_->port(); }

  static Scratch* scratch_;
  static json* summary_;
  static DashboardServer* server_;
};
Scratch* Dashboard::scratch_ = nullptr;
json* Dashboard::summary_ = nullptr;
DashboardServer* Dashboard::server_ = nullptr;

TEST_F(Dashboard, PrintsItsUrl) {
  EXPECT_EQ(server_->first_line().rfind("dashboard: http://127.0.0.1:", 0), 0u) << server_->first_line();
  EXPECT_NE(server_->first_line().find("(store runs.db, read-only; Ctrl-C stops)"), std::string::npos);
}

TEST_F(Dashboard, PortInUseExitsTwo) {
  DashboardServer second(*scratch_, {"--port", std::to_string(port()), "--store", "runs.db"});
  EXPECT_EQ(second.port(), -1) << "a second dashboard bound the same port: " << second.first_line();
  EXPECT_EQ(second.stop(5.0), 2) << second.err();
  EXPECT_NE(second.err().find("cannot listen on 127.0.0.1 port " + std::to_string(port())), std::string::npos)
      << second.err();
  EXPECT_EQ(http_get(port(), "/").status, 200);
}

TEST_F(Dashboard, PagesAndApi) {
  HttpAnswer index = http_get(port(), "/");
  EXPECT_EQ(index.status, 200) << index.head;
  EXPECT_NE(index.body.find(run_id()), std::string::npos);
  for (const char* header : {"Cache-Control: no-store", "X-Content-Type-Options: nosniff",
                             "Content-Security-Policy: default-src 'none'"})
    EXPECT_NE(index.head.find(header), std::string::npos) << index.head;
  HttpAnswer run = http_get(port(), "/runs/" + run_id());
  EXPECT_EQ(run.status, 200);
  EXPECT_NE(run.body.find(run_id()), std::string::npos);
  EXPECT_NE(run.head.find("X-Frugal-Final: 1"), std::string::npos) << run.head;
  EXPECT_EQ(http_get(port(), "/static/dashboard.js").status, 200);
  HttpAnswer head = http_get(port(), "/", "HEAD");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());

  json runs = json::parse(http_get(port(), "/api/runs").body, nullptr, false);
  ASSERT_TRUE(runs.is_object()) << runs;
  ASSERT_EQ(runs["runs"].size(), 1u);
  EXPECT_EQ(runs["runs"][0]["run_id"], run_id());
  EXPECT_EQ(runs["runs"][0]["status"], "completed");
  EXPECT_EQ(runs["runs"][0]["usd"]["value"], (*summary_)["cost"]["usd"]["value"]);
  json one = json::parse(http_get(port(), "/api/runs/" + run_id().substr(0, 8)).body, nullptr, false);
  EXPECT_EQ(one.value("run_id", ""), run_id());
  EXPECT_EQ(one["summary"]["steps"], (*summary_)["steps"]);
  json rows = json::parse(http_get(port(), "/api/runs/" + run_id() + "/metrics?after=0").body, nullptr, false);
  ASSERT_FALSE(rows["rows"].empty()) << rows;
  EXPECT_GT(rows["rows"][0]["step"].get<int64_t>(), 0);

  EXPECT_EQ(http_get(port(), "/nothing-here").status, 404);
  EXPECT_EQ(http_get(port(), "/runs/no-such-run").status, 404);
  EXPECT_EQ(http_get(port(), "/api/runs/" + run_id() + "/metrics?after=x").status, 400);
}

TEST_F(Dashboard, MetricsParseAsPrometheusText) {
  HttpAnswer metrics = http_get(port(), "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.head.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << metrics.head;
  write_file(*scratch_ / "metrics.txt", metrics.body);
  // prometheus_client's parser; each sample as "name{labels} value" in one JSON list.
  const std::string script =
      "import json, sys\n"
      "try:\n"
      "    from prometheus_client.parser import text_string_to_metric_families\n"
      "except ImportError:\n"
      "    print('MISSING prometheus_client: run scripts/setup.sh --test'); sys.exit(3)\n"
      "out = {}\n"
      "for family in text_string_to_metric_families(open('metrics.txt').read()):\n"
      "    for s in family.samples:\n"
      "        labels = ','.join(k + '=' + v for k, v in sorted(s.labels.items()))\n"
      "        out[s.name + '{' + labels + '}'] = s.value\n"
      "print(json.dumps(out))\n";
  write_file(*scratch_ / "parse.py", script);
  const std::string command = "cd '" + scratch_->dir().string() + "' && /usr/bin/python3 parse.py > parsed.json 2>&1";
  const int status = std::system(command.c_str());
  const std::string output = read_file(*scratch_ / "parsed.json");
  ASSERT_EQ(WEXITSTATUS(status), 0) << output;
  json samples = json::parse(output, nullptr, false);
  ASSERT_TRUE(samples.is_object()) << output;
  EXPECT_EQ(samples["frugal_runs{status=completed}"], 1) << samples;
  EXPECT_EQ(samples["frugal_runs{status=running}"], 0) << samples;
  EXPECT_DOUBLE_EQ(samples["frugal_cost_usd_total{}"].get<double>(), (*summary_)["cost"]["usd"]["value"].get<double>());
  EXPECT_DOUBLE_EQ(samples["frugal_energy_kwh_total{}"].get<double>(), (*summary_)["cost"]["kwh"]["value"].get<double>());
  EXPECT_DOUBLE_EQ(samples["frugal_carbon_kg_total{}"].get<double>(), (*summary_)["cost"]["co2_kg"]["value"].get<double>());
}

TEST_F(Dashboard, OnlyGetAndHead) {
  for (const char* method : {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
    HttpAnswer a = parse_answer(raw_http(port(), std::string(method) + " /api/runs HTTP/1.1\r\nHost: x\r\n"
                                                 "Content-Length: 2\r\nConnection: close\r\n\r\n{}"));
    EXPECT_EQ(a.status, 405) << method << "\n" << a.head;
    EXPECT_NE(a.head.find("Allow: GET, HEAD"), std::string::npos) << method;
  }
}

TEST_F(Dashboard, TraversalNeverReachesAFile) {
  const std::string nul = std::string("GET /runs/a") + '\0' + "../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  const std::vector<std::string> requests = {
      "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      "GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      "GET /runs/..%2f..%2fetc%2fpasswd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      "GET //etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      "GET /static/..%2f..%2f..%2fetc%2fpasswd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      "GET /api/runs/..%2f..%2f..%2fetc%2fpasswd/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      "GET /runs/%00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      nul};
  for (const std::string& request : requests) {
    const std::string raw = raw_http(port(), request);
    HttpAnswer a = parse_answer(raw);
    EXPECT_NE(a.status, 200) << request;
    EXPECT_EQ(raw.find("root:"), std::string::npos) << request;
  }
  EXPECT_EQ(http_get(port(), "/").status, 200) << "the server still answers";
}

TEST_F(Dashboard, OversizedAndMalformedRequestsRefused) {
  const std::string big_header = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(1 << 20, 'a') + "\r\n\r\n";
  HttpAnswer a = parse_answer(raw_http(port(), big_header));
  EXPECT_NE(a.status, 200) << a.head;
  std::string many_headers = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 2000; ++i) many_headers += "X-H" + std::to_string(i) + ": " + std::string(500, 'b') + "\r\n";
  a = parse_answer(raw_http(port(), many_headers + "\r\n"));
  EXPECT_NE(a.status, 200) << a.head;
  a = parse_answer(raw_http(port(), "POST /api/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n" +
                                        std::string(1 << 20, 'c')));
  EXPECT_NE(a.status, 200) << a.head;
  a = parse_answer(raw_http(port(), "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n" +
                                        std::string(1 << 20, 'c')));
  EXPECT_NE(a.status, 200) << a.head;
  for (const char* garbage : {"GARBAGE\r\n\r\n", "GET\r\n\r\n", "GET / HTTP/9.9 extra\r\n\r\n", "\x01\x02\x03\r\n\r\n"}) {
    a = parse_answer(raw_http(port(), garbage));
    EXPECT_TRUE(a.status == 0 || a.status == 400) << garbage << " -> " << a.head;
  }
  HttpAnswer after = http_get(port(), "/api/runs");
  EXPECT_EQ(after.status, 200) << "the server still answers";
}

TEST(DashboardProcess, SigtermStopsItWithExitZero) {
  Scratch s("dashboard_sigterm");
  write_file(s / "data.csv", frugal::testing::four_class_csv(40));
  write_file(s / "job.toml", kJob);
  ASSERT_EQ(s.frugal("train job.toml --quiet --out out --set train.epochs=1").exit_code, 0);
  DashboardServer server(s, {"--port", "0", "--store", "runs.db"});
  ASSERT_GT(server.port(), 0) << server.err();
  ASSERT_EQ(http_get(server.port(), "/").status, 200);
  double took = 0;
  EXPECT_EQ(server.stop(3.0, &took), 0) << server.err();
  EXPECT_LT(took, 2.0);
}

TEST(DashboardProcess, BadOptionsExitTwo) {
  Scratch s("dashboard_options");
  write_file(s / "not-a-store.db", "hello, not sqlite at all, but long enough to be read as a header....\n");
  for (const char* args : {"dashboard --store missing.db --port 0", "dashboard --store not-a-store.db --port 0",
                           "dashboard --port 70000", "dashboard --listen example.com --port 0",
                           "dashboard --listen 300.1.1.1 --port 0"}) {
    CommandResult r = s.frugal(args);
    EXPECT_EQ(r.exit_code, 2) << args << ": " << r.err;
  }
  EXPECT_FALSE(fs::exists(s / "missing.db"));
}

// A run that trains while the dashboard serves: its rows appear through ?after= and /metrics
// shows its step growing.
TEST(DashboardProcess, FollowsARunningRun) {
  Scratch s("dashboard_live");
  write_file(s / "data.csv", frugal::testing::four_class_csv(400));
  write_file(s / "job.toml", kJob);
  // The store exists before the dashboard starts (the long run below writes into it).
  ASSERT_EQ(s.frugal("train job.toml --quiet --out first --set train.epochs=1").exit_code, 0);
  DashboardServer server(s, {"--port", "0", "--store", "runs.db"});
  ASSERT_GT(server.port(), 0) << server.err();
  Process train(s, {"train", "job.toml", "--quiet", "--out", "live", "--set", "train.epochs=20000", "--set",
                    "train.log_every=1", "--set", "train.batch_size=4"},
                "live");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(40);
  std::string live_id;
  int64_t after = -1, first_step = -1, first_metric_step = -1, last_metric_step = -1;
  int fresh_answers = 0;
  while (std::chrono::steady_clock::now() < deadline && !train.done() && (fresh_answers < 3 || last_metric_step <= first_metric_step)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (live_id.empty()) {
      live_id = running_run_id(server.port());
      continue;
    }
    json rows = json::parse(http_get(server.port(), "/api/runs/" + live_id + "/metrics?after=" + std::to_string(after)).body,
                            nullptr, false);
    if (rows.is_object() && !rows["rows"].empty()) {
      if (after >= 0) EXPECT_GT(rows["rows"][0]["step"].get<int64_t>(), after);
      if (first_step < 0) first_step = rows["rows"][0]["step"].get<int64_t>();
      after = rows["last_step"].get<int64_t>();
      ++fresh_answers;
    }
    const std::string metrics = http_get(server.port(), "/metrics").body;
    const std::string key = "frugal_run_step{run_id=\"" + live_id + "\",name=\"tiny\"} ";
    const size_t at = metrics.find(key);
    if (at != std::string::npos) {
      const int64_t step = std::atoll(metrics.c_str() + at + key.size());
      if (first_metric_step < 0) first_metric_step = step;
      last_metric_step = step;
    }
  }
  train.kill_with(SIGKILL);
  train.wait();
  ASSERT_FALSE(live_id.empty()) << "the run never showed as running";
  EXPECT_GE(fresh_answers, 3) << "new rows after a step should keep arriving while the run trains";
  EXPECT_GT(last_metric_step, first_metric_step) << "frugal_run_step should grow";
  EXPECT_GT(after, first_step);
}

}  // namespace
}  // namespace frugal::e2e
