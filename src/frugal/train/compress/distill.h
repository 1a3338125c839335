// Knowledge distillation (Hinton et al. 2015): the student trains on
//   alpha x T^2 x KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) x the hard-label loss,
// the teacher being a model trained by another job, run in eval mode without gradients in this run's
// precision at after_loss (so its forward time and FLOPs are the run's). Classifiers, and the
// character GPT per position over the vocabulary. The weights: a safetensors file, a run directory
// (its model.safetensors) or a run id of the store. With cache = true the teacher's logits of every
// training sample are computed once into a file beside the run store, validated when read (size,
// key, checksum; a stale or damaged file is rebuilt with a warning) and reused across epochs and by
// later runs, which then load no teacher weights at all (the file may even be gone). Limits: the
// cache is for classification without augmentation (a sample's input must be the same every
// epoch), not the GPT; the teacher is a job's model (mlp, cnn, gpt), not one given by code.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "frugal/autograd/precision.h"
#include "frugal/nn/module.h"
#include "frugal/train/data_setup.h"
#include "frugal/train/job.h"
#include "frugal/train/technique.h"

namespace frugal::train {

// T^2 x KL(softmax(teacher / T) || softmax(student / T)) averaged over the N rows: PyTorch's
// kl_div(log_softmax(student / T), softmax(teacher / T), reduction="batchmean") x T^2.
// student (N, C) f32/f64 (gradients flow to it), teacher (N, C) constant (no gradient) -> scalar.
// Composed of log_softmax, softmax, mul and sum; the teacher's entropy term, a constant, is summed
// in double with 0 log 0 = 0.
Tensor distillation_loss(const Tensor& student_logits, const Tensor& teacher_logits, double temperature);

// The loss the student trains on: alpha x distillation_loss(student, teacher, T) + (1 - alpha) x
// hard_loss (the loop's cross-entropy on the labels, a scalar); alpha = 1 leaves hard_loss out.
Tensor distillation_objective(const Tensor& student_logits, const Tensor& teacher_logits, const Tensor& hard_loss,
                              double alpha, double temperature);

// Where the logit caches go: cache/ beside the run store (runs/cache/ for the default store).
std::string distill_cache_dir(const JobSpec& job);

class Distillation : public Technique {
 public:
  // Loads the teacher's job, checks its data against this run's (same data, or at least the same
  // input shape, normalization and classes or vocabulary), finds its weights (a file, a run
  // directory or a run of the store) and loads them into its model, and with the cache reads and
  // validates the cache file: InputError naming what is wrong (also a missing weights file, unless
  // a valid cache stands in for it), before the run writes anything. `data`: this run's prepared
  // data (kept by reference for the run).
  Distillation(const JobSpec& job, const PreparedData& data);
  ~Distillation() override;

  std::string name() const override { return "distill"; }
  EventSet events() const override;
  void on(Event event, TrainState& state) override;
  // Its figures (teacher forward time, cache build time and status) and the teacher's identity:
  // a resume against another teacher (weights, model or precision) is refused.
  void save_state(TechniqueState& out) const override;
  void load_state(const TechniqueState& in) override;

  // The teacher, loaded; none when its weights file is gone and the cache stands in for it.
  nn::Module* teacher() { return teacher_.get(); }
  const std::string& weights_path() const { return weights_path_; }
  // Identifies the teacher: its weights file's hash, its job's [model], the precision (hex).
  const std::string& teacher_key() const { return teacher_key_; }
  // The cache file for this run's training data (empty without cache = true).
  const std::string& cache_path() const { return cache_path_; }

 private:
  std::string read_cache(Precision precision);
  void prepare_cache(TrainState& state);
  Tensor teacher_logits(TrainState& state);

  const DistillSpec spec_;
  const PreparedData& data_;
  std::shared_ptr<nn::Module> teacher_;  // null when the cache stands in for a weights file that is gone
  int64_t teacher_params_ = 0;
  std::string teacher_job_path_, weights_path_, teacher_key_, cache_path_;
  std::string model_keys_;    // the teacher job's [model] keys, "key=value\n" each
  std::string weights_hash_;  // of the weights file (or, when it is gone, the cache's record of it)
  std::optional<int64_t> teacher_flops_per_sample_;
  std::string data_key_;  // hash of the training inputs (with the cache)
  bool cache_existed_ = false;
  std::string cache_problem_;  // why the existing cache file was not used
  Tensor cache_;               // f32 (N, C): the teacher's logits of training sample i in row i

  // Carried through checkpoints (all processes of the run).
  double teacher_forward_s_ = 0, cache_build_s_ = 0;
  int64_t teacher_forward_batches_ = 0;
  std::string cache_status_;  // built | reused | rebuilt; "" before run_start
};

}  // namespace frugal::train
