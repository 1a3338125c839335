#include "frugal/train/trainer.h"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>

#include <nlohmann/json.hpp>

#include "frugal/autograd/ops.h"
#include "frugal/base/parallel.h"
#include "frugal/base/rng.h"
#include "frugal/base/timer.h"
#include "frugal/data/loader.h"
#include "frugal/io/safetensors.h"
#include "frugal/nn/zoo.h"
#include "frugal/optim/optimizer.h"
#include "frugal/optim/schedule.h"
#include "frugal/track/run_store.h"
#include "frugal/train/progress.h"

namespace frugal::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

int64_t peak_rss_bytes() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return int64_t(usage.ru_maxrss) * 1024;
}

std::shared_ptr<nn::Module> build_model(const JobSpec& job, const PreparedData& data) {
  const ModelSpec& m = job.model;
  if (m.kind == "mlp") {
    nn::MlpConfig config = m.mlp;
    config.inputs = shape_numel(data.sample_shape);
    config.outputs = data.classes;
    return nn::make_mlp(config, job.run.seed);
  }
  if (m.kind == "cnn") {
    if (data.sample_shape.size() != 3)
      throw InputError(job.path + ": [model] kind = \"cnn\" needs image inputs (C, H, W), got samples of shape " +
                       shape_str(data.sample_shape));
    nn::CnnConfig config = m.cnn;
    config.in_channels = data.sample_shape[0];
    config.height = data.sample_shape[1];
    config.width = data.sample_shape[2];
    config.outputs = data.classes;
    return nn::make_cnn(config, job.run.seed);
  }
  nn::GptConfig config = m.gpt;
  config.vocab = data.vocab.size();
  return nn::make_gpt(config, job.run.seed);
}

namespace {

std::string timestamp(const char* format) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, format, &tm);
  return buffer;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const OptimSpec& o, nn::Module& model) {
  std::vector<optim::ParamGroup> groups = optim::default_param_groups(model, o.weight_decay);
  if (o.kind == "sgd") {
    optim::SgdOptions options;
    options.lr = o.lr;
    options.momentum = o.momentum;
    options.dampening = o.dampening;
    options.nesterov = o.nesterov;
    options.weight_decay = o.weight_decay;
    return std::make_unique<optim::SGD>(groups, options);
  }
  optim::AdamWOptions options;
  options.lr = o.lr;
  options.beta1 = o.beta1;
  options.beta2 = o.beta2;
  options.eps = o.eps;
  options.weight_decay = o.weight_decay;
  return std::make_unique<optim::AdamW>(groups, options);
}

std::unique_ptr<optim::LrSchedule> make_schedule(const ScheduleSpec& spec, double lr, int64_t total_steps) {
  optim::ScheduleConfig c;
  c.kind = spec.kind;
  c.lr = lr;
  c.total_steps = total_steps;
  c.warmup_steps = spec.warmup_steps;
  c.lr_min = spec.lr_min;
  c.step_size = spec.step_size;
  c.gamma = spec.gamma;
  c.t_0 = spec.t0;
  c.t_mult = spec.t_mult;
  c.pct_start = spec.pct_start;
  c.div_factor = spec.div_factor;
  c.final_div_factor = spec.final_div_factor;
  c.plateau.mode = spec.mode;
  c.plateau.factor = spec.factor;
  c.plateau.patience = spec.patience;
  c.plateau.threshold = spec.threshold;
  c.plateau.cooldown = spec.cooldown;
  c.plateau.min_lr = spec.lr_min;
  return optim::make_schedule(c);
}

// Argmax per row of logits (N, C) compared with targets (N).
int64_t count_correct(const Tensor& logits, const Tensor& targets) {
  Tensor l = logits.contiguous();
  const float* p = l.data<float>();
  const int64_t* t = targets.contiguous().data<int64_t>();
  int64_t n = l.size(0), c = l.size(1), correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = p + i * c;
    int64_t best = 0;
    for (int64_t j = 1; j < c; ++j)
      if (row[j] > row[best]) best = j;
    correct += best == t[i];
  }
  return correct;
}

std::vector<std::pair<std::string, Tensor>> clone_state(const nn::Module& model) {
  std::vector<std::pair<std::string, Tensor>> state;
  for (auto& [name, t] : model.state_dict()) state.emplace_back(name, t.clone());
  return state;
}

}  // namespace

EvalMetrics evaluate_classifier(nn::Module& model, const data::Dataset& split, int64_t batch_size) {
  EvalMetrics out;
  if (split.size() == 0) return out;
  autograd::NoGradGuard no_grad;
  bool was_training = model.is_training();
  model.eval();
  double loss_sum = 0;
  int64_t correct = 0;
  const int64_t n = split.size();
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    int64_t end = std::min(n, begin + batch_size);
    Tensor x = split.inputs.slice_view(0, begin, end);
    Tensor y = split.targets.slice_view(0, begin, end);
    Tensor logits = model(x);
    CrossEntropyOptions options;
    options.reduction = Reduction::sum;
    loss_sum += cross_entropy(logits, y.contiguous(), options).item();
    correct += count_correct(logits, y);
  }
  model.train(was_training);
  out.samples = n;
  out.loss = loss_sum / double(n);
  out.accuracy = double(correct) / double(n);
  return out;
}

EvalMetrics evaluate_language_model(nn::Module& model, const Tensor& tokens, int64_t batch, int64_t context,
                                    int64_t max_tokens) {
  EvalMetrics out;
  autograd::NoGradGuard no_grad;
  bool was_training = model.is_training();
  model.eval();
  Tensor stream = tokens;
  if (max_tokens > 0 && stream.numel() > max_tokens + 1) stream = stream.slice_view(0, 0, max_tokens + 1);
  double loss_sum = 0;
  int64_t count = 0;
  for (auto& [x, y] : data::sequential_windows(stream, batch, context)) {
    Tensor logits = model(x);  // (B, T, V)
    int64_t v = logits.size(-1);
    CrossEntropyOptions options;
    options.reduction = Reduction::sum;
    loss_sum += cross_entropy(reshape(logits, {-1, v}), reshape(y, {-1}), options).item();
    count += y.numel();
  }
  model.train(was_training);
  out.samples = count;
  out.loss = count ? loss_sum / double(count) : 0.0;
  out.bits_per_char = out.loss / std::log(2.0);
  return out;
}

std::shared_ptr<nn::Module> load_model(const JobSpec& job, const PreparedData& data, const std::string& weights) {
  std::shared_ptr<nn::Module> model = build_model(job, data);
  io::SafetensorsFile file = io::read_safetensors(weights);
  try {
    model->load_state_dict(file.tensors, /*strict=*/true);
  } catch (const InputError& e) {
    throw InputError(weights + ": " + e.what());
  }
  return model;
}

std::string sample_text(nn::Module& model, const data::CharVocab& vocab, int64_t context, const std::string& prompt,
                        int64_t tokens, double temperature, uint64_t seed) {
  autograd::NoGradGuard no_grad;
  model.eval();
  std::vector<int64_t> ids;
  if (!prompt.empty()) ids = vocab.encode(prompt).to_vector<int64_t>();
  else ids.push_back(vocab.encode("\n").to_vector<int64_t>()[0]);
  Rng rng(seed, 0, RandomPurpose::sample);
  std::string out;
  for (int64_t step = 0; step < tokens; ++step) {
    int64_t start = std::max<int64_t>(0, int64_t(ids.size()) - context);
    std::vector<int64_t> window(ids.begin() + start, ids.end());
    Tensor x = Tensor::from_vector(window, {1, int64_t(window.size())});
    Tensor logits = model(x);  // (1, T, V)
    Tensor last = logits.select_view(1, logits.size(1) - 1).contiguous();  // (1, V)
    std::vector<float> z = last.to_vector<float>();
    int64_t next = 0;
    if (temperature <= 0) {
      next = int64_t(std::max_element(z.begin(), z.end()) - z.begin());
    } else {
      double zmax = *std::max_element(z.begin(), z.end()), total = 0;
      std::vector<double> p(z.size());
      for (size_t i = 0; i < z.size(); ++i) total += p[i] = std::exp((z[i] - zmax) / temperature);
      double u = rng.uniform_double() * total;
      next = int64_t(p.size()) - 1;
      for (size_t i = 0; i < p.size(); ++i) {
        if ((u -= p[i]) <= 0) { next = int64_t(i); break; }
      }
    }
    ids.push_back(next);
    out += vocab.decode(std::vector<int64_t>{next});
  }
  return out;
}

TrainOutcome run_training(const JobSpec& job, const TrainOptions& options) {
  Timer wall;
  if (job.run.threads > 0) set_num_threads(job.run.threads);
  else set_num_threads(0);

  // Input problems (data files, shapes) surface here, before anything is written.
  PreparedData data = prepare_data(job, "runs/cache");
  std::shared_ptr<nn::Module> model = build_model(job, data);

  std::unique_ptr<optim::Optimizer> optimizer = make_optimizer(job.optim, *model);
  std::vector<Tensor> params = model->parameters();
  const TrainSpec& t = job.train;
  // Steps: optimizer updates. Classification counts epochs of micro-batches.
  std::optional<data::Loader> loader;
  std::optional<data::TokenLoader> token_loader;
  int64_t steps_per_epoch = 0, total_steps = 0;
  if (data.is_text) {
    token_loader.emplace(data.train_tokens, t.batch_size, job.model.gpt.context, job.run.seed, job.data.prefetch);
    steps_per_epoch = std::max<int64_t>(1, data.train_tokens.numel() / (t.batch_size * job.model.gpt.context * t.grad_accum));
    total_steps = t.steps ? t.steps : t.epochs * steps_per_epoch;
  } else {
    data::LoaderOptions lo;
    lo.batch_size = t.batch_size;
    lo.shuffle = true;
    lo.seed = job.run.seed;
    lo.augment.crop_padding = job.data.crop_padding;
    lo.augment.horizontal_flip = job.data.flip;
    lo.prefetch = job.data.prefetch;
    loader.emplace(data.train, lo);
    steps_per_epoch = (loader->batches_per_epoch() + t.grad_accum - 1) / t.grad_accum;
    total_steps = t.steps ? t.steps : t.epochs * steps_per_epoch;
  }
  std::unique_ptr<optim::LrSchedule> schedule = make_schedule(job.schedule, job.optim.lr, total_steps);

  std::string out_dir = options.out_dir.empty()
                            ? (fs::path("runs") / (job.run.name + "-" + timestamp("%Y%m%d-%H%M%S"))).string()
                            : options.out_dir;
  fs::create_directories(out_dir);
  {
    std::ofstream job_file(fs::path(out_dir) / "job.toml");
    job_file << job.resolved_toml;
  }
  track::RunStore store(job.run.store);
  track::RunStart start;
  start.name = job.run.name;
  start.job_toml = job.resolved_toml;
  start.out_dir = out_dir;
  start.job_hash = job.hash;
  std::string run_id = store.create_run(start);
  std::ofstream metrics_file(fs::path(out_dir) / "metrics.jsonl");
  Progress progress(options.log, options.progress_bar, options.quiet);

  auto log_metrics = [&](const json& row) {
    metrics_file << row.dump() << "\n";
    metrics_file.flush();
    store.log_metrics(run_id, row.value("step", int64_t(0)), row.value("kind", std::string("train")), row.dump());
  };

  try {
    model->train(true);
    progress.line("run " + run_id + ": " + data.describe + "; model " + job.model.kind + " with " +
                  std::to_string(model->num_parameters()) + " parameters; " + std::to_string(num_threads()) +
                  " threads");
    int64_t eval_every = t.eval_every ? t.eval_every
                                      : (data.is_text ? std::max<int64_t>(1, total_steps / 10) : steps_per_epoch);

    // State of the loop.
    int64_t step = 0, micro = 0, samples_seen = 0, epoch = 0;
    double last_train_loss = NAN, loss_window = 0;
    int64_t loss_window_count = 0;
    EvalMetrics last_val;
    bool have_val = false;
    std::string status = "completed", stop_reason;
    double best_metric = NAN;
    int64_t best_step = -1, evals_without_improvement = 0;
    std::vector<std::pair<std::string, Tensor>> best_state;
    Timer throughput_timer;
    int64_t throughput_samples = 0;
    double train_compute_s = 0;

    auto evaluate = [&]() {
      EvalMetrics m;
      if (data.is_text) m = evaluate_language_model(*model, data.val_tokens, t.batch_size, job.model.gpt.context, t.eval_tokens);
      else if (data.val.size() > 0) m = evaluate_classifier(*model, data.val, 1000);
      else return;
      last_val = m;
      have_val = true;
      json row = {{"kind", "eval"}, {"step", step}, {"epoch", epoch}, {"val_loss", m.loss}, {"time_s", wall.seconds()}};
      if (m.accuracy >= 0) row["val_accuracy"] = m.accuracy;
      if (m.bits_per_char >= 0) row["val_bits_per_char"] = m.bits_per_char;
      log_metrics(row);
      std::string text = "eval step " + std::to_string(step) + ": val_loss " + Progress::fixed(m.loss, 4);
      if (m.accuracy >= 0) text += ", val_accuracy " + Progress::fixed(100 * m.accuracy, 2) + "%";
      if (m.bits_per_char >= 0) text += ", val_bits_per_char " + Progress::fixed(m.bits_per_char, 3);
      progress.line(text);
      if (t.early_stopping.enabled) {
        double value = t.early_stopping.metric == "val_accuracy" ? m.accuracy
                       : t.early_stopping.metric == "val_bits_per_char" ? m.bits_per_char
                                                                        : m.loss;
        bool better = std::isnan(best_metric) ||
                      (t.early_stopping.mode == "min" ? value < best_metric - t.early_stopping.min_delta
                                                      : value > best_metric + t.early_stopping.min_delta);
        if (better) {
          best_metric = value;
          best_step = step;
          evals_without_improvement = 0;
          if (t.early_stopping.restore_best) best_state = clone_state(*model);
        } else if (++evals_without_improvement > t.early_stopping.patience) {
          status = "completed";
          stop_reason = "early_stopping";
        }
      }
      schedule->observe(m.loss);
    };

    auto optimizer_step = [&]() {
      if (t.clip_norm > 0) optim::clip_grad_norm(params, t.clip_norm);
      optimizer->set_lr(schedule->lr_at(step));
      optimizer->step();
      optimizer->zero_grad();
      ++step;
    };

    auto after_step = [&](int64_t batch_samples) {
      if (step % t.log_every == 0 || step == total_steps) {
        double elapsed = throughput_timer.seconds();
        double rate = elapsed > 0 ? double(throughput_samples) / elapsed : 0;
        last_train_loss = loss_window_count ? loss_window / double(loss_window_count) : last_train_loss;
        json row = {{"kind", "train"}, {"step", step},          {"epoch", epoch},
                    {"loss", last_train_loss}, {"lr", optimizer->lr()}, {"samples_per_s", rate},
                    {"time_s", wall.seconds()}};
        if (data.is_text) row["tokens_per_s"] = rate * double(job.model.gpt.context);
        log_metrics(row);
        loss_window = 0;
        loss_window_count = 0;
        throughput_timer.reset();
        throughput_samples = 0;
        (void)batch_samples;
      }
      progress.update(epoch, t.epochs, step, total_steps, last_train_loss,
                      data.is_text ? "tok/s" : "samples/s",
                      throughput_timer.seconds() > 0 ? double(throughput_samples) * (data.is_text ? double(job.model.gpt.context) : 1.0) / throughput_timer.seconds() : 0,
                      wall.seconds());
      if (step % eval_every == 0 || step == total_steps) evaluate();
      if (t.max_minutes > 0 && wall.seconds() > t.max_minutes * 60 && stop_reason.empty()) stop_reason = "time_limit";
    };

    auto train_micro = [&](const Tensor& x, const Tensor& y, int64_t accumulate_count) {
      nn::set_random_context({job.run.seed, uint64_t(micro)});
      Timer compute;
      Tensor logits = (*model)(x);
      Tensor loss;
      CrossEntropyOptions ce;
      ce.label_smoothing = t.label_smoothing;
      if (data.is_text) loss = cross_entropy(reshape(logits, {-1, logits.size(-1)}), reshape(y, {-1}), ce);
      else loss = cross_entropy(logits, y, ce);
      double loss_value = loss.item();
      if (!std::isfinite(loss_value)) throw InternalError("training loss became " + std::to_string(loss_value) + " at step " + std::to_string(step));
      autograd::backward(accumulate_count > 1 ? mul_scalar(loss, 1.0 / double(accumulate_count)) : loss);
      train_compute_s += compute.seconds();
      loss_window += loss_value;
      ++loss_window_count;
      ++micro;
      samples_seen += x.size(0);
      throughput_samples += x.size(0);
    };

    if (data.is_text) {
      while (step < total_steps && stop_reason.empty()) {
        for (int64_t a = 0; a < t.grad_accum; ++a) {
          data::Batch batch = token_loader->next_for_step(step * t.grad_accum + a);
          train_micro(batch.inputs, batch.targets, t.grad_accum);
        }
        epoch = step / steps_per_epoch;
        optimizer_step();
        after_step(t.batch_size * t.grad_accum);
      }
    } else {
      while (step < total_steps && stop_reason.empty()) {
        loader->start_epoch(epoch, 0);
        int64_t in_group = 0;
        int64_t batches = loader->batches_per_epoch();
        int64_t index = 0;
        while (std::optional<data::Batch> batch = loader->next()) {
          // The last group of an epoch may be shorter than grad_accum.
          int64_t group_size = std::min<int64_t>(t.grad_accum, batches - (index / t.grad_accum) * t.grad_accum);
          train_micro(batch->inputs, batch->targets, group_size);
          ++index;
          if (++in_group == group_size) {
            in_group = 0;
            optimizer_step();
            after_step(batch->inputs.size(0));
            if (step >= total_steps || !stop_reason.empty()) break;
          }
        }
        ++epoch;
      }
    }

    if (t.early_stopping.enabled && t.early_stopping.restore_best && !best_state.empty()) {
      model->load_state_dict(best_state, true);
      progress.line("restored the best weights (step " + std::to_string(best_step) + ")");
    }
    progress.finish();

    // Final metrics.
    json metrics;
    metrics["train_loss"] = last_train_loss;
    if (have_val || data.is_text || data.val.size() > 0) {
      EvalMetrics val = data.is_text ? evaluate_language_model(*model, data.val_tokens, t.batch_size, job.model.gpt.context, t.eval_tokens)
                                     : evaluate_classifier(*model, data.val, 1000);
      if (val.samples > 0) {
        metrics["val_loss"] = val.loss;
        if (val.accuracy >= 0) metrics["val_accuracy"] = val.accuracy;
        if (val.bits_per_char >= 0) metrics["val_bits_per_char"] = val.bits_per_char;
      }
    }
    if (data.is_text && data.test_tokens.defined()) {
      EvalMetrics test = evaluate_language_model(*model, data.test_tokens, t.batch_size, job.model.gpt.context, 0);
      metrics["test_loss"] = test.loss;
      metrics["test_bits_per_char"] = test.bits_per_char;
    } else if (!data.is_text && data.test.size() > 0) {
      EvalMetrics test = evaluate_classifier(*model, data.test, 1000);
      metrics["test_loss"] = test.loss;
      metrics["test_accuracy"] = test.accuracy;
    }

    std::map<std::string, std::string> metadata = {{"frugal.model", job.model.kind}, {"frugal.job_hash", job.hash}};
    if (data.is_text) metadata["frugal.vocab"] = data.vocab.to_string();
    io::write_safetensors((fs::path(out_dir) / "model.safetensors").string(), model->state_dict(), metadata);

    json summary = {{"run_id", run_id},
                    {"status", status},
                    {"stop_reason", stop_reason.empty() ? "finished" : stop_reason},
                    {"epochs", data.is_text ? double(step) / double(steps_per_epoch) : double(epoch)},
                    {"steps", step},
                    {"samples_seen", samples_seen},
                    {"metrics", metrics},
                    {"wall_s", wall.seconds()},
                    {"train_compute_s", train_compute_s},
                    {"data_wait_s", loader ? loader->data_wait_seconds() : token_loader->data_wait_seconds()},
                    {"peak_rss_bytes", peak_rss_bytes()},
                    {"params", model->num_parameters()},
                    {"threads", num_threads()},
                    {"out_dir", out_dir},
                    {"job_hash", job.hash}};
    if (best_step >= 0) summary["best_step"] = best_step;
    std::string text = summary.dump(2);
    {
      std::ofstream out(fs::path(out_dir) / "summary.json");
      out << text << "\n";
    }
    store.finish_run(run_id, status, summary.dump());
    return {0, summary.dump()};
  } catch (const std::exception& e) {
    progress.finish();
    json failure = {{"run_id", run_id}, {"status", "failed"}, {"error", e.what()}, {"out_dir", out_dir},
                    {"wall_s", wall.seconds()}};
    store.finish_run(run_id, "failed", failure.dump());
    throw;
  }
}

}  // namespace frugal::train
