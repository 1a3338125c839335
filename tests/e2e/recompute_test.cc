// [memory] recompute through the real binary: a tiny GPT (dropout on, gradient accumulation) and a
// CNN with batch norm trained with recompute = "blocks" end with weights byte-identical to
// recompute = "none"; "auto" picks blocks for a limit and says when nothing fits; job-file errors.
#include <filesystem>

#include <nlohmann/json.hpp>

#include "e2e/cli_helpers.h"

namespace frugal::e2e {
namespace {

using json = nlohmann::json;

std::string gpt_job(const std::string& memory, const std::string& precision = "fp32") {
  return "[run]\nname = \"rc\"\nseed = 4\nthreads = 2\n[data]\nkind = \"text\"\ntrain = \"text.txt\"\n"
         "val_fraction = 0.1\n[model]\nkind = \"gpt\"\nlayers = 2\nheads = 2\nwidth = 32\ncontext = 32\n"
         "dropout = 0.1\n[optim]\nlr = 0.01\n[train]\nsteps = 12\nbatch_size = 8\ngrad_accum = 2\n"
         "eval_every = 12\n[precision]\nmode = \"" + precision + "\"\n[memory]\n" + memory;
}

// A saved model without the job's hash in its metadata (the jobs differ in [memory], by design):
// the header's tensor table and every weight byte are left to compare.
std::string weights_without_job_hash(const std::filesystem::path& path) {
  std::string bytes = read_file(path);
  const std::string key = "\"frugal.job_hash\":\"";
  size_t at = bytes.find(key);
  if (at == std::string::npos) return bytes;
  size_t end = bytes.find('"', at + key.size());
  return end == std::string::npos ? bytes : bytes.erase(at, end + 1 - at);
}

void write_text(const Scratch& s) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += "in the beginning was the word, and the word was with god. ";
  write_file(s / "text.txt", text);
}

json train(const Scratch& s, const std::string& job, const std::string& out, CommandResult* result = nullptr) {
  write_file(s / (out + ".toml"), job);
  CommandResult r = s.frugal("train " + out + ".toml --json --out " + out);
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  if (result) *result = r;
  json j = json::parse(last_line(r.out), nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  return j;
}

TEST(Recompute, GptBlocksEndsByteIdentical) {
  Scratch s("recompute-gpt");
  write_text(s);
  for (const std::string precision : {"fp32", "bf16-mixed"}) {
    json none = train(s, gpt_job("recompute = \"none\"\n", precision), "none-" + precision);
    json blocks = train(s, gpt_job("recompute = \"blocks\"\n", precision), "blocks-" + precision);
    std::string weights_none = weights_without_job_hash(s / ("none-" + precision) / "model.safetensors");
    ASSERT_GT(weights_none.size(), 100000u);
    EXPECT_TRUE(weights_none == weights_without_job_hash(s / ("blocks-" + precision) / "model.safetensors"))
        << precision;
    EXPECT_EQ(none["recompute"]["mode"], "none");
    EXPECT_EQ(none["recompute"]["blocks"], json::array());
    EXPECT_EQ(blocks["recompute"]["mode"], "blocks");
    EXPECT_EQ(blocks["recompute"]["blocks"], json::array({0, 1}));
    EXPECT_LT(blocks["recompute"]["estimated_activation_bytes"].get<int64_t>(),
              none["recompute"]["estimated_activation_bytes"].get<int64_t>());
    EXPECT_EQ(blocks["metrics"], none["metrics"]);
  }
}

TEST(Recompute, CnnWithBatchNormEndsByteIdentical) {
  const char* fashion = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(fashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  Scratch s("recompute-cnn");
  std::string d = fashion;
  auto job = [&](const std::string& recompute) {
    return "[run]\nseed = 3\nthreads = 2\n[data]\nkind = \"idx\"\ntrain_images = \"" + d +
           "/train-images-idx3-ubyte.gz\"\ntrain_labels = \"" + d + "/train-labels-idx1-ubyte.gz\"\n"
           "val_fraction = 0.02\n[model]\nkind = \"cnn\"\nchannels = [4, 8]\nhidden = [16]\ndropout = 0.2\n"
           "[train]\nsteps = 8\nbatch_size = 16\neval_every = 8\n[memory]\nrecompute = \"" + recompute + "\"\n";
  };
  train(s, job("none"), "none");
  json blocks = train(s, job("blocks"), "blocks");
  std::string weights = weights_without_job_hash(s / "none" / "model.safetensors");
  ASSERT_GT(weights.size(), 1000u);
  // The file holds BatchNorm's running statistics too: updated once per step in both runs.
  EXPECT_TRUE(weights == weights_without_job_hash(s / "blocks" / "model.safetensors"));
  EXPECT_EQ(blocks["recompute"]["blocks"], json::array({0, 1}));
}

// The example CNN's largest block is its last: re-running it would hold its activations, output
// and output gradient at once, more than recomputing saves. "blocks" recomputes none and says so.
TEST(Recompute, CnnWhereRecomputingRaisesThePeakRunsPlainly) {
  const char* fashion = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(fashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  Scratch s("recompute-cnn-plain");
  std::string d = fashion;
  std::string job = "[run]\nseed = 3\nthreads = 2\n[data]\nkind = \"idx\"\ntrain_images = \"" + d +
                    "/train-images-idx3-ubyte.gz\"\ntrain_labels = \"" + d + "/train-labels-idx1-ubyte.gz\"\n"
                    "val_fraction = 0.02\n[model]\nkind = \"cnn\"\nchannels = [32, 64]\nbatch_norm = true\n"
                    "hidden = [128]\n[train]\nsteps = 3\nbatch_size = 128\neval_every = 3\n[memory]\n"
                    "recompute = \"blocks\"\n";
  CommandResult r;
  json j = train(s, job, "blocks", &r);
  EXPECT_EQ(j["recompute"]["blocks"], json::array());
  EXPECT_NE((r.err + r.out).find("recompute blocks: warning: re-running the other blocks would raise the estimated "
                                 "activation peak"), std::string::npos) << r.err << r.out;
}

TEST(Recompute, AutoChoosesForTheLimit) {
  Scratch s("recompute-auto");
  write_text(s);
  json none = train(s, gpt_job("recompute = \"none\"\n"), "none");
  json all = train(s, gpt_job("recompute = \"blocks\"\n"), "all");
  const int64_t kept = none["recompute"]["estimated_activation_bytes"];
  const int64_t least = all["recompute"]["estimated_activation_bytes"];
  ASSERT_LT(least, kept);
  // Everything fits: nothing recomputed.
  json roomy = train(s, gpt_job("recompute = \"auto\"\nmax_activation_bytes = " + std::to_string(kept) + "\n"), "roomy");
  EXPECT_EQ(roomy["recompute"]["blocks"], json::array());
  EXPECT_EQ(roomy["recompute"]["estimated_activation_bytes"], kept);
  // Just below: with two equal blocks, one recomputed block is re-run at full size (no gain), so both.
  CommandResult r;
  json tight = train(s, gpt_job("recompute = \"auto\"\nmax_activation_bytes = " + std::to_string(kept - 1) + "\n"),
                     "tight", &r);
  EXPECT_EQ(tight["recompute"]["mode"], "auto");
  EXPECT_EQ(tight["recompute"]["blocks"], json::array({0, 1}));
  EXPECT_EQ(r.err.find("exceeds max_activation_bytes"), std::string::npos) << r.err;
  // Below what recomputing everything reaches: the lowest choice (all blocks here), and a line saying so.
  json over = train(s, gpt_job("recompute = \"auto\"\nmax_activation_bytes = " + std::to_string(least - 1) + "\n"),
                    "over", &r);
  EXPECT_EQ(over["recompute"]["blocks"], json::array({0, 1}));
  EXPECT_NE((r.err + r.out).find("recompute auto: no choice of blocks brings the estimate within max_activation_bytes"), std::string::npos)
      << r.err << r.out;
  EXPECT_TRUE(weights_without_job_hash(s / "none" / "model.safetensors") ==
              weights_without_job_hash(s / "over" / "model.safetensors"));
}

TEST(Recompute, JobErrors) {
  Scratch s("recompute-errors");
  write_text(s);
  auto expect_error = [&](const std::string& job, const std::string& message) {
    write_file(s / "bad.toml", job);
    CommandResult r = s.frugal("train bad.toml --out bad");
    EXPECT_EQ(r.exit_code, 2) << r.err << r.out;
    EXPECT_NE(r.err.find(message), std::string::npos) << "stderr: " << r.err << "\nmissing: " << message;
  };
  // The [memory] section of gpt_job is on line 25.
  expect_error(gpt_job("recompute = \"blokcs\"\n"),
               "bad.toml:26: [memory] recompute = \"blokcs\": expected one of none, blocks, auto; did you mean 'blocks'?");
  expect_error(gpt_job("recompute = \"auto\"\n"), "[memory] recompute: recompute = \"auto\" needs max_activation_bytes");
  expect_error(gpt_job("recompute = \"blocks\"\nmax_activation_bytes = 1000\n"),
               "bad.toml:27: [memory] max_activation_bytes: max_activation_bytes is used only with recompute = \"auto\"");
  expect_error(gpt_job("recompute = \"auto\"\nmax_activation_bytes = 0\n"),
               "[memory] max_activation_bytes = 0: expected an integer in [1, ");
  expect_error(gpt_job("recompute = \"auto\"\nmax_activation_bytes = \"1 GB\"\n"),
               "[memory] max_activation_bytes = \"1 GB\": expected an integer");
  expect_error(gpt_job("recompte = \"blocks\"\n"), "unknown key 'recompte' in [memory]; did you mean 'recompute'?");
  write_file(s / "data.csv", "x,label\n1,0\n2,1\n3,0\n4,1\n");
  expect_error("[data]\nkind = \"csv\"\ntrain = \"data.csv\"\n[model]\nkind = \"mlp\"\n[train]\nsteps = 1\n"
               "[memory]\nrecompute = \"blocks\"\n",
               "bad.toml:9: [memory] recompute: recompute = \"blocks\" needs a model with blocks");
}

}  // namespace
}  // namespace frugal::e2e
