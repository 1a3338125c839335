// `frugal eval --sparse` end to end: a short Fashion-MNIST MLP run, then its weights evaluated with
// every Linear forced sparse, measured (auto) and dense: the same loss and accuracy within f32
// rounding, one report per Linear (density, microseconds, choice) in the JSON and the text, and a
// bad mode exits 2.
#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "e2e/cli_helpers.h"

namespace frugal::e2e {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
const char* kFashion = "/usr/share/datasets/fashion-mnist";

std::string fashion_job() {
  std::string d = kFashion;
  return "[run]\nname = \"sparse\"\nseed = 3\nthreads = 2\nstore = \"runs.db\"\n\n[data]\nkind = \"idx\"\n"
         "train_images = \"" + d + "/train-images-idx3-ubyte.gz\"\ntrain_labels = \"" + d +
         "/train-labels-idx1-ubyte.gz\"\ntest_images = \"" + d + "/t10k-images-idx3-ubyte.gz\"\ntest_labels = \"" + d +
         "/t10k-labels-idx1-ubyte.gz\"\nval_fraction = 0.05\n\n[model]\nkind = \"mlp\"\nhidden = [64, 32]\n"
         "\n[optim]\nkind = \"adamw\"\nlr = 0.002\n\n[train]\nsteps = 60\nbatch_size = 64\nlog_every = 20\n"
         "eval_every = 60\n";
}

TEST(SparseEval, ForcedAutoAndOffAgreeAndReportEveryLinear) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  Scratch s("sparse-eval");
  write_file(s / "job.toml", fashion_job());
  run_json(s, "train job.toml --json --quiet --out run");
  ASSERT_TRUE(fs::exists(s / "run" / "model.safetensors"));
  const std::string eval = "eval job.toml --weights run/model.safetensors --json --sparse ";
  json off = run_json(s, eval + "off"), on = run_json(s, eval + "on"), automatic = run_json(s, eval + "auto");
  EXPECT_FALSE(off.contains("sparse_layers"));
  for (const json* j : {&on, &automatic}) {
    EXPECT_NEAR((*j)["loss"].get<double>(), off["loss"].get<double>(), 1e-5) << j->dump();
    EXPECT_NEAR((*j)["accuracy"].get<double>(), off["accuracy"].get<double>(), 2e-4) << "at most 2 of 10000 flip";
    ASSERT_TRUE(j->contains("sparse_layers")) << j->dump();
  }
  const json& layers = on["sparse_layers"];
  ASSERT_EQ(layers.size(), 3u) << layers.dump();  // 784 -> 64 -> 32 -> 10
  for (const json& l : layers) {
    EXPECT_EQ(l["chosen"], "sparse") << l.dump();
    EXPECT_EQ(l["reason"], "forced");
    EXPECT_GT(l["dense_us"].get<double>(), 0);
    EXPECT_GT(l["sparse_us"].get<double>(), 0);
    EXPECT_EQ(l["rows"], 1000);  // eval batches of 1000
  }
  EXPECT_EQ(layers[0]["in"], 784);
  EXPECT_EQ(layers[0]["out"], 64);
  // Trained weights are dense: auto leaves every layer dense without timing it.
  for (const json& l : automatic["sparse_layers"]) {
    EXPECT_EQ(l["chosen"], "dense") << l.dump();
    EXPECT_EQ(l["reason"], "dense above cap");
    EXPECT_GT(l["density"].get<double>(), 0.99);
  }
  // The text form prints one line per layer before the result.
  CommandResult text = s.frugal("eval job.toml --weights run/model.safetensors --sparse on");
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("sparse: layers.1 (784 -> 64): density"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("sparse (forced)"), std::string::npos) << text.out;
  // auto on dense weights times nothing, so prints no layer line (the JSON still lists them).
  CommandResult quiet = s.frugal("eval job.toml --weights run/model.safetensors");
  EXPECT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_EQ(quiet.out.find("sparse:"), std::string::npos) << quiet.out;
  CommandResult bad = s.frugal("eval job.toml --weights run/model.safetensors --sparse maybe");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--sparse"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace frugal::e2e
