// The run summary to and from its JSON form (see summary.h). The JSON is the one documented in the
// README: keys sorted, optional parts absent (not null) unless the README says null.
#include "frugal/train/summary.h"

#include "frugal/base/error.h"
#include "frugal/tensor/tensor.h"

namespace frugal::train {

using json = nlohmann::json;

MemorySummary measure_memory() {
  auto peak = [](MemoryCategory category) { return Storage::peak_bytes(category); };
  MemorySummary m;
  m.weights_bytes = peak(MemoryCategory::weights);
  m.gradients_bytes = peak(MemoryCategory::gradients);
  m.optimizer_state_bytes = peak(MemoryCategory::optimizer_state);
  m.activations_peak_bytes = peak(MemoryCategory::activations);
  m.workspace_peak_bytes = peak(MemoryCategory::workspace);
  m.other_peak_bytes = peak(MemoryCategory::other);
  m.allocator_cached_bytes = Storage::peak_cached_bytes();
  m.peak_total_bytes = Storage::peak_bytes();
  return m;
}

json figure_json(const cost::Figure& f) { return {{"value", f.value}, {"source", f.source}}; }

namespace {

template <class T>
void put_optional(json& out, const char* key, const std::optional<T>& value) {
  if (value) out[key] = *value;
}

json cost_json(const cost::CostSummary& c) {
  json out = {{"usd", figure_json(c.usd)},
              {"kwh", figure_json(c.kwh)},
              {"co2_kg", figure_json(c.co2_kg)},
              {"hours", figure_json(c.hours)},
              {"instance", c.instance},
              {"pricing", c.pricing},
              {"billing", c.billing},
              {"usd_per_hour", c.usd_per_hour},
              {"carbon_g_per_kwh", c.carbon_g_per_kwh},
              {"energy_method", c.energy_method},
              {"catalog", c.catalog}};
  if (!c.user_catalog.empty()) out["user_catalog"] = c.user_catalog;
  return out;
}

json projection_json(const cost::Projection& p) {
  return {{"instance", p.instance},
          {"precision", p.precision},
          {"efficiency", p.efficiency},
          {"hours", figure_json(p.hours)},
          {"usd", figure_json(p.usd)},
          {"kwh", figure_json(p.kwh)},
          {"co2_kg", figure_json(p.co2_kg)},
          {"method", p.method}};
}

// Reading back: every access names the field that is missing or has the wrong type.
class Reader {
 public:
  explicit Reader(const std::string& where) : where_(where) {}

  const json& at(const json& object, const std::string& key) const {
    if (!object.is_object() || !object.contains(key)) fail(key, "is missing");
    return object.at(key);
  }
  template <class T>
  T get(const json& object, const std::string& key) const {
    return as<T>(at(object, key), key);
  }
  template <class T>
  std::optional<T> optional(const json& object, const std::string& key) const {
    if (!object.is_object() || !object.contains(key) || object.at(key).is_null()) return std::nullopt;
    return as<T>(object.at(key), key);
  }
  // A number that JSON writes as null when it is NaN.
  double number_or_nan(const json& object, const std::string& key) const {
    const json& v = at(object, key);
    return v.is_null() ? NAN : as<double>(v, key);
  }
  cost::Figure figure(const json& object, const std::string& key) const {
    const json& f = at(object, key);
    return {get<double>(f, "value"), get<std::string>(f, "source")};
  }
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw InputError(where_ + ": run summary field '" + key + "' " + what);
  }

 private:
  template <class T>
  T as(const json& v, const std::string& key) const {
    if constexpr (std::is_same_v<T, std::string>) {
      if (!v.is_string()) fail(key, "is not a string");
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) fail(key, "is not true or false");
    } else if constexpr (std::is_integral_v<T>) {
      if (!v.is_number_integer()) fail(key, "is not an integer");
    } else {
      if (!v.is_number()) fail(key, "is not a number");
    }
    return v.get<T>();
  }
  std::string where_;
};

}  // namespace

std::string InitVocab::describe() const {
  return "vocabulary: " + std::to_string(shared) + " characters shared, " + std::to_string(added) + " new, " +
         std::to_string(dropped) + " dropped";
}

json RunSummary::to_json() const {
  json m = {{"train_loss", metrics.train_loss}};
  put_optional(m, "val_loss", metrics.val_loss);
  put_optional(m, "val_accuracy", metrics.val_accuracy);
  put_optional(m, "val_bits_per_char", metrics.val_bits_per_char);
  put_optional(m, "test_loss", metrics.test_loss);
  put_optional(m, "test_accuracy", metrics.test_accuracy);
  put_optional(m, "test_bits_per_char", metrics.test_bits_per_char);
  json out = {{"run_id", run_id},
              {"status", status},
              {"stop_reason", stop_reason},
              {"epochs", epochs},
              {"steps", steps},
              {"samples_seen", samples_seen},
              {"metrics", m},
              {"wall_s", cost.wall_s},
              {"train_compute_s", train_compute_s},
              {"data_wait_s", data_wait_s},
              {"peak_rss_bytes", peak_rss_bytes},
              {"memory",
               {{"weights_bytes", memory.weights_bytes},
                {"gradients_bytes", memory.gradients_bytes},
                {"optimizer_state_bytes", memory.optimizer_state_bytes},
                {"activations_peak_bytes", memory.activations_peak_bytes},
                {"workspace_peak_bytes", memory.workspace_peak_bytes},
                {"other_peak_bytes", memory.other_peak_bytes},
                {"allocator_cached_bytes", memory.allocator_cached_bytes},
                {"peak_total_bytes", memory.peak_total_bytes}}},
              {"params", params},
              {"trainable_params", trainable_params},
              {"threads", threads},
              {"out_dir", out_dir},
              {"job_hash", job_hash}};
  const CheckpointSummary& c = checkpoint;
  out["resumed_from"] = c.resumed_from ? json(*c.resumed_from) : json(nullptr);
  out["interruptions"] = c.interruptions;
  out["checkpoints"] = c.checkpoints;
  out["checkpoint_s"] = c.checkpoint_s;
  out["lost_s"] = c.lost_s;
  out["checkpoint_dir"] = c.checkpoint_dir;
  put_optional(out, "checkpoint_bytes", c.checkpoint_bytes);
  put_optional(out, "checkpoint_write_s", c.checkpoint_write_s);
  put_optional(out, "checkpoint_interval_s", c.checkpoint_interval_s);
  put_optional(out, "checkpoint_mtbi_s", c.checkpoint_mtbi_s);
  put_optional(out, "expected_lost_s_per_interruption", c.expected_lost_s_per_interruption);
  out["recompute"] = {{"mode", recompute.mode},
                      {"blocks", recompute.blocks},
                      {"estimated_activation_bytes", recompute.estimated_activation_bytes}};
  if (loss_scaling)
    out["loss_scaling"] = {{"final_scale", loss_scaling->final_scale},
                           {"skipped_steps", loss_scaling->skipped_steps},
                           {"growth_interval", loss_scaling->growth_interval},
                           {"init_scale", loss_scaling->init_scale}};
  if (lora)
    out["lora"] = {{"rank", lora->rank},       {"alpha", lora->alpha},     {"dropout", lora->dropout},
                   {"targets", lora->targets}, {"modules", lora->modules}, {"adapter_params", lora->adapter_params}};
  put_optional(out, "signal", signal);
  put_optional(out, "best_step", best_step);

  out["cost"] = cost_json(cost);
  json phases = json::object();
  for (int i = 0; i < cost::phase_count; ++i) phases[cost::phase_name(cost::Phase(i))] = cost.phase_s[size_t(i)];
  out["phases"] = phases;
  out["cpu_s"] = cost.cpu_s;
  out["cpu_utilization"] = cost.cpu_utilization;
  out["flops"] = cost.flops ? json(*cost.flops) : json(nullptr);
  out["flops_forward"] = cost.flops_forward ? json(*cost.flops_forward) : json(nullptr);
  out["flops_backward"] = cost.flops_backward ? json(*cost.flops_backward) : json(nullptr);
  out["flops_source"] = cost.flops ? json(cost.flops_source) : json(nullptr);
  out["flops_per_s"] = cost.flops_per_s ? json(*cost.flops_per_s) : json(nullptr);
  out["flops_eval"] = cost.flops_eval ? json(*cost.flops_eval) : json(nullptr);
  out["flops_per_sample"] = cost.flops_per_sample ? json(*cost.flops_per_sample) : json(nullptr);
  json projections = json::array();
  for (const cost::Projection& p : cost.projections) projections.push_back(projection_json(p));
  out["projections"] = projections;
  if (cost.mfu) {
    out["mfu"] = *cost.mfu;
    out["mfu_peak_flops"] = {{"value", cost.mfu_peak_flops.value},
                             {"source", cost.mfu_peak_flops.source},
                             {"precision", cost.peak_precision}};
  } else {
    out["mfu"] = nullptr;
    out["mfu_note"] = cost.mfu_note;
  }
  if (budget) {
    json b = json::object();
    put_optional(b, "max_usd", budget->max_usd);
    put_optional(b, "max_kwh", budget->max_kwh);
    put_optional(b, "max_co2_kg", budget->max_co2_kg);
    put_optional(b, "max_hours", budget->max_hours);
    if (!budget->exceeded.empty()) b["exceeded"] = budget->exceeded;
    out["budget"] = b;
  }
  if (init) {
    out["init"] = {{"from", init->from}, {"loaded", init->loaded}, {"skipped", init->skipped}, {"unused", init->unused}};
    put_optional(out["init"], "run_id", init->run_id);
    if (init->vocab)
      out["init"]["vocab"] = {{"shared", init->vocab->shared}, {"new", init->vocab->added}, {"dropped", init->vocab->dropped}};
  }
  if (distill) {
    const DistillSummary& d = *distill;
    json j = {{"teacher", d.teacher},
              {"weights", d.weights},
              {"teacher_params", d.teacher_params},
              {"alpha", d.alpha},
              {"temperature", d.temperature},
              {"teacher_forward_s", d.teacher_forward_s},
              {"teacher_forward_batches", d.teacher_forward_batches},
              {"cache", d.cache}};
    if (d.cache) {
      j["cache_path"] = d.cache_path;
      j["cache_status"] = d.cache_status;
      j["cache_reused"] = d.cache_status == "reused";
      j["cache_bytes"] = d.cache_bytes;
      j["cache_build_s"] = d.cache_build_s;
      j["cache_build_flops"] = d.cache_build_flops ? json(*d.cache_build_flops) : json(nullptr);
    }
    out["distill"] = j;
  }
  if (!techniques.empty()) out["techniques"] = json(techniques);
  return out;
}

// The summary's `init` object ([init]).
static InitSummary read_init(Reader& r, const json& i) {
  InitSummary init{r.get<std::string>(i, "from"), r.optional<std::string>(i, "run_id"), r.get<int64_t>(i, "loaded"),
                   {}, r.get<int64_t>(i, "unused"), {}};
  const json& skipped = r.at(i, "skipped");
  if (!skipped.is_array()) r.fail("skipped", "is not an array");
  for (const json& name : skipped) {
    if (!name.is_string()) r.fail("skipped", "holds a value that is not a string");
    init.skipped.push_back(name.get<std::string>());
  }
  if (i.contains("vocab")) {
    const json& v = i.at("vocab");
    init.vocab = InitVocab{r.get<int64_t>(v, "shared"), r.get<int64_t>(v, "new"), r.get<int64_t>(v, "dropped")};
  }
  return init;
}

// The summary's `distill` object ([distill]).
static DistillSummary read_distill(Reader& r, const json& j) {
  DistillSummary d;
  d.teacher = r.get<std::string>(j, "teacher");
  d.weights = r.get<std::string>(j, "weights");
  d.teacher_params = r.get<int64_t>(j, "teacher_params");
  d.alpha = r.get<double>(j, "alpha");
  d.temperature = r.get<double>(j, "temperature");
  d.teacher_forward_s = r.get<double>(j, "teacher_forward_s");
  d.teacher_forward_batches = r.get<int64_t>(j, "teacher_forward_batches");
  d.cache = r.get<bool>(j, "cache");
  if (d.cache) {
    d.cache_path = r.get<std::string>(j, "cache_path");
    d.cache_status = r.get<std::string>(j, "cache_status");
    d.cache_bytes = r.get<int64_t>(j, "cache_bytes");
    d.cache_build_s = r.get<double>(j, "cache_build_s");
    d.cache_build_flops = r.optional<double>(j, "cache_build_flops");
  }
  return d;
}

RunSummary RunSummary::from_json(const json& in, const std::string& where) {
  Reader r(where);
  if (!in.is_object()) throw InputError(where + ": the run summary is not a JSON object");
  RunSummary s;
  s.run_id = r.get<std::string>(in, "run_id");
  s.status = r.get<std::string>(in, "status");
  s.stop_reason = r.get<std::string>(in, "stop_reason");
  s.epochs = r.get<double>(in, "epochs");
  s.steps = r.get<int64_t>(in, "steps");
  s.samples_seen = r.get<int64_t>(in, "samples_seen");
  const json& m = r.at(in, "metrics");
  s.metrics.train_loss = r.number_or_nan(m, "train_loss");
  s.metrics.val_loss = r.optional<double>(m, "val_loss");
  s.metrics.val_accuracy = r.optional<double>(m, "val_accuracy");
  s.metrics.val_bits_per_char = r.optional<double>(m, "val_bits_per_char");
  s.metrics.test_loss = r.optional<double>(m, "test_loss");
  s.metrics.test_accuracy = r.optional<double>(m, "test_accuracy");
  s.metrics.test_bits_per_char = r.optional<double>(m, "test_bits_per_char");
  s.train_compute_s = r.get<double>(in, "train_compute_s");
  s.data_wait_s = r.get<double>(in, "data_wait_s");
  s.peak_rss_bytes = r.get<int64_t>(in, "peak_rss_bytes");
  const json& mem = r.at(in, "memory");
  s.memory.weights_bytes = r.get<int64_t>(mem, "weights_bytes");
  s.memory.gradients_bytes = r.get<int64_t>(mem, "gradients_bytes");
  s.memory.optimizer_state_bytes = r.get<int64_t>(mem, "optimizer_state_bytes");
  s.memory.activations_peak_bytes = r.get<int64_t>(mem, "activations_peak_bytes");
  s.memory.workspace_peak_bytes = r.get<int64_t>(mem, "workspace_peak_bytes");
  s.memory.other_peak_bytes = r.get<int64_t>(mem, "other_peak_bytes");
  s.memory.allocator_cached_bytes = r.get<int64_t>(mem, "allocator_cached_bytes");
  s.memory.peak_total_bytes = r.get<int64_t>(mem, "peak_total_bytes");
  s.params = r.get<int64_t>(in, "params");
  s.trainable_params = r.optional<int64_t>(in, "trainable_params").value_or(s.params);  // older summaries: all
  s.threads = r.get<int>(in, "threads");
  s.out_dir = r.get<std::string>(in, "out_dir");
  s.job_hash = r.get<std::string>(in, "job_hash");
  CheckpointSummary& c = s.checkpoint;
  c.resumed_from = r.optional<std::string>(in, "resumed_from");
  c.interruptions = r.get<int64_t>(in, "interruptions");
  c.checkpoints = r.get<int64_t>(in, "checkpoints");
  c.checkpoint_s = r.get<double>(in, "checkpoint_s");
  c.lost_s = r.get<double>(in, "lost_s");
  c.checkpoint_dir = r.get<std::string>(in, "checkpoint_dir");
  c.checkpoint_bytes = r.optional<double>(in, "checkpoint_bytes");
  c.checkpoint_write_s = r.optional<double>(in, "checkpoint_write_s");
  c.checkpoint_interval_s = r.optional<double>(in, "checkpoint_interval_s");
  c.checkpoint_mtbi_s = r.optional<double>(in, "checkpoint_mtbi_s");
  c.expected_lost_s_per_interruption = r.optional<double>(in, "expected_lost_s_per_interruption");
  const json& rc = r.at(in, "recompute");
  s.recompute.mode = r.get<std::string>(rc, "mode");
  s.recompute.blocks = r.at(rc, "blocks").get<std::vector<int64_t>>();
  s.recompute.estimated_activation_bytes = r.get<int64_t>(rc, "estimated_activation_bytes");
  if (in.contains("loss_scaling")) {
    const json& l = in.at("loss_scaling");
    s.loss_scaling = LossScalingSummary{r.get<double>(l, "final_scale"), r.get<double>(l, "init_scale"),
                                        r.get<int64_t>(l, "skipped_steps"), r.get<int64_t>(l, "growth_interval")};
  }
  if (in.contains("lora")) {
    const json& l = in.at("lora");
    s.lora = LoraSummary{r.get<int64_t>(l, "rank"),   r.get<double>(l, "alpha"),
                         r.get<double>(l, "dropout"), r.at(l, "targets").get<std::vector<std::string>>(),
                         r.get<int64_t>(l, "modules"), r.get<int64_t>(l, "adapter_params")};
  }
  s.signal = r.optional<std::string>(in, "signal");
  s.best_step = r.optional<int64_t>(in, "best_step");

  cost::CostSummary& k = s.cost;
  const json& cj = r.at(in, "cost");
  k.usd = r.figure(cj, "usd");
  k.kwh = r.figure(cj, "kwh");
  k.co2_kg = r.figure(cj, "co2_kg");
  k.hours = r.figure(cj, "hours");
  k.instance = r.get<std::string>(cj, "instance");
  k.pricing = r.get<std::string>(cj, "pricing");
  k.billing = r.get<std::string>(cj, "billing");
  k.usd_per_hour = r.get<double>(cj, "usd_per_hour");
  k.carbon_g_per_kwh = r.get<double>(cj, "carbon_g_per_kwh");
  k.energy_method = r.get<std::string>(cj, "energy_method");
  k.catalog = r.get<std::string>(cj, "catalog");
  k.user_catalog = r.optional<std::string>(cj, "user_catalog").value_or("");
  const json& phases = r.at(in, "phases");
  for (int i = 0; i < cost::phase_count; ++i)
    k.phase_s[size_t(i)] = r.get<double>(phases, cost::phase_name(cost::Phase(i)));
  k.wall_s = r.get<double>(in, "wall_s");
  k.cpu_s = r.get<double>(in, "cpu_s");
  k.cpu_utilization = r.get<double>(in, "cpu_utilization");
  k.flops = r.optional<double>(in, "flops");
  // Summaries of versions before the FLOP counter have flops (3 x flops_per_sample x samples) only.
  k.flops_forward = r.optional<double>(in, "flops_forward");
  k.flops_backward = r.optional<double>(in, "flops_backward");
  k.flops_source = r.optional<std::string>(in, "flops_source").value_or(k.flops ? cost::source_estimated : "");
  k.flops_per_s = r.optional<double>(in, "flops_per_s");
  k.flops_eval = r.optional<double>(in, "flops_eval");
  k.flops_per_sample = r.optional<int64_t>(in, "flops_per_sample");
  for (const json& p : r.at(in, "projections")) {
    cost::Projection q;
    q.instance = r.get<std::string>(p, "instance");
    q.precision = r.get<std::string>(p, "precision");
    q.efficiency = r.get<double>(p, "efficiency");
    q.hours = r.figure(p, "hours");
    q.usd = r.figure(p, "usd");
    q.kwh = r.figure(p, "kwh");
    q.co2_kg = r.figure(p, "co2_kg");
    q.method = r.get<std::string>(p, "method");
    k.projections.push_back(q);
  }
  k.mfu = r.optional<double>(in, "mfu");
  if (k.mfu) {
    const json& peak = r.at(in, "mfu_peak_flops");
    k.mfu_peak_flops = {r.get<double>(peak, "value"), r.get<std::string>(peak, "source")};
    k.peak_precision = r.get<std::string>(peak, "precision");
  } else {
    k.mfu_note = r.optional<std::string>(in, "mfu_note").value_or("");
  }
  if (in.contains("budget")) {
    const json& b = in.at("budget");
    s.budget = BudgetSummary{r.optional<double>(b, "max_usd"), r.optional<double>(b, "max_kwh"),
                             r.optional<double>(b, "max_co2_kg"), r.optional<double>(b, "max_hours"),
                             r.optional<std::string>(b, "exceeded").value_or("")};
  }
  if (in.contains("init")) s.init = read_init(r, in.at("init"));
  if (in.contains("distill")) s.distill = read_distill(r, in.at("distill"));
  if (in.contains("techniques") && in.at("techniques").is_object())
    for (const auto& [name, value] : in.at("techniques").items()) s.techniques[name] = value;
  return s;
}

}  // namespace frugal::train
