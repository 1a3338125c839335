// `frugal`: the command line. Turns InputError (and a path the filesystem refuses) into one clear
// line and exit code 2, a failing disk (IoError) into 74, a failed allocation (std::bad_alloc) into
// 71, anything else unexpected into exit code 1.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <tuple>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/precision.h"
#include "frugal/base/error.h"
#include "frugal/base/format.h"
#include "frugal/base/machine.h"
#include "frugal/base/parallel.h"
#include "frugal/base/signals.h"
#include "frugal/base/timer.h"
#include "frugal/base/units.h"
#include "frugal/cli/compare.h"
#include "frugal/cli/dashboard.h"
#include "frugal/cli/quantize.h"
#include "frugal/cli/report.h"
#include "frugal/cli/data.h"
#include "frugal/cli/technique_lines.h"
#include "frugal/cli/prune.h"
#include "frugal/cli/active.h"
#include "frugal/io/safetensors.h"
#include "frugal/nn/sparse.h"
#include "frugal/track/run_store.h"
#include "frugal/train/compress/lora.h"
#include "frugal/train/compress/quantize.h"
#include "frugal/train/data_setup.h"
#include "frugal/train/evaluate.h"
#include "frugal/train/job.h"
#include "frugal/train/limits.h"
#include "frugal/train/model_setup.h"
#include "frugal/train/progress.h"
#include "frugal/train/trainer.h"

namespace {

using json = nlohmann::json;
using namespace frugal;

// Exit code when an allocation fails (std::bad_alloc): EX_OSERR from <sysexits.h>, an operating
// system error (the memory the process asked for was not there).
constexpr int kExitOutOfMemory = 71;

std::string format_metric(const std::optional<double>& value, bool percent) {
  if (!value) return "-";
  char buffer[32];
  if (percent) std::snprintf(buffer, sizeof buffer, "%.2f%%", 100 * *value);
  else std::snprintf(buffer, sizeof buffer, "%.4f", *value);
  return buffer;
}

std::string format_metric(const json& metrics, const char* key, bool percent) {
  if (!metrics.contains(key) || !metrics[key].is_number()) return "-";
  return format_metric(std::optional<double>(metrics[key].get<double>()), percent);
}

void print_summary(const train::RunSummary& s) {
  std::printf("\nrun %s %s (%s)\n", s.run_id.c_str(), s.status.c_str(), s.stop_reason.c_str());
  std::printf("  steps %lld, epochs %.2f, samples %lld, params %lld\n", (long long)s.steps, s.epochs,
              (long long)s.samples_seen, (long long)s.params);
  if (s.trainable_params != s.params)
    std::printf("  trainable params %lld (%lld frozen at the end)\n", (long long)s.trainable_params,
                (long long)(s.params - s.trainable_params));
  if (s.init) {
    std::string skipped;
    for (const std::string& name : s.init->skipped) skipped += (skipped.empty() ? "" : ", ") + name;
    std::printf("  init from %s%s: %lld tensors loaded, %zu kept fresh%s, %lld of the file unused%s\n",
                s.init->from.c_str(), s.init->run_id ? (" (run " + *s.init->run_id + ")").c_str() : "",
                (long long)s.init->loaded, s.init->skipped.size(), skipped.empty() ? "" : (" (" + skipped + ")").c_str(),
                (long long)s.init->unused, s.init->vocab ? ("; " + s.init->vocab->describe()).c_str() : "");
  }
  const train::FinalMetrics& m = s.metrics;
  const std::pair<const char*, std::optional<double>> rows[] = {
      {"train_loss", std::isnan(m.train_loss) ? std::nullopt : std::optional<double>(m.train_loss)},
      {"val_loss", m.val_loss},
      {"val_accuracy", m.val_accuracy},
      {"val_bits_per_char", m.val_bits_per_char},
      {"test_loss", m.test_loss},
      {"test_accuracy", m.test_accuracy},
      {"test_bits_per_char", m.test_bits_per_char}};
  for (const auto& [key, value] : rows)
    if (value || std::string(key) == "train_loss")
      std::printf("  %-18s %s\n", key, format_metric(value, std::string(key).find("accuracy") != std::string::npos).c_str());
  std::printf("  wall %s (data wait %s), peak RSS %.1f MiB, %d threads\n", duration_text(s.cost.wall_s).c_str(),
              duration_text(s.data_wait_s).c_str(), double(s.peak_rss_bytes) / 1048576.0, s.threads);
  const train::CheckpointSummary& c = s.checkpoint;
  if (c.checkpoints > 0 || c.interruptions > 0) {
    std::printf("  checkpoints %lld (%s writing), interruptions %lld, work lost %s\n", (long long)c.checkpoints,
                duration_text(c.checkpoint_s).c_str(), (long long)c.interruptions, duration_text(c.lost_s).c_str());
    if (c.resumed_from) std::printf("  resumed from %s\n", c.resumed_from->c_str());
  }
  const cost::CostSummary& k = s.cost;
  // Human units here (base/units.h); --json and summary.json keep full precision in USD, kWh, kg, s.
  std::printf("  cost on %s (%s, billed %s, %s/h)\n", k.instance.c_str(), k.pricing.c_str(), k.billing.c_str(),
              usd_text(k.usd_per_hour).c_str());
  const std::pair<const char*, std::string> figures[] = {{"dollars", usd_text(k.usd.value)},
                                                         {"energy", energy_text(k.kwh.value)},
                                                         {"carbon", carbon_text(k.co2_kg.value)},
                                                         {"time", duration_text(k.hours.value * 3600)}};
  const cost::Figure* sources[] = {&k.usd, &k.kwh, &k.co2_kg, &k.hours};
  for (int i = 0; i < 4; ++i)
    std::printf("    %-8s %-16s %s\n", figures[i].first, figures[i].second.c_str(), sources[i]->source.c_str());
  std::printf("    energy   %s\n", k.energy_method.c_str());
  std::printf("  phases:");
  for (int i = 0; i < cost::phase_count; ++i)
    std::printf(" %s %s", cost::phase_name(cost::Phase(i)), duration_text(k.phase_s[size_t(i)]).c_str());
  std::printf("\n");
  if (k.flops) {
    // Training FLOPs, forward + backward as the dense ops ran them (or an older summary's estimate).
    std::printf("  training FLOPs %.4g %s", *k.flops, k.flops_source.c_str());
    if (k.flops_forward && k.flops_backward)
      std::printf(" (forward %.4g + backward %.4g)", *k.flops_forward, *k.flops_backward);
    if (k.flops_per_s) std::printf(", %.4g FLOP/s", *k.flops_per_s);
    if (k.mfu)
      std::printf(", MFU %.1f%% of the %s peak (%.0f GFLOP/s, %s)\n", 100 * *k.mfu, k.peak_precision.c_str(),
                  k.mfu_peak_flops.value * 1e-9, k.mfu_peak_flops.source.c_str());
    else
      std::printf(", MFU %s\n", k.mfu_note.c_str());
  } else {
    std::printf("  training FLOPs and MFU %s\n", k.mfu_note.c_str());
  }
  if (k.flops_eval) std::printf("  evaluation FLOPs %.4g counted\n", *k.flops_eval);
  if (const std::optional<train::DistillSummary>& d = s.distill) {
    std::printf("  distill: teacher %s (%lld params), alpha %g, T %g; teacher forward %.2f s over %lld batches\n",
                d->teacher.c_str(), (long long)d->teacher_params, d->alpha, d->temperature, d->teacher_forward_s,
                (long long)d->teacher_forward_batches);
    if (d->cache)
      std::printf("    logit cache %s %s (%lld bytes), %.2f s building it in this run\n", d->cache_path.c_str(),
                  d->cache_status.c_str(), (long long)d->cache_bytes, d->cache_build_s);
  }
  cli::print_technique_lines(s.techniques);
  if (s.status == "stopped_budget") {
    std::printf("  stopped at a budget limit after a checkpoint (%s); continue with a larger budget:\n"
                "  frugal train JOB --out %s --resume auto --budget-usd X\n",
                s.budget ? s.budget->exceeded.c_str() : "", s.out_dir.c_str());
    return;
  }
  if (s.status == "stopped_nonfinite") {
    std::printf("  stopped at a non-finite loss after a checkpoint of the weights before it (in %s/checkpoints); "
                "no model written\n", s.out_dir.c_str());
    return;
  }
  if (s.status == "preempted") {
    std::printf("  stopped by %s after a checkpoint; continue with: frugal train JOB --out %s --resume auto\n",
                s.signal ? s.signal->c_str() : "a signal", s.out_dir.c_str());
    return;
  }
  if (s.lora) {
    std::printf("  model  %s/model.safetensors (the adapters merged: a plain model)\n", s.out_dir.c_str());
    std::printf("  adapters  %s/adapters.safetensors (rank %lld, alpha %g, %lld Linear layers; trainable %lld of %lld "
                "params)\n", s.out_dir.c_str(), (long long)s.lora->rank, s.lora->alpha, (long long)s.lora->modules,
                (long long)s.trainable_params, (long long)s.params);
    return;
  }
  std::printf("  model  %s/model.safetensors\n", s.out_dir.c_str());
}

int cmd_train(const std::string& job_path, const std::vector<std::string>& sets, const std::string& out_dir, bool as_json,
              bool quiet, const std::string& resume, std::optional<double> budget_usd) {
  train::JobSpec job = train::load_job(job_path, sets);
  train::TrainOptions options;
  options.out_dir = out_dir;
  options.quiet = quiet;
  options.log = as_json ? stderr : stdout;
  options.progress_bar = isatty(fileno(options.log));
  options.resume = resume;
  if (budget_usd && !(std::isfinite(*budget_usd) && *budget_usd > 0))
    throw InputError("--budget-usd " + std::to_string(*budget_usd) + ": expected a number of dollars > 0");
  options.budget_usd = budget_usd;
  train::TrainOutcome outcome = train::run_training(job, options);
  // Under mpirun, ranks other than 0 record nothing (no run id): rank 0 reports the run.
  if (outcome.summary.run_id.empty()) return outcome.exit_code;
  if (as_json) std::printf("%s\n", outcome.summary.to_json().dump().c_str());
  else print_summary(outcome.summary);
  return outcome.exit_code;
}

// A model trained with [data] labels = "names" carries its class names (metadata frugal.labels); the
// job's data must give the same names in the same order, or its accuracy would be silently permuted.
void check_label_names(const std::string& weights, const std::vector<std::string>& job_names) {
  io::SafetensorsFile file = io::read_safetensors(weights);
  auto it = file.metadata.find("frugal.labels");
  if (it == file.metadata.end()) return;  // integer labels, or weights from elsewhere
  std::vector<std::string> saved;
  try {
    saved = json::parse(it->second).get<std::vector<std::string>>();
  } catch (const std::exception&) {
    throw InputError(weights + ": metadata frugal.labels: expected a JSON array of class names");
  }
  auto list = [](const std::vector<std::string>& names) {
    std::string out;
    for (const std::string& name : names) out += (out.empty() ? "'" : ", '") + name + "'";
    return "[" + out + "]";
  };
  if (job_names.empty())
    throw InputError(weights + ": the model was trained on class names " + list(saved) +
                     "; the job reads integer labels (set [data] labels = \"names\")");
  if (saved != job_names)
    throw InputError(weights + ": the model's classes " + list(saved) + " differ from the job's data " +
                     list(job_names));
}

// One batch through the model before eval's clock starts: oneDNN builds (JIT-compiles) its kernels
// and the int8 layers pack their weights on first use, a one-off cost the throughput leaves out.
void warm_up(nn::Module& model, const train::JobSpec& job, const train::PreparedData& data, const std::string& split) {
  autograd::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  if (data.is_text) {
    const Tensor& tokens = split == "test" && data.test_tokens.defined() ? data.test_tokens : data.val_tokens;
    const int64_t context = job.model.gpt.context, count = std::min<int64_t>(job.train.batch_size, (tokens.numel() - 1) / context);
    if (count > 0) model(tokens.slice_view(0, 0, count * context).contiguous().view({count, context}));
  } else {
    const data::Dataset& set = split == "test" ? data.test : data.val;
    if (set.size() > 0) model(set.inputs.slice_view(0, 0, std::min<int64_t>(1000, set.size())));
  }
  model.train(was_training);
}

int cmd_eval(const std::string& job_path, const std::vector<std::string>& sets, const std::string& weights,
             const std::string& split, const std::string& sparse, int repeat, bool as_json) {
  const nn::SparseMode sparse_mode = nn::parse_sparse_mode(sparse, "--sparse");
  train::JobSpec job = train::load_job(job_path, sets);
  train::apply_threads(job);
  io::SafetensorsFile file = io::read_safetensors(weights);
  const bool quantized = train::is_quantized(file);
  // Evaluate in the precision the model was trained in; a quantized model's float parts in f32.
  PrecisionGuard precision(quantized ? Precision::fp32 : job.precision.mode);
  train::PreparedData data = train::prepare_data(job, "runs/cache");
  if (data.is_text) {
    auto it = file.metadata.find("frugal.vocab");
    if (it != file.metadata.end()) {
      data::CharVocab saved = data::CharVocab::from_string(it->second);
      if (saved.chars() != data.vocab.chars())
        throw InputError(weights + ": the model's vocabulary differs from the job's training text");
    }
  } else {
    check_label_names(weights, data.label_names);
  }
  std::shared_ptr<nn::Module> model =
      quantized ? train::load_quantized_model(job, data, file, weights) : train::load_model(job, data, weights);
  train::Int8ExclusionScope int8_exclusions(job, *model);  // int8-mixed evaluates as it trained
  // Sparse Linear layers where they pay: decided per layer on its first batch (nn/sparse.h), which
  // warm_up runs, so the timed evaluation below runs the chosen paths only.
  nn::SparsePlan sparse_plan(*model, sparse_mode);
  train::EvalMetrics m;
  warm_up(*model, job, data, split);
  // --repeat: the same evaluation again (the metrics do not change), timed each time; the median.
  std::vector<double> times;
  for (int r = 0; r < repeat; ++r) {
    Timer timer;
    if (data.is_text) {
      const Tensor& tokens = split == "test" && data.test_tokens.defined() ? data.test_tokens : data.val_tokens;
      if (split == "test" && !data.test_tokens.defined()) throw InputError(job_path + ": the job has no test split");
      m = train::evaluate_language_model(*model, tokens, job.train.batch_size, job.model.gpt.context, 0);
    } else {
      const data::Dataset& set = split == "test" ? data.test : data.val;
      if (set.size() == 0) throw InputError(job_path + ": the job has no " + split + " split");
      m = train::evaluate_classifier(*model, set, 1000);
    }
    times.push_back(timer.seconds());
  }
  std::sort(times.begin(), times.end());
  const double seconds = times[times.size() / 2];
  // Throughput of the evaluation itself (samples, or tokens for a language model, per second).
  const double per_second = seconds > 0 ? double(m.samples) / seconds : 0;
  json out = {{"split", split},
              {"samples", m.samples},
              {"loss", m.loss},
              {"weights", weights},
              {"seconds", seconds},
              {"repeat", repeat},
              {"samples_per_second", per_second},
              {"quantized", quantized},
              {"sparse_mode", std::string(nn::sparse_mode_name(sparse_mode))}};
  if (m.accuracy >= 0) out["accuracy"] = m.accuracy;
  if (m.bits_per_char >= 0) out["bits_per_char"] = m.bits_per_char;
  const std::vector<nn::SparseLayerReport> sparse_reports = sparse_plan.reports();
  json layers = json::array();
  for (const nn::SparseLayerReport& r : sparse_reports)
    layers.push_back({{"layer", r.name}, {"in", r.in_features}, {"out", r.out_features}, {"density", r.density},
                      {"rows", r.rows}, {"dense_us", r.dense_us}, {"sparse_us", r.sparse_us},
                      {"chosen", r.sparse ? "sparse" : "dense"}, {"reason", r.reason}});
  if (sparse_mode != nn::SparseMode::off) out["sparse_layers"] = layers;
  if (as_json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    // The timed layers only: a dense model's Linear layers (all above the cap) print nothing.
    for (const nn::SparseLayerReport& r : sparse_reports)
      if (r.dense_us >= 0) std::printf("sparse: %s\n", nn::sparse_report_line(r).c_str());
    std::printf("%s split: %lld samples, loss %.4f", split.c_str(), (long long)m.samples, m.loss);
    if (m.accuracy >= 0) std::printf(", accuracy %.2f%%", 100 * m.accuracy);
    if (m.bits_per_char >= 0) std::printf(", bits/char %.3f", m.bits_per_char);
    std::printf("; %.0f %s/s%s\n", per_second, data.is_text ? "tokens" : "samples", quantized ? " (int8)" : "");
  }
  return 0;
}

// When `frugal sample` shows a progress line on stderr: --progress always, --quiet never; else when
// stdout is not a terminal (the text does not show itself) and stderr is one, or the run is long.
bool sample_progress_wanted(int64_t tokens, bool progress, bool quiet) {
  if (quiet) return false;
  if (progress) return true;
  return !isatty(fileno(stdout)) && (isatty(fileno(stderr)) || tokens >= 10000);
}

int cmd_sample(const std::string& job_path, const std::vector<std::string>& sets, const std::string& weights,
               const std::string& prompt, int64_t tokens, double temperature, uint64_t seed, bool progress, bool quiet) {
  // CLI11's range check lets NaN through (every comparison with it is false).
  if (!std::isfinite(temperature))
    throw InputError("--temperature " + std::to_string(temperature) + ": expected a number in [0, 100]");
  train::JobSpec job = train::load_job(job_path, sets);
  if (job.model.kind != train::ModelKind::gpt)
    throw InputError(job_path + ": `frugal sample` needs a language model ([model] kind = \"gpt\")");
  train::apply_threads(job);
  io::SafetensorsFile file = io::read_safetensors(weights);
  const bool quantized = train::is_quantized(file);
  PrecisionGuard precision(quantized ? Precision::fp32 : job.precision.mode);
  io::check_finite_weights(file, weights);
  auto it = file.metadata.find("frugal.vocab");
  if (it == file.metadata.end()) throw InputError(weights + ": no frugal.vocab in the metadata; was it saved by frugal train?");
  train::PreparedData data;
  data.is_text = true;
  data.vocab = data::CharVocab::from_string(it->second);
  std::shared_ptr<nn::Module> model;
  if (quantized) {
    model = train::load_quantized_model(job, data, file, weights);
  } else {
    model = train::build_model(job, data);
    model->load_state_dict(file.tensors, true);
  }
  train::Int8ExclusionScope int8_exclusions(job, *model);
  // The text streams to stdout as it is made, so a stop (SIGINT, SIGTERM) keeps what was produced;
  // the progress line goes to stderr only.
  const bool show = sample_progress_wanted(tokens, progress, quiet);
  train::Progress bar(stderr, isatty(fileno(stderr)), !show);
  bar.set_unit("tokens");
  install_preemption_handlers();
  Timer timer;
  int64_t produced = 0;
  train::sample_text(*model, data.vocab, job.model.gpt.context, prompt, tokens, temperature, seed,
                     [&](const std::string& piece, int64_t done) {
                       if (done == 1) std::fputs(prompt.c_str(), stdout);  // once the prompt is known to encode
                       std::fwrite(piece.data(), 1, piece.size(), stdout);
                       produced = done;
                       const double elapsed = timer.seconds();
                       bar.update(0, 0, done, tokens, NAN, "tokens/s", elapsed > 0 ? double(done) / elapsed : 0, elapsed);
                       return !preemption_requested();
                     });
  std::fputs("\n", stdout);
  std::fflush(stdout);
  bar.finish();
  const int signal = preemption_signal();
  uninstall_preemption_handlers();
  if (produced < tokens && signal != 0) {
    std::fprintf(stderr, "frugal: sample stopped by %s after %lld of %lld tokens (the text so far is on stdout)\n",
                 preemption_signal_name(signal), (long long)produced, (long long)tokens);
    return kExitPreempted;
  }
  return 0;
}

// An error as one printed line: control characters escaped, and a message grown very long by an
// echoed input cut in the middle, keeping the place it starts with and the expectation it ends with.
std::string message_line(const std::string& message) {
  constexpr size_t kHalf = 2000;  // a legitimate message (a list of tensors that do not fit) stays whole
  std::string line = one_line(message);
  if (line.size() > 2 * kHalf + 5) line = line.substr(0, kHalf) + " ... " + line.substr(line.size() - kHalf);
  return line;
}

// Reading commands never create a store: a mistyped --store would otherwise become an empty one.
void require_store(const std::string& store_path) {
  if (!std::filesystem::exists(store_path))
    throw InputError(store_path + ": no run store there (frugal train creates one); name an existing one with --store");
}

int cmd_runs_list(const std::string& store_path, bool as_json) {
  require_store(store_path);
  track::RunStore store(store_path);
  std::vector<track::RunRecord> runs = store.list_runs(100);
  if (as_json) {
    json out = json::array();
    for (const auto& r : runs) {
      json row = {{"run_id", r.run_id}, {"name", r.name}, {"status", r.status}, {"started_at", r.started_at},
                  {"finished_at", r.finished_at}, {"out_dir", r.out_dir}};
      if (!r.summary_json.empty()) row["summary"] = json::parse(r.summary_json, nullptr, false);
      out.push_back(row);
    }
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf("%-40s %-14s %-20s %9s %9s %9s %10s %10s\n", "RUN", "STATUS", "STARTED", "WALL", "VAL", "TEST", "USD",
              "ENERGY");
  for (const auto& r : runs) {
    json s = r.summary_json.empty() ? json::object() : json::parse(r.summary_json, nullptr, false);
    json m = s.is_object() && s.contains("metrics") ? s["metrics"] : json::object();
    std::string val = m.contains("val_accuracy") ? format_metric(m, "val_accuracy", true)
                      : m.contains("val_bits_per_char") ? format_metric(m, "val_bits_per_char", false)
                                                        : format_metric(m, "val_loss", false);
    std::string test = m.contains("test_accuracy") ? format_metric(m, "test_accuracy", true) : "-";
    std::string wall = "-";
    if (s.is_object() && s.contains("wall_s")) wall = duration_text(s["wall_s"].get<double>());
    std::string usd = "-", energy = "-";
    if (s.is_object() && s.contains("cost") && s["cost"].is_object()) {
      usd = usd_text(s["cost"]["usd"].value("value", 0.0));
      energy = energy_text(s["cost"]["kwh"].value("value", 0.0));
    }
    std::printf("%-40s %-14s %-20s %9s %9s %9s %10s %10s\n", r.run_id.c_str(), r.status.c_str(), r.started_at.c_str(),
                wall.c_str(), val.c_str(), test.c_str(), usd.c_str(), energy.c_str());
  }
  return 0;
}

int cmd_runs_show(const std::string& store_path, const std::string& id, bool as_json) {
  require_store(store_path);
  track::RunStore store(store_path);
  std::optional<track::RunRecord> run = store.find_run(id);
  if (!run) throw InputError("no run '" + id + "' in " + store_path);
  std::vector<track::MetricRow> rows = store.metrics(run->run_id);
  if (as_json) {
    json out = {{"run_id", run->run_id}, {"name", run->name}, {"status", run->status}, {"started_at", run->started_at},
                {"finished_at", run->finished_at}, {"out_dir", run->out_dir}, {"job", run->job_toml},
                {"pid", run->pid}, {"host", run->host}};
    out["summary"] = run->summary_json.empty() ? json(nullptr) : json::parse(run->summary_json, nullptr, false);
    json metrics = json::array();
    for (const auto& row : rows) metrics.push_back(json::parse(row.json, nullptr, false));
    out["metrics"] = metrics;
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf("run      %s\nname     %s\nstatus   %s\nstarted  %s\nfinished %s\nout_dir  %s\n", run->run_id.c_str(),
              run->name.c_str(), run->status.c_str(), run->started_at.c_str(), run->finished_at.c_str(),
              run->out_dir.c_str());
  if (run->pid > 0) std::printf("process  %lld on %s\n", (long long)run->pid, run->host.c_str());
  std::printf("metrics  %zu rows\n", rows.size());
  json summary = run->summary_json.empty() ? json::object() : json::parse(run->summary_json, nullptr, false);
  if (summary.is_object() && summary.contains("projections") && !summary["projections"].empty()) {
    std::printf("projections (estimated: this run on another instance)\n");
    std::printf("  %-24s %12s %12s %12s %14s\n", "INSTANCE", "TIME", "DOLLARS", "ENERGY", "CARBON");
    for (const json& p : summary["projections"])
      std::printf("  %-24s %12s %12s %12s %14s\n", p["instance"].get<std::string>().c_str(),
                  duration_text(p["hours"]["value"].get<double>() * 3600).c_str(),
                  usd_text(p["usd"]["value"].get<double>()).c_str(), energy_text(p["kwh"]["value"].get<double>()).c_str(),
                  carbon_text(p["co2_kg"]["value"].get<double>()).c_str());
    for (const json& p : summary["projections"])
      std::printf("  %s: %s\n", p["instance"].get<std::string>().c_str(), p["method"].get<std::string>().c_str());
  }
  if (!run->summary_json.empty()) std::printf("summary  %s\n", json::parse(run->summary_json, nullptr, false).dump(2).c_str());
  std::printf("job\n%s", run->job_toml.c_str());
  return 0;
}

// `frugal export`: SOURCE is a run directory, a checkpoint or safetensors file, or else a run id
// (or unique prefix) of the store, whose run directory it names.
int cmd_export(const std::string& source, bool merge, bool adapters, const std::string& out, const std::string& store_path) {
  namespace fs = std::filesystem;
  if (merge == adapters) throw InputError("frugal export: give one of --merge (a plain merged model) or --adapters (the adapters alone)");
  std::string path = source;
  if (!fs::exists(source)) {
    if (!fs::exists(store_path)) throw InputError(source + ": no such run directory or file, and there is no run store " + store_path);
    std::optional<track::RunRecord> run = track::RunStore(store_path).find_run(source);
    if (!run) throw InputError("no run '" + source + "' in " + store_path + " (and no run directory or file of that name)");
    path = run->out_dir;
  }
  train::export_lora(path, merge ? train::ExportKind::merged : train::ExportKind::adapters, out);
  std::printf("%s\n", out.c_str());
  return 0;
}

}  // namespace

// `frugal eval` registers itself as `report` and `prune` do (cli/command.h): its options live with it.
cli::Command add_eval_command(CLI::App& app) {
  struct Options {
    std::string job, weights, split = "test", sparse = "auto";
    std::vector<std::string> sets;
    bool json = false;
    int repeat = 1;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("eval", "Evaluate saved weights on the job's test or validation split");
  cmd->add_option("job", o->job, "Job file (TOML)")->required();
  cmd->add_option("--weights", o->weights, "Weights (safetensors) saved by frugal train or PyTorch, or a quantized file (frugal quantize)")->required();
  cmd->add_option("--split", o->split, "Split to evaluate")->check(CLI::IsMember({"test", "val"}));
  cmd->add_option("--set", o->sets, "Override a job key (repeatable)");
  cmd->add_flag("--json", o->json, "Print the result as one JSON object");
  cmd->add_option("--sparse", o->sparse,
                  "Sparse Linear layers: 'auto' (default) times dense against sparse on each Linear whose weight "
                  "is under 50% nonzero and keeps the faster; 'on' forces sparse on every Linear; 'off' keeps "
                  "all dense. The choice is printed per layer (density, microseconds, chosen)")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cmd->add_option("--repeat", o->repeat,
                  "Evaluate N times after the warm-up and report the median time and throughput (benchmarks)")
      ->check(CLI::Range(1, 1000));
  return {cmd, [o] { return cmd_eval(o->job, o->sets, o->weights, o->split, o->sparse, o->repeat, o->json); }};
}

int main(int argc, char** argv) {
  // OpenMP threads wait for the next parallel region by spinning, by default for 300000 rounds;
  // when anything else needs the cores (a second job, a build, CI running tests in parallel) that
  // starves the thread holding the work and a step gets many times slower. Sleeping at once
  // (passive) costs a futex wake per region instead, a fifth of a CNN step on this VM. A short spin
  // (30000 rounds, tens of microseconds) keeps back-to-back kernels awake and gives the cores back
  // soon: measured here it is as fast as the default when idle and no slower than passive under
  // load (bench/RESULTS.md). frugal uses it unless the user chose a policy or a spin count; libgomp
  // reads both when it loads, hence the one re-exec.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr && std::getenv("GOMP_SPINCOUNT") == nullptr) {
    setenv("GOMP_SPINCOUNT", "30000", 1);
    execv("/proc/self/exe", argv);  // on failure, carry on with the default policy
  }
  CLI::App app{"frugal: train neural networks for less, and prove by how much.\n"
               "Exit codes: 0 completed, 1 internal error, 2 invalid input (job file, data, options, a refused\n"
               "resume), 3 stopped at a [budget] limit (a checkpoint was written; rerun with --resume auto and a\n"
               "larger budget), 4 stopped at a NaN/inf loss (a checkpoint of the weights before that step was\n"
               "written), 71 out of memory (an allocation failed: make the model, batch or data smaller),\n"
               "74 I/O error (disk full, quota, EIO: the input was fine; retry where there is space), 75 preempted\n"
               "(SIGTERM/SIGINT/SIGUSR1: a checkpoint was written; rerun with --resume auto; `sample` prints the\n"
               "text made so far)."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "frugal 0.1.0");

  std::string resume;
  std::optional<double> budget_usd;
  std::string job_path, out_dir, weights, prompt, store_path = "runs/frugal.db", run_id;
  std::vector<std::string> sets;
  bool as_json = false, quiet = false, progress = false;
  int64_t tokens = 200;
  double temperature = 1.0;
  uint64_t seed = 0;

  CLI::App* train_cmd = app.add_subcommand("train", "Train the model a job file describes; writes a run directory and records the run");
  train_cmd->add_option("job", job_path, "Job file (TOML)")->required();
  // Issue 21 part 1: the data-efficiency sections a job may add (README "Data efficiency").
  train_cmd->footer("Data efficiency: [seq_warmup] (GPT: short contexts first), [curriculum] (easy samples first, "
                    "by a score file or the model's own loss), [selective_backprop] (backward on the highest-loss "
                    "samples), [importance_sampling] (epochs drawn by loss); see the README's job-file reference.\n"
                    "Several processes or hosts: mpirun -np N frugal train JOB (or srun --mpi=pmix); the ranks share "
                    "each step's train.grad_accum micro-batches (a multiple of N) and end bit-identical to one "
                    "process; [dist] sets the backend and gradient compression (README \"Beyond one machine\")");
  train_cmd->add_option("--set", sets, "Override a job key, e.g. --set train.epochs=3 (repeatable); a relative path "
                                      "given here is relative to the current directory, one in the job file to the job "
                                      "file's directory");
  train_cmd->add_option("--out", out_dir, "Run directory (default: runs/<name>-<timestamp>)");
  train_cmd->add_flag("--json", as_json, "Print one JSON summary object as the last line of stdout; progress goes to stderr");
  train_cmd->add_flag("--quiet", quiet, "No progress output");
  train_cmd->add_option("--resume", resume,
                        "Continue a run: 'auto' = from the newest good checkpoint in --out DIR (a fresh run when there "
                        "is none), or a checkpoint file. Refused (exit 2) when the job changed in a key that changes "
                        "the result");
  train_cmd->add_option("--budget-usd", budget_usd,
                        "Stop (checkpoint, exit 3) once the run has cost this many dollars; replaces [budget] max_usd");

  cli::Command eval_command = add_eval_command(app);

  CLI::App* sample_cmd = app.add_subcommand("sample", "Generate text with a trained character-level language model");
  sample_cmd->add_option("job", job_path, "Job file (TOML) of the model")->required();
  sample_cmd->add_option("--weights", weights, "Weights (safetensors) saved by frugal train, or a quantized file (frugal quantize)")->required();
  sample_cmd->add_option("--prompt", prompt, "Text to continue (default: start a new line; a text without newlines starts after a space, else its first character)");
  sample_cmd->add_option("--tokens", tokens, "Characters to generate")->check(CLI::Range(int64_t(1), int64_t(1000000)));
  sample_cmd->add_option("--temperature", temperature, "Sampling temperature (0 = greedy)")->check(CLI::Range(0.0, 100.0));
  sample_cmd->add_option("--seed", seed, "Random seed for sampling");
  sample_cmd->add_option("--set", sets, "Override a job key (repeatable)");
  sample_cmd->add_flag("--progress", progress,
                       "Progress on stderr (tokens done / total, tokens/s, ETA) even when it would not show by default "
                       "(it shows when stdout is not a terminal and either stderr is one or --tokens is 10000 or "
                       "more); the text alone goes to stdout. SIGINT/SIGTERM stop it keeping the text (exit 75)");
  sample_cmd->add_flag("--quiet", quiet, "No progress line");

  CLI::App* runs_cmd = app.add_subcommand("runs", "List recorded runs, or show one");
  runs_cmd->add_option("--store", store_path, "Run store (SQLite)");
  runs_cmd->add_flag("--json", as_json, "JSON output");
  CLI::App* runs_list = runs_cmd->add_subcommand("list", "List runs, newest first (the default)");
  CLI::App* runs_show = runs_cmd->add_subcommand("show", "Show one run: job, summary, metrics");
  runs_show->add_option("run_id", run_id, "Run id or a unique prefix")->required();
  std::vector<cli::Command> commands = {cli::add_runs_export_command(*runs_cmd, store_path),
                                              cli::add_dashboard_command(app, store_path)};
  std::string run_a, run_b;
  CLI::App* compare_cmd = app.add_subcommand("compare", "Compare two runs: cost, energy, carbon, compute (counted FLOPs), quality, job keys, verdict; when B reached A's quality and what its pretraining cost");
  compare_cmd->add_option("run_a", run_a, "The baseline: a run id (or unique prefix) or a run directory")->required();
  compare_cmd->add_option("run_b", run_b, "The run compared with it")->required();
  compare_cmd->add_option("--store", store_path, "Run store (SQLite)");
  compare_cmd->add_flag("--json", as_json, "JSON output");
  commands.push_back(cli::add_report_command(app, store_path));
  commands.push_back(cli::add_prune_command(app));
  commands.push_back(cli::add_active_command(app));  // issue 21: frugal active
  commands.push_back(cli::add_quantize_command(app));
  for (cli::Command& command : cli::add_data_commands(app)) commands.push_back(std::move(command));
  std::string export_source, export_out;
  bool export_merge = false, export_adapters = false;
  CLI::App* export_cmd = app.add_subcommand("export", "Write a [lora] run's model with its adapters merged, or its adapters alone");
  export_cmd->add_option("source", export_source,
                         "A run directory, a run id (or unique prefix) of the store, a checkpoint (.fck) of a [lora] run, "
                         "or a safetensors file holding adapters")->required();
  export_cmd->add_flag("--merge", export_merge,
                       "A plain model: each adapted Linear's weight + alpha/rank * B A, no adapter tensors (frugal eval / "
                       "sample and PyTorch load it)");
  export_cmd->add_flag("--adapters", export_adapters,
                       "The adapters alone (*.lora_a, *.lora_b) with their rank / alpha / targets metadata, for [lora] adapters");
  export_cmd->add_option("--out", export_out, "The safetensors file to write")->required();
  export_cmd->add_option("--store", store_path, "Run store (SQLite), for a run id");
  for (CLI::App* sub : {runs_list, runs_show}) {
    sub->add_option("--store", store_path, "Run store (SQLite)");
    sub->add_flag("--json", as_json, "JSON output");
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  try {
    if (train_cmd->parsed()) return cmd_train(job_path, sets, out_dir, as_json, quiet, resume, budget_usd);
    if (eval_command.first->parsed()) return eval_command.second();
    if (sample_cmd->parsed()) return cmd_sample(job_path, sets, weights, prompt, tokens, temperature, seed, progress, quiet);
    if (compare_cmd->parsed()) return cli::cmd_compare(run_a, run_b, store_path, as_json);
    if (export_cmd->parsed()) return cmd_export(export_source, export_merge, export_adapters, export_out, store_path);
    for (const auto& [command, run] : commands)
      if (command->parsed()) return run();
    if (runs_show->parsed()) return cmd_runs_show(store_path, run_id, as_json);
    return cmd_runs_list(store_path, as_json);
  } catch (const InputError& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "frugal: error: %s\n", message_line(e.what()).c_str());
    return 2;
  } catch (const IoError& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "frugal: I/O error: %s\n", message_line(e.what()).c_str());
    return 74;
  } catch (const std::filesystem::filesystem_error& e) {
    // A directory that cannot be made or read (a file in the way, /proc, a name too long): the
    // input's fault, named by its path; a full disk or an I/O error: the storage's.
    std::fflush(stdout);
    const bool storage = is_storage_failure(e.code().value());
    const std::string where = e.path1().empty() ? std::string(e.what()) : e.path1().string();
    std::fprintf(stderr, "frugal: %s: %s: %s\n", storage ? "I/O error" : "error", message_line(echo_text(where, 240)).c_str(), e.code().message().c_str());
    return storage ? 74 : 2;
  } catch (const std::bad_alloc&) {
    // Past the estimate checked before the model is allocated (data, buffers, other processes).
    std::fflush(stdout);
    std::fprintf(stderr, "frugal: out of memory: an allocation failed; this machine has %s available (of %s): make "
                 "the model, the batch or the data smaller\n", bytes_text(machine_memory().available).c_str(),
                 bytes_text(machine_memory().total).c_str());
    return kExitOutOfMemory;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "frugal: internal error: %s\n", message_line(e.what()).c_str());
    return 1;
  }
}
