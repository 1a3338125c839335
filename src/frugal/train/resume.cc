// Checkpoint state packing, the resume job check and the heartbeat (see resume.h).
// Limits: scalars travel as text (shortest round-trip decimal, so doubles come back bit-exact).
#include "frugal/train/resume.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "frugal/base/error.h"
#include "frugal/base/value_text.h"

namespace frugal::train {

namespace fs = std::filesystem;

namespace {

// Checkpoints of this layout say so; those without the key are upgraded (upgrade_checkpoint).
const std::string kLoopFormat = "2";

// The "techniques" value: names separated by commas.
void append_name(std::string& names, const std::string& name) {
  if (!names.empty()) names += ',';
  names += name;
}

// Tensors of one prefix ("model.", "optim.", ...) with the prefix taken off.
std::vector<std::pair<std::string, Tensor>> with_prefix(const io::CheckpointState& state, const std::string& prefix) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [name, t] : state.tensors)
    if (name.rfind(prefix, 0) == 0) out.emplace_back(name.substr(prefix.size()), t);
  return out;
}

// A job's [train.early_stopping] is on when the table is there and not switched off.
bool uses_early_stopping(const std::map<std::string, std::string>& job) {
  bool has_table = false;
  for (const auto& [key, value] : job)
    if (key.rfind("train.early_stopping.", 0) == 0) has_table = true;
  auto enabled = job.find("train.early_stopping.enabled");
  return has_table && (enabled == job.end() || enabled->second != "false");
}

// Evaluation changes weights only through early stopping (stop, restore_best) and a plateau schedule.
bool evaluation_changes_weights(const std::map<std::string, std::string>& job) {
  auto kind = job.find("schedule.kind");
  if (kind != job.end() && kind->second == "\"plateau\"") return true;
  return uses_early_stopping(job);
}

}  // namespace

io::CheckpointState pack_checkpoint(const LoopPosition& position, const JobSpec& job, const nn::Module& model,
                                    const optim::Optimizer& optimizer, const optim::LrSchedule& schedule,
                                    const std::vector<std::unique_ptr<Technique>>& techniques) {
  io::CheckpointState state;
  state.step = position.step;
  state.job_hash = job.hash;
  for (auto& [name, t] : model.state_dict()) state.tensors.emplace_back("model." + name, t);
  for (auto& [name, t] : optimizer.state()) state.tensors.emplace_back("optim." + name, t);
  for (auto& [name, t] : schedule.state()) state.tensors.emplace_back("schedule." + name, t);
  auto& v = state.values;
  v["job_toml"] = job.resolved_toml;
  v["loop_format"] = kLoopFormat;
  v["step"] = value_text(position.step);
  v["micro"] = value_text(position.micro);
  v["epoch"] = value_text(position.epoch);
  v["batch_in_epoch"] = value_text(position.batch_in_epoch);
  v["samples_seen"] = value_text(position.samples_seen);
  v["run_id"] = position.run_id;
  v["out_dir"] = position.out_dir;
  v["metrics_bytes"] = value_text(position.metrics_bytes);
  v["threads"] = value_text(int64_t(position.threads));
  std::string names;
  for (const auto& technique : techniques) {
    TechniqueState own;
    technique->save_state(own);
    if (own.empty()) continue;
    const std::string prefix = technique->name() + ".";
    for (const auto& [key, value] : own.values()) v[prefix + key] = value;
    for (const auto& [name, t] : own.tensors()) state.tensors.emplace_back(prefix + name, t);
    append_name(names, technique->name());
  }
  v["techniques"] = names;
  return state;
}

LoopPosition unpack_checkpoint(const io::CheckpointState& state, const std::string& path, nn::Module& model,
                               optim::Optimizer& optimizer, optim::LrSchedule& schedule,
                               const std::vector<std::unique_ptr<Technique>>& techniques) {
  ValueReader r(state.values, path);
  LoopPosition position;
  position.step = r.integer("step");
  if (position.step != state.step) throw InputError(path + ": checkpoint value 'step' disagrees with its header");
  position.micro = r.integer("micro");
  position.epoch = r.integer("epoch");
  position.batch_in_epoch = r.integer("batch_in_epoch");
  position.samples_seen = r.integer("samples_seen");
  position.run_id = r.text("run_id");
  position.out_dir = r.text("out_dir");
  position.metrics_bytes = r.integer("metrics_bytes");
  position.threads = int(r.integer("threads"));
  if (position.step < 0 || position.micro < 0 || position.epoch < 0 || position.batch_in_epoch < 0 ||
      position.metrics_bytes < 0)
    throw InputError(path + ": checkpoint has a negative position (step, micro-step, epoch, batch or metrics bytes)");

  // Every technique that saved state must be here to take it back: silently dropping it would
  // resume a different run.
  std::set<std::string> present;
  for (const auto& technique : techniques) present.insert(technique->name());
  std::stringstream saved(r.text("techniques"));
  for (std::string name; std::getline(saved, name, ',');)
    if (!name.empty() && !present.count(name))
      throw InputError(path + ": the checkpoint holds the state of technique '" + name +
                       "', which this run does not have; resume with the same techniques");

  try {
    model.load_state_dict(with_prefix(state, "model."), /*strict=*/true);
    optimizer.load_state(with_prefix(state, "optim."));
    schedule.load_state(with_prefix(state, "schedule."));
  } catch (const InputError& e) {
    throw InputError(path + ": " + e.what());
  }
  for (const auto& technique : techniques) {
    const std::string prefix = technique->name() + ".";
    TechniqueState own(technique->name(), path);
    for (const auto& [key, value] : state.values)
      if (key.rfind(prefix, 0) == 0) own.put_text(key.substr(prefix.size()), value);
    for (auto& [name, t] : with_prefix(state, prefix)) own.put_tensor(name, t);
    technique->load_state(own);
  }
  return position;
}

void upgrade_checkpoint(io::CheckpointState& state) {
  auto& v = state.values;
  if (v.count("loop_format")) return;
  std::string names;
  auto move_value = [&](const std::string& from, const std::string& technique) {
    auto it = v.find(from);
    if (it == v.end()) return false;
    v[technique + "." + from] = it->second;
    v.erase(it);
    return true;
  };
  bool logging = false, early_stopping = false;
  for (const char* key : {"last_train_loss", "loss_window", "loss_window_count"}) logging |= move_value(key, "logging");
  for (const char* key : {"best_metric", "best_step", "evals_without_improvement", "has_best_state"})
    early_stopping |= move_value(key, "early_stopping");
  for (auto& [name, t] : state.tensors)
    if (name.rfind("best.", 0) == 0) name = "early_stopping." + name;
  bool checkpointing = move_value("checkpoints_written", "checkpointing");
  bool loss_scaler = false;
  for (const auto& [key, value] : v) loss_scaler |= key.rfind("loss_scaler.", 0) == 0;
  // Early stopping's state was written whether or not the job used it; a run without it ignores it.
  if (early_stopping && v.count("job_toml")) early_stopping = uses_early_stopping(job_keys(v["job_toml"], "checkpoint"));
  for (auto [present, name] : {std::pair{logging, "logging"}, std::pair{early_stopping, "early_stopping"},
                               std::pair{checkpointing, "checkpointing"}, std::pair{loss_scaler, "loss_scaler"}})
    if (present) append_name(names, name);
  v["techniques"] = names;
  v["loop_format"] = kLoopFormat;
}

std::vector<JobDifference> result_differences(const std::string& saved_toml, const std::string& current_toml) {
  std::map<std::string, std::string> saved = job_keys(saved_toml, "checkpoint");
  std::map<std::string, std::string> current = job_keys(current_toml, "job");
  const std::set<std::string> free_keys = {"train.log_every", "train.max_minutes", "run.store", "data.prefetch",
                                         "data.max_bytes", "run.threads_force",
                                         "data.workers"};  // loader threads: batches never depend on them
  const bool evaluation_free = !evaluation_changes_weights(saved) && !evaluation_changes_weights(current);
  std::set<std::string> keys;
  for (const auto& [k, v] : saved) keys.insert(k);
  for (const auto& [k, v] : current) keys.insert(k);
  std::vector<JobDifference> out;
  for (const std::string& key : keys) {
    // [cost] and [budget] only price and bound the run (a budget stops it at a step boundary, where a
    // resume goes on from), so they never change the weights.
    // memory.*: recomputation changes what is kept, never a gradient bit (tests/unit/nn/recompute_test).
    // alerts.*: where messages go.
    if (key.rfind("checkpoint.", 0) == 0 || key.rfind("cost.", 0) == 0 || key.rfind("budget.", 0) == 0 ||
        key.rfind("alerts.", 0) == 0 ||
        key.rfind("memory.", 0) == 0 || free_keys.count(key))
      continue;
    if (evaluation_free && (key == "train.eval_every" || key == "train.eval_tokens")) continue;
    auto s = saved.find(key), c = current.find(key);
    std::string saved_value = s == saved.end() ? "" : s->second, current_value = c == current.end() ? "" : c->second;
    if (saved_value != current_value) out.push_back({key, saved_value, current_value});
  }
  return out;
}

void check_resumable(const io::CheckpointState& state, const std::string& path, const JobSpec& job) {
  auto it = state.values.find("job_toml");
  if (it == state.values.end()) throw InputError(path + ": checkpoint has no value 'job_toml' (not written by frugal train?)");
  std::vector<JobDifference> differences = result_differences(it->second, job.resolved_toml);
  if (differences.empty()) return;
  std::string message = path + ": cannot resume: the job differs from the checkpoint's in keys that change the result: ";
  for (size_t i = 0; i < differences.size(); ++i) {
    const JobDifference& d = differences[i];
    message += (i ? ", " : "") + d.key + " (" + (d.saved.empty() ? "not set" : d.saved) + " in the checkpoint, " +
               (d.current.empty() ? "not set" : d.current) + " now)";
  }
  message += ". Only checkpoint.*, cost.*, budget.*, memory.*, train.log_every, train.max_minutes, run.store, data.prefetch, "
             "data.workers, data.max_bytes, run.threads_force (and "
             "train.eval_every / eval_tokens without early stopping or a plateau schedule) may change; "
             "restore the job or start a new run in another --out directory";
  throw InputError(message);
}

Heartbeat::~Heartbeat() {
  if (fd_ >= 0) ::close(fd_);
}

void Heartbeat::open(const std::string& path) {
  if (fd_ >= 0) ::close(fd_);
  // Not truncated: until this process beats, the record of the process it resumes from stays for
  // the next resume (if this one dies first, the lost work of both is still counted).
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw InputError(path + ": cannot create the heartbeat file");
}

void Heartbeat::beat(const HeartbeatRecord& record) {
  if (fd_ < 0) return;
  // One fixed-size record rewritten in place: a reader sees the old or the new line, or a torn one it rejects.
  char line[256];
  int n = std::snprintf(line, sizeof line, "frugal-heartbeat 1 %s %lld %.17g %.17g end\n", record.run_id.c_str(),
                        static_cast<long long>(record.step), record.wall_s, record.checkpoint_s);
  if (n <= 0 || n >= int(sizeof line)) return;
  std::string padded(line, size_t(n));
  padded.resize(sizeof line - 1, ' ');
  padded.back() = '\n';
  ssize_t written = ::pwrite(fd_, padded.data(), padded.size(), 0);
  (void)written;  // best effort: a missing heartbeat only makes lost_s an underestimate
}

std::string heartbeat_path(const std::string& checkpoint_dir) {
  return (fs::path(checkpoint_dir) / "heartbeat").string();
}

std::optional<HeartbeatRecord> read_heartbeat(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string magic, end;
  int version = 0;
  long long step = 0;
  HeartbeatRecord r;
  if (!(in >> magic >> version >> r.run_id >> step >> r.wall_s >> r.checkpoint_s >> end)) return std::nullopt;
  if (magic != "frugal-heartbeat" || version != 1 || end != "end") return std::nullopt;
  r.step = step;
  return r;
}

bool has_checkpoint_files(const std::string& dir) {
  std::error_code error;
  if (!fs::is_directory(dir, error)) return false;
  for (const auto& entry : fs::directory_iterator(dir, error)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("checkpoint-", 0) == 0 && name.size() > 4 && name.compare(name.size() - 4, 4, ".fck") == 0)
      return true;
  }
  return false;
}

}  // namespace frugal::train
