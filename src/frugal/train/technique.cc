// Event names, a technique's checkpoint state, and the metrics log (see technique.h).
#include "frugal/train/technique.h"

#include "frugal/dist/communicator.h"

#include "frugal/base/error.h"
#include "frugal/base/value_text.h"
#include "frugal/track/run_store.h"

namespace frugal::train {

int TrainState::rank() const { return world ? world->rank() : 0; }
int TrainState::world_size() const { return world ? world->size() : 1; }

const char* event_name(Event event) {
  switch (event) {
    case Event::run_start: return "run_start";
    case Event::epoch_start: return "epoch_start";
    case Event::batch_loaded: return "batch_loaded";
    case Event::after_loss: return "after_loss";
    case Event::after_backward: return "after_backward";
    case Event::before_optimizer_step: return "before_optimizer_step";
    case Event::after_optimizer_step: return "after_optimizer_step";
    case Event::evaluation_done: return "evaluation_done";
    case Event::epoch_end: return "epoch_end";
    case Event::step_end: return "step_end";
    case Event::fit_end: return "fit_end";
    case Event::run_end: return "run_end";
    case Event::run_failed: return "run_failed";
  }
  return "?";
}

MetricsLog::MetricsLog(const std::string& path, int64_t bytes_before, track::RunStore* store, std::string run_id)
    : file_(path, bytes_before > 0 ? std::ios::app : std::ios::trunc),
      bytes_(bytes_before),
      store_(store),
      run_id_(std::move(run_id)) {
  if (!file_) throw InputError(path + ": cannot open the metrics file for writing");
}

void MetricsLog::write(const nlohmann::json& row) {
  std::string line = row.dump() + "\n";
  file_ << line;
  file_.flush();
  bytes_ += int64_t(line.size());
  // The store's metrics table holds train and eval rows; other kinds (budget events) live in metrics.jsonl.
  const std::string kind = row.value("kind", std::string("train"));
  if (kind != "train" && kind != "eval") return;
  if (store_) store_->log_metrics(run_id_, row.value("step", int64_t(0)), kind, row.dump());
}

void TechniqueState::put(const std::string& key, double value) { values_[key] = value_text(value); }
void TechniqueState::put(const std::string& key, int64_t value) { values_[key] = value_text(value); }
void TechniqueState::put_text(const std::string& key, std::string value) { values_[key] = std::move(value); }
void TechniqueState::put_tensor(const std::string& name, Tensor value) { tensors_.emplace_back(name, std::move(value)); }

void TechniqueState::fail(const std::string& what) const {
  throw InputError(path_ + ": checkpoint state of technique '" + technique_ + "': " + what);
}

// Errors read "<checkpoint>: technique '<name>': checkpoint has no value '<key>'" and the like.
ValueReader TechniqueState::reader() const { return ValueReader(values_, path_ + ": technique '" + technique_ + "'"); }
const std::string& TechniqueState::text(const std::string& key) const { return reader().text(key); }
double TechniqueState::real(const std::string& key) const { return reader().real(key); }
int64_t TechniqueState::integer(const std::string& key) const { return reader().integer(key); }

}  // namespace frugal::train
