// A C++ program built against libfrugal (find_package(frugal)): it trains a model of its own
// (TinyNet) on the data of a job file through frugal's training loop, with a technique of its own
// (Ema, ema.h: an exponential moving average of the weights), and prints the run summary; the last
// line of stdout is the summary as JSON. Checkpoints, resume, cost accounting and the run store
// work as for `frugal train`.
// Usage: train_with_ema [JOB.toml] [--out DIR] [--resume auto|FILE] [--decay D] [--set KEY=VALUE]...
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <frugal/base/error.h>
#include <frugal/nn/init.h>
#include <frugal/nn/layers.h>
#include <frugal/nn/module.h>
#include <frugal/nn/sequential.h>
#include <frugal/train/job.h>
#include <frugal/train/trainer.h>

#include "ema.h"

namespace nn = frugal::nn;
namespace train = frugal::train;

// x (N, ...) -> logits (N, classes): Flatten, Linear(inputs, hidden), ReLU, Linear(hidden, classes).
class TinyNet : public nn::Module {
 public:
  TinyNet(int64_t inputs, int64_t hidden, int64_t classes) : inputs_(inputs), hidden_(hidden), classes_(classes) {
    layers_ = register_module("layers", std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
                                            std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(inputs, hidden),
                                            std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(hidden, classes)}));
  }
  frugal::Tensor forward(const frugal::Tensor& x) override { return layers_->forward(x); }
  std::string type_name() const override { return "TinyNet"; }
  // A multiply-add counts 2 FLOPs.
  int64_t flops_per_sample() const { return 2 * (inputs_ * hidden_ + hidden_ * classes_); }

 private:
  int64_t inputs_, hidden_, classes_;
  std::shared_ptr<nn::Sequential> layers_;
};

int main(int argc, char** argv) {
  std::string job_path = FRUGAL_EXAMPLE_DIR "/fashion-mnist-ema.toml";
  std::vector<std::string> sets;
  train::TrainOptions options;
  options.log = stderr;  // progress on stderr, the summary on stdout
  double decay = 0.99;
  for (int i = 1; i < argc; ++i) {
    auto value = [&](const char* flag) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "train_with_ema: %s needs a value\n", flag);
        std::exit(2);
      }
      return std::string(argv[++i]);
    };
    if (!std::strcmp(argv[i], "--out")) options.out_dir = value("--out");
    else if (!std::strcmp(argv[i], "--resume")) options.resume = value("--resume");
    else if (!std::strcmp(argv[i], "--set")) sets.push_back(value("--set"));
    else if (!std::strcmp(argv[i], "--decay")) decay = std::atof(value("--decay").c_str());
    else if (argv[i][0] == '-') {
      std::fprintf(stderr, "usage: train_with_ema [JOB.toml] [--out DIR] [--resume auto|FILE] [--decay D] [--set KEY=VALUE]...\n");
      return 2;
    } else job_path = argv[i];
  }
  if (!(decay > 0 && decay < 1)) {
    std::fprintf(stderr, "train_with_ema: --decay must be in (0, 1)\n");
    return 2;
  }
  try {
    train::JobSpec job = train::load_job(job_path, sets);
    train::Trainer trainer(job, options);
    trainer.set_model([&](const train::PreparedData& data) {
      auto net = std::make_shared<TinyNet>(frugal::shape_numel(data.sample_shape), 128, data.classes);
      nn::init_parameters(*net, job.run.seed);
      return train::CustomModel{net, net->flops_per_sample()};
    });
    trainer.add_technique(std::make_unique<Ema>(decay));
    train::TrainOutcome outcome = trainer.run();
    const train::RunSummary& s = outcome.summary;
    std::printf("run %s %s after %lld steps in %.1f s\n", s.run_id.c_str(), s.status.c_str(), (long long)s.steps,
                s.cost.wall_s);
    if (s.metrics.test_accuracy) std::printf("  test accuracy        %.2f%%\n", 100 * *s.metrics.test_accuracy);
    auto ema = s.techniques.find("ema");
    if (ema != s.techniques.end() && ema->second.contains("test_accuracy"))
      std::printf("  EMA test accuracy    %.2f%% (decay %g)\n", 100 * ema->second["test_accuracy"].get<double>(), decay);
    std::printf("  energy %.3g kWh (%s), %.3g kg CO2e\n", s.cost.kwh.value, s.cost.kwh.source.c_str(),
                s.cost.co2_kg.value);
    std::printf("%s\n", s.to_json().dump().c_str());
    return outcome.exit_code;
  } catch (const frugal::InputError& e) {
    std::fprintf(stderr, "train_with_ema: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_with_ema: internal error: %s\n", e.what());
    return 1;
  }
}
