// int8-mixed training end to end: a short Fashion-MNIST MLP run lands close to fp32 (and differs
// from it), keeps the output layer in bf16 by default and says so, `frugal eval` of its model gives
// the run's own test loss (the same exclusions), a resumed run ends byte-identical, and bad
// int8_exclude keys exit 2 naming the key.
#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "e2e/cli_helpers.h"

namespace frugal::e2e {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
const char* kFashion = kFashionDir;

std::string fashion_job(const std::string& precision) { return fashion_mlp_precision_job("int8", precision); }

TEST(Int8Mixed, FashionMlpCloseToFp32AndEvalAgrees) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  Scratch s("int8-vs-fp32");
  write_file(s / "int8.toml", fashion_job("mode = \"int8-mixed\"\n"));
  write_file(s / "fp32.toml", fashion_job("mode = \"fp32\"\n"));
  CommandResult r;
  json int8 = run_json(s, "train int8.toml --json --out out8", &r);
  json fp32 = run_json(s, "train fp32.toml --json --out out32");
  const double acc8 = int8["metrics"]["test_accuracy"], acc32 = fp32["metrics"]["test_accuracy"];
  EXPECT_GT(acc32, 0.70);
  EXPECT_NEAR(acc8, acc32, 0.02) << "int8-mixed should train like fp32";
  EXPECT_NE(int8["metrics"]["test_loss"], fp32["metrics"]["test_loss"]) << "the mode is active";
  // Flatten, Linear, ReLU, Linear: the output layer is layers.3.
  EXPECT_NE(r.err.find("int8-mixed: linear products in int8, except layers.3.weight (bf16-mixed)"), std::string::npos)
      << r.err;
  json eval = run_json(s, "eval int8.toml --weights out8/model.safetensors --json --sparse off");
  EXPECT_EQ(eval["loss"], int8["metrics"]["test_loss"]) << "eval runs the int8 products the run's test evaluation did";
  // Everything in int8: a different model, still close.
  write_file(s / "all.toml", fashion_job("mode = \"int8-mixed\"\nint8_exclude = []\n"));
  CommandResult all_run;
  json all = run_json(s, "train all.toml --json --out outall", &all_run);
  EXPECT_NE(all_run.err.find("except none"), std::string::npos) << all_run.err;
  EXPECT_NE(all["metrics"]["test_loss"], int8["metrics"]["test_loss"]);
  EXPECT_NEAR(all["metrics"]["test_accuracy"].get<double>(), acc32, 0.03);
}

TEST(Int8Mixed, ResumeFromMidRunCheckpointIsByteIdentical) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  Scratch s("int8-resume");
  write_file(s / "job.toml", fashion_job("mode = \"int8-mixed\"\n\n[checkpoint]\nevery_steps = 50\nkeep = 5\n"));
  json whole = run_json(s, "train job.toml --json --out whole");
  std::vector<std::pair<long, fs::path>> by_step;  // checkpoint-<step>.fck
  for (const auto& e : fs::directory_iterator(s / "whole" / "checkpoints"))
    if (e.path().extension() == ".fck") by_step.emplace_back(std::stol(e.path().stem().string().substr(11)), e.path());
  std::sort(by_step.begin(), by_step.end());
  ASSERT_GE(by_step.size(), 2u);
  fs::create_directories(s / "saved");
  const fs::path copy = s / "saved" / by_step[0].second.filename();  // step 50
  fs::copy_file(by_step[0].second, copy, fs::copy_options::overwrite_existing);
  json resumed = run_json(s, "train job.toml --json --out resumed --resume saved/" + copy.filename().string());
  EXPECT_EQ(resumed["metrics"], whole["metrics"]);
  EXPECT_TRUE(read_file(s / "resumed" / "model.safetensors") == read_file(s / "whole" / "model.safetensors"))
      << "weights differ after resuming from " << copy;
}

TEST(Int8Mixed, BadExcludeKeysExit2) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  Scratch s("int8-bad-keys");
  struct Bad {
    std::string precision;
    std::vector<std::string> parts;
  };
  const std::vector<Bad> cases = {
      {"mode = \"bf16-mixed\"\nint8_exclude = [\"layers.*\"]\n", {"int8_exclude", "\"int8-mixed\" only", "\"bf16-mixed\""}},
      {"mode = \"int8-mixed\"\nint8_exclude = \"layers.3\"\n", {"int8_exclude", "expected an array of strings"}},
      {"mode = \"int8-mixed\"\nint8_exclude = [\"head.*\"]\n",
       {"int8_exclude", "'head.*' matches no linear weight", "layers.1.weight, layers.3.weight"}},
      {"mode = \"int8\"\n", {"mode", "int8-mixed"}},
  };
  for (const Bad& c : cases) {
    write_file(s / "job.toml", fashion_job(c.precision));
    CommandResult r = s.frugal("train job.toml --out out");
    EXPECT_EQ(r.exit_code, 2) << c.precision << r.err;
    for (const std::string& part : c.parts) EXPECT_NE(r.err.find(part), std::string::npos) << part << " in: " << r.err;
    EXPECT_FALSE(fs::exists(s / "out" / "model.safetensors")) << c.precision;
  }
}

}  // namespace
}  // namespace frugal::e2e
