// The C++ example (examples/cpp: a model and a technique defined outside frugal, trained through
// frugal's loop) killed at random moments with SIGKILL and SIGTERM and resumed each time ends
// byte-identical to an uninterrupted run: the model, and the technique's own state (the moving
// average of the weights, ema.safetensors). Limits: kill timing is random; the checks are not.
#include <chrono>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "csv_data.h"
#include "e2e/cli_helpers.h"
#include "e2e/process.h"

namespace frugal::e2e {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const char* kJob =
    "[run]\nname = \"ema\"\nseed = 5\nthreads = 1\nstore = \"runs.db\"\n"
    "[data]\nkind = \"csv\"\ntrain = \"data.csv\"\nval_fraction = 0.1\ntest_fraction = 0.1\n"
    "[model]\nkind = \"custom\"\n"
    "[optim]\nlr = 0.003\n"
    "[train]\nepochs = 4\nbatch_size = 16\ngrad_accum = 2\nlog_every = 10\neval_every = 25\n"
    "[checkpoint]\nevery_steps = 4\nkeep = 2\n";

std::vector<std::string> args(const std::string& out, bool resume) {
  std::vector<std::string> a = {"job.toml", "--out", out, "--decay", "0.95"};
  if (resume) a.insert(a.end(), {"--resume", "auto"});
  return a;
}

TEST(EmaExample, KilledAndResumedEndsByteIdenticalIncludingTheTechniqueState) {
#ifndef FRUGAL_EXAMPLE_BINARY
  GTEST_SKIP() << "examples/cpp is not built (FRUGAL_BUILD_EXAMPLES=OFF)";
#else
  Scratch s("ema-example");
  write_file(s / "data.csv", testing::four_class_csv(1500));
  write_file(s / "job.toml", kJob);

  Process reference(s, args("ref", false), "ref", FRUGAL_EXAMPLE_BINARY);
  int status = reference.wait();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << reference.err();
  json ref = json::parse(last_line(reference.out()));
  const int64_t steps = ref["steps"];
  ASSERT_GT(steps, 100);
  ASSERT_TRUE(ref["techniques"]["ema"].contains("test_accuracy")) << ref.dump();

  // Kill k lands at a random step of the k-th slice of the run, a random moment into it.
  std::mt19937_64 random(std::random_device{}());
  const int signals[] = {SIGKILL, SIGTERM, SIGKILL, SIGKILL, SIGTERM, SIGKILL};
  const int kills = int(std::size(signals));
  const fs::path checkpoints = s / "run" / "checkpoints";
  int interrupted = 0;
  for (int k = 0; k <= kills; ++k) {
    const int64_t launch = heartbeat_step(checkpoints);
    Process p(s, args("run", k > 0), std::to_string(k), FRUGAL_EXAMPLE_BINARY);
    if (k == kills) {
      status = p.wait();
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << p.err();
      json summary = json::parse(last_line(p.out()));
      EXPECT_EQ(summary["metrics"], ref["metrics"]);
      EXPECT_EQ(summary["techniques"]["ema"], ref["techniques"]["ema"]);
      EXPECT_GE(summary["interruptions"].get<int64_t>(), 3);
      break;
    }
    const double slice = double(steps) / double(kills + 1);
    const int64_t target = std::max(launch + 1,
        int64_t(slice * (double(k) + std::uniform_real_distribution<double>(0.3, 0.9)(random))));
    while (!p.done() && heartbeat_step(checkpoints) < target) std::this_thread::sleep_for(std::chrono::microseconds(200));
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 3000)(random)));
    p.kill_with(signals[k]);
    status = p.wait();
    ASSERT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the run finished before kill " << k << " landed";
    if (signals[k] == SIGTERM) EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 75) << p.err();
    ++interrupted;
  }
  EXPECT_EQ(interrupted, kills);
  for (const char* file : {"model.safetensors", "ema.safetensors"}) {
    std::string a = read_file(s / "ref" / file), b = read_file(s / "run" / file);
    ASSERT_FALSE(a.empty()) << file;
    EXPECT_TRUE(a == b) << file << " of the interrupted run differs from the uninterrupted run's";
  }
#endif
}

}  // namespace
}  // namespace frugal::e2e
