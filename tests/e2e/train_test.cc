// Short end-to-end runs of each example kind through the real binary: Fashion-MNIST MLP and CNN,
// a character GPT with sampling, eval of the saved weights, and the run store with two runs
// writing at once.
#include <cmath>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "e2e/cli_helpers.h"

namespace frugal::e2e {
namespace {

using json = nlohmann::json;
const char* kFashion = "/usr/share/datasets/fashion-mnist";

std::string fashion_job(const std::string& name, const std::string& model, int steps) {
  std::string d = kFashion;
  return "[run]\nname = \"" + name + "\"\nseed = 5\nthreads = 2\n\n[data]\nkind = \"idx\"\n"
         "train_images = \"" + d + "/train-images-idx3-ubyte.gz\"\ntrain_labels = \"" + d +
         "/train-labels-idx1-ubyte.gz\"\ntest_images = \"" + d + "/t10k-images-idx3-ubyte.gz\"\ntest_labels = \"" + d +
         "/t10k-labels-idx1-ubyte.gz\"\nval_fraction = 0.05\n\n[model]\n" + model +
         "\n[optim]\nkind = \"adamw\"\nlr = 0.002\n\n[train]\nsteps = " + std::to_string(steps) +
         "\nbatch_size = 64\nlog_every = 10\neval_every = " + std::to_string(steps) + "\n";
}

TEST(Train, FashionMlpLearnsAndEvalAgrees) {
  if (!std::filesystem::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  Scratch s("mlp");
  write_file(s / "job.toml", fashion_job("mlp", "kind = \"mlp\"\nhidden = [64]\n", 150));
  json summary = run_json(s, "train job.toml --json --out out");
  EXPECT_EQ(summary["status"], "completed");
  EXPECT_EQ(summary["steps"], 150);
  EXPECT_EQ(summary["samples_seen"], 150 * 64);
  double accuracy = summary["metrics"]["test_accuracy"];
  EXPECT_GT(accuracy, 0.70) << "150 steps of Adam on Fashion-MNIST should pass 70%";
  EXPECT_GT(summary["peak_rss_bytes"].get<int64_t>(), 0);
  // metrics.jsonl: one line per logged step (every 10) and the evaluation.
  std::string metrics = read_file(s / "out" / "metrics.jsonl");
  EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 15 + 1);
  // eval of the saved weights reproduces the test accuracy.
  json eval = run_json(s, "eval job.toml --weights out/model.safetensors --json");
  EXPECT_DOUBLE_EQ(eval["accuracy"].get<double>(), accuracy);
  EXPECT_EQ(eval["samples"], 10000);
}

TEST(Train, FashionCnnLearns) {
  if (!std::filesystem::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  Scratch s("cnn");
  write_file(s / "job.toml", fashion_job("cnn", "kind = \"cnn\"\nchannels = [8, 16]\nhidden = [32]\n", 100));
  json summary = run_json(s, "train job.toml --json --out out");
  EXPECT_GT(summary["metrics"]["test_accuracy"].get<double>(), 0.70);
}

TEST(Train, CharGptLearnsAndSamples) {
  Scratch s("gpt");
  std::string text;
  for (int i = 0; i < 400; ++i) text += "the quick brown fox jumps over the lazy dog. ";
  write_file(s / "text.txt", text);
  write_file(s / "job.toml",
             "[run]\nname = \"gpt\"\nseed = 2\nthreads = 2\n[data]\nkind = \"text\"\ntrain = \"text.txt\"\n"
             "val_fraction = 0.1\n[model]\nkind = \"gpt\"\nlayers = 2\nheads = 2\nwidth = 32\ncontext = 32\n"
             "[optim]\nlr = 0.01\n[schedule]\nkind = \"warmup_cosine\"\nwarmup_steps = 10\n"
             "[train]\nsteps = 120\nbatch_size = 16\nclip_norm = 1.0\neval_every = 60\n");
  json summary = run_json(s, "train job.toml --json --out out");
  double bpc = summary["metrics"]["val_bits_per_char"];
  // A repeated sentence is nearly deterministic: far below the log2(27) ~ 4.75 of uniform guessing.
  EXPECT_LT(bpc, 1.5);
  CommandResult r = s.frugal("sample job.toml --weights out/model.safetensors --prompt 'the quick' --tokens 30 --temperature 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("the quick", 0), 0u) << r.out;
  EXPECT_EQ(r.out.size(), std::string("the quick").size() + 30 + 1);
}

TEST(Train, RunStoreListsTwoConcurrentRuns) {
  Scratch s("store");
  std::string rows = "x,y,label\n";
  for (int i = 0; i < 200; ++i) rows += std::to_string(i % 10) + "," + std::to_string(i % 3) + "," + std::to_string(i % 2) + "\n";
  write_file(s / "data.csv", rows);
  for (const char* name : {"first", "second"})
    write_file(s / (std::string(name) + ".toml"),
               std::string("[run]\nname = \"") + name + "\"\nthreads = 1\n[data]\nkind = \"csv\"\ntrain = \"data.csv\"\n"
               "val_fraction = 0.2\n[model]\nkind = \"mlp\"\nhidden = [16]\n[train]\nepochs = 30\nbatch_size = 4\nlog_every = 1\n");
  CommandResult a, b;
  std::thread ta([&] { a = s.frugal("train first.toml --quiet --out out-first"); });
  std::thread tb([&] { b = s.frugal("train second.toml --quiet --out out-second"); });
  ta.join();
  tb.join();
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  json runs = run_json(s, "runs list --json");
  ASSERT_EQ(runs.size(), 2u) << runs.dump();
  for (const json& run : runs) EXPECT_EQ(run["status"], "completed");
  std::string id = runs[0]["run_id"];
  json shown = run_json(s, "runs show " + id.substr(0, id.size() - 2) + " --json");
  EXPECT_EQ(shown["run_id"], id);
  // 30 epochs of 40 batches, one metrics row per step, plus evaluations.
  EXPECT_GE(shown["metrics"].size(), 30u * 40u);
  CommandResult table = s.frugal("runs");
  EXPECT_EQ(table.exit_code, 0);
  EXPECT_NE(table.out.find("first-"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("second-"), std::string::npos) << table.out;
  CommandResult missing = s.frugal("runs show nosuchrun");
  EXPECT_EQ(missing.exit_code, 2);
}

}  // namespace
}  // namespace frugal::e2e
