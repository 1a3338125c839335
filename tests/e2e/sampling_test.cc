// The data techniques of issue 21 part 1 through the real binary: a CSV MLP with a self-scored
// curriculum, one with selective backprop and one with importance sampling, each trained and
// reported in the --json summary and the printed summary; a GPT with sequence-length warmup; bad
// values and a score file that does not exist exit 2 with one line naming the key or file.
#include <filesystem>

#include <nlohmann/json.hpp>

#include "e2e/cli_helpers.h"

namespace frugal::e2e {
namespace {

using json = nlohmann::json;

const char* kMlpJob =
    "[run]\nname = \"sampling-mlp\"\nseed = 2\nthreads = 2\n[data]\nkind = \"csv\"\ntrain = \"data.csv\"\n"
    "val_fraction = 0.2\n[model]\nkind = \"mlp\"\nhidden = [16]\n"
    "[train]\nepochs = 4\nbatch_size = 16\n";

TEST(Sampling, ClassificationTechniquesTrainAndReport) {
  Scratch s("sampling-mlp");
  write_file(s / "data.csv", csv_rows(200));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"curriculum", "[curriculum]\nscore = \"self\"\npacing = \"root\"\nstart = 0.25\n"},
      {"selective_backprop", "[selective_backprop]\nkeep = 0.5\n"},
      {"importance_sampling", "[importance_sampling]\nsmoothing = 0.3\n"}};
  for (const auto& [name, section] : cases) {
    write_file(s / (name + ".toml"), std::string(kMlpJob) + section);
    CommandResult r;
    json summary = run_json(s, "train " + name + ".toml --json --out run-" + name, &r);
    ASSERT_TRUE(summary.contains("techniques")) << r.out;
    EXPECT_TRUE(summary["techniques"].contains(name)) << summary["techniques"].dump();
    EXPECT_NE(r.err.find(name + ":"), std::string::npos) << r.err;  // its run_start line
    EXPECT_TRUE(std::filesystem::exists(s / ("run-" + name) / "model.safetensors"));
  }
  // The printed summary says what selective backprop did.
  CommandResult printed = s.frugal("train selective_backprop.toml --out run-printed");
  ASSERT_EQ(printed.exit_code, 0) << printed.err;
  EXPECT_NE(printed.out.find("selective backprop: backward on "), std::string::npos) << printed.out;
  EXPECT_NE(printed.out.find("(keep 0.5, from step 0)"), std::string::npos) << printed.out;
}

TEST(Sampling, GptWithSequenceLengthWarmup) {
  Scratch s("sampling-gpt");
  std::string text;
  for (int i = 0; i < 100; ++i) text += "in the beginning was the word, and the word was with god. ";
  write_file(s / "text.txt", text);
  write_file(s / "job.toml",
             "[run]\nname = \"warm\"\nseed = 4\nthreads = 2\n[data]\nkind = \"text\"\ntrain = \"text.txt\"\n"
             "val_fraction = 0.1\n[model]\nkind = \"gpt\"\nlayers = 1\nheads = 2\nwidth = 32\ncontext = 32\n"
             "[train]\nsteps = 10\nbatch_size = 8\neval_every = 10\n[seq_warmup]\nstart = 8\nfraction = 0.5\n");
  CommandResult r;
  json summary = run_json(s, "train job.toml --json --out run", &r);
  const json& w = summary["techniques"]["seq_warmup"];
  EXPECT_EQ(w["warmup_steps"], 5) << w.dump();
  EXPECT_LT(w["tokens_trained"].get<int64_t>(), w["tokens_full_context"].get<int64_t>());
  EXPECT_NE(r.err.find("seq_warmup: context 8 -> 32 over the first 5 steps (truncate)"), std::string::npos) << r.err;
}

TEST(Sampling, BadValuesExit2WithOneLine) {
  Scratch s("sampling-bad");
  write_file(s / "data.csv", csv_rows(60));
  write_file(s / "job.toml", kMlpJob);
  auto refused = [&](const std::string& args, const std::string& message) {
    CommandResult r = s.frugal("train job.toml " + args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  };
  refused("--set selective_backprop.keep=0", "[selective_backprop] keep: expected a fraction in (0, 1]");
  refused("--set curriculum.start=1.5", "[curriculum] start: expected a fraction in (0, 1]");
  refused("--set curriculum.pacing=\\\"cubic\\\"", "[curriculum] pacing");
  refused("--set importance_sampling.start_epoch=0", "[importance_sampling] start_epoch");
  refused("--set seq_warmup.start=8", "[seq_warmup] is for [model] kind = \"gpt\"");
  refused("--set curriculum.scores=\\\"missing.safetensors\\\"", "missing.safetensors");
}

}  // namespace
}  // namespace frugal::e2e
