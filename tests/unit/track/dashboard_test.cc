// Dashboard routes without a socket: pages and API answers from a temporary store, run ids from
// paths validated before the store sees them, Prometheus label escaping and totals, the loopback
// test of --listen.
#include "frugal/track/dashboard.h"

#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "frugal/base/error.h"

namespace frugal::track {
namespace {

using json = nlohmann::json;

class DashboardRoutes : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "frugal_dashboard_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/runs.db";
    RunStore writer(path_);
    done_ = writer.create_run({"done", "[run]\nname = \"done\"\n", "out", "h1"});
    writer.log_metrics(done_, 1, "train", R"({"step":1,"loss":2.5,"samples_per_s":100,"time_s":0.5})");
    writer.log_metrics(done_, 2, "eval", R"({"step":2,"val_loss":1.5,"val_accuracy":0.5,"time_s":1.0})");
    writer.finish_run(done_, "completed",
                      R"({"steps":2,"wall_s":1.25,"metrics":{"val_accuracy":0.5},)"
                      R"("cost":{"usd":{"value":0.25,"source":"catalog"},"kwh":{"value":0.5,"source":"estimated"},)"
                      R"("co2_kg":{"value":0.125,"source":"estimated"}}})");
    live_ = writer.create_run({"live \"one\"", "", "out2", "h2"});  // this process: "running"
    writer.log_metrics(live_, 7, "train",
                       R"({"step":7,"loss":1.75,"samples_per_s":50,"tokens_per_s":800,"time_s":3,)"
                       R"("cost":{"usd":{"value":0.5,"source":"catalog"}}})");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  DashboardReply get(const std::string& path, std::multimap<std::string, std::string> query = {}) {
    RunStore store(path_, RunStore::Access::read_only);
    return dashboard_reply(store, path, query);
  }

  std::string dir_, path_, done_, live_;
};

TEST_F(DashboardRoutes, PagesListRunsRunningFirst) {
  DashboardReply index = get("/");
  EXPECT_EQ(index.status, 200);
  const size_t live_at = index.body.find("/runs/" + live_), done_at = index.body.find("/runs/" + done_);
  ASSERT_NE(live_at, std::string::npos) << index.body;
  ASSERT_NE(done_at, std::string::npos) << index.body;
  EXPECT_LT(live_at, done_at) << "running runs come first";
  EXPECT_NE(index.body.find("$0.25"), std::string::npos) << index.body;  // base/units
  EXPECT_NE(index.body.find("live &quot;one&quot;"), std::string::npos) << "names are escaped";
  EXPECT_NE(index.body.find("data-poll=\"/fragment\""), std::string::npos);

  DashboardReply run = get("/runs/" + done_);
  EXPECT_EQ(run.status, 200);
  EXPECT_NE(run.body.find(done_), std::string::npos);
  DashboardReply live = get("/runs/" + live_.substr(0, 6));  // a unique prefix
  EXPECT_EQ(live.status, 200);
  EXPECT_NE(live.body.find("data-poll=\"/runs/" + live_ + "/fragment\""), std::string::npos) << live.body;
  DashboardReply fragment = get("/runs/" + live_ + "/fragment");
  EXPECT_EQ(fragment.status, 200);
  EXPECT_EQ(fragment.body.find("<html"), std::string::npos);
}

TEST_F(DashboardRoutes, ApiAnswersJson) {
  json runs = json::parse(get("/api/runs").body);
  ASSERT_EQ(runs["runs"].size(), 2u);
  EXPECT_EQ(runs["runs"][0]["run_id"], live_);
  EXPECT_EQ(runs["runs"][0]["step"], 7);
  EXPECT_EQ(runs["runs"][1]["usd"]["value"], 0.25);
  EXPECT_EQ(runs["runs"][1]["quality"]["key"], "val_accuracy");
  json one = json::parse(get("/api/runs/" + done_).body);
  EXPECT_EQ(one["summary"]["steps"], 2);
  json rows = json::parse(get("/api/runs/" + done_ + "/metrics", {{"after", "1"}}).body);
  ASSERT_EQ(rows["rows"].size(), 1u);
  EXPECT_EQ(rows["rows"][0]["step"], 2);
  EXPECT_EQ(rows["last_step"], 2);
  EXPECT_EQ(get("/api/runs/" + done_ + "/metrics", {{"after", "1x"}}).status, 400);
  EXPECT_EQ(get("/api/runs/nope").status, 404);
  EXPECT_EQ(get("/api/runs/" + done_ + "/other").status, 404);
}

TEST_F(DashboardRoutes, NothingOutsideTheRoutes) {
  for (const char* path : {"/../../etc/passwd", "/runs/../../etc/passwd", "/runs/..", "/runs/.", "/runs/",
                           "/runs/a%2fb", "/static/../run_store.cc", "//etc/passwd", "/etc/passwd", "/runs/x/y/z",
                           "/api/runs/../../", "", "relative"}) {
    DashboardReply r = get(path);
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_EQ(r.body.find("root:"), std::string::npos) << path;
  }
  EXPECT_EQ(get(std::string("/runs/a\0b", 9)).status, 404);
  EXPECT_FALSE(valid_run_id(std::string(129, 'a')));
  EXPECT_TRUE(valid_run_id(std::string(128, 'a')));
  EXPECT_FALSE(valid_run_id("a/b"));
  EXPECT_FALSE(valid_run_id(".."));
  EXPECT_TRUE(valid_run_id("mlp-20240501-123456-0a1b"));
}

TEST_F(DashboardRoutes, MetricsText) {
  DashboardReply r = get("/metrics");
  EXPECT_EQ(r.content_type.rfind("text/plain; version=0.0.4", 0), 0u);
  EXPECT_NE(r.body.find("frugal_runs{status=\"completed\"} 1\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("frugal_runs{status=\"running\"} 1\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("frugal_cost_usd_total 0.75\n"), std::string::npos) << r.body;  // 0.25 done + 0.5 so far
  EXPECT_NE(r.body.find("frugal_energy_kwh_total 0.5\n"), std::string::npos) << r.body;
  const std::string labels = "{run_id=\"" + live_ + "\",name=\"live \\\"one\\\"\"}";
  EXPECT_NE(r.body.find("frugal_run_step" + labels + " 7\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("frugal_run_loss" + labels + " 1.75\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("frugal_run_tokens_per_second" + labels + " 800\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("frugal_run_cost_usd" + labels + " 0.5\n"), std::string::npos) << r.body;
  EXPECT_EQ(prometheus_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
}

TEST_F(DashboardRoutes, ReadOnlyStoreRefusesWhatIsNotAStore) {
  EXPECT_THROW(RunStore(dir_ + "/missing.db", RunStore::Access::read_only), InputError);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/missing.db")) << "a read-only open creates nothing";
}

TEST(DashboardAddresses, Loopback) {
  EXPECT_TRUE(is_loopback_address("127.0.0.1"));
  EXPECT_TRUE(is_loopback_address("127.1.2.3"));
  EXPECT_TRUE(is_loopback_address("::1"));
  EXPECT_TRUE(is_loopback_address("::ffff:127.0.0.1"));
  EXPECT_FALSE(is_loopback_address("0.0.0.0"));
  EXPECT_FALSE(is_loopback_address("::"));
  EXPECT_FALSE(is_loopback_address("localhost"));
  EXPECT_TRUE(is_ip_address("10.0.0.1"));
  EXPECT_FALSE(is_ip_address("example.com"));
  EXPECT_FALSE(is_ip_address("1.2.3"));
}

}  // namespace
}  // namespace frugal::track

namespace frugal::track {
namespace {

DashboardReply reply_with(int status, const std::string& body) {
  DashboardReply r;
  r.status = status;
  r.body = body;
  return r;
}

TEST(DashboardReplyCache, ReusesA200AnswerForItsPathAndQueryUntilItIsOld) {
  ReplyCache cache(0.2);
  const std::string key = ReplyCache::key("/api/runs/r1/metrics", {{"after", "5"}});
  EXPECT_NE(key, ReplyCache::key("/api/runs/r1/metrics", {{"after", "6"}}));  // the query is part of it
  EXPECT_NE(key, ReplyCache::key("/api/runs/r1/metrics", {}));
  DashboardReply out;
  EXPECT_FALSE(cache.get(key, out));
  cache.put(key, reply_with(200, "rows after 5"));
  ASSERT_TRUE(cache.get(key, out));
  EXPECT_EQ(out.body, "rows after 5");
  EXPECT_FALSE(cache.get(ReplyCache::key("/api/runs/r1/metrics", {{"after", "6"}}), out));
  usleep(250 * 1000);  // past the 0.2 s: made again
  EXPECT_FALSE(cache.get(key, out));
}

TEST(DashboardReplyCache, KeepsOnly200AnswersAndStaysBounded) {
  ReplyCache cache(60);
  DashboardReply out;
  cache.put("/runs/nosuch", reply_with(404, "not found"));
  cache.put("/metrics", reply_with(503, "busy"));
  EXPECT_FALSE(cache.get("/runs/nosuch", out));
  EXPECT_FALSE(cache.get("/metrics", out));
  for (size_t i = 0; i < ReplyCache::kMaxEntries + 10; ++i) cache.put("/p" + std::to_string(i), reply_with(200, "x"));
  EXPECT_LE(cache.size(), ReplyCache::kMaxEntries);
  ReplyCache off(0);  // cache_s = 0: nothing kept
  off.put("/metrics", reply_with(200, "m"));
  EXPECT_FALSE(off.get("/metrics", out));
}

}  // namespace
}  // namespace frugal::track
