// LoRA for a job ([lora], job.h): adapters (nn::Linear::add_lora) on the Linear layers the
// targets name, every other parameter frozen but those `train` names, adapters saved and loaded on
// their own, and the model with its adapters folded into the base weights (a plain model). The
// Trainer applies it after the model is built (and loaded from [init]) and before the optimizer.
// Limits: Linear layers only (a GPT's tied head is the embedding matrix, not a Linear: it stays
// frozen unless `train` names wte.weight); one adapter per layer; no merged-weight export of a
// Conv2d.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "frugal/io/safetensors.h"
#include "frugal/nn/module.h"
#include "frugal/train/job.h"
#include "frugal/train/summary.h"
#include "frugal/train/technique.h"

namespace frugal::train {

// What apply_lora did: the summary's `lora` object and the run's first lines.
struct LoraReport {
  LoraSummary summary;               // rank, alpha, dropout, targets, modules, adapter_params
  std::vector<std::string> modules;  // the adapted Linear layers, in model order
  int64_t trainable_params = 0;      // parameters (elements) with requires_grad after freezing
};

// The state-dict names of adapter tensors end in ".lora_a" or ".lora_b".
bool is_adapter_name(const std::string& name);

// Adds an adapter to every Linear whose dotted name matches one of spec.targets: the i-th adapted
// layer (model order) draws lora_a from Rng(seed, i, RandomPurpose::adapter), and its dropout mask
// is keyed after the model's own Dropout layers. InputError (naming `where`, the job) for a pattern
// that matches no Linear, listing the model's Linear layers.
LoraReport add_adapters(nn::Module& model, const LoraSpec& spec, uint64_t seed, const std::string& where);

// requires_grad(false) on every parameter that is neither an adapter nor matched by a spec.train
// pattern: no gradient is computed for it and the optimizer keeps no state for it. InputError for
// a train pattern that matches no parameter. Returns the trainable parameters (elements).
int64_t freeze_all_but_adapters(nn::Module& model, const LoraSpec& spec, const std::string& where);

// The model a [lora] job trains: add_adapters, the adapters of spec.adapters when set
// (load_adapters), then freeze_all_but_adapters.
LoraReport apply_lora(nn::Module& model, const JobSpec& job);

// The adapter tensors of the model under their state-dict names (live handles).
nn::NamedTensors adapter_state_dict(const nn::Module& model);
// The model's state dict with each adapted Linear's weight replaced by its merged_weight() and the
// adapters left out: the state dict of the same model without [lora].
nn::NamedTensors merged_state_dict(const nn::Module& model);
// The metadata an adapters file carries: frugal.lora.rank, .alpha, .dropout and .targets (a JSON array).
std::map<std::string, std::string> adapter_metadata(const LoraSpec& spec);

// Copies the adapters of `file` (read from `path`) into the model's. Every adapter of the model
// must be there with its shape; the file's other tensors are ignored, except adapters the model
// does not have. InputError naming the path and the tensor: a file without adapters, a missing or
// unexpected adapter, a rank other than the job's; and an alpha the file states that differs.
void load_adapters(nn::Module& model, const io::SafetensorsFile& file, const std::string& path, const LoraSpec& spec);

// True when the file holds adapter tensors (an adapted model, or adapters alone).
bool holds_adapters(const io::SafetensorsFile& file);

// The tensors of an adapted model's state dict (adapters beside their base weights) with each
// "<layer>.lora_a" / "<layer>.lora_b" pair folded into "<layer>.weight" (nn::lora_merged_weight,
// scale alpha / rank, rank from lora_a's rows) and left out: a plain model's tensors. InputError
// naming `where` and the tensor for an adapter without its pair or its base weight, or shapes
// that do not fit.
nn::NamedTensors merge_adapter_tensors(const nn::NamedTensors& tensors, double alpha, const std::string& where);

// `frugal export SOURCE --merge | --adapters --out OUT`. SOURCE: a run directory of a [lora] run
// (its model.safetensors is the merged model, adapters.safetensors the adapters), a checkpoint of
// one (.fck: the adapted model's tensors, [lora] from the job it holds), or a safetensors file of an
// adapted model or of adapters (frugal.lora.alpha in its metadata). merge: a plain model (no adapter
// tensor), loadable by `frugal eval` / `sample` and PyTorch; adapters only: the adapter tensors
// with their rank / alpha / targets metadata. InputError (nothing written) for a source without
// adapters, adapters without base weights to merge into, or an unreadable source.
enum class ExportKind { merged, adapters };
void export_lora(const std::string& source, ExportKind kind, const std::string& out);

// The technique of a [lora] run (after apply_lora): the run's model.safetensors is the merged
// plain model (TrainState::model_to_save), and adapters.safetensors beside it holds the adapters
// alone, written at fit_end. The adapters and their optimizer state are the model's parameters
// and the optimizer's, so checkpoints carry them with nothing of its own.
class LoraTechnique : public Technique {
 public:
  explicit LoraTechnique(const LoraSpec& spec) : spec_(spec) {}
  std::string name() const override { return "lora"; }
  EventSet events() const override { return event_set({Event::run_start, Event::fit_end}); }
  void on(Event event, TrainState& state) override;

 private:
  LoraSpec spec_;
};

}  // namespace frugal::train
