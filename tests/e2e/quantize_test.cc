// `frugal quantize`, int8 `eval` / `sample` and [quantize] aware = true through the real binary: a
// Fashion-MNIST MLP and CNN (a few hundred steps) lose at most a point of test accuracy in int8
// (minmax and percentile calibration) and eval prints its throughput; a tiny GPT quantized with
// dynamic activations evaluates close to f32 and samples; a QAT run writes model.int8.safetensors
// that eval runs (a GPT's too, with recomputed blocks); bad inputs (calibration, percentile, an already quantized file, a job whose model
// differs from the file's) exit 2 naming the problem and write nothing.
#include <filesystem>

#include <nlohmann/json.hpp>

#include "e2e/cli_helpers.h"
#include "frugal/io/safetensors.h"

namespace frugal::e2e {
namespace {

using json = nlohmann::json;
const char* kFashion = "/usr/share/datasets/fashion-mnist";

std::string fashion_job(const std::string& model, int steps, const std::string& extra = "") {
  std::string d = kFashion;
  return "[run]\nname = \"q\"\nseed = 5\nthreads = 2\n\n[data]\nkind = \"idx\"\n"
         "train_images = \"" + d + "/train-images-idx3-ubyte.gz\"\ntrain_labels = \"" + d +
         "/train-labels-idx1-ubyte.gz\"\ntest_images = \"" + d + "/t10k-images-idx3-ubyte.gz\"\ntest_labels = \"" + d +
         "/t10k-labels-idx1-ubyte.gz\"\nval_fraction = 0.05\nnormalize = \"scalar\"\n\n[model]\n" + model +
         "\n[optim]\nkind = \"adamw\"\nlr = 0.002\n\n[train]\nsteps = " + std::to_string(steps) +
         "\nbatch_size = 64\nlog_every = 50\neval_every = " + std::to_string(steps) + "\n" + extra;
}

double accuracy_of(const Scratch& s, const std::string& weights, const std::string& sets = "") {
  CommandResult r;
  json e = run_json(s, "eval job.toml --weights " + weights + " --json " + sets, &r);
  EXPECT_GT(e.value("samples_per_second", 0.0), 0.0) << r.out;
  return e.value("accuracy", -1.0);
}

void expect_int8_within_a_point(const std::string& name, const std::string& model) {
  Scratch s(name);
  write_file(s / "job.toml", fashion_job(model, 300));
  CommandResult train = s.frugal("train job.toml --quiet --out out");
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const double f32 = accuracy_of(s, "out/model.safetensors");
  for (const std::string calibration : {"minmax", "percentile:99.99"}) {
    CommandResult q = s.frugal("quantize job.toml --weights out/model.safetensors --calibration " + calibration +
                               " --samples 300 --out int8.safetensors");
    ASSERT_EQ(q.exit_code, 0) << q.err;
    EXPECT_NE(q.out.find("quantized "), std::string::npos) << q.out;
    const double int8 = accuracy_of(s, "int8.safetensors");
    std::printf("%s %s: test accuracy f32 %.4f, int8 %.4f\n", name.c_str(), calibration.c_str(), f32, int8);
    EXPECT_GT(f32, 0.75);
    EXPECT_GE(int8, f32 - 0.01) << calibration;
    CommandResult text = s.frugal("eval job.toml --weights int8.safetensors");
    EXPECT_NE(text.out.find("samples/s (int8)"), std::string::npos) << text.out;
  }
  // --repeat times the same evaluation several times: the same metrics, the median time
  json once = run_json(s, "eval job.toml --weights int8.safetensors --json");
  json thrice = run_json(s, "eval job.toml --weights int8.safetensors --json --repeat 3");
  EXPECT_EQ(thrice["repeat"], 3);
  EXPECT_EQ(once["loss"], thrice["loss"]);
  EXPECT_EQ(once["accuracy"], thrice["accuracy"]);
  EXPECT_GT(thrice["samples_per_second"].get<double>(), 0);
}

TEST(Quantize, FashionMlpLosesAtMostAPointInInt8) {
  if (!std::filesystem::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  expect_int8_within_a_point("quantize-mlp", "kind = \"mlp\"\nhidden = [128, 64]\n");
}

TEST(Quantize, FashionCnnLosesAtMostAPointInInt8) {
  if (!std::filesystem::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  expect_int8_within_a_point("quantize-cnn", "kind = \"cnn\"\nchannels = [8, 16]\nhidden = [32]\n");
}

TEST(Quantize, BadInputsExit2AndWriteNothing) {
  Scratch s("quantize-bad");
  write_file(s / "data.csv", csv_rows(200));
  const std::string job = "[run]\nname = \"b\"\nthreads = 1\n[data]\nkind = \"csv\"\ntrain = \"data.csv\"\n"
                          "val_fraction = 0.2\n[model]\nkind = \"mlp\"\nhidden = [8]\n[train]\nepochs = 2\nbatch_size = 16\n";
  write_file(s / "job.toml", job);
  ASSERT_EQ(s.frugal("train job.toml --quiet --out out").exit_code, 0);
  struct Case { std::string args, expected; };
  for (const Case& c : {Case{"--calibration entropy", "'entropy'"}, Case{"--calibration percentile:0", "(0, 100]"},
                        Case{"--calibration percentile:150", "(0, 100]"}, Case{"--samples 0", "--samples"}}) {
    CommandResult r = s.frugal("quantize job.toml --weights out/model.safetensors --out x.safetensors " + c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << ": " << r.err;
    EXPECT_NE(r.err.find(c.expected), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(s / "x.safetensors"));
  }
  ASSERT_EQ(s.frugal("quantize job.toml --weights out/model.safetensors --out q.safetensors").exit_code, 0);
  CommandResult again = s.frugal("quantize job.toml --weights q.safetensors --out x.safetensors");
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("already quantized"), std::string::npos) << again.err;
  // The job's model differs from the quantized file's: a layer's shape.
  CommandResult other = s.frugal("eval job.toml --weights q.safetensors --set model.hidden=[16]");
  EXPECT_EQ(other.exit_code, 2);
  EXPECT_NE(other.err.find("q.safetensors"), std::string::npos) << other.err;
  EXPECT_NE(other.err.find("layers.1"), std::string::npos) << other.err;
  // A file whose scale count does not match its weight (one scale per output channel).
  {
    io::SafetensorsFile file = io::read_safetensors((s / "q.safetensors").string());
    std::vector<std::pair<std::string, Tensor>> tensors(file.tensors.begin(), file.tensors.end());
    for (auto& [name, t] : tensors)
      if (name == "layers.3.weight_scale") t = Tensor::ones({3});
    io::write_safetensors((s / "bad.safetensors").string(), tensors, file.metadata);
  }
  CommandResult scales = s.frugal("eval job.toml --weights bad.safetensors");
  EXPECT_EQ(scales.exit_code, 2);
  EXPECT_NE(scales.err.find("layers.3: weight_scale holds 3 values, expected 2"), std::string::npos) << scales.err;
  // ... or its layers.
  CommandResult deeper = s.frugal("eval job.toml --weights q.safetensors --set model.hidden=[8,8]");
  EXPECT_EQ(deeper.exit_code, 2);
  EXPECT_NE(deeper.err.find("layers.5"), std::string::npos) << deeper.err;
}

TEST(Quantize, GptWithDynamicActivationsEvaluatesCloseAndSamples) {
  Scratch s("quantize-gpt");
  std::string text;
  for (int i = 0; i < 300; ++i) text += "the quick brown fox jumps over the lazy dog. ";
  write_file(s / "text.txt", text);
  write_file(s / "job.toml",
             "[run]\nname = \"gpt\"\nseed = 2\nthreads = 2\n[data]\nkind = \"text\"\ntrain = \"text.txt\"\n"
             "val_fraction = 0.1\n[model]\nkind = \"gpt\"\nlayers = 2\nheads = 2\nwidth = 32\ncontext = 32\n"
             "[optim]\nlr = 0.01\n[train]\nsteps = 60\nbatch_size = 16\neval_every = 60\n");
  ASSERT_EQ(s.frugal("train job.toml --quiet --out out").exit_code, 0);
  CommandResult q = s.frugal("quantize job.toml --weights out/model.safetensors --out int8.safetensors");
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_NE(q.out.find("input dynamic"), std::string::npos) << q.out;
  json f32 = run_json(s, "eval job.toml --weights out/model.safetensors --split val --json");
  json int8 = run_json(s, "eval job.toml --weights int8.safetensors --split val --json");
  std::printf("gpt val bits/char: f32 %.4f, int8 dynamic %.4f\n", f32["bits_per_char"].get<double>(),
              int8["bits_per_char"].get<double>());
  EXPECT_NEAR(int8["bits_per_char"].get<double>(), f32["bits_per_char"].get<double>(), 0.05);
  CommandResult sample = s.frugal("sample job.toml --weights int8.safetensors --prompt 'the quick' --tokens 20 --temperature 0");
  ASSERT_EQ(sample.exit_code, 0) << sample.err;
  EXPECT_EQ(sample.out.rfind("the quick", 0), 0u) << sample.out;
}

TEST(Quantize, AQatRunWritesTheInt8FileThatEvalRuns) {
  Scratch s("quantize-qat");
  write_file(s / "data.csv", csv_rows(300));
  write_file(s / "job.toml", "[run]\nname = \"qat\"\nthreads = 1\n[data]\nkind = \"csv\"\ntrain = \"data.csv\"\n"
                             "val_fraction = 0.2\n[model]\nkind = \"mlp\"\nhidden = [16]\n[train]\nepochs = 4\n"
                             "batch_size = 16\n[quantize]\naware = true\nstart_step = 5\nobserver = \"minmax\"\n");
  CommandResult r;
  json summary = run_json(s, "train job.toml --json --out out", &r);
  ASSERT_TRUE(std::filesystem::exists(s / "out/model.int8.safetensors")) << r.err;
  json e = run_json(s, "eval job.toml --weights out/model.int8.safetensors --split val --json");
  EXPECT_TRUE(e["quantized"].get<bool>());
  EXPECT_NEAR(e["loss"].get<double>(), summary["metrics"]["val_loss"].get<double>(), 0.05);
  CommandResult bad = s.frugal("train job.toml --quiet --out out2 --set quantize.observer=histogram");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("quantize.observer"), std::string::npos) << bad.err;
}

// Fake quantization inside recomputed GPT blocks (whose re-run leaves the last ops' outputs
// unwritten): the run completes and its int8 file evaluates.
TEST(Quantize, GptQatWithRecomputedBlocks) {
  Scratch s("quantize-gpt-qat");
  std::string text;
  for (int i = 0; i < 300; ++i) text += "the quick brown fox jumps over the lazy dog. ";
  write_file(s / "text.txt", text);
  write_file(s / "job.toml",
             "[run]\nname = \"g\"\nseed = 2\nthreads = 2\n[data]\nkind = \"text\"\ntrain = \"text.txt\"\n"
             "val_fraction = 0.1\n[model]\nkind = \"gpt\"\nlayers = 2\nheads = 2\nwidth = 32\ncontext = 32\n"
             "[memory]\nrecompute = \"blocks\"\n[optim]\nlr = 0.01\n[train]\nsteps = 30\nbatch_size = 8\n"
             "eval_every = 30\n[quantize]\naware = true\nactivations = \"static\"\n");
  CommandResult train = s.frugal("train job.toml --quiet --out out");
  ASSERT_EQ(train.exit_code, 0) << train.err;
  json e = run_json(s, "eval job.toml --weights out/model.int8.safetensors --split val --json");
  EXPECT_TRUE(e["quantized"].get<bool>());
  EXPECT_LT(e["bits_per_char"].get<double>(), 3.0);
}

}  // namespace
}  // namespace frugal::e2e
