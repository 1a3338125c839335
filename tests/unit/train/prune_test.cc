// [prune]: the cubic schedule's values; global against per-layer ranking; masks that stay zero
// through AdamW steps; the compacted MLP / CNN (batch norm, eval mode) / GPT (heads and MLP width)
// computing what the masked dense model computes; a run resumed mid-schedule ending bit-identical;
// the job keys checked.
#include <cmath>
#include <csignal>
#include <filesystem>

#include <gtest/gtest.h>

#include "frugal/autograd/autograd.h"
#include "frugal/base/rng.h"
#include "frugal/base/signals.h"
#include "frugal/io/safetensors.h"
#include "frugal/nn/zoo.h"
#include "frugal/train/compress/prune.h"
#include "frugal/train/evaluate.h"
#include "frugal/train/model_setup.h"
#include "test_util.h"
#include "unit/train/run_fixture.h"

namespace frugal::train {
namespace {

namespace fs = std::filesystem;
using testing::RunFixture;

Tensor random_tensor(const Shape& shape, uint64_t stream) {
  Rng rng(7, stream);
  std::vector<float> v(size_t(shape_numel(shape)));
  for (float& x : v) x = rng.uniform() * 2 - 1;
  return Tensor::from_vector(v, shape);
}

double max_difference(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  std::vector<float> x = a.contiguous().to_vector<float>(), y = b.contiguous().to_vector<float>();
  double most = 0;
  for (size_t i = 0; i < x.size(); ++i) most = std::max(most, std::fabs(double(x[i]) - double(y[i])));
  return most;
}

TEST(PruneSchedule, CubicValuesFromStartToEnd) {
  PruneSpec spec;
  spec.sparsity = 0.9;
  spec.start_step = 10, spec.end_step = 110, spec.every = 25;
  const PruneSchedule s = resolve_prune_schedule(spec, 1000);
  EXPECT_DOUBLE_EQ(target_sparsity(s, 0), 0.0);
  EXPECT_DOUBLE_EQ(target_sparsity(s, 10), 0.0);
  EXPECT_NEAR(target_sparsity(s, 60), 0.9 * (1 - 0.125), 1e-12);  // (1 - 1/2)^3 = 1/8 left
  EXPECT_NEAR(target_sparsity(s, 35), 0.9 * (1 - 0.75 * 0.75 * 0.75), 1e-12);
  EXPECT_DOUBLE_EQ(target_sparsity(s, 110), 0.9);
  EXPECT_DOUBLE_EQ(target_sparsity(s, 500), 0.9);
  std::vector<int64_t> steps;
  for (int64_t t = 0; t < 200; ++t)
    if (is_pruning_step(s, t)) steps.push_back(t);
  EXPECT_EQ(steps, (std::vector<int64_t>{10, 35, 60, 85, 110}));

  PruneSpec defaults;  // 10% .. 60% of the run, ten prunings
  const PruneSchedule d = resolve_prune_schedule(defaults, 200);
  EXPECT_EQ(d.start, 20);
  EXPECT_EQ(d.end, 120);
  EXPECT_EQ(d.every, 10);
  PruneSpec oneshot;
  oneshot.gradual = false, oneshot.sparsity = 0.5, oneshot.start_step = 7;
  const PruneSchedule o = resolve_prune_schedule(oneshot, 100);
  EXPECT_TRUE(is_pruning_step(o, 7));
  EXPECT_FALSE(is_pruning_step(o, 8));
  EXPECT_DOUBLE_EQ(target_sparsity(o, 6), 0.0);
  EXPECT_DOUBLE_EQ(target_sparsity(o, 7), 0.5);
}

ModelSpec mlp_spec(std::vector<int64_t> hidden, std::string activation = "relu") {
  ModelSpec m;
  m.kind = ModelKind::mlp;
  m.mlp.inputs = 6, m.mlp.hidden = std::move(hidden), m.mlp.outputs = 3, m.mlp.activation = std::move(activation);
  return m;
}

TEST(PruneChoice, GlobalRanksAllLayersTogetherPerLayerEachAlike) {
  // Two hidden layers: layers.1 (8, 6) with small weights, layers.3 (8, 8) with large ones.
  const ModelSpec m = mlp_spec({8, 8});
  auto model = nn::make_mlp(m.mlp, 1);
  for (auto& [name, t] : model->named_parameters()) {
    float* w = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) w[i] = (name == "layers.1.weight" ? 0.01f : 1.0f) * float(i + 1);
  }
  PruneSpec spec;
  spec.sparsity = 0.5;
  auto layers = find_prune_layers(*model, m, spec, "job.toml");
  ASSERT_EQ(layers.size(), 2u);  // the output layer layers.5 stays dense by default
  EXPECT_EQ(layers[0].name, "layers.1.weight");
  EXPECT_EQ(layers[1].name, "layers.3.weight");
  PruneMasks global = full_masks(layers), per_layer = full_masks(layers);
  choose_pruned(layers, magnitude_scores(layers), 0.5, true, global);
  choose_pruned(layers, magnitude_scores(layers), 0.5, false, per_layer);
  // 112 weights, 56 go: all 48 small ones, then the 8 smallest of layers.3.
  EXPECT_EQ(kept_count(global[0]), 0);
  EXPECT_EQ(kept_count(global[1]), 64 - 8);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(global[1][size_t(i)], 0) << i;
  EXPECT_EQ(kept_count(per_layer[0]), 24);
  EXPECT_EQ(kept_count(per_layer[1]), 32);
  for (int i = 0; i < 24; ++i) EXPECT_EQ(per_layer[0][size_t(i)], 0) << "smallest first: " << i;

  // Structured, global: scores are divided by the layer's RMS, and a layer keeps one unit at least.
  PruneSpec neurons;
  neurons.structures = {PruneStructure::neurons};
  auto units = find_prune_layers(*model, m, neurons, "job.toml");
  PruneMasks masks = full_masks(units);
  choose_pruned(units, magnitude_scores(units), 0.75, true, masks);
  EXPECT_EQ(kept_count(masks[0]) + kept_count(masks[1]), 4);
  EXPECT_GE(kept_count(masks[0]), 1);
  EXPECT_EQ(masks[0][7], 1) << "the largest rows stay";
  EXPECT_EQ(masks[1][7], 1);
  // Masks only grow: a lower target later removes nothing back.
  PruneMasks again = masks;
  choose_pruned(units, magnitude_scores(units), 0.25, true, again);
  EXPECT_EQ(again, masks);
}

// The compacted model loaded into a model of its own [model] computes the masked dense model's
// outputs.
void expect_compact_equal(const ModelSpec& m, nn::Module& dense, std::shared_ptr<nn::Module> (*make)(const ModelSpec&),
                          const PruneSpec& spec, const Tensor& input, int64_t expected_params) {
  auto layers = find_prune_layers(dense, m, spec, "job.toml");
  PruneMasks masks = full_masks(layers);
  choose_pruned(layers, magnitude_scores(layers), spec.sparsity, spec.global, masks);
  apply_masks(layers, masks);
  dense.eval();
  autograd::NoGradGuard no_grad;
  const Tensor expected = dense.forward(input);
  const CompactModel compact = compact_model(dense.state_dict(), m, layers, masks);
  auto small = make(compact.model);
  small->load_state_dict(compact.tensors);
  small->eval();
  EXPECT_EQ(small->num_parameters(), expected_params);
  const double diff = max_difference(small->forward(input), expected);
  EXPECT_LT(diff, 1e-5) << "max difference " << diff;
}

TEST(PruneCompact, MlpNeuronsAlsoWithSigmoidFoldedIntoTheNextBias) {
  for (const std::string activation : {"relu", "sigmoid"}) {
    const ModelSpec m = mlp_spec({10, 8}, activation);
    auto dense = nn::make_mlp(m.mlp, 2);
    PruneSpec spec;
    spec.structures = {PruneStructure::neurons};
    spec.sparsity = 0.5, spec.global = false;
    // 5 and 4 units kept: 6*5+5 + 5*4+4 + 4*3+3.
    expect_compact_equal(m, *dense, [](const ModelSpec& s) { return nn::make_mlp(s.mlp, 0); }, spec,
                         random_tensor({4, 6}, 1), 6 * 5 + 5 + 5 * 4 + 4 + 4 * 3 + 3);
  }
}

TEST(PruneCompact, CnnChannelsAndHiddenWithBatchNormInEvalMode) {
  ModelSpec m;
  m.kind = ModelKind::cnn;
  m.cnn.in_channels = 2, m.cnn.height = 8, m.cnn.width = 8, m.cnn.channels = {6, 8}, m.cnn.hidden = {10};
  m.cnn.outputs = 3;
  auto dense = nn::make_cnn(m.cnn, 3);
  // Running statistics other than 0 / 1, as after training.
  uint64_t stream = 10;
  for (auto& [name, t] : dense->state_dict())
    if (t.dtype() == DType::f32 && (name.find("running_") != std::string::npos || name.find("features.1.") == 0)) {
      Tensor r = random_tensor(t.shape(), stream++);
      float* d = t.data<float>();
      const float* s = r.data<float>();
      for (int64_t i = 0; i < t.numel(); ++i) d[i] = name.find("running_var") != std::string::npos ? 1.5f + s[i] : s[i];
    }
  PruneSpec spec;
  spec.structures = {PruneStructure::channels, PruneStructure::neurons};
  spec.sparsity = 0.5, spec.global = false;
  // Channels 3 and 4, hidden 5: conv 2->3 (54 + 3), bn 6, conv 3->4 (108 + 4), bn 8, linear 4*2*2 -> 5 (80 + 5), 5 -> 3 (18).
  expect_compact_equal(m, *dense, [](const ModelSpec& s) { return nn::make_cnn(s.cnn, 0); }, spec,
                       random_tensor({3, 2, 8, 8}, 2), 54 + 3 + 6 + 108 + 4 + 8 + 80 + 5 + 15 + 3);
}

TEST(PruneChoice, UnstructuredDefaultsLeaveTheOutputLayerAndEmbeddings) {
  ModelSpec m;
  m.kind = ModelKind::gpt;
  m.gpt.vocab = 11, m.gpt.context = 8, m.gpt.layers = 1, m.gpt.heads = 2, m.gpt.width = 8;
  PruneSpec spec;
  std::vector<std::string> names;
  for (const PruneLayer& p : find_prune_layers(*nn::make_gpt(m.gpt, 0), m, spec, "job.toml")) names.push_back(p.name);
  // Tied embeddings: no head Linear; every block Linear is pruned, wte / wpe are not.
  EXPECT_EQ(names, (std::vector<std::string>{"blocks.0.attn.qkv.weight", "blocks.0.attn.proj.weight",
                                             "blocks.0.mlp.fc.weight", "blocks.0.mlp.proj.weight"}));
  m.gpt.tied_embeddings = false;
  EXPECT_EQ(find_prune_layers(*nn::make_gpt(m.gpt, 0), m, spec, "job.toml").size(), 4u) << "head.weight stays dense";
  spec.layers = {"head.*"};
  EXPECT_EQ(find_prune_layers(*nn::make_gpt(m.gpt, 0), m, spec, "job.toml").at(0).name, "head.weight");
}

TEST(PruneCompact, GptHeadsAndMlpWidth) {
  ModelSpec m;
  m.kind = ModelKind::gpt;
  m.gpt.vocab = 11, m.gpt.context = 8, m.gpt.layers = 2, m.gpt.heads = 4, m.gpt.width = 16;
  auto dense = nn::make_gpt(m.gpt, 4);
  PruneSpec spec;
  spec.structures = {PruneStructure::heads, PruneStructure::mlp};
  spec.sparsity = 0.5, spec.global = false;
  std::vector<int64_t> ids;
  for (int i = 0; i < 2 * 8; ++i) ids.push_back((i * 7 + 3) % 11);
  nn::GptConfig small = m.gpt;
  small.block_heads = {2, 2}, small.mlp_widths = {32, 32};
  expect_compact_equal(m, *dense, [](const ModelSpec& s) { return nn::make_gpt(s.gpt, 0); }, spec,
                       Tensor::from_vector(ids, {2, 8}), nn::count_parameters(small));
  EXPECT_LT(nn::count_flops_per_sample(small), nn::count_flops_per_sample(m.gpt));
  EXPECT_EQ(nn::make_gpt(small, 0)->num_parameters(), nn::count_parameters(small));
}

// 190 rows, 19 for validation: 171 to train, 11 batches of 16 = 11 steps per epoch; 4 epochs = 44 steps.
const char* kSections =
    "[model]\nkind = \"mlp\"\nhidden = [16, 12]\n"
    "[train]\nepochs = 4\nbatch_size = 16\n"
    "[checkpoint]\nevery_seconds = 0\n";

std::map<std::string, std::vector<float>> weights(const fs::path& file) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, t] : io::read_safetensors(file.string()).tensors) out[name] = t.contiguous().to_vector<float>();
  return out;
}

// Counts, after every optimizer step, the zero weights of layers.1.weight; raises SIGUSR1 after
// step `preempt_after` (0 = never).
class ZeroCounter : public Technique {
 public:
  explicit ZeroCounter(int64_t preempt_after = 0) : preempt_after_(preempt_after) {}
  std::string name() const override { return "zeros"; }
  int order() const override { return kOrderEarlyStopping + 51; }  // after [prune]
  EventSet events() const override { return event_set({Event::after_optimizer_step}); }
  void on(Event, TrainState& state) override {
    for (const auto& [name, t] : state.model.named_parameters())
      if (name == "layers.1.weight") {
        std::vector<float> w = t.contiguous().to_vector<float>();
        zeros[state.step] = std::count(w.begin(), w.end(), 0.0f);
      }
    if (state.step == preempt_after_) std::raise(SIGUSR1);
  }
  std::map<int64_t, int64_t> zeros;

 private:
  int64_t preempt_after_;
};

TEST(PruneRun, GradualMasksStayZeroThroughAdamWAndReachTheTarget) {
  RunFixture f("prune-gradual", 190,
               std::string(kSections) + "[prune]\nsparsity = 0.75\nstart_step = 4\nend_step = 24\nevery = 5\n"
                                        "scope = \"layer\"\n");
  Trainer trainer(f.job(), f.options("run"));
  auto counter = std::make_unique<ZeroCounter>();
  ZeroCounter* seen = counter.get();
  trainer.add_technique(std::move(counter));
  TrainOutcome outcome = trainer.run();
  ASSERT_EQ(outcome.exit_code, 0);
  // layers.1.weight (16, 16): 256 weights; the cubic targets at 4, 9, ..., 24, then 192 zeros from 24 on.
  EXPECT_EQ(seen->zeros.at(3), 0);
  for (int64_t t : {4, 9, 14, 19, 24}) {
    PruneSchedule s{true, 0.0, 0.75, 4, 24, 5};
    EXPECT_EQ(seen->zeros.at(t), int64_t(std::floor(target_sparsity(s, t) * 256 + 1e-9))) << "step " << t;
  }
  for (int64_t t = 24; t <= 44; ++t) EXPECT_EQ(seen->zeros.at(t), 192) << "AdamW must not revive them, step " << t;
  for (int64_t t = 5; t < 9; ++t) EXPECT_EQ(seen->zeros.at(t), seen->zeros.at(4)) << "between prunings, step " << t;
  auto w = weights(f.dir() / "run" / "model.safetensors");
  EXPECT_EQ(std::count(w["layers.1.weight"].begin(), w["layers.1.weight"].end(), 0.0f), 192);
  EXPECT_EQ(std::count(w["layers.3.weight"].begin(), w["layers.3.weight"].end(), 0.0f), 144);  // 0.75 of 192
  ASSERT_TRUE(outcome.summary.techniques.count("prune"));
  const nlohmann::json& report = outcome.summary.techniques.at("prune");
  EXPECT_DOUBLE_EQ(report["sparsity"].get<double>(), 336.0 / 448.0);
  EXPECT_EQ(report["layers"][0]["kept"], 64);
  EXPECT_EQ(report["layers"][0]["total"], 256);
}

TEST(PruneRun, StructuredRunWritesTheCompactModelAndItsJob) {
  RunFixture f("prune-neurons", 190,
               std::string(kSections) + "[prune]\nstructure = \"neurons\"\nsparsity = 0.5\nschedule = \"oneshot\"\n"
                                        "start_step = 10\nscore = \"taylor\"\nscope = \"layer\"\n");
  TrainOutcome outcome = Trainer(f.job(), f.options("run")).run();
  ASSERT_EQ(outcome.exit_code, 0);
  auto w = weights(f.dir() / "run" / "model.safetensors");
  EXPECT_EQ(w["layers.1.weight"].size(), 8u * 16u);
  EXPECT_EQ(w["layers.3.weight"].size(), 6u * 8u);
  EXPECT_EQ(w["layers.5.weight"].size(), 4u * 6u);
  const std::string job = testing::read_text(f.dir() / "run" / "model.toml");
  EXPECT_NE(job.find("hidden = [ 8, 6 ]"), std::string::npos) << job;
  EXPECT_EQ(job.find("[prune]"), std::string::npos) << job;
  const JobSpec small = load_job((f.dir() / "run" / "model.toml").string());
  EXPECT_EQ(small.model.mlp.hidden, (std::vector<int64_t>{8, 6}));
  EXPECT_EQ(outcome.summary.techniques.at("prune")["compact_params"], 16 * 8 + 8 + 8 * 6 + 6 + 6 * 4 + 4);
}

TEST(PruneRun, BestWeightsRestoredByEarlyStoppingAreMaskedBeforeCompaction) {
  // Evaluations every 4 steps; the best may come before the last pruning step (20), whose masks
  // then go back on the restored weights: the compact model and the final evaluation agree.
  RunFixture f("prune-early-stopping", 190,
               "[model]\nkind = \"mlp\"\nhidden = [16, 12]\n[train]\nepochs = 4\nbatch_size = 16\neval_every = 4\n"
               "[train.early_stopping]\npatience = 100\n[checkpoint]\nevery_seconds = 0\n"
               "[prune]\nstructure = \"neurons\"\nsparsity = 0.5\nscope = \"layer\"\nstart_step = 2\nend_step = 20\n"
               "every = 6\n");
  TrainOutcome outcome = Trainer(f.job(), f.options("run")).run();
  ASSERT_EQ(outcome.exit_code, 0);
  auto w = weights(f.dir() / "run" / "model.safetensors");
  EXPECT_EQ(w["layers.1.weight"].size(), 8u * 16u);
  EXPECT_EQ(w["layers.3.weight"].size(), 6u * 8u);
  // The compact model, from its own job file, evaluates as the run's final evaluation did.
  const JobSpec small = load_job((f.dir() / "run" / "model.toml").string());
  PreparedData data = prepare_data(small, (f.dir() / "cache").string());
  auto model = load_model(small, data, (f.dir() / "run" / "model.safetensors").string());
  const EvalMetrics m = evaluate_classifier(*model, data.val, 1000);
  ASSERT_TRUE(outcome.summary.metrics.val_loss);
  EXPECT_NEAR(m.loss, *outcome.summary.metrics.val_loss, 1e-5);
}

TEST(PruneRun, ResumedInTheMiddleOfTheScheduleEndsBitIdentical) {
  const std::string sections = std::string(kSections) + "[prune]\nsparsity = 0.6\nstart_step = 3\nend_step = 30\n"
                                                        "every = 4\nscore = \"taylor\"\n";
  RunFixture reference("prune-reference", 190, sections);
  ASSERT_EQ(Trainer(reference.job(), reference.options("run")).run().exit_code, 0);
  const auto expected = weights(reference.dir() / "run" / "model.safetensors");

  // Preempted after step 5 (Taylor scores gathered since step 3) and 17, resumed each time.
  RunFixture f("prune-resumed", 190, sections);
  for (int64_t stop : {5, 17}) {
    Trainer trainer(f.job(), f.options("run", stop == 5 ? "" : "auto"));
    trainer.add_technique(std::make_unique<ZeroCounter>(stop));
    ASSERT_EQ(trainer.run().exit_code, kExitPreempted) << "preempted after step " << stop;
  }
  Trainer last(f.job(), f.options("run", "auto"));
  last.add_technique(std::make_unique<ZeroCounter>());
  TrainOutcome outcome = last.run();
  ASSERT_EQ(outcome.exit_code, 0);
  EXPECT_EQ(outcome.summary.checkpoint.interruptions, 2);
  // The tensors bit for bit (the files' metadata differ: each fixture's job names its own store).
  EXPECT_TRUE(weights(f.dir() / "run" / "model.safetensors") == expected);
}

TEST(PruneJob, KeysAreChecked) {
  auto job_error = [](const std::string& name, const std::string& prune, const std::string& message) {
    RunFixture f(name, 40, std::string(kSections) + prune);
    EXPECT_INPUT_ERROR(f.job(), message);
  };
  job_error("prune-one", "[prune]\nsparsity = 1\n", "[prune] sparsity: expected a fraction in [0, 1)");
  job_error("prune-negative", "[prune]\nsparsity = -0.1\n", "[prune] sparsity: expected a fraction in [0, 1)");
  job_error("prune-structure", "[prune]\nstructure = \"rows\"\n", "[prune] structure = \"rows\": expected one of");
  job_error("prune-list", "[prune]\nstructure = [\"heads\", \"weights\"]\n", "does not combine");
  job_error("prune-steps", "[prune]\nstart_step = 9\nend_step = 3\n", "[prune] end_step: expected end_step >= start_step");
  job_error("prune-typo", "[prune]\nsparsty = 0.5\n", "unknown key 'sparsty' in [prune]");
  job_error("prune-lora", "[prune]\n[lora]\ntargets = [\"layers.*\"]\n", "[prune] does not combine with [lora]");

  RunFixture heads("prune-heads", 190, std::string(kSections) + "[prune]\nstructure = \"heads\"\n");
  EXPECT_INPUT_ERROR(Trainer(heads.job(), heads.options("run")).run(),
                     "[prune] structure = \"heads\": a mlp model has no attention heads");
  EXPECT_FALSE(fs::exists(heads.dir() / "run"));
  RunFixture pattern("prune-pattern", 190, std::string(kSections) + "[prune]\nlayers = [\"blocks.*\"]\n");
  EXPECT_INPUT_ERROR(Trainer(pattern.job(), pattern.options("run")).run(),
                     "[prune] layers pattern \"blocks.*\" matches no prunable layer (layers.1.weight, layers.3.weight");
}

}  // namespace
}  // namespace frugal::train
