// [prune] and `frugal prune` through the real binary: a GPT pruned to half its heads and MLP width
// in training writes the compacted model and model.toml, which `frugal eval` loads to the run's own
// final val loss (within rounding); `frugal prune` of a trained MLP, unstructured and by neurons,
// writes what eval loads; bad inputs exit 2 with one line naming the key or pattern.
#include <filesystem>

#include <nlohmann/json.hpp>

#include "e2e/cli_helpers.h"

namespace frugal::e2e {
namespace {

using json = nlohmann::json;

const char* kGptJob =
    "[run]\nname = \"prune-gpt\"\nseed = 4\nthreads = 2\n[data]\nkind = \"text\"\ntrain = \"text.txt\"\n"
    "val_fraction = 0.1\n[model]\nkind = \"gpt\"\nlayers = 2\nheads = 4\nwidth = 32\ncontext = 32\n"
    "[optim]\nlr = 0.01\n[train]\nsteps = 12\nbatch_size = 8\neval_every = 12\n"
    "[prune]\nstructure = [\"heads\", \"mlp\"]\nsparsity = 0.5\nscope = \"layer\"\nschedule = \"oneshot\"\n"
    "start_step = 6\n";

const char* kMlpJob =
    "[run]\nname = \"prune-mlp\"\nseed = 2\nthreads = 2\n[data]\nkind = \"csv\"\ntrain = \"data.csv\"\n"
    "val_fraction = 0.2\ntest_fraction = 0.2\n[model]\nkind = \"mlp\"\nhidden = [32, 16]\n"
    "[train]\nsteps = 30\nbatch_size = 16\n";

TEST(Prune, AStructuredGptRunWritesACompactModelThatEvalLoads) {
  Scratch s("prune-gpt");
  std::string text;
  for (int i = 0; i < 100; ++i) text += "in the beginning was the word, and the word was with god. ";
  write_file(s / "text.txt", text);
  write_file(s / "job.toml", kGptJob);
  CommandResult r = s.frugal("train job.toml --json --out run");
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  json summary = json::parse(last_line(r.out), nullptr, false);
  ASSERT_TRUE(summary.is_object()) << r.out;
  const json& prune = summary["techniques"]["prune"];
  EXPECT_EQ(prune["units_kept"], 2 * 2 + 2 * 64) << prune.dump();
  EXPECT_LT(prune["compact_params"].get<int64_t>(), summary["params"].get<int64_t>());
  EXPECT_NE(r.err.find("prune: step 6, 50.0% of heads+mlp units removed"), std::string::npos) << r.err;
  const std::string model_toml = read_file(s / "run/model.toml");
  EXPECT_NE(model_toml.find("block_heads = [ 2, 2 ]"), std::string::npos) << model_toml;
  EXPECT_NE(model_toml.find("mlp_widths = [ 64, 64 ]"), std::string::npos) << model_toml;

  CommandResult eval = s.frugal("eval run/model.toml --weights run/model.safetensors --split val --json");
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  json e = json::parse(last_line(eval.out), nullptr, false);
  EXPECT_NEAR(e["loss"].get<double>(), summary["metrics"]["val_loss"].get<double>(), 1e-4)
      << "the compact model evaluates as the masked dense one did";
  CommandResult sample = s.frugal("sample run/model.toml --weights run/model.safetensors --prompt in --tokens 5");
  EXPECT_EQ(sample.exit_code, 0) << sample.err;
}

TEST(Prune, FrugalPruneWritesWhatEvalLoadsAndRefusesBadInput) {
  Scratch s("prune-cli");
  write_file(s / "data.csv", csv_rows(400));
  write_file(s / "job.toml", kMlpJob);
  CommandResult r = s.frugal("train job.toml --quiet --out run");
  ASSERT_EQ(r.exit_code, 0) << r.err;

  CommandResult weights = s.frugal("prune job.toml --weights run/model.safetensors --sparsity 0.8 --out p1");
  ASSERT_EQ(weights.exit_code, 0) << weights.err;
  EXPECT_NE(weights.out.find("layers.1.weight"), std::string::npos) << weights.out;
  EXPECT_NE(weights.out.find("79.9% of weights removed (460 of 576)"), std::string::npos) << weights.out;
  CommandResult e1 = s.frugal("eval p1/model.toml --weights p1/model.safetensors --json");
  EXPECT_EQ(e1.exit_code, 0) << e1.err;

  CommandResult neurons = s.frugal("prune job.toml --weights run/model.safetensors --sparsity 0.5 --structure neurons "
                                   "--scope layer --score taylor --batches 2 --out p2");
  ASSERT_EQ(neurons.exit_code, 0) << neurons.err;
  EXPECT_NE(neurons.out.find("kept 16 of 32"), std::string::npos) << neurons.out;
  EXPECT_NE(read_file(s / "p2/model.toml").find("hidden = [ 16, 8 ]"), std::string::npos);
  CommandResult e2 = s.frugal("eval p2/model.toml --weights p2/model.safetensors --json");
  EXPECT_EQ(e2.exit_code, 0) << e2.err;
  EXPECT_LT(std::filesystem::file_size(s / "p2/model.safetensors"), std::filesystem::file_size(s / "run/model.safetensors"));

  for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
           {"--sparsity 1", "--sparsity 1: expected a fraction in [0, 1)"},
           {"--sparsity -0.5", "--sparsity -0.5: expected a fraction in [0, 1)"},
           {"--sparsity 0.5 --layers 'blocks.*'", "[prune] layers pattern \"blocks.*\" matches no prunable layer"},
           {"--sparsity 0.5 --structure heads", "[prune] structure = \"heads\": a mlp model has no attention heads"},
           {"--sparsity 0.5 --set 'model.hidden=[8]'", "run/model.safetensors"}}) {
    CommandResult bad = s.frugal("prune job.toml --weights run/model.safetensors " + args + " --out bad");
    EXPECT_EQ(bad.exit_code, 2) << args << ": " << bad.err;
    EXPECT_NE(bad.err.find(message), std::string::npos) << args << ": " << bad.err;
    EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
  }

  write_file(s / "bad.toml", std::string(kMlpJob) + "[prune]\nsparsity = 1.5\n");
  CommandResult bad_job = s.frugal("train bad.toml --out bad-run");
  EXPECT_EQ(bad_job.exit_code, 2);
  EXPECT_NE(bad_job.err.find("[prune] sparsity: expected a fraction in [0, 1)"), std::string::npos) << bad_job.err;
}

}  // namespace
}  // namespace frugal::e2e
