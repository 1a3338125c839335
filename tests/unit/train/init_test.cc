// [init]: weights loaded into a fresh model from a safetensors file or a run of the store, renamed
// by prefix (map), some tensors kept fresh (skip); every missing or misshapen tensor named at once;
// patterns that match nothing refused; the file's unused tensors reported; and through Trainer:
// the load happens in a fresh run only (a resumed one takes the checkpoint's weights, even with the
// file gone) and nothing is written when it fails.
#include <csignal>
#include <filesystem>
#include <functional>
#include <limits>

#include <gtest/gtest.h>

#include "frugal/base/signals.h"
#include "frugal/data/readers.h"
#include "frugal/io/safetensors.h"
#include "frugal/nn/zoo.h"
#include "frugal/track/run_store.h"
#include "frugal/train/compress/init.h"
#include "test_util.h"
#include "unit/train/run_fixture.h"

namespace frugal::train {
namespace {

namespace fs = std::filesystem;
using Named = std::vector<std::pair<std::string, Tensor>>;

// layers.1.weight (5, 6), layers.1.bias (5,), layers.3.weight (outputs, 5), layers.3.bias (outputs,)
std::shared_ptr<nn::Module> mlp(int64_t outputs, uint64_t seed) {
  nn::MlpConfig config;
  config.inputs = 6;
  config.hidden = {5};
  config.outputs = outputs;
  return nn::make_mlp(config, seed);
}

fs::path scratch(const std::string& name) {
  fs::path dir = fs::path(::testing::TempDir()) / ("frugal-init-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// The tensors of `model`, renamed by `rename` (name -> new name, "" drops it), as a file.
std::string save(const fs::path& path, const nn::Module& model,
                 const std::function<std::string(const std::string&)>& rename = nullptr) {
  Named tensors;
  for (const auto& [name, t] : model.state_dict()) {
    std::string to = rename ? rename(name) : name;
    if (!to.empty()) tensors.emplace_back(to, t);
  }
  io::write_safetensors(path.string(), tensors);
  return path.string();
}

std::vector<float> values(const nn::Module& model, const std::string& name) {
  for (const auto& [n, t] : model.state_dict())
    if (n == name) return t.contiguous().to_vector<float>();
  ADD_FAILURE() << "no tensor " << name;
  return {};
}

InitSpec from(const std::string& path) {
  InitSpec spec;
  spec.from = path;
  return spec;
}

TEST(Init, LoadsEveryTensorConvertingTheDtype) {
  fs::path dir = scratch("all");
  auto source = mlp(3, 1), model = mlp(3, 2);
  ASSERT_NE(values(*source, "layers.1.weight"), values(*model, "layers.1.weight"));
  // Stored as f64: loaded into the f32 model as load_state_dict converts (exactly, here).
  Named wide;
  for (const auto& [name, t] : source->state_dict()) wide.emplace_back(name, t.to(DType::f64));
  io::write_safetensors((dir / "wide.safetensors").string(), wide);
  InitReport report = load_init_weights(from((dir / "wide.safetensors").string()), *model, (dir / "runs.db").string(), "job.toml");
  for (const char* name : {"layers.1.weight", "layers.1.bias", "layers.3.weight", "layers.3.bias"})
    EXPECT_EQ(values(*model, name), values(*source, name)) << name;
  EXPECT_EQ(report.summary.from, (dir / "wide.safetensors").string());
  EXPECT_EQ(report.summary.loaded, 4);
  EXPECT_TRUE(report.summary.skipped.empty());
  EXPECT_EQ(report.summary.unused, 0);
  EXPECT_FALSE(report.summary.run_id);
  EXPECT_FALSE(fs::exists(dir / "runs.db")) << "a file source must not open (or create) the run store";
}

TEST(Init, NonFiniteWeightsAreRefusedNamingFileAndTensor) {
  fs::path dir = scratch("nonfinite");
  auto source = mlp(3, 1), model = mlp(3, 2);
  Named tensors;
  for (const auto& [name, t] : source->state_dict()) {
    Tensor copy = t.contiguous().clone();
    if (name == "layers.3.bias") copy.data<float>()[1] = std::numeric_limits<float>::infinity();
    tensors.emplace_back(name, copy);
  }
  const std::string path = (dir / "bad.safetensors").string();
  io::write_safetensors(path, tensors);
  const std::vector<float> before = values(*model, "layers.1.weight");
  EXPECT_INPUT_ERROR(load_init_weights(from(path), *model, (dir / "runs.db").string(), "job.toml"), "job.toml",
                     "[init] from " + path, "tensor 'layers.3.bias'", "inf at element 1");
  EXPECT_EQ(values(*model, "layers.1.weight"), before) << "nothing loaded";
}

TEST(Init, MapRenamesPrefixesTheLongestFirst) {
  fs::path dir = scratch("map");
  auto source = mlp(3, 1), model = mlp(3, 2);
  // A PyTorch-style tree: encoder.1.* and classifier.*
  std::string file = save(dir / "torch.safetensors", *source, [](const std::string& name) {
    return name.rfind("layers.1.", 0) == 0 ? "encoder.1." + name.substr(9) : "classifier." + name.substr(9);
  });
  InitSpec spec = from(file);
  spec.map = {{"classifier", "layers.3"}, {"encoder", "layers"}};
  InitReport report = load_init_weights(spec, *model, (dir / "runs.db").string(), "job.toml");
  EXPECT_EQ(report.summary.loaded, 4);
  EXPECT_EQ(values(*model, "layers.3.weight"), values(*source, "layers.3.weight"));
  EXPECT_EQ(values(*model, "layers.1.bias"), values(*source, "layers.1.bias"));

  // "encoder.1" is longer than "encoder": it wins for both encoder tensors, so "encoder" renames
  // nothing, which is an error (a typo in a prefix is caught, not ignored).
  spec.map = {{"classifier", "layers.3"}, {"encoder", "wrong"}, {"encoder.1", "layers.1"}};
  EXPECT_INPUT_ERROR(load_init_weights(spec, *mlp(3, 2), (dir / "runs.db").string(), "job.toml"), "job.toml",
                     "[init] map prefix \"encoder\" matches no tensor of the file");
  // A prefix applies at a dot only: "encode" is not a prefix of "encoder.1.weight".
  spec.map = {{"classifier", "layers.3"}, {"encode", "layers"}};
  EXPECT_INPUT_ERROR(load_init_weights(spec, *mlp(3, 2), (dir / "runs.db").string(), "job.toml"),
                     "[init] map prefix \"encode\" matches no tensor");
}

TEST(Init, SkippedTensorsKeepTheirFreshInitialization) {
  fs::path dir = scratch("skip");
  auto source = mlp(4, 1), model = mlp(3, 2), fresh = mlp(3, 2);  // 4 classes before, 3 now
  std::string file = save(dir / "four.safetensors", *source);
  InitSpec spec = from(file);
  spec.skip = {"layers.3.*"};
  InitReport report = load_init_weights(spec, *model, (dir / "runs.db").string(), "job.toml");
  EXPECT_EQ(values(*model, "layers.1.weight"), values(*source, "layers.1.weight"));
  EXPECT_EQ(values(*model, "layers.1.bias"), values(*source, "layers.1.bias"));
  EXPECT_EQ(values(*model, "layers.3.weight"), values(*fresh, "layers.3.weight"));
  EXPECT_EQ(values(*model, "layers.3.bias"), values(*fresh, "layers.3.bias"));
  EXPECT_EQ(report.summary.loaded, 2);
  EXPECT_EQ(report.summary.skipped, (std::vector<std::string>{"layers.3.weight", "layers.3.bias"}));
  EXPECT_EQ(report.summary.unused, 0) << "the file's head has a place in the model, though skipped";
}

TEST(Init, EveryMissingOrMisshapenTensorIsNamedAtOnce) {
  fs::path dir = scratch("mismatch");
  auto source = mlp(4, 1), model = mlp(3, 2), fresh = mlp(3, 2);
  // The head has 4 classes in the file, 3 in the model; layers.1.bias is not in the file at all.
  std::string file = save(dir / "bad.safetensors", *source,
                          [](const std::string& name) { return name == "layers.1.bias" ? "" : name; });
  EXPECT_INPUT_ERROR(load_init_weights(from(file), *model, (dir / "runs.db").string(), "job.toml"),
                     "job.toml: [init] from " + file, "3 of the model's 4 tensors cannot be loaded",
                     "'layers.1.bias' (5,) is not in the file",
                     "'layers.3.weight' is (4, 5) in the file, (3, 5) in the model",
                     "'layers.3.bias' is (4,) in the file, (3,) in the model",
                     "[init] skip = [\"layers.1.*\", \"layers.3.*\"]");
  // Checked before anything is copied: the model is untouched.
  EXPECT_EQ(values(*model, "layers.1.weight"), values(*fresh, "layers.1.weight"));
}

TEST(Init, PatternsThatMatchNothingAreErrors) {
  fs::path dir = scratch("nothing");
  std::string file = save(dir / "m.safetensors", *mlp(3, 1));
  InitSpec spec = from(file);
  spec.skip = {"head.*"};
  EXPECT_INPUT_ERROR(load_init_weights(spec, *mlp(3, 2), (dir / "runs.db").string(), "job.toml"),
                     "[init] skip pattern \"head.*\" matches no tensor of the model", "layers.1.bias");
}

TEST(Init, TheFileTensorsTheModelDoesNotUseAreReported) {
  fs::path dir = scratch("unused");
  auto source = mlp(3, 1);
  Named tensors = source->state_dict();
  tensors.emplace_back("aux.weight", Tensor::zeros({2, 2}));
  tensors.emplace_back("aux.bias", Tensor::zeros({2}));
  io::write_safetensors((dir / "extra.safetensors").string(), tensors);
  auto model = mlp(3, 2);
  InitReport report = load_init_weights(from((dir / "extra.safetensors").string()), *model, (dir / "runs.db").string(), "job.toml");
  EXPECT_EQ(report.summary.loaded, 4);
  EXPECT_EQ(report.summary.unused, 2);
  EXPECT_EQ(report.unused, (std::vector<std::string>{"aux.bias", "aux.weight"}));
}

TEST(Init, FromNamesARunOfTheStoreOrARunDirectory) {
  fs::path dir = scratch("run-id");
  const std::string store_path = (dir / "runs.db").string();
  auto source = mlp(3, 1);
  std::string done_id, other_id;
  {
    track::RunStore store(store_path);
    done_id = store.create_run({"pretrain", "", (dir / "pretrain").string(), "h"});
    fs::create_directories(dir / "pretrain");
    save(dir / "pretrain" / "model.safetensors", *source);
    store.finish_run(done_id, "completed", "{}");
    other_id = store.create_run({"other", "", (dir / "other").string(), "h"});  // running: no model yet
  }
  InitSource by_id = resolve_init_source(done_id, store_path, "job.toml");
  EXPECT_EQ(by_id.path, (dir / "pretrain" / "model.safetensors").string());
  EXPECT_EQ(by_id.run_id, done_id);
  EXPECT_EQ(resolve_init_source("pretrain-", store_path, "job.toml").run_id, done_id);  // a unique prefix
  EXPECT_EQ(resolve_init_source((dir / "pretrain").string(), store_path, "job.toml").path,
            (dir / "pretrain" / "model.safetensors").string());

  auto model = mlp(3, 2);
  InitReport report = load_init_weights(from("pretrain"), *model, store_path, "job.toml");
  EXPECT_EQ(report.summary.run_id, done_id);
  EXPECT_EQ(values(*model, "layers.3.weight"), values(*source, "layers.3.weight"));

  EXPECT_INPUT_ERROR(resolve_init_source("other", store_path, "job.toml"), "job.toml: [init] from = \"other\"",
                     "run " + other_id + " (running) has no model file", "only a completed run has one");
  EXPECT_INPUT_ERROR(resolve_init_source("nothing-like-it", store_path, "job.toml"),
                     "[init] from = \"nothing-like-it\": no such file, and no run of " + store_path);
  // Not a file, and no store to look in: the store is not created by the look-up.
  EXPECT_INPUT_ERROR(resolve_init_source("pretrain", (dir / "none.db").string(), "job.toml"),
                     "no such file, and no run store at " + (dir / "none.db").string());
  EXPECT_FALSE(fs::exists(dir / "none.db"));
}

TEST(Init, TheReportGoesThroughACheckpointAndTheSummary) {
  InitReport report;
  report.summary = {"a/model.safetensors", std::string("pre-1"), 4, {"layers.3.weight", "layers.3.bias"}, 1,
                    InitVocab{60, 5, 2}};
  InitFromWeights loaded(report);
  TechniqueState saved("init", "checkpoint-4.fck");
  loaded.save_state(saved);
  InitFromWeights resumed(std::nullopt);
  resumed.load_state(saved);
  TechniqueState again("init", "checkpoint-8.fck");
  resumed.save_state(again);
  EXPECT_EQ(again.values(), saved.values());

  RunSummary s;
  s.params = 10;
  s.trainable_params = 7;
  s.init = report.summary;
  s.init->vocab = InitVocab{60, 5, 2};
  RunSummary back = RunSummary::from_json(s.to_json(), "summary.json");
  ASSERT_TRUE(back.init);
  EXPECT_EQ(back.init->from, "a/model.safetensors");
  EXPECT_EQ(back.init->run_id, "pre-1");
  EXPECT_EQ(back.init->loaded, 4);
  EXPECT_EQ(back.init->skipped, report.summary.skipped);
  EXPECT_EQ(back.init->unused, 1);
  ASSERT_TRUE(back.init->vocab);
  EXPECT_EQ(back.init->vocab->describe(), "vocabulary: 60 characters shared, 5 new, 2 dropped");
  EXPECT_EQ(back.trainable_params, 7);
  nlohmann::json old = s.to_json();
  old.erase("trainable_params");
  old.erase("init");
  EXPECT_EQ(RunSummary::from_json(old, "summary.json").trainable_params, 10) << "older summaries: all trained";
}

TEST(Init, AnIntegerTensorDoesNotLoadIntoAFloatOne) {
  fs::path dir = scratch("dtype");
  auto source = mlp(3, 1);
  Named tensors;
  for (const auto& [name, t] : source->state_dict())
    tensors.emplace_back(name, name == "layers.1.bias" || name == "layers.3.bias" ? t.to(DType::i64) : t);
  io::write_safetensors((dir / "ints.safetensors").string(), tensors);
  EXPECT_INPUT_ERROR(load_init_weights(from((dir / "ints.safetensors").string()), *mlp(3, 2), (dir / "runs.db").string(),
                                       "job.toml"),
                     "2 of the model's 4 tensors cannot be loaded", "'layers.1.bias' is i64 in the file, f32 in the model",
                     "'layers.3.bias' is i64 in the file, f32 in the model");
}

// A tiny GPT over `chars`: wte.weight (vocab, 8), and head.weight (vocab, 8) when untied.
std::shared_ptr<nn::Module> gpt(const std::string& chars, bool tied, uint64_t seed) {
  nn::GptConfig config;
  config.vocab = int64_t(chars.size());
  config.context = 4;
  config.layers = 1;
  config.heads = 2;
  config.width = 8;
  config.tied_embeddings = tied;
  return nn::make_gpt(config, seed);
}

std::vector<float> row(const nn::Module& model, const std::string& name, int64_t i) {
  for (const auto& [n, t] : model.state_dict())
    if (n == name) return t.select_view(0, i).contiguous().to_vector<float>();
  ADD_FAILURE() << "no tensor " << name;
  return {};
}

TEST(Init, AnotherVocabularyIsRemappedByCharacter) {
  fs::path dir = scratch("vocab");
  for (const bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied head" : "untied head");
    // The file knows "abc"; the job's text has "abdxy": a, b shared; d, x, y new; c dropped.
    const std::string file_chars = "abc", job_chars = "abdxy";
    auto source = gpt(file_chars, tied, 1), model = gpt(job_chars, tied, 2), fresh = gpt(job_chars, tied, 2);
    const std::string file = (dir / (tied ? "tied.safetensors" : "untied.safetensors")).string();
    io::write_safetensors(file, source->state_dict(), {{"frugal.vocab", data::CharVocab(file_chars).to_string()}});
    const data::CharVocab vocab(job_chars);
    InitReport report = load_init_weights(from(file), *model, (dir / "runs.db").string(), "job.toml", &vocab);
    ASSERT_TRUE(report.summary.vocab);
    EXPECT_EQ(report.summary.vocab->shared, 2);
    EXPECT_EQ(report.summary.vocab->added, 3);
    EXPECT_EQ(report.summary.vocab->dropped, 1);
    EXPECT_EQ(report.summary.vocab->describe(), "vocabulary: 2 characters shared, 3 new, 1 dropped");
    EXPECT_EQ(report.summary.loaded, int64_t(model->state_dict().size()));
    std::vector<std::string> indexed = {"wte.weight"};
    if (!tied) indexed.push_back("head.weight");
    for (const std::string& name : indexed) {
      EXPECT_EQ(row(*model, name, 0), row(*source, name, 0)) << name << " 'a'";
      EXPECT_EQ(row(*model, name, 1), row(*source, name, 1)) << name << " 'b'";
      for (int64_t i : {2, 3, 4}) EXPECT_EQ(row(*model, name, i), row(*fresh, name, i)) << name << " new " << i;
    }
    // Everything else is loaded as is.
    EXPECT_EQ(values(*model, "wpe.weight"), values(*source, "wpe.weight"));
    EXPECT_EQ(values(*model, "blocks.0.attn.qkv.weight"), values(*source, "blocks.0.attn.qkv.weight"));
  }
}

TEST(Init, TheSameVocabularyLoadsAsIsAndFilesWithoutOneMustFit) {
  fs::path dir = scratch("same-vocab");
  auto source = gpt("abc", false, 1), model = gpt("abc", false, 2);
  const std::string file = (dir / "same.safetensors").string();
  io::write_safetensors(file, source->state_dict(), {{"frugal.vocab", data::CharVocab("abc").to_string()}});
  const data::CharVocab vocab("abc");
  InitReport report = load_init_weights(from(file), *model, (dir / "runs.db").string(), "job.toml", &vocab);
  ASSERT_TRUE(report.summary.vocab);
  EXPECT_EQ(report.summary.vocab->shared, 3);
  EXPECT_EQ(report.summary.vocab->added + report.summary.vocab->dropped, 0);
  EXPECT_EQ(values(*model, "head.weight"), values(*source, "head.weight"));

  // A file without a vocabulary (e.g. from PyTorch): rows are taken as they are, so they must fit.
  const std::string bare = (dir / "bare.safetensors").string();
  io::write_safetensors(bare, source->state_dict());
  const data::CharVocab other("abdxy");
  EXPECT_INPUT_ERROR(load_init_weights(from(bare), *gpt("abdxy", false, 2), (dir / "runs.db").string(), "job.toml", &other),
                     "'wte.weight' is (3, 8) in the file, (5, 8) in the model",
                     "'head.weight' is (3, 8) in the file, (5, 8) in the model");
  // With a vocabulary, the rows must be the file's characters: a width that differs is still named.
  nn::GptConfig wide;
  wide.vocab = 3, wide.context = 4, wide.layers = 1, wide.heads = 2, wide.width = 12;
  io::write_safetensors((dir / "wide.safetensors").string(), nn::make_gpt(wide, 1)->state_dict(),
                        {{"frugal.vocab", data::CharVocab("abc").to_string()}});
  EXPECT_INPUT_ERROR(load_init_weights(from((dir / "wide.safetensors").string()), *gpt("abdxy", true, 2),
                                       (dir / "runs.db").string(), "job.toml", &other),
                     "'wte.weight' is (3, 12) in the file, (5, 8) in the model ((3, 8) expected: rows indexed by "
                     "the file's 3 characters)");
}

// Through Trainer: 190 rows, 19 for validation, 11 batches of 16 per epoch, 2 epochs.
const char* kSections =
    "[model]\nkind = \"mlp\"\nhidden = [16]\n"
    "[train]\nepochs = 2\nbatch_size = 16\n"
    "[checkpoint]\nevery_steps = 5\nevery_seconds = 0\n";

// Raises SIGUSR1 after optimizer step `step`: the run writes a checkpoint and exits with 75.
class PreemptAfter : public Technique {
 public:
  explicit PreemptAfter(int64_t step) : step_(step) {}
  std::string name() const override { return "preempt_after"; }
  EventSet events() const override { return event_set({Event::after_optimizer_step}); }
  void on(Event event, TrainState& state) override {
    if (state.step == step_) std::raise(SIGUSR1);
  }

 private:
  int64_t step_;
};

TEST(Init, ATrainerLoadsInAFreshRunOnly) {
  using testing::RunFixture;
  RunFixture pre("init-pretrain", 190, kSections);
  Trainer(pre.job(), pre.options("run")).run();
  const fs::path copy = pre.dir() / "copy.safetensors";
  fs::copy_file(pre.dir() / "run" / "model.safetensors", copy, fs::copy_options::overwrite_existing);

  RunFixture f("init-finetune", 190, std::string(kSections) + "[init]\nfrom = \"" + copy.string() + "\"\n");
  Trainer first(f.job(), f.options("run"));
  first.add_technique(std::make_unique<PreemptAfter>(6));
  TrainOutcome one = first.run();
  ASSERT_EQ(one.exit_code, kExitPreempted);
  ASSERT_TRUE(one.summary.init);
  EXPECT_EQ(one.summary.init->loaded, 4);
  // The resumed process must not need the file: its weights come from the checkpoint.
  fs::remove(copy);
  Trainer second(f.job(), f.options("run", "auto"));
  TrainOutcome two = second.run();
  EXPECT_EQ(two.exit_code, 0);
  EXPECT_EQ(two.summary.steps, 22);
  ASSERT_TRUE(two.summary.init) << "the report comes back from the checkpoint";
  EXPECT_EQ(two.summary.init->from, copy.string());
  EXPECT_EQ(two.summary.init->loaded, 4);
  // A fresh run without the file fails, before anything is written.
  EXPECT_INPUT_ERROR(Trainer(f.job(), f.options("fresh")).run(), "[init] from", "copy.safetensors", "no such file");
  EXPECT_FALSE(fs::exists(f.dir() / "fresh"));
}

TEST(Init, ABadInitWritesNoRunDirectoryAndNoStoreRow) {
  using testing::RunFixture;
  RunFixture pre("init-pretrain-4", 190, kSections);
  Trainer(pre.job(), pre.options("run")).run();
  // Same model, but the hidden layer is wider: every tensor but the last bias has another shape.
  RunFixture f("init-bad", 190, "[model]\nkind = \"mlp\"\nhidden = [24]\n[train]\nepochs = 1\nbatch_size = 16\n"
                                "[init]\nfrom = \"" + (pre.dir() / "run" / "model.safetensors").string() + "\"\n");
  EXPECT_INPUT_ERROR(Trainer(f.job(), f.options("run")).run(), "3 of the model's 4 tensors cannot be loaded",
                     "'layers.1.weight' is (16, 16) in the file, (24, 16) in the model", "'layers.1.bias'",
                     "'layers.3.weight' is (4, 16) in the file, (4, 24) in the model");
  EXPECT_FALSE(fs::exists(f.dir() / "run"));
  EXPECT_FALSE(fs::exists(f.dir() / "runs.db"));
}

}  // namespace
}  // namespace frugal::train
