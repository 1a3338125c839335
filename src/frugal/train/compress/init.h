// [init]: a fresh run's model starts from weights someone already paid for — a frugal run's model,
// a PyTorch state dict saved as safetensors, or a run of the store by id — with tensor names
// renamed by prefix ([init] map) and some model tensors left to their fresh initialization ([init]
// skip: a new head for a new number of classes). Loaded once, in the Trainer's wiring of a fresh
// run, before the optimizer is built; a resumed run takes its weights from its checkpoint.
// A text model's file carries its vocabulary (metadata frugal.vocab) and the job builds its own
// from its training text: when the two differ, the GPT's vocabulary-indexed tensors (wte.weight, an
// untied head.weight) are remapped by character — rows of shared characters copied, rows of new
// ones kept fresh, rows of characters the job's text lacks dropped — and the counts reported.
// Limits: names and shapes must match after renaming (no transposition, slicing or padding); a
// float tensor loads from any float dtype (converted), an integer one from any integer dtype; the
// whole file is read into memory.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "frugal/data/readers.h"
#include "frugal/nn/module.h"
#include "frugal/train/job.h"
#include "frugal/train/summary.h"
#include "frugal/train/technique.h"

namespace frugal::train {

// The file [init] from names: an existing file; a run directory holding model.safetensors; else a
// run id (or unique prefix) of the run store at store_path, whose out_dir/model.safetensors it is.
// The store is only read, and only when it exists. InputError naming `where` otherwise.
struct InitSource {
  std::string path;
  std::optional<std::string> run_id;
};
InitSource resolve_init_source(const std::string& from, const std::string& store_path, const std::string& where);

struct InitReport {
  InitSummary summary;
  std::vector<std::string> unused;  // names (in the file) of the tensors the model has no tensor for
};

// Loads [init] into `model` (parameters and buffers, dtype converted as load_state_dict does).
// Every model tensor not matched by a skip pattern must be in the file (after map) with the same
// shape. InputError naming `where` and, at once, every tensor that is missing or whose shape
// differs (file vs model) or whose dtype is integer on one side and float on the other, with a skip
// pattern to suggest; also for a map or skip pattern that matches nothing. The model is untouched
// when it throws. vocab: the job's vocabulary (text data), nullptr otherwise; with the file's
// frugal.vocab, the GPT's vocabulary-indexed rows are remapped by character (see above).
InitReport load_init_weights(const InitSpec& spec, nn::Module& model, const std::string& store_path,
                             const std::string& where, const data::CharVocab* vocab = nullptr);

// Carries the report of the load to the summary (`init`) through checkpoints, so a resumed run's
// summary still tells where its weights came from; prints it at run_start of the process that
// loaded (the file's unused tensors in one line).
class InitFromWeights : public Technique {
 public:
  explicit InitFromWeights(std::optional<InitReport> loaded)
      : report_(std::move(loaded)), loaded_here_(report_.has_value()) {}
  std::string name() const override { return "init"; }
  EventSet events() const override { return event_set({Event::run_start, Event::run_end}); }
  void on(Event event, TrainState& state) override;
  void save_state(TechniqueState& out) const override;
  void load_state(const TechniqueState& in) override;

 private:
  std::optional<InitReport> report_;  // nullopt in a resumed process until load_state
  bool loaded_here_ = false;          // this process loaded the file (prints the report)
};

}  // namespace frugal::train
