// Fine-tuning through the real binary. The PyTorch round trip: tests/interop/finetune/ holds a
// model PyTorch pretrained on a 10-class task, the job that fine-tunes it in frugal on a 3-class
// task ([init] from with a new head, [freeze] with unfreezing, [optim] lr_multipliers), frugal's
// result, and PyTorch's evaluation of that result (make_finetune.py): the run here must give the
// same model, and `frugal eval` of it the test-set result PyTorch recorded. Then a character GPT
// pretrained on one text and fine-tuned on another with a different vocabulary, and an [init]
// that does not fit (exit 2, each tensor named, nothing written).
#include <cmath>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "e2e/cli_helpers.h"
#include "frugal/io/safetensors.h"

namespace frugal::e2e {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

fs::path finetune_dir() { return fs::path(FRUGAL_SOURCE_DIR) / "tests" / "interop" / "finetune"; }

// The committed directory, copied: the job's paths are relative to it.
void copy_finetune_files(const Scratch& s) {
  for (const char* name : {"job.toml", "train.npy", "train_targets.npy", "test.npy", "test_targets.npy",
                           "torch_pretrained.safetensors", "frugal_finetuned.safetensors"})
    fs::copy_file(finetune_dir() / name, s / name, fs::copy_options::overwrite_existing);
}

TEST(Finetune, APyTorchPretrainedModelFineTunesAsPyTorchEvaluatesIt) {
  Scratch s("finetune-interop");
  copy_finetune_files(s);
  json summary = run_json(s, "train job.toml --json --out out");
  ASSERT_TRUE(summary.contains("init")) << summary.dump();
  EXPECT_EQ(summary["init"]["loaded"], 2);
  EXPECT_EQ(summary["init"]["skipped"], json({"layers.3.weight", "layers.3.bias"}));
  EXPECT_EQ(summary["init"]["unused"], 0);
  EXPECT_EQ(summary["trainable_params"], summary["params"]) << "the body was unfrozen after the first epoch";

  // The same training as the committed result's: same weights up to kernel rounding (a wrong load,
  // freeze or multiplier moves them by far more).
  io::SafetensorsFile got = io::read_safetensors((s / "out" / "model.safetensors").string());
  io::SafetensorsFile want = io::read_safetensors((s / "frugal_finetuned.safetensors").string());
  ASSERT_EQ(got.tensors.size(), want.tensors.size());
  for (const auto& [name, t] : want.tensors) {
    ASSERT_TRUE(got.tensors.count(name)) << name;
    std::vector<float> a = got.tensors.at(name).to_vector<float>(), b = t.to_vector<float>();
    ASSERT_EQ(a.size(), b.size()) << name;
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-4) << name << "[" << i << "]";
  }

  json expected = json::parse(read_file(finetune_dir() / "expected.json"), nullptr, false);
  ASSERT_FALSE(expected.is_discarded()) << "tests/interop/finetune/expected.json is not valid JSON";
  const json& want_eval = expected["frugal_finetuned.safetensors"];
  // No sample has its two largest float64 logits within tie_margin: f32 kernel rounding cannot
  // flip a prediction, so the counts agree exactly.
  ASSERT_EQ(want_eval["near_ties"].get<int64_t>(), 0) << "regenerate the files: a near-tie makes the count fragile";
  for (const char* weights : {"out/model.safetensors", "frugal_finetuned.safetensors"}) {
    json eval = run_json(s, std::string("eval job.toml --split test --json --weights ") + weights);
    ASSERT_EQ(eval["samples"], want_eval["samples"]) << weights;
    EXPECT_EQ(std::llround(eval["accuracy"].get<double>() * eval["samples"].get<double>()),
              want_eval["correct"].get<int64_t>())
        << weights;
    const double want_loss = want_eval["loss"];
    EXPECT_NEAR(eval["loss"].get<double>(), want_loss, 1e-5 * want_loss) << weights;
  }
  // The pretrained body is worth having: the same job with every tensor kept fresh does worse
  // (72% against 85% when the files were made).
  json scratch = run_json(s, "train job.toml --json --out scratch --set 'init.skip=[\"layers.*\"]'");
  EXPECT_EQ(scratch["init"]["loaded"], 0);
  EXPECT_LT(scratch["metrics"]["test_accuracy"].get<double>(), want_eval["accuracy"].get<double>() - 0.05);
}

std::string gpt_job(const std::string& text_file, const std::string& extra) {
  return "[run]\nname = \"gpt\"\nseed = 2\nthreads = 1\n[data]\nkind = \"text\"\ntrain = \"" + text_file +
         "\"\nval_fraction = 0.1\n[model]\nkind = \"gpt\"\nlayers = 1\nheads = 2\nwidth = 16\ncontext = 16\n"
         "tied_embeddings = false\n[optim]\nlr = 0.01\n[train]\nsteps = 6\nbatch_size = 8\n" + extra;
}

TEST(Finetune, AGptFineTunesOnATextWithAnotherVocabulary) {
  Scratch s("finetune-gpt");
  std::string kjv, other;
  for (int i = 0; i < 60; ++i) kjv += "in the beginning god created the heaven and the earth. ";
  for (int i = 0; i < 60; ++i) other += "In the beginning, God made the sky and the land! ";
  write_file(s / "kjv.txt", kjv);
  write_file(s / "other.txt", other);
  write_file(s / "pretrain.toml", gpt_job("kjv.txt", ""));
  ASSERT_EQ(s.frugal("train pretrain.toml --out pre").exit_code, 0);

  // From the run directory. The new text shares 11 characters, drops c, r, v and ., and adds
  // !, ",", G, I, k, l, m, s and y.
  write_file(s / "finetune.toml", gpt_job("other.txt", "[init]\nfrom = \"pre\"\n"
                                                       "[freeze]\nparams = [\"blocks.*\"]\n"
                                                       "unfreeze = [{ step = 3, params = [\"blocks.0.attn.*\"] }]\n"));
  CommandResult r = s.frugal("train finetune.toml --out fine");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("of the file unused; vocabulary: 11 characters shared, 9 new, 4 dropped"), std::string::npos) << r.out;
  json summary = json::parse(read_file(s / "fine" / "summary.json"));
  EXPECT_EQ(summary["init"]["vocab"], json({{"shared", 11}, {"new", 9}, {"dropped", 4}}));
  EXPECT_EQ(summary["init"]["loaded"], io::read_safetensors((s / "pre" / "model.safetensors").string()).tensors.size());
  EXPECT_LT(summary["trainable_params"].get<int64_t>(), summary["params"].get<int64_t>()) << "mlp and norms stay frozen";
  // The fine-tuned model carries the new vocabulary: sampling a prompt with its new characters works.
  r = s.frugal("sample finetune.toml --weights fine/model.safetensors --prompt 'God, ' --tokens 5 --temperature 0");
  EXPECT_EQ(r.exit_code, 0) << r.err;

  // A wider model does not fit: exit 2, every tensor named, no run directory.
  write_file(s / "wide.toml", gpt_job("other.txt", "[init]\nfrom = \"pre/model.safetensors\"\n"));
  r = s.frugal("train wide.toml --set model.width=32 --out wide");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  for (const char* name : {"'wte.weight'", "'wpe.weight'", "'blocks.0.attn.qkv.weight'", "'head.weight'", "'ln_f.bias'"})
    EXPECT_NE(r.err.find(name), std::string::npos) << name << " not named: " << r.err;
  EXPECT_FALSE(fs::exists(s / "wide"));
}

}  // namespace
}  // namespace frugal::e2e
