// [lora] and `frugal export` through the real binary, on a tiny GPT whose attention and MLP Linear
// layers take adapters: the run's model.safetensors is the merged plain model, which `frugal eval`
// and `sample` load with the job as is and `frugal export --merge` rewrites identically; its val loss
// equals the run's own final evaluation of the adapted model (within rounding); `--adapters`
// extracts adapters.safetensors; bad targets and exports exit 2 naming what is wrong, writing nothing.
#include <filesystem>

#include <nlohmann/json.hpp>

#include "e2e/cli_helpers.h"

namespace frugal::e2e {
namespace {

using json = nlohmann::json;

const char* kJob =
    "[run]\nname = \"lora\"\nseed = 4\nthreads = 2\n[data]\nkind = \"text\"\ntrain = \"text.txt\"\n"
    "val_fraction = 0.1\n[model]\nkind = \"gpt\"\nlayers = 2\nheads = 2\nwidth = 32\ncontext = 32\n"
    "dropout = 0.1\n[optim]\nlr = 0.01\n[train]\nsteps = 8\nbatch_size = 8\neval_every = 8\n"
    "[lora]\nrank = 4\nalpha = 8\ndropout = 0.1\ntargets = [\"blocks.*.attn.qkv\", \"blocks.*.attn.proj\", "
    "\"blocks.*.mlp.*\"]\n";

void write_text(const Scratch& s) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += "in the beginning was the word, and the word was with god. ";
  write_file(s / "text.txt", text);
}

TEST(Lora, TheRunWritesAMergedPlainModelThatEvalSampleAndExportUse) {
  Scratch s("lora-run");
  write_text(s);
  write_file(s / "job.toml", kJob);
  CommandResult r = s.frugal("train job.toml --json --out run");
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  json summary = json::parse(last_line(r.out), nullptr, false);
  ASSERT_TRUE(summary.is_object()) << r.out;
  EXPECT_EQ(summary["lora"]["modules"], 8);
  EXPECT_EQ(summary["lora"]["rank"], 4);
  EXPECT_LT(summary["trainable_params"].get<int64_t>(), summary["params"].get<int64_t>());
  ASSERT_TRUE(std::filesystem::exists(s / "run/adapters.safetensors"));

  CommandResult eval = s.frugal("eval job.toml --weights run/model.safetensors --split val --json");
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  json e = json::parse(last_line(eval.out), nullptr, false);
  EXPECT_NEAR(e["loss"].get<double>(), summary["metrics"]["val_loss"].get<double>(), 1e-4)
      << "the merged model evaluates as the adapted one did";
  CommandResult sample = s.frugal("sample job.toml --weights run/model.safetensors --prompt in --tokens 5");
  EXPECT_EQ(sample.exit_code, 0) << sample.err;

  CommandResult merged = s.frugal("export run --merge --out merged.safetensors");
  ASSERT_EQ(merged.exit_code, 0) << merged.err;
  EXPECT_EQ(read_file(s / "merged.safetensors"), read_file(s / "run/model.safetensors"));
  CommandResult adapters = s.frugal("export run --adapters --out adapters.safetensors");
  ASSERT_EQ(adapters.exit_code, 0) << adapters.err;
  EXPECT_EQ(read_file(s / "adapters.safetensors"), read_file(s / "run/adapters.safetensors"));

  CommandResult neither = s.frugal("export run --out x.safetensors");
  EXPECT_EQ(neither.exit_code, 2);
  EXPECT_NE(neither.err.find("--merge"), std::string::npos) << neither.err;
  CommandResult only_adapters = s.frugal("export adapters.safetensors --merge --out x.safetensors");
  EXPECT_EQ(only_adapters.exit_code, 2);
  EXPECT_NE(only_adapters.err.find("no base weights"), std::string::npos) << only_adapters.err;
  EXPECT_FALSE(std::filesystem::exists(s / "x.safetensors"));
  CommandResult help = s.frugal("--help");
  EXPECT_NE(help.out.find("export"), std::string::npos);
}

TEST(Lora, ATargetThatMatchesNothingExits2NamingIt) {
  Scratch s("lora-bad-target");
  write_text(s);
  std::string job = kJob;
  job.replace(job.find("blocks.*.mlp.*"), 14, "blocks.*.mlp.c_fc");
  write_file(s / "job.toml", job);
  CommandResult r = s.frugal("train job.toml --out run");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("'blocks.*.mlp.c_fc' matches no Linear layer"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("blocks.0.mlp.fc"), std::string::npos) << "lists the model's Linear layers: " << r.err;
  EXPECT_FALSE(std::filesystem::exists(s / "run"));
}

}  // namespace
}  // namespace frugal::e2e
