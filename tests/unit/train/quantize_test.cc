// Post-training quantization and quantization-aware training (train/compress/quantize.h, qat.h):
// calibration names parse or are refused; a trained MLP quantized from a run keeps its accuracy
// (within a few points on a tiny val split) and its file round-trips (i8 weights, scales, metadata);
// a file whose scale count or model differs is an input error naming it; a QAT run writes
// model.int8.safetensors and, preempted and resumed, ends bit-identical to an uninterrupted run.
#include <csignal>
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "frugal/base/signals.h"
#include "frugal/io/checkpoint.h"
#include "frugal/io/safetensors.h"
#include "frugal/nn/layers.h"
#include "frugal/nn/sequential.h"
#include "frugal/train/compress/quantize.h"
#include "frugal/train/data_setup.h"
#include "frugal/train/evaluate.h"
#include "frugal/train/model_setup.h"
#include "test_util.h"
#include "unit/train/run_fixture.h"

namespace frugal::train {
namespace {

using testing::PreemptAt;
using testing::RunFixture;

TEST(Quantize, CalibrationNames) {
  EXPECT_FALSE(parse_calibration("minmax").percentile);
  EXPECT_EQ(parse_calibration("percentile").p, 99.99);
  EXPECT_EQ(parse_calibration("percentile:99.9").p, 99.9);
  EXPECT_EQ(parse_calibration("percentile:100").name(), "percentile:100");
  EXPECT_INPUT_ERROR(parse_calibration("entropy"), "'entropy'", "minmax, percentile");
  EXPECT_INPUT_ERROR(parse_calibration("percentile:0"), "(0, 100]");
  EXPECT_INPUT_ERROR(parse_calibration("percentile:100.5"), "(0, 100]");
  EXPECT_INPUT_ERROR(parse_calibration("percentile:-3"), "(0, 100]");
  EXPECT_INPUT_ERROR(parse_calibration("percentile:abc"), "(0, 100]");
  EXPECT_INPUT_ERROR(parse_calibration("percentile99"), "(0, 100]");
}

const char* kMlpSections =
    "[model]\nkind = \"mlp\"\nhidden = [32, 16]\n"
    "[optim]\nlr = 0.01\n"
    "[train]\nepochs = 6\nbatch_size = 32\n";

TEST(Quantize, PtqOfATrainedMlpKeepsItsAccuracyAndItsFileRoundTrips) {
  RunFixture fixture("quantize-ptq", 600, kMlpSections);
  ASSERT_EQ(Trainer(fixture.job(), fixture.options("run")).run().exit_code, 0);
  const std::string weights = (fixture.dir() / "run" / "model.safetensors").string();
  JobSpec job = fixture.job();
  PreparedData data = prepare_data(job, (fixture.dir() / "cache").string());
  std::shared_ptr<nn::Module> model = load_model(job, data, weights);
  const EvalMetrics f32 = evaluate_classifier(*model, data.val, 1000);

  for (const char* calibration : {"minmax", "percentile:99.9"}) {
    std::shared_ptr<nn::Module> m = load_model(job, data, weights);
    QuantizeOptions options;
    options.calibration = parse_calibration(calibration);
    options.samples = 200;
    QuantizedModel q = quantize_model(*m, job, data, options);
    ASSERT_EQ(q.layers.size(), 3u);
    EXPECT_EQ(q.layers[0].input, "s8");
    const std::string path = (fixture.dir() / (std::string("int8-") + calibration + ".safetensors")).string();
    io::write_safetensors(path, q.tensors, q.metadata);

    io::SafetensorsFile file = io::read_safetensors(path);
    ASSERT_TRUE(is_quantized(file));
    EXPECT_EQ(file.tensors.at("layers.1.weight").dtype(), DType::i8);
    EXPECT_EQ(file.tensors.at("layers.1.weight_scale").numel(), 32);
    EXPECT_EQ(file.tensors.at("layers.1.input_scale").numel(), 1);
    const nlohmann::json meta = nlohmann::json::parse(file.metadata.at(kQuantizationKey));
    EXPECT_EQ(meta["calibration"], options.calibration.name());
    EXPECT_EQ(meta["samples"], 200);
    EXPECT_EQ(meta["layers"]["layers.5"], "s8");

    std::shared_ptr<nn::Module> int8 = load_quantized_model(job, data, file, path);
    const EvalMetrics e = evaluate_classifier(*int8, data.val, 1000);
    std::printf("%s: val accuracy f32 %.4f, int8 %.4f; loss %.4f vs %.4f\n", calibration, f32.accuracy, e.accuracy,
                f32.loss, e.loss);
    EXPECT_GE(e.accuracy, f32.accuracy - 0.04);
    EXPECT_NEAR(e.loss, f32.loss, 0.1 * f32.loss + 0.02);
  }

  // A file whose scale count does not fit, and a job whose model differs: input errors naming the file.
  const std::string good = (fixture.dir() / "int8-minmax.safetensors").string();
  io::SafetensorsFile file = io::read_safetensors(good);
  std::vector<std::pair<std::string, Tensor>> tensors(file.tensors.begin(), file.tensors.end());
  for (auto& [name, t] : tensors)
    if (name == "layers.3.weight_scale") t = Tensor::ones({15});
  const std::string bad = (fixture.dir() / "bad-scales.safetensors").string();
  io::write_safetensors(bad, tensors, file.metadata);
  EXPECT_INPUT_ERROR(load_quantized_model(job, data, io::read_safetensors(bad), bad), bad, "layers.3",
                     "weight_scale holds 15 values, expected 16");
  JobSpec other = fixture.job({"model.hidden=[32, 8]"});
  EXPECT_INPUT_ERROR(load_quantized_model(other, data, file, good), good, "layers.3");
}

TEST(Quantize, AModelWithoutQuantizableLayersIsAnInputError) {
  RunFixture fixture("quantize-none", 40, kMlpSections);
  JobSpec job = fixture.job();
  PreparedData data = prepare_data(job, (fixture.dir() / "cache").string());
  nn::Sequential model({std::make_shared<nn::Flatten>(), std::make_shared<nn::ReLU>()});
  EXPECT_INPUT_ERROR(quantize_model(model, job, data, QuantizeOptions{}), "no Linear or Conv2d layer");
  // an image model's only convolution on 1 channel stays f32: nothing else to quantize either
  nn::Conv2d conv(1, 4, 3);
  EXPECT_INPUT_ERROR(quantize_model(conv, job, data, QuantizeOptions{}), "no Linear or Conv2d layer");
}

const char* kQatSections =
    "[model]\nkind = \"mlp\"\nhidden = [16]\n"
    "[train]\nepochs = 2\nbatch_size = 16\neval_every = 3\n"
    "[checkpoint]\nevery_steps = 5\nevery_seconds = 0\n"
    "[quantize]\naware = true\nstart_step = 2\nobserver = \"ema\"\n";


std::vector<std::vector<float>> tensors_of(const std::filesystem::path& path) {
  std::vector<std::vector<float>> out;
  for (const auto& [name, t] : io::read_safetensors(path.string()).tensors)
    out.push_back(t.to(DType::f32).contiguous().to_vector<float>());
  return out;
}

TEST(Quantize, QatRunWritesTheQuantizedFileAndResumesBitExactly) {
  RunFixture reference("qat-reference", 190, kQatSections);
  TrainOutcome done = Trainer(reference.job(), reference.options("run")).run();
  ASSERT_EQ(done.exit_code, 0);
  const std::filesystem::path run = reference.dir() / "run";
  io::SafetensorsFile q = io::read_safetensors((run / "model.int8.safetensors").string());
  ASSERT_TRUE(is_quantized(q));
  EXPECT_EQ(q.tensors.at("layers.1.weight").dtype(), DType::i8);
  EXPECT_GT(q.tensors.at("layers.3.input_scale").item(), 0.0);
  EXPECT_EQ(nlohmann::json::parse(q.metadata.at(kQuantizationKey))["calibration"], "qat:ema");
  // The quantized file runs and evaluates close to the fake-quantized model's final evaluation.
  JobSpec job = reference.job();
  PreparedData data = prepare_data(job, (reference.dir() / "cache").string());
  std::shared_ptr<nn::Module> int8 = load_quantized_model(job, data, q, "model.int8.safetensors");
  const EvalMetrics e = evaluate_classifier(*int8, data.val, 1000);
  ASSERT_TRUE(done.summary.metrics.val_loss);
  EXPECT_NEAR(e.loss, *done.summary.metrics.val_loss, 0.05 * *done.summary.metrics.val_loss + 0.01);

  RunFixture preempted("qat-preempted", 190, kQatSections);
  {
    Trainer first(preempted.job(), preempted.options("run"));
    first.add_technique(std::make_unique<PreemptAt>(6));
    ASSERT_EQ(first.run().exit_code, kExitPreempted);
  }
  std::optional<io::LatestCheckpoint> latest = io::load_latest_checkpoint((preempted.dir() / "run" / "checkpoints").string());
  ASSERT_TRUE(latest);
  TrainOutcome resumed = Trainer(preempted.job(), preempted.options("run", "auto")).run();
  ASSERT_EQ(resumed.exit_code, 0);
  EXPECT_TRUE(tensors_of(preempted.dir() / "run" / "model.safetensors") == tensors_of(run / "model.safetensors"));
  EXPECT_TRUE(tensors_of(preempted.dir() / "run" / "model.int8.safetensors") == tensors_of(run / "model.int8.safetensors"));
}

TEST(Quantize, QatKeysAreChecked) {
  std::string sections = kQatSections;
  sections.replace(sections.find("\"ema\""), 5, "\"histogram\"");
  RunFixture fixture("qat-keys", 50, sections);
  EXPECT_INPUT_ERROR(fixture.job(), "observer");
  RunFixture with_lora("qat-lora", 50, std::string(kQatSections) + "[lora]\ntargets = [\"layers.*\"]\n");
  EXPECT_INPUT_ERROR(with_lora.job(), "[quantize] aware = true with [lora]");
}

}  // namespace
}  // namespace frugal::train
