// [optim] lr_multipliers through Trainer: a run without the key is bit-identical to one whose
// multipliers leave every parameter at x1 (the same groups as before the key existed); a x0 part
// keeps its initial weights to the bit (SGD and AdamW, with weight decay); a pattern that matches
// no parameter is refused before anything is written.
#include <filesystem>

#include <gtest/gtest.h>

#include "frugal/io/safetensors.h"
#include "frugal/train/model_setup.h"
#include "test_util.h"
#include "unit/train/run_fixture.h"

namespace frugal::train {
namespace {

namespace fs = std::filesystem;
using testing::RunFixture;

const char* kSections =
    "[model]\nkind = \"mlp\"\nhidden = [16]\n"
    "[optim]\nweight_decay = 0.1\n"
    "[train]\nepochs = 2\nbatch_size = 16\n";

std::map<std::string, std::vector<float>> trained(const RunFixture& f, const std::vector<std::string>& overrides,
                                                  const std::string& out) {
  TrainOutcome outcome = Trainer(f.job(overrides), f.options(out)).run();
  EXPECT_EQ(outcome.exit_code, 0);
  std::map<std::string, std::vector<float>> weights;
  for (const auto& [name, t] : io::read_safetensors((f.dir() / out / "model.safetensors").string()).tensors)
    weights[name] = t.contiguous().to_vector<float>();
  return weights;
}

TEST(LrMultipliers, WithoutTheKeyTheRunIsBitIdenticalToAllOnes) {
  RunFixture f("lr-multipliers-ones", 190, kSections);
  for (const char* kind : {"adamw", "sgd"}) {
    const std::string optim = std::string("optim.kind=") + kind;
    auto plain = trained(f, {optim}, std::string("plain-") + kind);
    auto ones = trained(f, {optim, "optim.lr_multipliers={\"*\" = 1.0, \"layers.3.*\" = 1.0}"}, std::string("ones-") + kind);
    EXPECT_TRUE(plain == ones) << kind;
  }
}

TEST(LrMultipliers, AZeroMultiplierLeavesThoseWeightsUnchanged) {
  RunFixture f("lr-multipliers-zero", 190, kSections);
  JobSpec job = f.job();
  PreparedData data = prepare_data(job, (f.dir() / "cache").string());
  std::map<std::string, std::vector<float>> initial;
  for (const auto& [name, t] : build_model(job, data)->state_dict()) initial[name] = t.contiguous().to_vector<float>();
  for (const char* kind : {"adamw", "sgd"}) {
    auto after = trained(f, {std::string("optim.kind=") + kind, "optim.momentum=0", "optim.lr_multipliers={\"layers.1.*\" = 0}"},
                         std::string("zero-") + kind);
    EXPECT_EQ(after["layers.1.weight"], initial["layers.1.weight"]) << kind << ": decayed or moved";
    EXPECT_EQ(after["layers.1.bias"], initial["layers.1.bias"]) << kind;
    EXPECT_NE(after["layers.3.weight"], initial["layers.3.weight"]) << kind;
  }
}

TEST(LrMultipliers, APatternThatMatchesNothingIsRefused) {
  RunFixture f("lr-multipliers-nothing", 190, kSections);
  EXPECT_INPUT_ERROR(Trainer(f.job({"optim.lr_multipliers={\"head.*\" = 2.0}"}), f.options("run")).run(),
                     "job.toml: [optim] lr_multipliers: lr multiplier pattern 'head.*' matches no parameter");
  EXPECT_FALSE(fs::exists(f.dir() / "run"));
  EXPECT_FALSE(fs::exists(f.dir() / "runs.db"));
  EXPECT_INPUT_ERROR(f.job({"optim.lr_multipliers={\"head.*\" = \"fast\"}"}),
                     "--set optim.lr_multipliers: [optim] lr_multipliers = \"fast\": expected numbers in [0, 1000] as values");
}

}  // namespace
}  // namespace frugal::train
