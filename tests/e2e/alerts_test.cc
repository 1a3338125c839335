// Alerts end to end: `frugal train` on a tiny MLP with a webhook server in this process (127.0.0.1,
// any free port) and an on_alert command that appends each payload to a file: a budget warning and
// the run's end "stopped_budget"; a completed run's end; a webhook that is down (the run completes,
// exit 0, one warning line, bounded extra time); the user config file and the job's keys over it;
// bad [alerts] keys are exit 2 naming the key.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2e/cli_helpers.h"
#include "webhook_server.h"

namespace frugal::e2e {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

const char* kJob =
    "[run]\nname = \"alerts\"\nseed = 3\nthreads = 1\nstore = \"runs.db\"\n"
    "[data]\nkind = \"csv\"\ntrain = \"data.csv\"\nval_fraction = 0.1\n"
    "[model]\nkind = \"mlp\"\nhidden = [16]\n"
    "[optim]\nlr = 0.01\n"
    "[train]\nsteps = 12\nbatch_size = 16\nlog_every = 4\n"
    "[cost]\nusd_per_hour = 1.0\n";

// The webhook in this process; payloads(): each POSTed body as JSON.
class Webhook : public frugal::testing::WebhookServer {
 public:
  std::vector<json> payloads() {
    std::vector<json> out;
    for (const std::string& b : bodies()) out.push_back(json::parse(b));
    return out;
  }
};

// The scratch directory with the data, and FRUGAL_CONFIG pointing at a file of the test (an empty
// one unless the test writes it), so the user's own config does not take part.
Scratch make_scratch(const std::string& name, const std::string& alerts) {
  Scratch s(name);
  write_file(s / "data.csv", csv_rows(160));
  write_file(s / "job.toml", std::string(kJob) + alerts);
  write_file(s / "user.toml", "");
  setenv("FRUGAL_CONFIG", (s / "user.toml").c_str(), 1);
  return s;
}

// The on_alert file: one payload per line (the command appends the payload and a newline).
std::vector<json> hook_lines(const Scratch& s) {
  std::vector<json> out;
  std::istringstream in(read_file(s / "alerts.jsonl"));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

const char* kHook = "on_alert = \"cat >> alerts.jsonl; echo >> alerts.jsonl; echo $FRUGAL_ALERT_EVENT "
                    "$FRUGAL_ALERT_STATUS >> events.txt\"\n";

TEST(Alerts, BudgetWarningAndStoppedBudgetReachTheWebhookAndTheCommand) {
  Webhook hook;
  Scratch s = make_scratch("alerts_budget", "[budget]\nmax_usd = 0.001\n[alerts]\nwebhook = \"" + hook.url() + "\"\n" +
                                                kHook);
  CommandResult r = s.frugal("train job.toml --json --out run");
  ASSERT_EQ(r.exit_code, 3) << r.err;  // the 60 s billing minimum is over $0.001 at the first step
  const json summary = json::parse(last_line(r.out));
  std::vector<json> sent = hook.payloads();
  ASSERT_EQ(sent.size(), 2u) << r.err;
  EXPECT_EQ(sent[0]["event"], "budget_exceeded");
  EXPECT_EQ(sent[0]["status"], "running");
  EXPECT_EQ(sent[0]["budget"]["limit"], "max_usd");
  EXPECT_NE(sent[0]["message"].get<std::string>().find("budget exceeded: max_usd = $0.0010 reached"),
            std::string::npos)
      << sent[0].dump();
  EXPECT_EQ(sent[1]["event"], "run_end");
  EXPECT_EQ(sent[1]["status"], "stopped_budget");
  EXPECT_EQ(sent[1]["stop_reason"], "budget");
  for (const json& p : sent) {
    SCOPED_TRACE(p.dump());
    EXPECT_EQ(p["run_id"], summary["run_id"]);
    EXPECT_EQ(p["job"], "alerts");
    EXPECT_EQ(p["step"], 1);
    EXPECT_EQ(p["total_steps"], 12);
    EXPECT_GT(p["cost"]["usd"]["value"].get<double>(), 0.001);
    EXPECT_EQ(p["cost"]["usd"]["source"], "user");
    EXPECT_FALSE(p["cost"]["kwh"]["source"].get<std::string>().empty());
    EXPECT_EQ(p["time"].get<std::string>().size(), 20u);  // 2026-12-07T15:04:05Z
  }
  // The command hook got the same payloads, and the event and status in its environment.
  std::vector<json> lines = hook_lines(s);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], sent[0]);
  EXPECT_EQ(lines[1], sent[1]);
  EXPECT_EQ(read_file(s / "events.txt"), "budget_exceeded running\nrun_end stopped_budget\n");

  // Resumed with the same budget: it stops again at once, and the exceeded warning, in the
  // checkpoint's budget state, is not sent again; the run's end is.
  CommandResult again = s.frugal("train job.toml --json --out run --resume auto");
  ASSERT_EQ(again.exit_code, 3) << again.err;
  sent = hook.payloads();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[2]["event"], "run_end");
  EXPECT_EQ(sent[2]["status"], "stopped_budget");
}

TEST(Alerts, ACompletedRunSendsItsEnd) {
  Webhook hook;
  Scratch s = make_scratch("alerts_completed", "[alerts]\nwebhook = \"" + hook.url() + "\"\n");
  CommandResult r = s.frugal("train job.toml --json --out run");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json summary = json::parse(last_line(r.out));
  std::vector<json> sent = hook.payloads();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0]["event"], "run_end");
  EXPECT_EQ(sent[0]["status"], "completed");
  EXPECT_EQ(sent[0]["step"], 12);
  EXPECT_EQ(sent[0]["run_id"], summary["run_id"]);
  EXPECT_EQ(sent[0]["cost"]["usd"]["value"], summary["cost"]["usd"]["value"]);
  EXPECT_NE(sent[0]["message"].get<std::string>().find("run completed (finished) at step 12 of 12"), std::string::npos);
}

TEST(Alerts, AWebhookThatIsDownDoesNotStopTraining) {
  std::string url;
  {
    Webhook gone;  // bound, then stopped: nothing listens on its port now
    url = gone.url();
  }
  Scratch s = make_scratch("alerts_down", "[alerts]\nwebhook = \"" + url + "\"\nretries = 4\nflush_timeout_s = 1\n");
  const Clock::time_point start = Clock::now();
  CommandResult r = s.frugal("train job.toml --json --out run");
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json summary = json::parse(last_line(r.out));
  EXPECT_EQ(summary["status"], "completed");
  EXPECT_NE(r.err.find("frugal: warning: 1 alert(s) not delivered within [alerts] flush_timeout_s = 1 s; giving up"),
            std::string::npos)
      << r.err;
  // The run's own time plus about the flush timeout, not the 0.5 + 1 + 2 + 4 s of backoff.
  EXPECT_LT(elapsed, summary["wall_s"].get<double>() + 4.0) << r.err;
}

TEST(Alerts, TheUserConfigAppliesAndTheJobsKeysWin) {
  Scratch s = make_scratch("alerts_user", "");
  write_file(s / "user.toml", "[other]\nx = 1\n[alerts]\non_alert = \"cat >> user.jsonl; echo >> user.jsonl\"\n");
  CommandResult r = s.frugal("train job.toml --json --out a");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(read_file(s / "user.jsonl").find("\"run_end\""), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(s / "alerts.jsonl"));
  write_file(s / "job.toml", std::string(kJob) + "[alerts]\n" + kHook);
  r = s.frugal("train job.toml --json --out b");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(hook_lines(s).size(), 1u);
  const std::string user_lines = read_file(s / "user.jsonl");
  EXPECT_EQ(std::count(user_lines.begin(), user_lines.end(), '\n'), 1) << "the job's on_alert replaced the user's";

  write_file(s / "user.toml", "[alerts]\nretry = 3\n");
  r = s.frugal("train job.toml --json --out c");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find((s / "user.toml").string() + ":2: unknown key 'retry' in [alerts] (allowed: webhook, on_alert, retries,"),
            std::string::npos)
      << r.err;
}

TEST(Alerts, BadKeysAreExit2NamingTheKey) {
  Scratch s = make_scratch("alerts_bad", "");
  const std::pair<const char*, const char*> cases[] = {
      {"webhook = \"ftp://example.com/x\"", "[alerts] webhook = \"ftp://example.com/x\": expected an http:// or https:// URL"},
      {"retries = -1", "[alerts] retries = -1: expected an integer in [0, 20]"},
      {"flush_timeout_s = 0", "[alerts] flush_timeout_s = 0: expected a number in (0, 86400]"},
      {"hook = \"x\"", "unknown key 'hook' in [alerts]"}};
  for (const auto& [line, expected] : cases) {
    SCOPED_TRACE(line);
    write_file(s / "job.toml", std::string(kJob) + "[alerts]\n" + line + "\n");
    CommandResult r = s.frugal("train job.toml --out run");
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("job.toml:22: " + std::string(expected)), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(s / "run" / "metrics.jsonl")) << "refused before anything is written";
  }
}

}  // namespace
}  // namespace frugal::e2e
