// The training loop (see loop.h). Reads top to bottom: run() -> train_step() (micro-batches,
// optimizer step) -> end_step() (evaluation, events, stop) -> finish() (final evaluation, model,
// summary). Techniques act through emit(); the loop itself knows none of them.
#include "frugal/train/loop.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "frugal/autograd/flops.h"
#include "frugal/autograd/ops.h"
#include "frugal/base/parallel.h"
#include "frugal/base/timer.h"
#include "frugal/io/safetensors.h"
#include "frugal/train/resume.h"

namespace frugal::train {

namespace fs = std::filesystem;

TrainLoop::TrainLoop(TrainState& state, std::vector<std::unique_ptr<Technique>>& techniques, BatchSource batches,
                     RunSummary summary, std::optional<int64_t> flops_per_sample)
    : state_(state),
      techniques_(techniques),
      batches_(batches),
      summary_(std::move(summary)),
      flops_per_sample_(flops_per_sample),
      is_text_(state.data.is_text) {
  FRUGAL_CHECK((batches_.loader != nullptr) != (batches_.tokens != nullptr), "TrainLoop needs exactly one batch source");
  std::stable_sort(techniques_.begin(), techniques_.end(),
                   [](const auto& a, const auto& b) { return a->order() < b->order(); });
  for (const auto& technique : techniques_)
    for (int e = 0; e < event_count; ++e)
      if (contains(technique->events(), Event(e))) subscribers_[e].push_back(technique.get());
  state_.write_checkpoint = [this] { return write_checkpoint(); };
}

void TrainLoop::emit(Event event) {
  for (Technique* technique : subscribers_[int(event)]) technique->on(event, state_);
}

RunSummary TrainLoop::run() {
  try {
    state_.model.train(true);
    emit(Event::run_start);
    while (state_.continuing()) {
      begin_epoch();
      train_step();
      end_step();
    }
    return finish();
  } catch (const std::exception& e) {
    // The run failed (the trainer records it): techniques hear of it (alerts), then the error goes on.
    state_.error = e.what();
    for (Technique* technique : subscribers_[int(Event::run_failed)]) {
      try {
        technique->on(Event::run_failed, state_);
      } catch (...) {  // the run's own error is the one to report
      }
    }
    throw;
  }
}

// An epoch starts at its first step, and again where a resumed process enters it mid-way.
void TrainLoop::begin_epoch() {
  if (is_text_) {
    // Text has no passes over the data: an epoch is steps_per_epoch steps of random windows.
    const bool first_of_process = !epoch_open_;
    state_.epoch = state_.step / state_.steps_per_epoch;
    epoch_open_ = true;
    if (state_.step % state_.steps_per_epoch == 0 || first_of_process) emit(Event::epoch_start);
    return;
  }
  if (epoch_open_) return;
  batches_.loader->start_epoch(state_.epoch, state_.batch_in_epoch);
  epoch_open_ = true;
  emit(Event::epoch_start);
}

// One optimizer step: train.grad_accum micro-batches (the last step of an epoch may have fewer).
void TrainLoop::train_step() {
  const int64_t grad_accum = state_.job.train.grad_accum;
  state_.micro_batches =
      is_text_ ? grad_accum : std::min(grad_accum, state_.batches_per_epoch - state_.batch_in_epoch);
  // A world of N ranks shares the step: this rank runs micro-batches rank, rank + N, ... (its
  // loader strides the same way), each keyed by its index in the step as one process keys it.
  const int64_t first_micro = state_.micro, ranks = state_.world_size();
  for (int64_t a = state_.rank(); a < state_.micro_batches; a += ranks) {
    state_.micro = first_micro + a;
    data::Batch batch;
    {
      auto in_phase = state_.meter.phase(cost::Phase::data_wait);
      if (is_text_) {
        batch = batches_.tokens->next_for_step(state_.step * grad_accum + a);
      } else {
        std::optional<data::Batch> next = batches_.loader->next();
        FRUGAL_CHECK(next.has_value(), "the loader ended the epoch early");
        batch = std::move(*next);
      }
    }
    train_micro_batch(std::move(batch), a >= ranks);
  }
  state_.micro = first_micro + state_.micro_batches;
  if (!is_text_) state_.batch_in_epoch += state_.micro_batches;
  optimizer_step();
}

// Moves each parameter's gradient so far aside (a later micro-batch of the step: accumulating).
std::vector<Tensor> TrainLoop::set_gradients_aside() {
  std::vector<Tensor> aside(state_.params.size());
  for (size_t i = 0; i < aside.size(); ++i) {
    aside[i] = state_.params[i].grad();
    if (aside[i].defined()) state_.params[i].set_grad(Tensor());
  }
  return aside;
}

// Gradient accumulation adds whole micro-batch gradients, earlier ones first: grad = aside + this
// micro-batch's. (Adding inside backward would interleave a shared weight's contributions with the
// earlier micro-batches' sum; this order is the one a data-parallel world reproduces exactly.)
void TrainLoop::add_gradients_aside(std::vector<Tensor>& aside) {
  for (size_t i = 0; i < aside.size(); ++i) {
    if (!aside[i].defined()) continue;
    Tensor& p = state_.params[i];
    if (!p.grad().defined()) {
      p.set_grad(aside[i]);
      continue;
    }
    Tensor sum = add(aside[i], p.grad());
    sum.storage()->set_category(MemoryCategory::gradients);
    p.set_grad(sum);
  }
}

void TrainLoop::train_micro_batch(data::Batch batch, bool accumulating) {
  // What forward and backward allocate is counted as activations, unless tagged otherwise
  // (gradients adopted by parameters, workspace).
  MemoryCategoryGuard activations(MemoryCategory::activations);
  // The run's FLOPs: what the dense ops of this micro-batch compute, the techniques' work at its
  // events included (a teacher's forward at after_loss); evaluation has its own counter.
  autograd::FlopCounter flops;
  state_.batch = std::move(batch);
  emit(Event::batch_loaded);
  nn::set_random_context({state_.job.run.seed, uint64_t(state_.micro)});
  Timer compute;
  {
    auto in_forward = state_.meter.phase(cost::Phase::forward);
    state_.logits = state_.model(state_.batch.inputs);  // (B, classes) or (B, T, V)
    CrossEntropyOptions options;
    options.label_smoothing = state_.job.train.label_smoothing;
    const Tensor& logits = state_.logits;
    state_.loss = is_text_ ? cross_entropy(reshape(logits, {-1, logits.size(-1)}), reshape(state_.batch.targets, {-1}),
                                           options)
                           : cross_entropy(logits, state_.batch.targets, options);
    emit(Event::after_loss);
    state_.loss_value = state_.loss.item();
  }
  if (!std::isfinite(state_.loss_value) && !state_.tolerates_nonfinite_loss)
    throw InternalError("training loss became " + std::to_string(state_.loss_value) + " at step " +
                        std::to_string(state_.step));
  {
    auto in_backward = state_.meter.phase(cost::Phase::backward);
    Tensor objective =
        state_.micro_batches > 1 ? mul_scalar(state_.loss, 1.0 / double(state_.micro_batches)) : state_.loss;
    if (state_.loss_scale != 1.0) objective = mul_scalar(objective, state_.loss_scale);
    std::vector<Tensor> aside = accumulating ? set_gradients_aside() : std::vector<Tensor>();
    autograd::backward(objective);
    add_gradients_aside(aside);
  }
  state_.meter.add_train_compute(compute.seconds());
  ++state_.micro;
  state_.samples_seen += state_.batch.inputs.size(0);
  emit(Event::after_backward);
  state_.meter.add_flops(flops.forward(), flops.backward());
  // The graph and the batch go now, not when the next micro-batch replaces them.
  state_.logits = Tensor();
  state_.loss = Tensor();
  state_.batch = data::Batch();
}

void TrainLoop::optimizer_step() {
  auto in_phase = state_.meter.phase(cost::Phase::optimizer);
  state_.skip_step = false;
  state_.grad_norm.reset();
  emit(Event::before_optimizer_step);
  state_.optimizer.set_lr(state_.schedule.lr_at(state_.step));
  if (!state_.skip_step) state_.optimizer.step();
  state_.optimizer.zero_grad();
  ++state_.step;
}

void TrainLoop::end_step() {
  state_.epoch_done = is_text_ ? state_.step % state_.steps_per_epoch == 0
                               : state_.batch_in_epoch == state_.batches_per_epoch;
  emit(Event::after_optimizer_step);
  if (state_.step % state_.eval_every == 0 || state_.step == state_.total_steps) evaluate();
  if (state_.epoch_done) emit(Event::epoch_end);
  state_.meter.sample();  // often enough that no energy counter wraps twice between samples
  emit(Event::step_end);
  if (state_.stop && !state_.stop->message.empty()) state_.progress.line(state_.stop->message);
  if (state_.epoch_done && !is_text_) {
    ++state_.epoch;
    state_.batch_in_epoch = 0;
    epoch_open_ = false;
  }
}

// The validation split's metrics; none (samples = 0) for a classifier without one.
EvalMetrics TrainLoop::evaluate_val() {
  const JobSpec& job = state_.job;
  if (is_text_)
    return evaluate_language_model(state_.model, state_.data.val_tokens, job.train.batch_size, job.model.gpt.context,
                                   job.train.eval_tokens);
  if (state_.data.val.size() > 0) return evaluate_classifier(state_.model, state_.data.val, 1000);
  return {};
}

void TrainLoop::evaluate() {
  auto in_phase = state_.meter.phase(cost::Phase::evaluation);
  if (!is_text_ && state_.data.val.size() == 0) return;
  {
    // Evaluation's FLOPs, the techniques' at evaluation_done included (an EMA copy evaluated).
    autograd::FlopCounter flops;
    state_.eval = evaluate_val();
    emit(Event::evaluation_done);
    state_.meter.add_eval_flops(flops.total());
  }
  state_.schedule.observe(state_.eval.loss);
}

// The checkpoint of this step: position, model, optimizer, schedule, meters, every technique.
CheckpointWritten TrainLoop::write_checkpoint() {
  Timer packing;
  LoopPosition position;
  position.step = state_.step;
  position.micro = state_.micro;
  // An epoch-end checkpoint goes on with the next epoch, from its first batch.
  position.epoch = !is_text_ && state_.epoch_done ? state_.epoch + 1 : state_.epoch;
  position.batch_in_epoch = is_text_ || state_.epoch_done ? 0 : state_.batch_in_epoch;
  position.samples_seen = state_.samples_seen;
  position.run_id = state_.run_id;
  position.out_dir = state_.out_dir;
  position.metrics_bytes = state_.metrics.bytes();
  position.threads = num_threads();
  io::CheckpointState checkpoint =
      pack_checkpoint(position, state_.job, state_.model, state_.optimizer, state_.schedule, techniques_);
  state_.meter.save(checkpoint.values, batches_.wait_seconds());
  // Every rank packs (a technique's save_state may gather its ranks' parts); rank 0 writes.
  if (state_.rank() != 0) return {"", 0, packing.seconds()};
  io::CheckpointWrite written = io::write_checkpoint(state_.checkpoint_dir, checkpoint, state_.job.checkpoint.keep);
  for (const std::string& w : written.warnings) {
    std::fflush(stdout);
    std::fprintf(stderr, "frugal: warning: %s\n", w.c_str());
  }
  return {written.path, written.bytes, packing.seconds()};
}

FinalMetrics TrainLoop::final_metrics() {
  auto in_phase = state_.meter.phase(cost::Phase::evaluation);
  const JobSpec& job = state_.job;
  const PreparedData& data = state_.data;
  autograd::FlopCounter flops;  // evaluation's FLOPs (val and test)
  FinalMetrics m;
  if (EvalMetrics val = evaluate_val(); val.samples > 0) {
    m.val_loss = val.loss;
    if (val.accuracy >= 0) m.val_accuracy = val.accuracy;
    if (val.bits_per_char >= 0) m.val_bits_per_char = val.bits_per_char;
  }
  if (data.is_text && data.test_tokens.defined()) {
    EvalMetrics test =
        evaluate_language_model(state_.model, data.test_tokens, job.train.batch_size, job.model.gpt.context, 0);
    m.test_loss = test.loss;
    m.test_bits_per_char = test.bits_per_char;
  } else if (!data.is_text && data.test.size() > 0) {
    EvalMetrics test = evaluate_classifier(state_.model, data.test, 1000);
    m.test_loss = test.loss;
    m.test_accuracy = test.accuracy;
  }
  state_.meter.add_eval_flops(flops.total());
  return m;
}

namespace {

// The final save failed (a full disk, a directory removed): without a checkpoint the training would
// be lost, so the weights go to the temporary directory ($TMPDIR, else /tmp), usually another
// filesystem; the returned text says where, for the error line.
std::string keep_model_elsewhere(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                 const std::map<std::string, std::string>& metadata, const std::string& path,
                                 const std::string& run_id) {
  std::error_code error;
  const fs::path directory = fs::temp_directory_path(error);
  const fs::path safe = (error ? fs::path("/tmp") : directory) / ("frugal-" + run_id + "-model.safetensors");
  try {
    io::write_safetensors(safe.string(), tensors, metadata);
  } catch (const std::exception& e) {
    return "; keeping the trained weights in " + safe.string() + " failed too (" + e.what() + "): they are lost";
  }
  return "; the trained weights are safe in " + safe.string() + " (move them to " + path + ")";
}

}  // namespace

void TrainLoop::write_model() {
  const JobSpec& job = state_.job;
  std::map<std::string, std::string> metadata = {{"frugal.model", name_of(job.model.kind)},
                                                 {"frugal.job_hash", job.hash}};
  if (state_.data.is_text) metadata["frugal.vocab"] = state_.data.vocab.to_string();
  // [data] labels = "names": class index -> name as a JSON array of strings, checked by frugal eval.
  if (!state_.data.label_names.empty()) metadata["frugal.labels"] = nlohmann::json(state_.data.label_names).dump();
  const auto tensors = state_.model_to_save ? state_.model_to_save() : state_.model.state_dict();
  const std::string path = (fs::path(state_.out_dir) / "model.safetensors").string();
  try {
    io::write_safetensors(path, tensors, metadata);
  } catch (const IoError& e) {
    throw IoError(e.what() + keep_model_elsewhere(tensors, metadata, path, state_.run_id));
  } catch (const InputError& e) {
    throw InputError(e.what() + keep_model_elsewhere(tensors, metadata, path, state_.run_id));
  }
}

RunSummary TrainLoop::finish() {
  // A process that stops to be resumed (preemption, budget) leaves the final evaluation and the
  // model to the process that finishes the run.
  const bool final = !state_.stop || state_.stop->exit_code == 0;
  if (final) {
    emit(Event::fit_end);
    state_.progress.finish();
    summary_.metrics = final_metrics();
    if (state_.rank() == 0) write_model();  // the ranks hold the same weights
  } else {
    state_.progress.finish();
  }
  RunSummary& s = summary_;
  s.status = state_.stop ? state_.stop->status : "completed";
  s.stop_reason = state_.stop ? state_.stop->reason : "finished";
  s.epochs = is_text_ ? double(state_.step) / double(state_.steps_per_epoch)
                      : double(state_.samples_seen) / double(state_.data.train_size());
  s.steps = state_.step;
  s.samples_seen = state_.samples_seen;
  s.train_compute_s = state_.meter.train_compute_s();
  s.data_wait_s = state_.meter.carried_data_wait_s() + batches_.wait_seconds();
  s.peak_rss_bytes = cost::read_process_sample().peak_rss_bytes;
  s.memory = measure_memory();
  // MFU against the peak of the precision the matmuls and convolutions run in: bf16 for
  // bf16-mixed and int8-mixed (its weight gradients, convolutions and attention are bf16, and the
  // bf16 peak keeps its MFU comparable with bf16-mixed's); fp32 otherwise (fp16-mixed runs the f32
  // kernels on f16-rounded values here).
  const char* peak_precision = bf16_operands(state_.job.precision.mode) ? "bf16" : "fp32";
  s.cost = state_.meter.summary(flops_per_sample_, peak_precision, num_threads());
  state_.summary = &s;
  emit(Event::run_end);
  state_.summary = nullptr;
  return s;
}

}  // namespace frugal::train
