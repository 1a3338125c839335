// LoRA for a job: which Linear layers get adapters, what stays trainable, adapter files and the
// merged model (see lora.h).
#include "frugal/train/compress/lora.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "frugal/base/error.h"
#include "frugal/base/format.h"
#include "frugal/base/glob.h"
#include "frugal/base/rng.h"
#include "frugal/base/value_text.h"
#include "frugal/io/checkpoint.h"
#include "frugal/nn/layers.h"

namespace frugal::train {

namespace {

bool ends_with(const std::string& text, const std::string& tail) {
  return text.size() >= tail.size() && text.compare(text.size() - tail.size(), tail.size(), tail) == 0;
}

std::string join_names(const std::vector<std::string>& names, size_t most) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < most; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > most) out += ", ... (" + std::to_string(names.size()) + " in all)";
  return out;
}

std::string shape_text(const Shape& shape) { return shape_str(shape); }

// A LoRA alpha written as text (metadata, a job's TOML value): a number > 0, else InputError.
double parse_alpha(const std::string& text, const std::string& what) {
  double alpha = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), alpha);
  if (error != std::errc() || end != text.data() + text.size() || !(alpha > 0))
    throw InputError(what + " = '" + text + "': expected a number > 0");
  return alpha;
}

// The file's adapters against the model's: every one present with the model's shape (a rank
// other than the job's names the tensor), and none the model lacks.
void check_adapters(const nn::NamedTensors& own, const std::map<std::string, Tensor>& given, const std::string& path,
                    const LoraSpec& spec) {
  std::set<std::string> known;
  for (const auto& [name, t] : own) {
    known.insert(name);
    auto it = given.find(name);
    if (it == given.end())
      throw InputError(path + ": no tensor '" + name + "' (the adapter of a layer [lora] targets; expected shape " +
                       shape_text(t.shape()) + ")");
    if (it->second.shape() != t.shape())
      throw InputError(path + ": tensor '" + name + "' has shape " + shape_text(it->second.shape()) + ", but [lora] rank = " +
                       std::to_string(spec.rank) + " on this layer expects " + shape_text(t.shape()) +
                       " (adapters of another rank, or of another model)");
  }
  for (const auto& [name, t] : given)
    if (is_adapter_name(name) && !known.count(name))
      throw InputError(path + ": adapter '" + name + "' belongs to no layer that [lora] targets adapt (adapted: " +
                       join_names(std::vector<std::string>(known.begin(), known.end()), 6) + ")");
}

}  // namespace

bool is_adapter_name(const std::string& name) {
  return name == "lora_a" || name == "lora_b" || ends_with(name, ".lora_a") || ends_with(name, ".lora_b");
}

LoraReport add_adapters(nn::Module& model, const LoraSpec& spec, uint64_t seed, const std::string& where) {
  std::vector<std::pair<std::string, nn::Linear*>> linears;
  int64_t next_dropout = 0;  // adapters' dropout masks are keyed after the model's Dropout layers
  for (auto& [name, m] : model.named_modules()) {
    if (auto* linear = dynamic_cast<nn::Linear*>(m)) linears.emplace_back(name, linear);
    if (auto* d = dynamic_cast<nn::Dropout*>(m)) next_dropout = std::max(next_dropout, d->index() + 1);
  }
  std::vector<std::string> linear_names;
  for (const auto& [name, linear] : linears) linear_names.push_back(name);
  for (const std::string& pattern : spec.targets) {
    const bool matched = std::any_of(linear_names.begin(), linear_names.end(),
                                     [&](const std::string& name) { return glob_match(pattern, name); });
    if (!matched)
      throw InputError(where + ": [lora] targets: '" + pattern + "' matches no Linear layer of the model (" +
                       (linear_names.empty() ? std::string("it has none") : "its Linear layers: " + join_names(linear_names, 12)) +
                       "; `*` matches any run of characters)");
  }
  LoraReport report;
  report.summary.rank = spec.rank;
  report.summary.alpha = spec.alpha;
  report.summary.dropout = spec.dropout;
  report.summary.targets = spec.targets;
  int64_t index = 0;
  for (auto& [name, linear] : linears) {
    const bool targeted = std::any_of(spec.targets.begin(), spec.targets.end(),
                                      [&name = name](const std::string& pattern) { return glob_match(pattern, name); });
    if (!targeted) continue;
    if (linear->has_lora())
      throw InputError(where + ": [lora]: layer '" + name + "' has an adapter already");
    nn::LoraOptions options;
    options.rank = spec.rank;
    options.alpha = spec.alpha;
    options.dropout = spec.dropout;
    options.dropout_index = next_dropout + index;
    Rng rng(seed, uint64_t(index), RandomPurpose::adapter);
    linear->add_lora(options, rng);
    report.modules.push_back(name);
    report.summary.adapter_params += linear->lora_a().numel() + linear->lora_b().numel();
    ++index;
  }
  report.summary.modules = int64_t(report.modules.size());
  return report;
}

int64_t freeze_all_but_adapters(nn::Module& model, const LoraSpec& spec, const std::string& where) {
  const nn::NamedTensors params = model.named_parameters();
  for (const std::string& pattern : spec.train) {
    const bool matched = std::any_of(params.begin(), params.end(),
                                     [&](const auto& named) { return glob_match(pattern, named.first); });
    if (!matched) {
      std::vector<std::string> names;
      for (const auto& [name, t] : params)
        if (!is_adapter_name(name)) names.push_back(name);
      throw InputError(where + ": [lora] train: '" + pattern + "' matches no parameter of the model (its parameters: " +
                       join_names(names, 12) + ")");
    }
  }
  int64_t trainable = 0;
  for (auto [name, p] : params) {
    const bool train = is_adapter_name(name) || std::any_of(spec.train.begin(), spec.train.end(), [&name = name](const std::string& pattern) {
                         return glob_match(pattern, name);
                       });
    p.set_requires_grad(train);
    if (train) trainable += p.numel();
  }
  return trainable;
}

LoraReport apply_lora(nn::Module& model, const JobSpec& job) {
  LoraReport report = add_adapters(model, job.lora, job.run.seed, job.path);
  if (!job.lora.adapters.empty()) {
    io::SafetensorsFile adapters = io::read_safetensors(job.lora.adapters);
    io::check_finite_weights(adapters, job.lora.adapters);
    load_adapters(model, adapters, job.lora.adapters, job.lora);
  }
  report.trainable_params = freeze_all_but_adapters(model, job.lora, job.path);
  return report;
}

nn::NamedTensors adapter_state_dict(const nn::Module& model) {
  nn::NamedTensors out;
  for (const auto& [name, t] : model.state_dict())
    if (is_adapter_name(name)) out.emplace_back(name, t);
  return out;
}

nn::NamedTensors merged_state_dict(const nn::Module& model) {
  std::map<std::string, Tensor> merged;  // "<layer>.weight" -> its merged weight
  for (const auto& [name, m] : model.named_modules())
    if (const auto* linear = dynamic_cast<const nn::Linear*>(m); linear && linear->has_lora())
      merged[name.empty() ? "weight" : name + ".weight"] = linear->merged_weight();
  nn::NamedTensors out;
  for (const auto& [name, t] : model.state_dict()) {
    if (is_adapter_name(name)) continue;
    auto it = merged.find(name);
    out.emplace_back(name, it == merged.end() ? t : it->second);
  }
  return out;
}

std::map<std::string, std::string> adapter_metadata(const LoraSpec& spec) {
  return {{"frugal.lora.rank", value_text(spec.rank)},
          {"frugal.lora.alpha", value_text(spec.alpha)},
          {"frugal.lora.dropout", value_text(spec.dropout)},
          {"frugal.lora.targets", nlohmann::json(spec.targets).dump()}};
}

void load_adapters(nn::Module& model, const io::SafetensorsFile& file, const std::string& path, const LoraSpec& spec) {
  const nn::NamedTensors own = adapter_state_dict(model);
  FRUGAL_CHECK(!own.empty(), "load_adapters: the model has no adapters (add_adapters first)");
  if (std::none_of(file.tensors.begin(), file.tensors.end(), [](const auto& t) { return is_adapter_name(t.first); }))
    throw InputError(path + ": holds no LoRA adapters (no tensor '" + own.front().first +
                     "', nor any other *.lora_a / *.lora_b): expected a file written by frugal export --adapters "
                     "or the model of a [lora] run");
  if (auto it = file.metadata.find("frugal.lora.alpha"); it != file.metadata.end()) {
    const double alpha = parse_alpha(it->second, path + ": metadata frugal.lora.alpha");
    if (alpha != spec.alpha)
      throw InputError(path + ": the adapters were trained with alpha " + number_text(alpha) + ", the job's [lora] alpha is " +
                       number_text(spec.alpha) + " (the scale alpha / rank would change what they compute)");
  }
  check_adapters(own, file.tensors, path, spec);
  autograd::NoGradGuard no_grad;
  for (auto [name, t] : own) t.copy_from(file.tensors.at(name));
}

bool holds_adapters(const io::SafetensorsFile& file) {
  return std::any_of(file.tensors.begin(), file.tensors.end(), [](const auto& t) { return is_adapter_name(t.first); });
}

nn::NamedTensors merge_adapter_tensors(const nn::NamedTensors& tensors, double alpha, const std::string& where) {
  std::map<std::string, Tensor> by_name(tensors.begin(), tensors.end());
  auto layer_of = [](const std::string& name) { return name.size() > 7 ? name.substr(0, name.size() - 7) : std::string(); };
  auto prefixed = [](const std::string& layer, const char* leaf) { return layer.empty() ? std::string(leaf) : layer + "." + leaf; };
  std::map<std::string, Tensor> merged;  // "<layer>.weight" -> its merged weight
  for (const auto& [name, t] : tensors) {
    if (!ends_with(name, "lora_a")) continue;
    const std::string layer = name == "lora_a" ? "" : layer_of(name);
    const std::string b_name = prefixed(layer, "lora_b"), weight_name = prefixed(layer, "weight");
    auto b = by_name.find(b_name), weight = by_name.find(weight_name);
    if (b == by_name.end()) throw InputError(where + ": adapter '" + name + "' has no '" + b_name + "' beside it");
    if (weight == by_name.end())
      throw InputError(where + ": adapter '" + name + "' has no base weight '" + weight_name +
                       "' to merge into (adapters alone: merge them into a model by training with [lora] adapters = FILE)");
    const Tensor& a = t;  // (r, in)
    const Shape& w = weight->second.shape();  // (out, in)
    if (a.rank() != 2 || b->second.rank() != 2 || w.size() != 2 || a.shape()[1] != w[1] || b->second.shape()[0] != w[0] ||
        b->second.shape()[1] != a.shape()[0])
      throw InputError(where + ": adapter shapes " + shape_text(a.shape()) + " ('" + name + "') and " +
                       shape_text(b->second.shape()) + " ('" + b_name + "') do not fit weight " + shape_text(w) + " ('" +
                       weight_name + "'): expected (r, in) and (out, r)");
    merged[weight_name] = nn::lora_merged_weight(weight->second, a, b->second, alpha / double(a.shape()[0]));
  }
  for (const auto& [name, t] : tensors)
    if (ends_with(name, "lora_b") && !by_name.count(name.substr(0, name.size() - 6) + "lora_a"))
      throw InputError(where + ": adapter '" + name + "' has no '" + name.substr(0, name.size() - 6) + "lora_a' beside it");
  nn::NamedTensors out;
  for (const auto& [name, t] : tensors) {
    if (is_adapter_name(name)) continue;
    auto it = merged.find(name);
    out.emplace_back(name, it == merged.end() ? t : it->second);
  }
  return out;
}

namespace {

// What an export reads: the adapted model's tensors (or adapters alone) and the metadata to carry.
struct ExportSource {
  std::string where;
  nn::NamedTensors tensors;
  std::map<std::string, std::string> metadata;  // frugal.model, .vocab, .job_hash, frugal.lora.*
  std::optional<double> alpha;
};

// [lora] of a checkpoint's job: the adapters' metadata, as the run would have written it.
void read_checkpoint_lora(const std::string& job_toml, ExportSource& source) {
  const std::map<std::string, std::string> keys = job_keys(job_toml, source.where);
  auto it = keys.find("lora.alpha");
  const double alpha = it == keys.end() ? LoraSpec().alpha : parse_alpha(it->second, source.where + ": its job's lora.alpha");
  source.alpha = alpha;
  source.metadata["frugal.lora.alpha"] = value_text(alpha);
  for (const char* key : {"rank", "dropout", "targets"})
    if (auto it = keys.find(std::string("lora.") + key); it != keys.end()) {
      std::string value = it->second;
      if (std::string(key) == "targets") {  // a TOML array of strings is a JSON array of strings
        try {
          value = nlohmann::json::parse(value).dump();
        } catch (const nlohmann::json::exception&) {
        }
      }
      source.metadata[std::string("frugal.lora.") + key] = value;
    }
}

ExportSource read_export_source(const std::string& source_path) {
  namespace fs = std::filesystem;
  ExportSource source;
  source.where = source_path;
  std::string file = source_path;
  if (fs::is_directory(source_path)) {
    // A [lora] run writes its model merged: merging is reading it; its adapters are beside it.
    return source;
  }
  if (!fs::exists(file)) throw InputError(source_path + ": no such run directory or file");
  if (ends_with(file, ".fck")) {
    io::CheckpointState checkpoint = io::read_checkpoint(file);
    for (auto& [name, t] : checkpoint.tensors)
      if (name.rfind("model.", 0) == 0) source.tensors.emplace_back(name.substr(6), t);
    auto job = checkpoint.values.find("job_toml");
    if (job == checkpoint.values.end()) throw InputError(file + ": checkpoint has no value 'job_toml' (not written by frugal train?)");
    read_checkpoint_lora(job->second, source);
    source.metadata["frugal.job_hash"] = checkpoint.job_hash;
    return source;
  }
  io::SafetensorsFile st = io::read_safetensors(file);
  source.tensors.assign(st.tensors.begin(), st.tensors.end());
  source.metadata = st.metadata;
  if (auto it = st.metadata.find("frugal.lora.alpha"); it != st.metadata.end())
    source.alpha = parse_alpha(it->second, file + ": metadata frugal.lora.alpha");
  return source;
}

}  // namespace

void export_lora(const std::string& source_path, ExportKind kind, const std::string& out) {
  namespace fs = std::filesystem;
  if (out.empty()) throw InputError("frugal export: --out FILE is required");
  if (fs::is_directory(source_path)) {
    const fs::path file = fs::path(source_path) / (kind == ExportKind::merged ? "model.safetensors" : "adapters.safetensors");
    if (!fs::exists(file))
      throw InputError(source_path + ": no " + file.filename().string() + " (" +
                       (kind == ExportKind::merged ? "the run has not completed: export one of its checkpoints"
                                                   : "not a [lora] run, or not completed: export one of its checkpoints") +
                       ")");
    io::SafetensorsFile st = io::read_safetensors(file.string());  // checked whole before it is copied
    if (kind == ExportKind::merged && holds_adapters(st))
      throw InputError(file.string() + ": holds adapters: not the merged model of a [lora] run");
    if (kind == ExportKind::adapters && !holds_adapters(st)) throw InputError(file.string() + ": holds no LoRA adapters");
    std::error_code error;
    fs::copy_file(file, out, fs::copy_options::overwrite_existing, error);
    if (error) throw InputError(out + ": cannot write: " + error.message());
    return;
  }
  ExportSource source = read_export_source(source_path);
  nn::NamedTensors adapters;
  bool has_base = false;
  for (const auto& [name, t] : source.tensors) {
    if (is_adapter_name(name)) adapters.emplace_back(name, t);
    else has_base = true;
  }
  if (adapters.empty())
    throw InputError(source_path + ": holds no LoRA adapters (no *.lora_a / *.lora_b tensor): nothing to " +
                     (kind == ExportKind::merged ? "merge; it is a plain model already" : "export"));
  if (kind == ExportKind::adapters) {
    std::map<std::string, std::string> metadata;
    for (const auto& [key, value] : source.metadata)
      if (key.rfind("frugal.lora.", 0) == 0 || key == "frugal.job_hash") metadata[key] = value;
    io::write_safetensors(out, adapters, metadata);
    return;
  }
  if (!has_base)
    throw InputError(source_path + ": holds adapters alone, no base weights to merge them into (train with [lora] "
                     "adapters = FILE on the base model, then export that run)");
  if (!source.alpha)
    throw InputError(source_path + ": no frugal.lora.alpha in the metadata: the scale alpha / rank of its adapters is unknown");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, value] : source.metadata)
    if (key.rfind("frugal.lora.", 0) != 0) metadata[key] = value;
  io::write_safetensors(out, merge_adapter_tensors(source.tensors, *source.alpha, source_path), metadata);
}

void LoraTechnique::on(Event event, TrainState& state) {
  nn::Module& model = state.model;
  if (event == Event::run_start) {
    state.model_to_save = [&model] { return merged_state_dict(model); };
    return;
  }
  // fit_end: the adapters alone, beside the merged model the loop writes next.
  std::map<std::string, std::string> metadata = adapter_metadata(spec_);
  metadata["frugal.model"] = name_of(state.job.model.kind);
  metadata["frugal.job_hash"] = state.job.hash;
  io::write_safetensors((std::filesystem::path(state.out_dir) / "adapters.safetensors").string(), adapter_state_dict(model),
                        metadata);
}

}  // namespace frugal::train
