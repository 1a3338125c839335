// LoRA ([lora], train/compress/lora.h): a fresh adapter changes no output; the merged plain model
// computes what the adapted one does (same batch, within rounding); adapters saved and loaded back
// give identical outputs; targets and train patterns that match nothing are input errors naming
// them; base weights are frozen (no gradient, no optimizer state); the GPT's attention and MLP
// Linear layers take adapters, with recomputed blocks giving the same gradients; a run writes the
// merged model and adapters.safetensors, its checkpoints carry the adapters and their optimizer
// state, and a preempted run with adapter dropout resumes bit-exactly; `frugal export` from a
// checkpoint merges and extracts. Limits: small MLP and GPT models, a few steps.
#include <csignal>
#include <filesystem>
#include <set>

#include <gtest/gtest.h>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/ops.h"
#include "frugal/base/error.h"
#include "frugal/base/signals.h"
#include "frugal/io/checkpoint.h"
#include "frugal/io/safetensors.h"
#include "frugal/nn/init.h"
#include "frugal/nn/layers.h"
#include "frugal/nn/zoo.h"
#include "frugal/train/compress/lora.h"
#include "frugal/train/data_setup.h"
#include "frugal/train/model_setup.h"
#include "test_util.h"
#include "unit/train/run_fixture.h"

namespace frugal::train {
namespace {

using frugal::testing::all_close;
using frugal::testing::random_tensor;
using frugal::testing::same_bits;
using testing::PreemptAt;
using testing::RunFixture;

std::shared_ptr<nn::Mlp> small_mlp(uint64_t seed = 1) {
  nn::MlpConfig config;
  config.inputs = 16;
  config.hidden = {12, 10};
  config.outputs = 4;
  auto model = std::make_shared<nn::Mlp>(config);
  nn::init_parameters(*model, seed);
  return model;
}

LoraSpec spec(std::vector<std::string> targets, int64_t rank = 4, double alpha = 8) {
  LoraSpec s;
  s.enabled = true;
  s.rank = rank;
  s.alpha = alpha;
  s.targets = std::move(targets);
  return s;
}

// Gives every lora_b random values, as training would: B = 0 makes the adapter a no-op.
void perturb_adapters(nn::Module& model, uint64_t seed) {
  autograd::NoGradGuard no_grad;
  for (auto [name, t] : adapter_state_dict(model))
    if (name.find("lora_b") != std::string::npos) t.copy_from(random_tensor(t.shape(), seed++, DType::f32, -0.5, 0.5));
}

Tensor eval_output(nn::Module& model, const Tensor& x) {
  autograd::NoGradGuard no_grad;
  model.eval();
  return model.forward(x);
}

TEST(Lora, AFreshAdapterChangesNoOutputAndAIsDrawnAsPeftDoes) {
  auto model = small_mlp();
  const Tensor x = random_tensor({5, 16}, 7);
  const Tensor before = eval_output(*model, x);
  LoraReport report = add_adapters(*model, spec({"layers.*"}), 3, "job.toml");
  EXPECT_EQ(report.modules, (std::vector<std::string>{"layers.1", "layers.3", "layers.5"}));
  EXPECT_EQ(report.summary.adapter_params, 4 * (16 + 12) + 4 * (12 + 10) + 4 * (10 + 4));
  EXPECT_TRUE(same_bits(eval_output(*model, x), before)) << "B = 0: the adapted model starts equal to the base";
  nn::Linear* first = nullptr;
  for (auto& [name, m] : model->named_modules())
    if (name == "layers.1") first = dynamic_cast<nn::Linear*>(m);
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->has_lora());
  EXPECT_EQ(first->lora_a().shape(), (Shape{4, 16}));
  EXPECT_EQ(first->lora_b().shape(), (Shape{12, 4}));
  const std::vector<float> a = first->lora_a().contiguous().to_vector<float>();
  float largest = 0;
  for (float v : a) largest = std::max(largest, std::abs(v));
  EXPECT_LE(largest, 1 / std::sqrt(16.0f)) << "kaiming_uniform(a = sqrt(5)): U(-1/sqrt(in), 1/sqrt(in))";
  EXPECT_GT(largest, 0.5f / std::sqrt(16.0f));
  for (float v : first->lora_b().contiguous().to_vector<float>()) EXPECT_EQ(v, 0.0f);
}

TEST(Lora, TheMergedModelComputesWhatTheAdaptedOneDoesOnTheSameBatch) {
  auto adapted = small_mlp();
  add_adapters(*adapted, spec({"layers.1", "layers.5"}, 3, 6), 3, "job.toml");
  perturb_adapters(*adapted, 11);
  const Tensor x = random_tensor({9, 16}, 8);
  const Tensor expected = eval_output(*adapted, x);
  const Tensor base = eval_output(*small_mlp(), x);
  EXPECT_FALSE(all_close(expected, base, 1e-3, 0)) << "the adapters must matter for this test to mean anything";

  nn::NamedTensors merged = merged_state_dict(*adapted);
  for (const auto& [name, t] : merged) EXPECT_FALSE(is_adapter_name(name)) << name;
  auto plain = small_mlp(99);
  plain->load_state_dict(merged, /*strict=*/true);
  EXPECT_TRUE(all_close(eval_output(*plain, x), expected, 1e-5, 1e-5));
  // The same merge from tensors alone (export --merge): identical to the model's.
  nn::NamedTensors from_tensors = merge_adapter_tensors(adapted->state_dict(), 6, "adapted.safetensors");
  ASSERT_EQ(from_tensors.size(), merged.size());
  for (size_t i = 0; i < merged.size(); ++i) {
    EXPECT_EQ(from_tensors[i].first, merged[i].first);
    EXPECT_TRUE(same_bits(from_tensors[i].second, merged[i].second)) << merged[i].first;
  }
}

TEST(Lora, AdaptersSavedAndLoadedBackGiveIdenticalOutputs) {
  auto trained = small_mlp();
  const LoraSpec s = spec({"layers.3", "layers.5"});
  add_adapters(*trained, s, 3, "job.toml");
  perturb_adapters(*trained, 21);
  const std::string path = ::testing::TempDir() + "/frugal-lora-adapters.safetensors";
  io::write_safetensors(path, adapter_state_dict(*trained), adapter_metadata(s));
  io::SafetensorsFile file = io::read_safetensors(path);
  EXPECT_EQ(file.tensors.size(), 4u) << "adapters only";
  EXPECT_EQ(file.metadata.at("frugal.lora.rank"), "4");
  EXPECT_EQ(file.metadata.at("frugal.lora.alpha"), "8");
  EXPECT_EQ(file.metadata.at("frugal.lora.targets"), "[\"layers.3\",\"layers.5\"]");

  auto loaded = small_mlp();  // the same base
  add_adapters(*loaded, s, 77, "job.toml");
  load_adapters(*loaded, file, path, s);
  const Tensor x = random_tensor({6, 16}, 9);
  EXPECT_TRUE(same_bits(eval_output(*loaded, x), eval_output(*trained, x)));

  // Another rank, another alpha, a layer the job does not adapt: errors naming file and tensor.
  auto other = small_mlp();
  add_adapters(*other, spec({"layers.3", "layers.5"}, 2), 3, "job.toml");
  EXPECT_INPUT_ERROR(load_adapters(*other, file, path, spec({"layers.3", "layers.5"}, 2)), path, "layers.3.lora_a", "rank = 2");
  auto fewer = small_mlp();
  add_adapters(*fewer, spec({"layers.3"}), 3, "job.toml");
  EXPECT_INPUT_ERROR(load_adapters(*fewer, file, path, spec({"layers.3"})), path, "layers.5.lora_a");
  auto scaled = small_mlp();
  add_adapters(*scaled, spec({"layers.3", "layers.5"}, 4, 16), 3, "job.toml");
  EXPECT_INPUT_ERROR(load_adapters(*scaled, file, path, spec({"layers.3", "layers.5"}, 4, 16)), path, "alpha 8");
}

TEST(Lora, PatternsThatMatchNothingAreInputErrorsNamingThem) {
  auto model = small_mlp();
  EXPECT_INPUT_ERROR(add_adapters(*model, spec({"layers.*", "blocks.*.attn.qkv"}), 3, "job.toml"), "job.toml",
                     "[lora] targets", "'blocks.*.attn.qkv' matches no Linear layer", "layers.1");
  auto again = small_mlp();
  LoraSpec s = spec({"layers.1"});
  add_adapters(*again, s, 3, "job.toml");
  s.train = {"layers.5.bias", "head.*"};
  EXPECT_INPUT_ERROR(freeze_all_but_adapters(*again, s, "job.toml"), "job.toml", "[lora] train", "'head.*'");
}

TEST(Lora, BaseWeightsAreFrozenButThoseTrainNames) {
  auto model = small_mlp();
  LoraSpec s = spec({"layers.1", "layers.3"});
  s.train = {"layers.5.*"};
  add_adapters(*model, s, 3, "job.toml");
  const int64_t trainable = freeze_all_but_adapters(*model, s, "job.toml");
  EXPECT_EQ(trainable, 4 * (16 + 12) + 4 * (12 + 10) + (10 * 4 + 4));
  EXPECT_EQ(model->num_trainable_parameters(), trainable);
  perturb_adapters(*model, 5);
  model->train();
  Tensor loss = cross_entropy(model->forward(random_tensor({4, 16}, 2)), Tensor::from_vector<int64_t>({0, 1, 2, 3}, {4}));
  autograd::backward(loss);
  for (const auto& [name, p] : model->named_parameters()) {
    const bool trains = is_adapter_name(name) || name.rfind("layers.5.", 0) == 0;
    EXPECT_EQ(p.requires_grad(), trains) << name;
    EXPECT_EQ(p.grad().defined(), trains) << name << ": a frozen weight gets no gradient";
  }
}

nn::GptConfig small_gpt(std::vector<int64_t> recompute = {}) {
  nn::GptConfig c;
  c.vocab = 11;
  c.context = 8;
  c.layers = 2;
  c.heads = 2;
  c.width = 16;
  c.dropout = 0.1;
  c.recompute_blocks = std::move(recompute);
  return c;
}

// The adapters' gradients of one training step (dropout on, adapter dropout on).
std::vector<std::pair<std::string, Tensor>> gpt_adapter_grads(std::vector<int64_t> recompute) {
  auto model = std::make_shared<nn::Gpt>(small_gpt(std::move(recompute)));
  nn::init_parameters(*model, 4);
  LoraSpec s = spec({"blocks.*.attn.qkv", "blocks.*.attn.proj", "blocks.*.mlp.*"}, 2, 4);
  s.dropout = 0.2;
  LoraReport report = add_adapters(*model, s, 3, "job.toml");
  EXPECT_EQ(report.modules.size(), 8u) << "qkv, proj, fc and proj of two blocks";
  freeze_all_but_adapters(*model, s, "job.toml");
  perturb_adapters(*model, 31);
  model->train();
  nn::set_random_context({5, 2});
  std::vector<int64_t> ids;
  for (int i = 0; i < 2 * 8; ++i) ids.push_back((i * 7 + 3) % 11);
  Tensor tokens = Tensor::from_vector<int64_t>(ids, {2, 8});
  Tensor logits = model->forward(tokens);  // (B, T, V)
  Tensor loss = cross_entropy(reshape(logits, {16, 11}), reshape(tokens, {16}));
  autograd::backward(loss);
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [name, p] : model->named_parameters()) {
    EXPECT_EQ(p.grad().defined(), is_adapter_name(name)) << name;
    if (is_adapter_name(name)) out.emplace_back(name, p.grad());
  }
  return out;
}

TEST(Lora, GptAttentionAndMlpTakeAdaptersAndRecomputedBlocksGiveTheSameGradients) {
  const auto kept = gpt_adapter_grads({}), recomputed = gpt_adapter_grads({0, 1});
  ASSERT_EQ(kept.size(), 16u);
  ASSERT_EQ(recomputed.size(), kept.size());
  for (size_t i = 0; i < kept.size(); ++i) EXPECT_TRUE(same_bits(recomputed[i].second, kept[i].second)) << kept[i].first;
  auto model = std::make_shared<nn::Gpt>(small_gpt());
  EXPECT_INPUT_ERROR(add_adapters(*model, spec({"head"}), 3, "job.toml"), "'head' matches no Linear layer");
}

// A run of the fixture's MLP with [lora]: 2 epochs of 4 steps, adapter dropout, a checkpoint at step 5.
const char* kLoraSections =
    "[model]\nkind = \"mlp\"\nhidden = [16]\n"
    "[train]\nepochs = 2\nbatch_size = 16\ngrad_accum = 3\neval_every = 3\n"
    "[checkpoint]\nevery_steps = 5\nevery_seconds = 0\n"
    "[lora]\nrank = 2\nalpha = 4\ndropout = 0.25\ntargets = [\"layers.*\"]\ntrain = [\"layers.3.bias\"]\n";


std::vector<std::vector<float>> tensors_of(const std::filesystem::path& path) {
  std::vector<std::vector<float>> out;
  for (const auto& [name, t] : io::read_safetensors(path.string()).tensors) out.push_back(t.contiguous().to_vector<float>());
  return out;
}

TEST(Lora, ARunWritesTheMergedModelAndItsAdaptersAndResumesBitExactly) {
  RunFixture reference("lora-reference", 190, kLoraSections);
  TrainOutcome done = Trainer(reference.job(), reference.options("run")).run();
  ASSERT_EQ(done.exit_code, 0);
  ASSERT_TRUE(done.summary.lora);
  EXPECT_EQ(done.summary.lora->modules, 2);
  EXPECT_EQ(done.summary.trainable_params, 2 * (16 + 16) + 2 * (16 + 4) + 4);
  EXPECT_LT(done.summary.trainable_params, done.summary.params);
  const std::filesystem::path run = reference.dir() / "run";
  io::SafetensorsFile model = io::read_safetensors((run / "model.safetensors").string());
  EXPECT_FALSE(holds_adapters(model)) << "model.safetensors is the merged plain model";
  io::SafetensorsFile adapters = io::read_safetensors((run / "adapters.safetensors").string());
  EXPECT_EQ(adapters.tensors.size(), 4u);
  EXPECT_EQ(adapters.metadata.at("frugal.lora.rank"), "2");

  // The frozen base: an untrained weight is as initialized (the model built from the run's seed).
  RunFixture preempted("lora-preempted", 190, kLoraSections);
  {
    Trainer first(preempted.job(), preempted.options("run"));
    first.add_technique(std::make_unique<PreemptAt>(6));
    ASSERT_EQ(first.run().exit_code, kExitPreempted);
  }
  // The checkpoint holds the adapters and the optimizer state of the trainable tensors only.
  std::optional<io::LatestCheckpoint> latest = io::load_latest_checkpoint((preempted.dir() / "run" / "checkpoints").string());
  ASSERT_TRUE(latest);
  std::set<std::string> optimized;
  bool has_adapter = false;
  for (const auto& [name, t] : latest->state.tensors) {
    has_adapter |= name == "model.layers.1.lora_a";
    if (name.rfind("optim.param.", 0) == 0) optimized.insert(name.substr(0, name.find('.', 12)));
  }
  EXPECT_TRUE(has_adapter);
  EXPECT_EQ(optimized.size(), 5u) << "four adapter tensors and layers.3.bias";

  // export --merge from the checkpoint: a plain model computing what the adapted one at step 6 does.
  const std::string merged_path = (preempted.dir() / "merged.safetensors").string();
  export_lora(latest->path, ExportKind::merged, merged_path);
  io::SafetensorsFile merged = io::read_safetensors(merged_path);
  EXPECT_FALSE(holds_adapters(merged));
  const std::string adapters_path = (preempted.dir() / "adapters.safetensors").string();
  export_lora(latest->path, ExportKind::adapters, adapters_path);
  EXPECT_EQ(io::read_safetensors(adapters_path).metadata.at("frugal.lora.alpha"), "4");
  EXPECT_INPUT_ERROR(export_lora(adapters_path, ExportKind::merged, merged_path), adapters_path, "no base weights");
  EXPECT_INPUT_ERROR(export_lora((run / "model.safetensors").string(), ExportKind::merged, merged_path), "holds no LoRA adapters");

  // The resumed run ends bit-identical to the uninterrupted one: merged model and adapters.
  TrainOutcome resumed = Trainer(preempted.job(), preempted.options("run", "auto")).run();
  ASSERT_EQ(resumed.exit_code, 0);
  EXPECT_TRUE(tensors_of(preempted.dir() / "run" / "model.safetensors") == tensors_of(run / "model.safetensors"));
  EXPECT_TRUE(tensors_of(preempted.dir() / "run" / "adapters.safetensors") == tensors_of(run / "adapters.safetensors"));

  // A run without adapter dropout ends elsewhere: the dropout mask matters.
  RunFixture no_dropout("lora-no-dropout", 190, kLoraSections);
  Trainer(no_dropout.job({"lora.dropout=0.0"}), no_dropout.options("run")).run();
  EXPECT_FALSE(tensors_of(no_dropout.dir() / "run" / "adapters.safetensors") == tensors_of(run / "adapters.safetensors"));

  // Starting from the saved adapters ([lora] adapters): the adapted model as the run left it.
  RunFixture from_adapters("lora-from-adapters", 190, kLoraSections);
  JobSpec job = from_adapters.job({"lora.adapters=\"" + (run / "adapters.safetensors").string() + "\""});
  auto base = build_model(job, prepare_data(job, (from_adapters.dir() / "cache").string()));
  apply_lora(*base, job);
  nn::NamedTensors started = adapter_state_dict(*base);
  ASSERT_EQ(started.size(), adapters.tensors.size());
  for (const auto& [name, t] : started) EXPECT_TRUE(same_bits(t, adapters.tensors.at(name))) << name;
}

TEST(Lora, AJobWithATargetThatMatchesNothingFailsBeforeWritingAnything) {
  RunFixture f("lora-bad-target", 190,
               "[model]\nkind = \"mlp\"\nhidden = [16]\n[train]\nepochs = 1\nbatch_size = 16\n"
               "[lora]\ntargets = [\"layers.1\", \"blocks.*.attn.qkv\"]\n");
  EXPECT_INPUT_ERROR(Trainer(f.job(), f.options("run")).run(), "'blocks.*.attn.qkv' matches no Linear layer");
  EXPECT_FALSE(std::filesystem::exists(f.dir() / "run"));
}

TEST(Lora, JobKeysAreCheckedWhereTheyAreRead) {
  const char* model = "[model]\nkind = \"mlp\"\nhidden = [16]\n[train]\nepochs = 1\n";
  RunFixture f("lora-keys", 40, std::string(model) + "[lora]\nrank = 2\nalpha = 4\ntargets = [\"layers.*\"]\n");
  JobSpec job = f.job();
  EXPECT_TRUE(job.lora.enabled);
  EXPECT_EQ(job.lora.rank, 2);
  EXPECT_EQ(job.lora.alpha, 4);
  EXPECT_EQ(job.lora.targets, (std::vector<std::string>{"layers.*"}));
  EXPECT_FALSE(RunFixture("lora-off", 40, model).job().lora.enabled);
  RunFixture missing("lora-no-targets", 40, std::string(model) + "[lora]\nrank = 2\n");
  EXPECT_INPUT_ERROR(missing.job(), "lora", "targets", "missing");
  EXPECT_INPUT_ERROR(f.job({"lora.targets=[]"}), "targets", "at least one pattern");
  EXPECT_INPUT_ERROR(f.job({"lora.rank=0"}), "rank");
  EXPECT_INPUT_ERROR(f.job({"lora.alpha=0"}), "alpha");
  EXPECT_INPUT_ERROR(f.job({"lora.dropout=1.0"}), "dropout");
  EXPECT_INPUT_ERROR(f.job({"lora.targets=[1]"}), "targets", "strings");
}

}  // namespace
}  // namespace frugal::train
