// A run killed with SIGKILL (no handler, no chance to record anything) shows as `interrupted` in
// `frugal runs`, not `running` forever, and `--resume auto` continues it from its newest checkpoint
// to `completed`. Limits: the kill lands wherever the run is after its first checkpoint.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "csv_data.h"
#include "e2e/cli_helpers.h"
#include "e2e/process.h"

namespace frugal::e2e {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Long enough (a few thousand steps) that the kill comes well before the end on a loaded machine.
const char* kJob =
    "[run]\nname = \"killed\"\nseed = 1\nthreads = 1\nstore = \"runs.db\"\n"
    "[data]\nkind = \"csv\"\ntrain = \"data.csv\"\nval_fraction = 0.1\n"
    "[model]\nkind = \"mlp\"\nhidden = [64]\n"
    "[train]\nepochs = 400\nbatch_size = 8\nlog_every = 1000\n"
    "[checkpoint]\nevery_steps = 20\nkeep = 2\n";

// The run store's runs as `frugal runs --json` lists them.
json list_runs(const Scratch& s) {
  CommandResult r = s.frugal("runs --json --store runs.db");
  if (r.exit_code != 0) return json::array();
  json runs = json::parse(last_line(r.out), nullptr, false);
  return runs.is_discarded() ? json::array() : runs;
}

TEST(Interrupted, KilledRunShowsInterruptedAndResumes) {
  Scratch s("interrupted_kill");
  write_file(s / "data.csv", frugal::testing::four_class_csv(200));
  write_file(s / "job.toml", kJob);
  Process p(s, {"train", "job.toml", "--quiet", "--json", "--out", "out"}, "first");
  // Running in the store, with a checkpoint written (so the resume has somewhere to start from).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  bool running = false;
  while (!running && !p.done() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (heartbeat_step(s / "out" / "checkpoints") < 45) continue;
    json runs = list_runs(s);
    running = runs.size() == 1 && runs[0].value("status", "") == "running";
  }
  ASSERT_TRUE(running) << "the run never showed as running with a checkpoint; stderr: " << p.err();
  p.kill_with(SIGKILL);
  p.wait();

  json runs = list_runs(s);
  ASSERT_EQ(runs.size(), 1u) << runs.dump();
  EXPECT_EQ(runs[0].value("status", ""), "interrupted") << runs.dump();
  const std::string run_id = runs[0].value("run_id", "");
  CommandResult table = s.frugal("runs --store runs.db");
  EXPECT_NE(table.out.find("interrupted"), std::string::npos) << table.out;

  CommandResult resumed = s.frugal("train job.toml --quiet --json --out out --resume auto");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  json summary = json::parse(last_line(resumed.out), nullptr, false);
  EXPECT_EQ(summary.value("status", ""), "completed") << resumed.out;
  runs = list_runs(s);
  bool completed = false;
  for (const json& run : runs) completed |= run.value("status", "") == "completed";
  EXPECT_TRUE(completed) << runs.dump();
  for (const json& run : runs) EXPECT_NE(run.value("status", ""), "running") << runs.dump();
  EXPECT_FALSE(run_id.empty());
}

}  // namespace
}  // namespace frugal::e2e
