// fp16-mixed training end to end through the real binary: a short Fashion-MNIST MLP run lands close
// to the same run in fp32 (and is not identical to it), a loss scale forced too high overflows,
// skips steps, backs off and still trains, the [precision] loss-scaling keys are validated, and a
// run resumed from a mid-run checkpoint (taken while the scale is still moving) ends byte-identical.
#include <algorithm>
#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "e2e/cli_helpers.h"

namespace frugal::e2e {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
const char* kFashion = kFashionDir;

std::string fashion_job(const std::string& precision) { return fashion_mlp_precision_job("fp16", precision); }

TEST(Fp16, FashionMlpCloseToFp32) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  Scratch s("fp16-vs-fp32");
  write_file(s / "fp16.toml", fashion_job("mode = \"fp16-mixed\"\n"));
  write_file(s / "fp32.toml", fashion_job("mode = \"fp32\"\n"));
  json fp16 = run_json(s, "train fp16.toml --json --out out16");
  json fp32 = run_json(s, "train fp32.toml --json --out out32");
  const double acc16 = fp16["metrics"]["test_accuracy"], acc32 = fp32["metrics"]["test_accuracy"];
  EXPECT_GT(acc32, 0.70);
  EXPECT_NEAR(acc16, acc32, 0.02) << "fp16-mixed should train like fp32";
  // The runs differ (the mode is active), and only the fp16 one reports loss scaling: the default
  // scale 65536 never overflows this small model's gradients.
  EXPECT_NE(fp16["metrics"]["test_loss"], fp32["metrics"]["test_loss"]);
  ASSERT_TRUE(fp16.contains("loss_scaling")) << fp16.dump();
  EXPECT_FALSE(fp32.contains("loss_scaling"));
  const json& ls = fp16["loss_scaling"];
  EXPECT_EQ(ls["init_scale"], 65536.0);
  EXPECT_EQ(ls["final_scale"], 65536.0);
  EXPECT_EQ(ls["skipped_steps"], 0);
  EXPECT_EQ(ls["growth_interval"], 2000);
}

TEST(Fp16, ForcedOverflowSkipsStepsBacksOffAndStillTrains) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  Scratch s("fp16-overflow");
  // Gradients of the loss times 1e12 pass f16's 65504 in the first backward matmul.
  write_file(s / "job.toml", fashion_job("mode = \"fp16-mixed\"\nloss_scale_init = 1e12\nloss_scale_growth_interval = 40\n"));
  CommandResult r;
  json summary = run_json(s, "train job.toml --json --out out", &r);
  const json& ls = summary["loss_scaling"];
  const int64_t skipped = ls["skipped_steps"];
  EXPECT_GT(skipped, 10);  // 1e12 halves at least 18 times before gradients fit in f16
  EXPECT_LT(skipped, 75);
  EXPECT_LT(ls["final_scale"].get<double>(), 1e12);
  EXPECT_EQ(ls["init_scale"], 1e12);
  EXPECT_EQ(ls["growth_interval"], 40);
  EXPECT_EQ(summary["steps"], 150);  // skipped steps still count as steps, as with GradScaler
  EXPECT_GT(summary["metrics"]["test_accuracy"].get<double>(), 0.70);
  EXPECT_NE(r.err.find("fp16: overflow at step 1, loss scale now 5e+11; step skipped"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("further overflows are only counted"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("fp16: overflow at step 6,"), std::string::npos) << "only the first few overflows print";
}

TEST(Fp16, LossScalingKeysAreValidated) {
  Scratch s("fp16-job-errors");
  std::string head = "[data]\nkind = \"csv\"\ntrain = \"missing.csv\"\n[model]\nkind = \"mlp\"\n[train]\nsteps = 1\n";
  struct Bad {
    std::string precision;
    std::vector<std::string> parts;
  };
  const std::vector<Bad> cases = {
      {"mode = \"fp16-mixed\"\nloss_scale_init = -1.0\n", {"job.toml:10", "loss_scale_init = -1", "(0, "}},
      {"mode = \"fp16-mixed\"\nloss_scale_init = \"big\"\n", {"job.toml:10", "loss_scale_init", "expected a number"}},
      {"mode = \"fp16-mixed\"\nloss_scale_growth_interval = 0\n", {"job.toml:10", "loss_scale_growth_interval = 0"}},
      {"mode = \"fp16-mixed\"\nloss_scale_growth_factor = 1.0\n", {"job.toml:10", "loss_scale_growth_factor", "(1, "}},
      {"mode = \"fp16-mixed\"\nloss_scale_backoff_factor = 1.0\n", {"job.toml:10", "loss_scale_backoff_factor", "(0, 1)"}},
      {"mode = \"fp16-mixed\"\nloss_scale_backoff_factor = 0\n", {"job.toml:10", "loss_scale_backoff_factor"}},
      {"mode = \"fp16-mixed\"\nloss_scale_grow_interval = 10\n", {"job.toml:10", "unknown key 'loss_scale_grow_interval'"}},
      {"loss_scale_init = 1024.0\n", {"job.toml:9", "loss_scale_init", "fp16-mixed", "\"fp32\""}},
      {"mode = \"bf16-mixed\"\nloss_scale_growth_interval = 100\n",
       {"job.toml:10", "loss_scale_growth_interval", "fp16-mixed", "\"bf16-mixed\""}},
  };
  for (const Bad& c : cases) {
    write_file(s / "job.toml", head + "[precision]\n" + c.precision);
    CommandResult r = s.frugal("train job.toml --out out");
    EXPECT_EQ(r.exit_code, 2) << c.precision << r.err;
    for (const std::string& part : c.parts) EXPECT_NE(r.err.find(part), std::string::npos) << part << " in: " << r.err;
    EXPECT_FALSE(fs::exists(s / "out")) << "nothing is written for a bad job";
  }
}

// Resuming from a checkpoint taken while the scale is still backing off and growing restores the
// scaler: the resumed run ends with the same weights, byte for byte, and the same loss scaling.
TEST(Fp16, ResumeFromMidRunCheckpointIsByteIdentical) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  Scratch s("fp16-resume");
  write_file(s / "job.toml", fashion_job("mode = \"fp16-mixed\"\nloss_scale_init = 1e12\nloss_scale_growth_interval = 7\n"
                                         "\n[checkpoint]\nevery_steps = 15\nkeep = 20\n"));
  json whole = run_json(s, "train job.toml --json --out whole");
  ASSERT_GT(whole["loss_scaling"]["skipped_steps"].get<int64_t>(), 0);
  // The checkpoints of the uninterrupted run; resume from the one of step 30 (scale still falling)
  // and from the one of step 90 (scale cycling: growth every 7 good steps, then an overflow).
  std::vector<std::pair<long, fs::path>> by_step;  // checkpoint-<step>.fck
  for (const auto& e : fs::directory_iterator(s / "whole" / "checkpoints"))
    if (e.path().extension() == ".fck") by_step.emplace_back(std::stol(e.path().stem().string().substr(11)), e.path());
  std::sort(by_step.begin(), by_step.end());
  std::vector<fs::path> checkpoints;
  for (const auto& [step, path] : by_step) checkpoints.push_back(path);
  ASSERT_GE(checkpoints.size(), 6u);
  const std::string expected = read_file(s / "whole" / "model.safetensors");
  ASSERT_FALSE(expected.empty());
  for (size_t index : {size_t(1), size_t(5)}) {
    const std::string out = "resumed" + std::to_string(index);
    fs::create_directories(s / "saved");
    const fs::path copy = s / "saved" / checkpoints[index].filename();
    fs::copy_file(checkpoints[index], copy, fs::copy_options::overwrite_existing);
    json resumed = run_json(s, "train job.toml --json --out " + out + " --resume saved/" + copy.filename().string());
    EXPECT_EQ(resumed["loss_scaling"], whole["loss_scaling"]) << checkpoints[index];
    EXPECT_EQ(resumed["metrics"]["test_accuracy"], whole["metrics"]["test_accuracy"]);
    EXPECT_TRUE(read_file(s / out / "model.safetensors") == expected) << "weights differ after resuming from "
                                                                        << checkpoints[index];
  }
}

}  // namespace
}  // namespace frugal::e2e
