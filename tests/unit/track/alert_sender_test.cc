// The alert sender against a webhook server in this process (127.0.0.1, any free port) that fails
// the first N requests with 500: retries, their backoff order, the payload as sent, the command
// hook's stdin and environment, a dead endpoint that does not hold the caller past the flush
// timeout, a bounded queue, and bad URLs refused.
#include "frugal/track/alert_sender.h"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "frugal/base/error.h"
#include "webhook_server.h"

namespace frugal::track {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

using Webhook = frugal::testing::WebhookServer;

// Warning lines the sender reports, collected for the test.
struct Warnings {
  std::mutex mutex;
  std::vector<std::string> lines;
  std::function<void(const std::string&)> sink() {
    return [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(mutex);
      lines.push_back(line);
    };
  }
  std::vector<std::string> all() {
    std::lock_guard<std::mutex> lock(mutex);
    return lines;
  }
};

Alert alert(const std::string& event, const std::string& json) { return {event, "run-1", "running", json}; }

TEST(AlertSender, RetriesWithDoublingBackoffThenDeliversThePayload) {
  Webhook hook(/*failures=*/3);
  AlertConfig config;
  config.webhook = hook.url();
  config.retries = 4;
  config.backoff_s = 0.1;  // waits 0.1, 0.2, 0.4 before attempts 2, 3, 4
  Warnings warnings;
  AlertSender sender(config, warnings.sink());
  const std::string payload = R"({"event":"budget_threshold","run_id":"run-1","message":"50% of max_usd"})";
  const Clock::time_point start = Clock::now();
  sender.send(alert("budget_threshold", payload));
  EXPECT_LT(seconds_since(start), 0.05) << "send() returns at once";
  ASSERT_TRUE(sender.flush(10));
  const std::vector<Clock::time_point> times = hook.times();
  ASSERT_EQ(times.size(), 4u) << "three 500s, then delivered on the fourth attempt";
  for (const std::string& body : hook.bodies()) EXPECT_EQ(body, payload);
  EXPECT_EQ(hook.events()[0], "budget_threshold");
  const double expected[] = {0.1, 0.2, 0.4};
  for (size_t i = 1; i < times.size(); ++i) {
    const double gap = std::chrono::duration<double>(times[i] - times[i - 1]).count();
    EXPECT_GE(gap, expected[i - 1] * 0.95) << "attempt " << i + 1;
    EXPECT_LT(gap, expected[i - 1] + 0.5) << "attempt " << i + 1;
  }
  const AlertStats stats = sender.stats();
  EXPECT_EQ(stats.webhook_attempts, 4);
  EXPECT_EQ(stats.webhook_delivered, 1);
  EXPECT_EQ(stats.webhook_failed, 0);
  EXPECT_TRUE(warnings.all().empty());
}

TEST(AlertSender, GivesUpAfterTheRetriesWithOneWarning) {
  Webhook hook(/*failures=*/100);
  AlertConfig config;
  config.webhook = hook.url();
  config.retries = 2;
  config.backoff_s = 0.05;
  Warnings warnings;
  {
    AlertSender sender(config, warnings.sink());
    sender.send(alert("run_end", "{}"));
    ASSERT_TRUE(sender.flush(10));
    EXPECT_EQ(sender.stats().webhook_attempts, 3);
    EXPECT_EQ(sender.stats().webhook_failed, 1);
  }
  EXPECT_EQ(hook.times().size(), 3u);
  const std::vector<std::string> lines = warnings.all();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("alert run_end not delivered to " + hook.url() + " after 3 attempts (last: HTTP 500)"),
            std::string::npos)
      << lines[0];
}

// Nothing listens on the port (a server bound and stopped frees it): every attempt is refused, and
// the destructor gives up after flush_timeout_s instead of the 0.5 + 1 + 2 + 4 s of backoff.
TEST(AlertSender, ADeadEndpointHoldsTheCallerAtMostTheFlushTimeout) {
  std::string url;
  {
    Webhook gone(0);
    url = gone.url();
  }
  AlertConfig config;
  config.webhook = url;
  config.retries = 4;
  config.timeout_s = 1;
  config.flush_timeout_s = 0.5;
  Warnings warnings;
  const Clock::time_point start = Clock::now();
  {
    AlertSender sender(config, warnings.sink());
    sender.send(alert("run_end", "{}"));
    EXPECT_LT(seconds_since(start), 0.05);
  }
  const double held = seconds_since(start);
  EXPECT_GE(held, 0.45);
  EXPECT_LT(held, 1.5) << "the destructor waits flush_timeout_s, not the whole backoff";
  const std::vector<std::string> lines = warnings.all();
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines.back().find("1 alert(s) not delivered within [alerts] flush_timeout_s = 0.5 s"), std::string::npos)
      << lines.back();
}

TEST(AlertSender, AFullQueueDropsTheOldest) {
  // A command hook that blocks until a file appears keeps the first alert in delivery.
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "frugal-alert-queue";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string gate = (dir / "go").string(), log = (dir / "log").string();
  AlertConfig config;
  config.on_alert = "while [ ! -e '" + gate + "' ]; do sleep 0.01; done; cat >> '" + log + "'; echo >> '" + log + "'";
  config.queue_capacity = 2;
  AlertSender sender(config, [](const std::string&) {});
  sender.send(alert("a", "first"));
  // Wait until the first is taken off the queue (its command waits for the gate), then queue three.
  for (int i = 0; i < 1000 && sender.stats().waiting > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(sender.stats().waiting, 0);
  sender.send(alert("b", "second"));
  sender.send(alert("c", "third"));
  sender.send(alert("d", "fourth"));
  EXPECT_EQ(sender.stats().dropped, 1);
  std::ofstream(gate).put('\n');
  ASSERT_TRUE(sender.flush(10));
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, "first\nthird\nfourth\n") << "at most 2 wait; the oldest waiting (second) went";
}

TEST(AlertSender, CommandHookGetsThePayloadOnStdinAndTheFieldsInItsEnvironment) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "frugal-alert-command";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string out = (dir / "out").string();
  AlertConfig config;
  config.on_alert = "cat > '" + out + "'; echo \"$FRUGAL_ALERT_EVENT $FRUGAL_RUN_ID $FRUGAL_ALERT_STATUS\" >> '" + out +
                    "'";
  Warnings warnings;
  {
    AlertSender sender(config, warnings.sink());
    sender.send({"run_end", "run-7", "completed", R"({"event":"run_end"})"});
  }
  std::ifstream in(out);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, "{\"event\":\"run_end\"}run_end run-7 completed\n");
  EXPECT_TRUE(warnings.all().empty());
}

TEST(AlertSender, AFailingOrHangingCommandIsAWarning) {
  AlertConfig config;
  config.on_alert = "exit 3";
  Warnings warnings;
  {
    AlertSender sender(config, warnings.sink());
    sender.send(alert("run_end", "{}"));
  }
  ASSERT_EQ(warnings.all().size(), 1u);
  EXPECT_NE(warnings.all()[0].find("on_alert command exited with status 3"), std::string::npos) << warnings.all()[0];

  config.on_alert = "sleep 30";
  config.command_timeout_s = 0.2;
  Warnings slow;
  const Clock::time_point start = Clock::now();
  {
    AlertSender sender(config, slow.sink());
    sender.send(alert("run_end", "{}"));
  }
  EXPECT_LT(seconds_since(start), 3.0);
  ASSERT_EQ(slow.all().size(), 1u);
  EXPECT_NE(slow.all()[0].find("killed after 0.2 s"), std::string::npos) << slow.all()[0];
}

TEST(AlertSender, RefusesAWebhookThatIsNotAnHttpUrl) {
  for (const char* url : {"ftp://example.com/x", "example.com/hook", "http://", "http:// spaced/"}) {
    AlertConfig config;
    config.webhook = url;
    EXPECT_THROW(AlertSender sender(config), InputError) << url;
    EXPECT_FALSE(webhook_url_problem(url).empty()) << url;
  }
  EXPECT_EQ(webhook_url_problem("https://hooks.example.com:8443/a/b?x=1"), "");
  EXPECT_EQ(webhook_url_problem("http://127.0.0.1:9"), "");
}

}  // namespace
}  // namespace frugal::track
