// Alerts on the loop's events through a real Trainer: a run that an error ends mid-way (a technique
// throwing at a step) sends its end with status "failed" and the error, and the error still reaches
// the caller; the run_failed event reaches the techniques in order, and a technique throwing there
// does not replace the run's own error.
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "frugal/base/error.h"
#include "unit/train/run_fixture.h"

namespace frugal::train {
namespace {

using testing::RunFixture;

const char* kSections =
    "[model]\nkind = \"mlp\"\nhidden = [8]\n[optim]\nkind = \"sgd\"\nlr = 0.1\n"
    "[train]\nsteps = 6\nbatch_size = 16\nlog_every = 3\n";

// Throws at step_end of `step`; records run_failed; optionally throws there too.
class Breaker : public Technique {
 public:
  Breaker(int64_t step, std::vector<std::string>* seen, bool throw_on_failed)
      : step_(step), seen_(seen), throw_on_failed_(throw_on_failed) {}
  std::string name() const override { return "breaker"; }
  EventSet events() const override { return event_set({Event::step_end, Event::run_failed}); }
  void on(Event event, TrainState& state) override {
    if (event == Event::step_end && state.step == step_) throw IoError("disk gone at step " + std::to_string(step_));
    if (event == Event::run_failed) {
      seen_->push_back(state.error);
      if (throw_on_failed_) throw InternalError("a second error");
    }
  }

 private:
  int64_t step_;
  std::vector<std::string>* seen_;
  bool throw_on_failed_;
};

TEST(Alerts, ARunEndedByAnErrorSendsFailedWithTheError) {
  RunFixture f("alerts-failed", 190, kSections);
  const std::string out = (f.dir() / "alerts.jsonl").string();
  std::ofstream(f.dir() / "user.toml") << "[alerts]\non_alert = \"cat >> '" + out + "'; echo >> '" + out + "'\"\n";
  setenv("FRUGAL_CONFIG", (f.dir() / "user.toml").c_str(), 1);
  std::vector<std::string> seen;
  {
    Trainer trainer(f.job(), f.options("run"));
    trainer.add_technique(std::make_unique<Breaker>(4, &seen, /*throw_on_failed=*/true));
    EXPECT_THROW(
        {
          try {
            trainer.run();
          } catch (const IoError& e) {
            EXPECT_STREQ(e.what(), "disk gone at step 4") << "the run's own error, not the one at run_failed";
            throw;
          }
        },
        IoError);
  }  // the trainer's techniques end here: the alert sender delivers what is queued
  unsetenv("FRUGAL_CONFIG");
  ASSERT_EQ(seen, std::vector<std::string>{"disk gone at step 4"});
  std::ifstream in(out);
  std::string line;
  ASSERT_TRUE(std::getline(in, line)) << "no alert";
  const nlohmann::json payload = nlohmann::json::parse(line);
  EXPECT_EQ(payload["event"], "run_end");
  EXPECT_EQ(payload["status"], "failed");
  EXPECT_EQ(payload["error"], "disk gone at step 4");
  EXPECT_EQ(payload["step"], 4);
  EXPECT_EQ(payload["total_steps"], 6);
  EXPECT_EQ(payload["job"], "t");
  EXPECT_NE(payload["message"].get<std::string>().find("run failed at step 4: disk gone at step 4"), std::string::npos);
  EXPECT_FALSE(std::getline(in, line)) << "one alert: " << line;
}

}  // namespace
}  // namespace frugal::train
