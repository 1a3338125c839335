#include "frugal/train/job.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "frugal/base/error.h"
#include "frugal/base/format.h"
#include "frugal/base/suggest.h"
#include "frugal/train/job_alerts.h"
#include "frugal/train/job_paths.h"
#include "frugal/train/job_section.h"
#include "frugal/train/job_dist.h"
#include "frugal/train/job_sampling.h"

namespace frugal::train {

bool is_system_directory(const std::string& path) {
  if (path.empty()) return false;
  std::error_code error;
  std::filesystem::path absolute = std::filesystem::absolute(path, error).lexically_normal();
  if (error) return false;
  std::string text = absolute.string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  static const std::set<std::string> roots = {"/",     "/bin",  "/boot", "/dev", "/etc", "/home", "/lib", "/lib64",
                                              "/opt",  "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp",
                                              "/usr",  "/var"};
  if (roots.count(text)) return true;
  for (const char* virtual_root : {"/proc/", "/sys/", "/dev/"})
    if (text.rfind(virtual_root, 0) == 0) return true;
  return false;
}

namespace {

using job_file::node_text;
using job_file::Section;

// Applies "a.b.c=value" to the table; the value is parsed as TOML, or else taken as a string.
// Returns the dotted key, so messages can say a bad value came from --set.
std::string apply_override(toml::table& root, const std::string& assignment) {
  size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw InputError("--set " + assignment + ": expected KEY=VALUE, e.g. --set train.epochs=3");
  std::string key = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string part; std::getline(ss, part, '.');) {
    if (part.empty()) throw InputError("--set " + assignment + ": empty part in key '" + key + "'");
    parts.push_back(part);
  }
  toml::table* table = &root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (!table->contains(parts[i])) table->insert(parts[i], toml::table{});
    toml::node* next = table->get(parts[i]);
    if (!next->is_table()) throw InputError("--set " + assignment + ": '" + parts[i] + "' is not a table");
    table = next->as_table();
  }
  toml::table parsed;
  try {
    parsed = toml::parse("value = " + value);
  } catch (const toml::parse_error&) {
    parsed = toml::table{{"value", value}};  // a bare word is a string
  }
  table->insert_or_assign(parts.back(), *parsed.get("value"));
  return key;
}

std::string hex_hash(const std::string& text) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  char buffer[17];
  std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(h));
  return buffer;
}

void parse_run(Section& s, RunSpec& run) {
  run.name = s.get_string("name", run.name);
  if (run.name.empty() || run.name.find_first_of("/\\ \t") != std::string::npos)
    s.fail_key("name", "expected a non-empty name without slashes or spaces");
  run.seed = uint64_t(s.get_int("seed", 0, 0, INT64_MAX));
  run.threads = int(s.get_int("threads", 0, 0, 1024));
  run.threads_force = s.get_bool("threads_force", false);
  run.store = s.get_string("store", run.store);
}

// [data] classes, train_limit, per_class: which classes and how many training samples to keep.
void parse_data_subsets(Section& s, DataSpec& d) {
  const bool has_classes = s.has("classes");
  d.classes = s.get_int_list("classes", {}, 0, INT32_MAX);
  d.train_limit = s.get_int("train_limit", 0, 1, INT64_MAX / 4);
  d.per_class = s.get_int("per_class", 0, 1, INT64_MAX / 4);
  if (d.kind == DataKind::text)
    for (const char* key : {"classes", "train_limit", "per_class"})
      if (s.has(key)) s.fail_key(key, "applies to classification data (kind = idx, csv or npy), not text");
  if (!has_classes) return;
  if (d.classes.size() < 2) s.fail_key("classes", "list at least 2 class labels, e.g. [5, 6, 7, 8, 9]");
  for (size_t i = 0; i < d.classes.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (d.classes[i] == d.classes[j])
        s.fail_key("classes", "class " + std::to_string(d.classes[i]) + " is listed twice");
}

void parse_data(Section& s, DataSpec& d) {
  if (!s.has("kind")) s.fail_key("kind", "missing; expected one of idx, csv, npy, text, packed");
  d.kind = s.get_enum<DataKind>("kind", DataKind::idx,
                                {{"idx", DataKind::idx}, {"csv", DataKind::csv}, {"npy", DataKind::npy}, {"text", DataKind::text},
                                 {"packed", DataKind::packed}});
  d.train_images = s.get_string("train_images", "");
  d.train_labels = s.get_string("train_labels", "");
  d.test_images = s.get_string("test_images", "");
  d.test_labels = s.get_string("test_labels", "");
  d.train = s.get_string("train", "");
  d.val = s.get_string("val", "");
  d.test = s.get_string("test", "");
  d.train_targets = s.get_string("train_targets", "");
  d.val_targets = s.get_string("val_targets", "");
  d.test_targets = s.get_string("test_targets", "");
  d.label_column = s.get_string("label_column", "");
  d.label_index = s.get_int("label_index", -1, -1, 1 << 20);
  d.header = s.get_string("header", "detect", {"detect", "yes", "no"});
  d.skip_lines = s.get_int("skip_lines", 0, 0, 1 << 30);
  d.comment = s.get_string("comment", "");
  d.labels = s.get_string("labels", "integer", {"integer", "names"});
  d.class_count = s.get_int("class_count", 0, 2, 1 << 20);
  d.source = s.get_string("source", "file", {"file", "bible-kjv", "bible-web", "bible-rv1909"});
  d.val_fraction = s.get_double("val_fraction", 0.0, 0.0, 0.9);
  d.test_fraction = s.get_double("test_fraction", 0.0, 0.0, 0.9);
  d.normalize = s.get_string("normalize", d.kind == DataKind::text ? "none" : "scalar", {"none", "scalar", "per-feature"});
  d.crop_padding = s.get_int("crop_padding", 0, 0, 64);
  d.flip = s.get_bool("flip", false);
  d.prefetch = int(s.get_int("prefetch", 2, 1, 64));
  d.max_bytes = s.get_int("max_bytes", 0, 1, INT64_MAX);
  parse_data_subsets(s, d);
  parse_data_dedup(s, d);
  parse_data_packed(s, d);
  s.check_unknown();
  auto require = [&](const std::string& key, const std::string& value) {
    if (value.empty()) s.fail_key(key, "missing; required when kind = \"" + std::string(name_of(d.kind)) + "\"");
  };
  if (d.kind == DataKind::idx) {
    require("train_images", d.train_images);
    require("train_labels", d.train_labels);
    if (d.test_images.empty() != d.test_labels.empty())
      s.fail_key(d.test_images.empty() ? "test_images" : "test_labels", "test_images and test_labels go together");
  } else if (d.kind == DataKind::csv) {
    require("train", d.train);
  } else if (d.kind == DataKind::npy) {
    require("train", d.train);
    require("train_targets", d.train_targets);
  } else if (d.kind == DataKind::text) {
    if (d.source == "file") require("train", d.train);
  } else if (d.kind == DataKind::packed) {
    require("path", d.path);
  }
  for (const char* key : {"skip_lines", "comment"})
    if (d.kind != DataKind::csv && s.has(key)) s.fail_key(key, "applies to csv files (kind = \"csv\")");
  if (d.labels == "names" && d.kind != DataKind::csv)
    s.fail_key("labels", "\"names\" applies to csv label columns; idx and npy labels are class indices");
  if (d.labels == "names" && s.has("class_count"))
    s.fail_key("class_count", "with labels = \"names\" the classes are the distinct names");
  if (d.labels == "names" && !d.classes.empty())
    s.fail_key("classes", "selects integer labels; with labels = \"names\" there are none");
  if (d.kind == DataKind::text && (s.has("labels") || s.has("class_count")))
    s.fail_key(s.has("labels") ? "labels" : "class_count", "applies to classification data (kind = idx, csv or npy), not text");
  if (d.val_fraction + d.test_fraction >= 0.95) s.fail_key("val_fraction", "val_fraction + test_fraction must be < 0.95");
}

void parse_model(Section& s, ModelSpec& m) {
  if (!s.has("kind")) s.fail_key("kind", "missing; expected one of mlp, cnn, gpt, custom");
  m.kind = s.get_enum<ModelKind>(
      "kind", ModelKind::mlp,
      {{"mlp", ModelKind::mlp}, {"cnn", ModelKind::cnn}, {"gpt", ModelKind::gpt}, {"custom", ModelKind::custom}});
  const std::vector<std::string> activations = {"relu", "gelu", "gelu_tanh", "silu", "tanh", "sigmoid"};
  if (m.kind == ModelKind::mlp) {
    m.mlp.hidden = s.get_int_list("hidden", {256}, 1, 1 << 20);
    m.mlp.activation = s.get_string("activation", "relu", activations);
    m.mlp.dropout = s.get_double("dropout", 0.0, 0.0, 0.95);
  } else if (m.kind == ModelKind::cnn) {
    m.cnn.channels = s.get_int_list("channels", {32, 64}, 1, 1 << 16);
    m.cnn.kernel = s.get_int("kernel", 3, 1, 15);
    if (m.cnn.kernel % 2 == 0) s.fail_key("kernel", "expected an odd kernel size (padding keeps the size)");
    m.cnn.batch_norm = s.get_bool("batch_norm", true);
    m.cnn.pool = s.get_string("pool", "max", {"max", "avg", "none"});
    m.cnn.dropout = s.get_double("dropout", 0.0, 0.0, 0.95);
    m.cnn.hidden = s.get_int_list("hidden", {128}, 1, 1 << 20);
  } else if (m.kind == ModelKind::gpt) {
    m.gpt.layers = s.get_int("layers", 4, 1, 256);
    m.gpt.heads = s.get_int("heads", 4, 1, 256);
    m.gpt.width = s.get_int("width", 128, 1, 1 << 16);
    m.gpt.context = s.get_int("context", 128, 1, 1 << 16);
    m.gpt.dropout = s.get_double("dropout", 0.0, 0.0, 0.95);
    m.gpt.tied_embeddings = s.get_bool("tied_embeddings", true);
    m.gpt.bias = s.get_bool("bias", true);
    // A pruned GPT (frugal prune, [prune] structure = "heads" / "mlp"): per-block widths.
    m.gpt.block_heads = s.get_int_list("block_heads", {}, 1, 256);
    m.gpt.mlp_widths = s.get_int_list("mlp_widths", {}, 1, 1 << 20);
    s.check_unknown();
    if (m.gpt.width % m.gpt.heads != 0)
      s.fail_key("width", "width " + std::to_string(m.gpt.width) + " must be a multiple of heads " +
                              std::to_string(m.gpt.heads));
    for (const char* key : {"block_heads", "mlp_widths"}) {
      const auto& list = std::string(key) == "block_heads" ? m.gpt.block_heads : m.gpt.mlp_widths;
      if (!list.empty() && int64_t(list.size()) != m.gpt.layers)
        s.fail_key(key, "expected one entry per block (layers = " + std::to_string(m.gpt.layers) + "), got " +
                            std::to_string(list.size()));
    }
  }
}

void parse_optim(Section& s, OptimSpec& o) {
  o.kind = s.get_enum<OptimKind>("kind", OptimKind::adamw, {{"sgd", OptimKind::sgd}, {"adamw", OptimKind::adamw}});
  o.lr = s.get_double("lr", o.kind == OptimKind::sgd ? 0.01 : 1e-3, 0.0, 10.0, /*min_open=*/true);
  o.momentum = s.get_double("momentum", 0.0, 0.0, 0.9999);
  o.dampening = s.get_double("dampening", 0.0, 0.0, 1.0);
  o.nesterov = s.get_bool("nesterov", false);
  o.weight_decay = s.get_double("weight_decay", o.kind == OptimKind::adamw ? 0.01 : 0.0, 0.0, 10.0);
  o.beta1 = s.get_double("beta1", 0.9, 0.0, 0.9999999);
  o.beta2 = s.get_double("beta2", 0.999, 0.0, 0.9999999);
  o.eps = s.get_double("eps", 1e-8, 0.0, 1.0, true);
  o.lr_multipliers = s.get_number_table("lr_multipliers", 0.0, 1e3);
  for (const auto& [pattern, multiplier] : o.lr_multipliers)
    if (pattern.empty()) s.fail_key("lr_multipliers", "a pattern is empty; expected glob patterns of parameter names");
  s.check_unknown();
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
    s.fail_key("nesterov", "Nesterov momentum needs momentum > 0 and dampening = 0");
}

void parse_schedule(Section& s, ScheduleSpec& c) {
  c.kind = s.get_string("kind", "constant", {"constant", "step", "exponential", "warmup_cosine", "warmup_linear",
                                             "cosine_restarts", "one_cycle", "plateau"});
  c.warmup_steps = s.get_int("warmup_steps", 0, 0, INT64_MAX / 2);
  c.lr_min = s.get_double("lr_min", 0.0, 0.0, 10.0);
  c.step_size = s.get_int("step_size", 1, 1, INT64_MAX / 2);
  c.gamma = s.get_double("gamma", 0.1, 0.0, 1.0, true);
  c.t0 = s.get_int("t0", 1, 1, INT64_MAX / 2);
  c.t_mult = s.get_int("t_mult", 1, 1, 1000);
  c.pct_start = s.get_double("pct_start", 0.3, 0.0, 1.0, true);
  c.div_factor = s.get_double("div_factor", 25.0, 1.0, 1e9);
  c.final_div_factor = s.get_double("final_div_factor", 1e4, 1.0, 1e12);
  c.factor = s.get_double("factor", 0.1, 0.0, 1.0, true);
  c.threshold = s.get_double("threshold", 1e-4, 0.0, 1.0);
  c.patience = s.get_int("patience", 10, 0, 1 << 20);
  c.cooldown = s.get_int("cooldown", 0, 0, 1 << 20);
  c.mode = s.get_string("mode", "min", {"min", "max"});
}

// federated: the job has [federated], whose rounds and local_epochs set the length instead.
void parse_train(Section& s, TrainSpec& t, const std::string& file, bool federated) {
  bool has_epochs = s.has("epochs"), has_steps = s.has("steps");
  t.epochs = s.get_int("epochs", 0, 1, 1 << 20);
  t.steps = s.get_int("steps", 0, 1, INT64_MAX / 4);
  t.batch_size = s.get_int("batch_size", 64, 1, 1 << 20);
  t.grad_accum = s.get_int("grad_accum", 1, 1, 1 << 16);
  t.clip_norm = s.get_double("clip_norm", 0.0, 0.0, 1e9);
  t.eval_every = s.get_int("eval_every", 0, 0, INT64_MAX / 4);
  t.log_every = s.get_int("log_every", 50, 1, INT64_MAX / 4);
  t.label_smoothing = s.get_double("label_smoothing", 0.0, 0.0, 0.99);
  t.eval_tokens = s.get_int("eval_tokens", 0, 0, INT64_MAX / 4);
  t.max_minutes = s.get_double("max_minutes", 0.0, 0.0, 1e7);
  if (toml::table* es = s.subtable("early_stopping")) {
    Section e(file, "train.early_stopping", es, nullptr);
    t.early_stopping.enabled = e.get_bool("enabled", true);
    t.early_stopping.metric = e.get_enum<EarlyStopMetric>("metric", EarlyStopMetric::val_loss,
                                                          {{"val_loss", EarlyStopMetric::val_loss},
                                                           {"val_accuracy", EarlyStopMetric::val_accuracy},
                                                           {"val_bits_per_char", EarlyStopMetric::val_bits_per_char}});
    t.early_stopping.mode = e.get_enum<MetricMode>(
        "mode", t.early_stopping.metric == EarlyStopMetric::val_accuracy ? MetricMode::max : MetricMode::min,
        {{"min", MetricMode::min}, {"max", MetricMode::max}});
    t.early_stopping.patience = e.get_int("patience", 3, 0, 1 << 20);
    t.early_stopping.min_delta = e.get_double("min_delta", 0.0, 0.0, 1e9);
    t.early_stopping.restore_best = e.get_bool("restore_best", true);
    e.check_unknown();
  }
  s.check_unknown();
  if (has_epochs && has_steps) s.fail_key("steps", "set either epochs or steps, not both");
  if (federated) {
    for (const char* key : {"epochs", "steps"})
      if (s.has(key)) s.fail_key(key, "is not used with [federated]: its rounds and local_epochs set the length");
    return;
  }
  if (!has_epochs && !has_steps) s.fail_key("epochs", "missing; set epochs or steps");
}

void parse_checkpoint(Section& s, CheckpointSpec& c) {
  c.enabled = s.get_bool("enabled", true);
  c.every_steps = s.get_int("every_steps", 0, 0, INT64_MAX / 4);
  bool has_every_seconds = s.has("every_seconds");
  c.every_seconds = s.get_double("every_seconds", 600.0, 0.0, 1e9);
  c.every_epoch = s.get_bool("every_epoch", false);
  c.keep = int(s.get_int("keep", 3, 1, 1 << 20));
  c.interval_auto = s.get_string("interval", "", {"auto"}) == "auto";
  bool has_mtbi = s.has("mtbi");
  c.mtbi = s.get_double("mtbi", 0.0, 0.0, 1e12, /*min_open=*/true);
  c.dir = s.get_string("dir", "");
  if (is_system_directory(c.dir))
    s.fail_key("dir", "'" + c.dir + "' is a system directory; give the checkpoints a directory of their own, e.g. \"ckpt\"");
  s.check_unknown();
  if (c.interval_auto) {
    if (!has_mtbi) s.fail_key("interval", "interval = \"auto\" needs mtbi, the mean time between interruptions in seconds");
    if (has_every_seconds)
      s.fail_key("every_seconds", "set either every_seconds or interval = \"auto\" (both set the time trigger)");
    c.every_seconds = 0;  // the time trigger is computed
  } else if (has_mtbi) {
    s.fail_key("mtbi", "mtbi is used only with interval = \"auto\"");
  }
}

void parse_cost(Section& s, CostSpec& c, const std::string& file) {
  c.where = file + ": [cost]";
  c.instance = s.get_string("instance", "local");
  if (c.instance.empty()) s.fail_key("instance", "expected a catalog instance name");
  c.pricing = s.get_enum<cost::Pricing>("pricing", cost::Pricing::on_demand,
                                        {{"on-demand", cost::Pricing::on_demand}, {"spot", cost::Pricing::spot}});
  c.billing = s.get_enum<cost::Billing>("billing", cost::Billing::per_second,
                                        {{"second", cost::Billing::per_second}, {"hour", cost::Billing::per_hour}});
  c.user_catalog = s.get_string("catalog", "");
  if (s.has("carbon_g_per_kwh")) c.carbon_g_per_kwh = s.get_double("carbon_g_per_kwh", 0.0, 0.0, 1e5);
  if (s.has("usd_per_hour")) c.usd_per_hour = s.get_double("usd_per_hour", 0.0, 0.0, 1e6);
  if (s.has("tdp_w")) c.tdp_w = s.get_double("tdp_w", 0.0, 0.0, 1e7, /*min_open=*/true);
  s.check_unknown();
}

void parse_budget(Section& s, BudgetSpec& b) {
  // Each limit must be a finite number > 0 (a zero budget would stop before the first step).
  auto limit = [&](const char* key, std::optional<double>& out) {
    if (s.has(key)) out = s.get_double(key, 0.0, 0.0, 1e12, /*min_open=*/true);
  };
  limit("max_usd", b.max_usd);
  limit("max_kwh", b.max_kwh);
  limit("max_co2_kg", b.max_co2_kg);
  limit("max_hours", b.max_hours);
  s.check_unknown();
}

void parse_precision_section(Section& s, PrecisionSpec& p) {
  p.mode = s.get_enum<Precision>("mode", Precision::fp32,
                                 {{"fp32", Precision::fp32},
                                  {"bf16-mixed", Precision::bf16_mixed},
                                  {"fp16-mixed", Precision::fp16_mixed},
                                  {"int8-mixed", Precision::int8_mixed}});
  if (s.has("int8_exclude")) {
    if (p.mode != Precision::int8_mixed)
      s.fail_key("int8_exclude", "applies to mode = \"int8-mixed\" only, but mode is \"" +
                                     std::string(precision_name(p.mode)) + "\"; remove the key or set mode = \"int8-mixed\"");
    p.int8_exclude = s.get_string_list("int8_exclude");
  }
  // The loss scale multiplies an f32 loss, so it stays at most FLT_MAX (3.4e38).
  p.loss_scale_init = s.get_double("loss_scale_init", p.loss_scale_init, 0.0, 3.4e38, /*min_open=*/true);
  p.loss_scale_growth_interval = s.get_int("loss_scale_growth_interval", p.loss_scale_growth_interval, 1, 1000000000);
  p.loss_scale_growth_factor = s.get_double("loss_scale_growth_factor", p.loss_scale_growth_factor, 1.0, 1e6, true);
  p.loss_scale_backoff_factor = s.get_double("loss_scale_backoff_factor", p.loss_scale_backoff_factor, 0.0, 1.0, true);
  if (p.loss_scale_backoff_factor == 1.0)
    s.fail_key("loss_scale_backoff_factor", "expected a number in (0, 1): a backoff of 1 never lowers the scale");
  if (p.mode != Precision::fp16_mixed)
    for (const char* key : {"loss_scale_init", "loss_scale_growth_interval", "loss_scale_growth_factor",
                            "loss_scale_backoff_factor"})
      if (s.has(key))
        s.fail_key(key, "loss scaling applies to mode = \"fp16-mixed\" only, but mode is \"" +
                            std::string(precision_name(p.mode)) +
                            "\"; remove the key or set mode = \"fp16-mixed\"");
  s.check_unknown();
}

void parse_memory(Section& s, MemorySpec& m, ModelKind model_kind) {
  m.recompute = s.get_enum<RecomputeMode>(
      "recompute", RecomputeMode::none,
      {{"none", RecomputeMode::none}, {"blocks", RecomputeMode::blocks}, {"auto", RecomputeMode::automatic}});
  const bool has_limit = s.has("max_activation_bytes");
  m.max_activation_bytes = s.get_int("max_activation_bytes", 0, 1, INT64_MAX);
  s.check_unknown();
  if (m.recompute == RecomputeMode::automatic && !has_limit)
    s.fail_key("recompute", "recompute = \"auto\" needs max_activation_bytes, the activation memory to fit in bytes");
  if (m.recompute != RecomputeMode::automatic && has_limit)
    s.fail_key("max_activation_bytes", "max_activation_bytes is used only with recompute = \"auto\"");
  if (m.recompute != RecomputeMode::none && (model_kind == ModelKind::mlp || model_kind == ModelKind::custom))
    s.fail_key("recompute", "recompute = \"" + std::string(name_of(m.recompute)) +
                                "\" needs a model with blocks ([model] kind = \"cnn\" or \"gpt\"); an " +
                                std::string(name_of(model_kind)) + " has none");
}

void parse_lora(Section& s, LoraSpec& l, bool present) {
  l.enabled = present;
  l.rank = s.get_int("rank", l.rank, 1, 1 << 16);
  l.alpha = s.get_double("alpha", l.alpha, 0.0, 1e6, /*min_open=*/true);
  l.dropout = s.get_double("dropout", 0.0, 0.0, 0.95);
  const bool has_targets = s.has("targets");
  l.targets = s.get_string_list("targets");
  l.train = s.get_string_list("train");
  l.adapters = s.get_string("adapters", "");
  s.check_unknown();
  if (present && !has_targets)
    s.fail_key("targets", "missing; expected glob patterns of the Linear layers to adapt, e.g. "
                          "[\"blocks.*.attn.qkv\", \"blocks.*.mlp.fc\"] (`*` matches any run of characters)");
  if (present && l.targets.empty()) s.fail_key("targets", "expected at least one pattern");
}

// [prune] (train/compress/prune.h). structure: one name or a list of them.
void parse_prune(Section& s, PruneSpec& p, toml::table* table) {
  p.enabled = true;
  const std::vector<std::pair<std::string, PruneStructure>> structures = {
      {"weights", PruneStructure::weights}, {"neurons", PruneStructure::neurons}, {"channels", PruneStructure::channels},
      {"heads", PruneStructure::heads},     {"mlp", PruneStructure::mlp}};
  if (table && table->contains("structure") && !(*table)["structure"].is_string()) {
    p.structures.clear();
    for (const std::string& name : s.get_string_list("structure")) {
      auto it = std::find_if(structures.begin(), structures.end(), [&](const auto& c) { return c.first == name; });
      if (it == structures.end())
        s.fail_key("structure", "\"" + name + "\": expected weights, neurons, channels, heads or mlp");
      if (std::find(p.structures.begin(), p.structures.end(), it->second) == p.structures.end())
        p.structures.push_back(it->second);
    }
    if (p.structures.empty()) s.fail_key("structure", "expected at least one structure");
    if (p.structures.size() > 1 &&
        std::find(p.structures.begin(), p.structures.end(), PruneStructure::weights) != p.structures.end())
      s.fail_key("structure", "\"weights\" (unstructured) does not combine with structured pruning in one run");
  } else {
    p.structures = {s.get_enum("structure", PruneStructure::weights, structures)};
  }
  p.sparsity = s.get_double("sparsity", p.sparsity, -1e300, 1e300);
  if (!(p.sparsity >= 0 && p.sparsity < 1))
    s.fail_key("sparsity", "expected a fraction in [0, 1) (the share of weights or units removed), got " +
                               number_text(p.sparsity));
  p.initial_sparsity = s.get_double("initial_sparsity", 0.0, 0.0, 1.0);
  if (p.initial_sparsity > p.sparsity) s.fail_key("initial_sparsity", "expected at most sparsity");
  p.global = s.get_string("scope", "global", {"global", "layer"}) == "global";
  p.score = s.get_enum("score", PruneScore::magnitude, {{"magnitude", PruneScore::magnitude}, {"taylor", PruneScore::taylor}});
  p.gradual = s.get_string("schedule", "gradual", {"gradual", "oneshot"}) == "gradual";
  p.start_step = s.get_int("start_step", -1, 0, INT64_MAX / 4);
  p.end_step = s.get_int("end_step", -1, 0, INT64_MAX / 4);
  p.every = s.get_int("every", -1, 1, INT64_MAX / 4);
  p.layers = s.get_string_list("layers");
  p.exclude = s.get_string_list("exclude");
  p.compact = s.get_bool("compact", true);
  s.check_unknown();
  if (p.start_step >= 0 && p.end_step >= 0 && p.end_step < p.start_step)
    s.fail_key("end_step", "expected end_step >= start_step (" + std::to_string(p.start_step) + ")");
  if (!p.gradual && p.end_step >= 0) s.fail_key("end_step", "is for schedule = \"gradual\" (oneshot prunes at start_step)");
  if (p.score == PruneScore::taylor && p.start_step == 0)
    s.fail_key("start_step", "score = \"taylor\" needs gradients of at least one step before pruning: start_step >= 1");
}

void parse_quantize(Section& s, QuantizeSpec& q) {
  q.aware = s.get_bool("aware", false);
  q.start_step = s.get_int("start_step", 0, 0, int64_t(1) << 40);
  q.observer = s.get_string("observer", q.observer, {"minmax", "ema"});
  q.ema_decay = s.get_double("ema_decay", q.ema_decay, 0.0, 1.0, /*min_open=*/true);
  q.activations = s.get_string("activations", "", {"static", "dynamic"});
}

void parse_init(Section& s, InitSpec& init) {
  init.from = s.get_string("from", "");
  init.map = s.get_string_table("map");
  init.skip = s.get_string_list("skip");
  s.check_unknown();
  if (init.from.empty())
    s.fail_key("from", "missing; expected a safetensors file or a run id of the run store to start from");
  for (const auto& [from, to] : init.map)
    if (from.empty() || to.empty()) s.fail_key("map", "expected non-empty prefixes, e.g. { \"transformer.h\" = \"blocks\" }");
}

void parse_freeze(Section& s, FreezeSpec& freeze, const std::string& file) {
  const bool has_params = s.has("params");
  freeze.params = s.get_string_list("params");
  const std::string example = "[{ step = 200, params = [\"blocks.0.*\"] }]";
  const std::vector<toml::table*> entries = s.get_table_array("unfreeze", example);
  for (size_t i = 0; i < entries.size(); ++i) {
    Section e(file, "freeze.unfreeze #" + std::to_string(i + 1), entries[i], nullptr);
    UnfreezeSpec u;
    const bool has_step = e.has("step"), has_epoch = e.has("epoch"), has_entry_params = e.has("params");
    u.step = e.get_int("step", -1, 1, INT64_MAX / 4);
    u.epoch = e.get_int("epoch", -1, 1, 1 << 20);
    u.params = e.get_string_list("params");
    e.check_unknown();
    if (has_step == has_epoch)
      e.fail_key(has_step ? "epoch" : "step", "set either step (optimizer steps done) or epoch (epochs done), not " +
                                                 std::string(has_step ? "both" : "neither"));
    if (!has_entry_params || u.params.empty())
      e.fail_key("params", "missing; expected glob patterns of the frozen parameters to unfreeze");
    freeze.unfreeze.push_back(std::move(u));
  }
  s.check_unknown();
  if (!has_params || freeze.params.empty())
    s.fail_key("params", "missing; expected glob patterns of the parameters to freeze, e.g. [\"blocks.0.*\"]");
}

void parse_distill(Section& s, DistillSpec& d, const DataSpec& data) {
  d.teacher = s.get_string("teacher", "");
  if (d.teacher.empty()) s.fail_key("teacher", "missing or empty; expected the teacher's job file (its [model] and [data])");
  d.weights = s.get_string("weights", "");
  if (d.weights.empty())
    s.fail_key("weights", "missing or empty; expected the teacher's weights: a safetensors file, a run directory or "
                          "a run id from the run store");
  d.alpha = s.get_double("alpha", 0.5, 0.0, 1.0, /*min_open=*/true);
  d.temperature = s.get_double("temperature", 4.0, 0.0, 1000.0, /*min_open=*/true);
  d.cache = s.get_bool("cache", false);
  s.check_unknown();
  // The cache holds one row of teacher logits per training sample: only valid when a sample's
  // input is the same every time the loader yields it.
  if (d.cache && data.kind == DataKind::text)
    s.fail_key("cache", "cache = true is for classification data: a text window's teacher logits depend on its "
                        "random start, so there is no per-sample row to cache; remove cache or set it to false");
  if (d.cache && (data.crop_padding > 0 || data.flip))
    s.fail_key("cache", std::string("cache = true cannot be used with data augmentation ([data] ") +
                            (data.crop_padding > 0 ? "crop_padding" : "flip") +
                            "): augmented inputs change each epoch, so cached teacher logits would not match them; "
                            "set cache = false or turn augmentation off");
}

void flatten_keys(const toml::table& table, const std::string& prefix, std::map<std::string, std::string>& out) {
  for (const auto& [key, node] : table) {
    std::string name = prefix + std::string(key.str());
    if (const toml::table* sub = node.as_table()) flatten_keys(*sub, name + ".", out);
    else out[name] = node_text(node);
  }
}

}  // namespace

const char* name_of(DataKind kind) {
  switch (kind) {
    case DataKind::idx: return "idx";
    case DataKind::csv: return "csv";
    case DataKind::npy: return "npy";
    case DataKind::text: return "text";
    case DataKind::packed: return "packed";
  }
  return "?";
}

const char* name_of(ModelKind kind) {
  switch (kind) {
    case ModelKind::mlp: return "mlp";
    case ModelKind::cnn: return "cnn";
    case ModelKind::gpt: return "gpt";
    case ModelKind::custom: return "custom";
  }
  return "?";
}

const char* name_of(OptimKind kind) { return kind == OptimKind::sgd ? "sgd" : "adamw"; }

const char* name_of(RecomputeMode mode) {
  switch (mode) {
    case RecomputeMode::none: return "none";
    case RecomputeMode::blocks: return "blocks";
    case RecomputeMode::automatic: return "auto";
  }
  return "?";
}

const char* name_of(EarlyStopMetric metric) {
  switch (metric) {
    case EarlyStopMetric::val_loss: return "val_loss";
    case EarlyStopMetric::val_accuracy: return "val_accuracy";
    case EarlyStopMetric::val_bits_per_char: return "val_bits_per_char";
  }
  return "?";
}

const char* name_of(MetricMode mode) { return mode == MetricMode::min ? "min" : "max"; }
const char* name_of(DataPruningKeep keep) {
  switch (keep) {
    case DataPruningKeep::hardest: return "hardest";
    case DataPruningKeep::easiest: return "easiest";
    case DataPruningKeep::balanced: return "balanced";
    case DataPruningKeep::random: return "random";
  }
  return "?";
}

std::map<std::string, std::string> job_keys(const std::string& resolved_toml, const std::string& what) {
  toml::table root;
  try {
    root = toml::parse(resolved_toml);
  } catch (const toml::parse_error& e) {
    throw InputError(what + ": the stored job is not valid TOML: " + std::string(e.description()));
  }
  std::map<std::string, std::string> out;
  flatten_keys(root, "", out);
  return out;
}

namespace {

// Reads `path`, or with `text` that content (`path` then only names it in messages).
JobSpec job_from(const std::string& path, const std::vector<std::string>& overrides,
                 std::optional<std::string_view> text) {
  if (!text && !std::ifstream(path)) throw InputError(path + ": cannot open job file");
  toml::table root;
  try {
    root = text ? toml::parse(*text, path) : toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    throw InputError(path + ":" + std::to_string(e.source().begin.line) + ":" +
                     std::to_string(e.source().begin.column) + ": invalid TOML: " + std::string(e.description()));
  }
  std::set<std::string> overridden;
  for (const std::string& o : overrides) {
    const std::string key = apply_override(root, o);
    overridden.insert(key);
    // The run's length given on the command line replaces the job file's, in either unit; both
    // given with --set still conflict.
    for (const auto& [given, other] : {std::pair{"train.steps", "epochs"}, std::pair{"train.epochs", "steps"}})
      if (key == given && !overridden.count(std::string("train.") + other))
        if (toml::table* train = root["train"].as_table()) train->erase(other);
  }

  JobSpec job;
  job.path = path;
  const std::vector<std::string> sections = {"run",    "data",   "model",     "optim",  "schedule", "train", "checkpoint",
                                            "cost",   "budget", "precision", "memory", "init",     "freeze", "lora", "distill",
                                            "prune",  "quantize", "alerts", "data_pruning",
                                            // issue 21 part 1 (train/sampling/)
                                            "seq_warmup", "curriculum", "selective_backprop", "importance_sampling",
                                            // issue 19 (train/parallel/)
                                            "dist", "federated"};
  for (auto& [key, node] : root) {
    std::string k(key.str());
    if (std::find(sections.begin(), sections.end(), k) == sections.end()) {
      // A section made by --set has no line in the file: name the override instead.
      std::string where = path + ":" + std::to_string(node.source().begin.line);
      for (const std::string& key : overridden)
        if (node.source().begin.line == 0 && key.rfind(k + ".", 0) == 0) where = path + ": --set " + key;
      throw InputError(where + ": unknown section [" + k + "]" + did_you_mean(k, sections) + " (allowed: " +
                       join(sections) + ")");
    }
    if (!node.is_table()) throw InputError(path + ": [" + k + "] must be a table");
  }
  auto section = [&](const std::string& name) { return Section(path, name, root[name].as_table(), &overridden); };
  for (const char* required : {"data", "model", "train"})
    if (!root.contains(required)) throw InputError(path + ": missing section [" + required + "]");

  Section run = section("run"), data = section("data"), model = section("model"), optim = section("optim"),
          schedule = section("schedule"), train = section("train"), checkpoint = section("checkpoint"),
          cost = section("cost"), budget = section("budget"), precision = section("precision"),
          memory = section("memory"), init = section("init"), freeze = section("freeze"), lora = section("lora"),
          prune = section("prune"), quantize = section("quantize");
  parse_run(run, job.run);
  parse_data(data, job.data);
  parse_model(model, job.model);
  parse_optim(optim, job.optim);
  parse_schedule(schedule, job.schedule);
  parse_train(train, job.train, path, root.contains("federated"));
  parse_checkpoint(checkpoint, job.checkpoint);
  parse_cost(cost, job.cost, path);
  parse_budget(budget, job.budget);
  parse_precision_section(precision, job.precision);
  parse_memory(memory, job.memory, job.model.kind);
  if (toml::table* d = root["distill"].as_table()) {
    Section distill(path, "distill", d, &overridden);
    job.distill.emplace();
    parse_distill(distill, *job.distill, job.data);
  }
  if (root.contains("init")) parse_init(init, job.init);
  if (root.contains("freeze")) parse_freeze(freeze, job.freeze, path);
  parse_lora(lora, job.lora, root.contains("lora"));
  if (root.contains("prune")) parse_prune(prune, job.prune, root["prune"].as_table());
  if (job.prune.enabled && job.lora.enabled)
    throw InputError(path + ": [prune] does not combine with [lora] (the adapters would undo the masks): train with "
                     "[lora], then prune its merged model with frugal prune");
  parse_quantize(quantize, job.quantize);
  if (job.quantize.aware && job.lora.enabled)
    throw InputError(path + ": [quantize] aware = true with [lora]: fake quantization replaces the Linear layers' "
                     "forward and would leave the adapters out; train the adapters, merge them, then quantize");
  if (root.contains("alerts") && !root["alerts"].is_table()) throw InputError(path + ": [alerts] must be a table");
  job.alerts = parse_alerts(root["alerts"].as_table(), path, &overridden);
  parse_data_efficiency(root, job, path, overridden);  // [data_pruning], [curriculum], ... (job_sampling.h)
  parse_dist_sections(root, job, path, overridden);    // [dist], [federated] (job_dist.h)
  for (Section* s : {&run, &data, &model, &optim, &schedule, &train, &checkpoint, &cost, &budget, &precision, &memory,
                     &init, &freeze, &lora, &prune, &quantize})
    s->check_unknown();
  if (job.model.kind == ModelKind::gpt && job.data.kind != DataKind::text)
    throw InputError(path + ": [model] kind = \"gpt\" needs [data] kind = \"text\"");
  if (job.model.kind == ModelKind::custom && job.data.kind == DataKind::text)
    throw InputError(path + ": [model] kind = \"custom\" trains on classification data (idx, csv, npy); "
                     "a text model is kind = \"gpt\"");
  if (job.model.kind != ModelKind::gpt && job.data.kind == DataKind::text)
    throw InputError(path + ": [data] kind = \"text\" needs [model] kind = \"gpt\"");
  if (job.train.early_stopping.enabled && job.train.early_stopping.metric == EarlyStopMetric::val_bits_per_char &&
      job.data.kind != DataKind::text)
    throw InputError(path + ": [train.early_stopping] metric val_bits_per_char is for text models");
  // A text model's evaluation has no accuracy: the metric would never improve after the first one.
  if (job.train.early_stopping.enabled && job.train.early_stopping.metric == EarlyStopMetric::val_accuracy &&
      job.data.kind == DataKind::text)
    throw InputError(path + ": [train.early_stopping] metric val_accuracy is for classification models "
                     "(text models have val_loss and val_bits_per_char)");

  std::map<std::string, std::string> written;
  flatten_keys(root, "", written);
  resolve_job_paths(job, written, overridden);

  std::ostringstream resolved;
  resolved << root << "\n";
  job.resolved_toml = resolved.str();
  job.hash = hex_hash(job.resolved_toml);
  return job;
}

}  // namespace

JobSpec load_job(const std::string& path, const std::vector<std::string>& overrides) {
  return job_from(path, overrides, std::nullopt);
}

JobSpec parse_job(std::string_view text, const std::string& path, const std::vector<std::string>& overrides) {
  return job_from(path, overrides, text);
}

}  // namespace frugal::train
