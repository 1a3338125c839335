// Checkpoint state packing, the resume job check and the heartbeat (see resume.h).
// Limits: scalars travel as text (shortest round-trip decimal, so doubles come back bit-exact).
#include "frugal/train/resume.h"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "frugal/base/error.h"

namespace frugal::train {

namespace fs = std::filesystem;

namespace {

std::string encode(double v) {
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof buffer, v);  // shortest text that reads back the same bits
  return std::string(buffer, result.ptr);
}
std::string encode(int64_t v) { return std::to_string(v); }

class ValueReader {
 public:
  ValueReader(const std::map<std::string, std::string>& values, const std::string& path)
      : values_(values), path_(path) {}

  const std::string& text(const std::string& key) const {
    auto it = values_.find(key);
    if (it == values_.end()) throw InputError(path_ + ": checkpoint has no value '" + key + "'");
    return it->second;
  }
  double real(const std::string& key) const {
    const std::string& s = text(key);
    double v = 0;
    auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (error != std::errc() || end != s.data() + s.size())
      throw InputError(path_ + ": checkpoint value '" + key + "' = '" + s + "': expected a number");
    return v;
  }
  int64_t integer(const std::string& key) const {
    const std::string& s = text(key);
    int64_t v = 0;
    auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (error != std::errc() || end != s.data() + s.size())
      throw InputError(path_ + ": checkpoint value '" + key + "' = '" + s + "': expected an integer");
    return v;
  }

 private:
  const std::map<std::string, std::string>& values_;
  const std::string& path_;
};

// Tensors of one prefix ("model.", "optim.", ...) with the prefix taken off.
std::vector<std::pair<std::string, Tensor>> with_prefix(const io::CheckpointState& state, const std::string& prefix) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [name, t] : state.tensors)
    if (name.rfind(prefix, 0) == 0) out.emplace_back(name.substr(prefix.size()), t);
  return out;
}

// Evaluation changes weights only through early stopping (stop, restore_best) and a plateau schedule.
bool evaluation_changes_weights(const std::map<std::string, std::string>& job) {
  auto get = [&](const std::string& key) {
    auto it = job.find(key);
    return it == job.end() ? std::string() : it->second;
  };
  if (get("schedule.kind") == "\"plateau\"") return true;
  bool has_early_stopping = false;
  for (const auto& [key, value] : job)
    if (key.rfind("train.early_stopping.", 0) == 0) has_early_stopping = true;
  return has_early_stopping && get("train.early_stopping.enabled") != "false";
}

}  // namespace

io::CheckpointState pack_checkpoint(const LoopState& loop, const JobSpec& job, const nn::Module& model,
                                    const optim::Optimizer& optimizer, const optim::LrSchedule& schedule,
                                    const std::vector<std::pair<std::string, Tensor>>& best_state) {
  io::CheckpointState state;
  state.step = loop.step;
  state.job_hash = job.hash;
  for (auto& [name, t] : model.state_dict()) state.tensors.emplace_back("model." + name, t);
  for (auto& [name, t] : optimizer.state()) state.tensors.emplace_back("optim." + name, t);
  for (auto& [name, t] : schedule.state()) state.tensors.emplace_back("schedule." + name, t);
  if (loop.has_best_state)
    for (auto& [name, t] : best_state) state.tensors.emplace_back("best." + name, t);
  auto& v = state.values;
  v["job_toml"] = job.resolved_toml;
  v["step"] = encode(loop.step);
  v["micro"] = encode(loop.micro);
  v["epoch"] = encode(loop.epoch);
  v["batch_in_epoch"] = encode(loop.batch_in_epoch);
  v["samples_seen"] = encode(loop.samples_seen);
  v["last_train_loss"] = encode(loop.last_train_loss);
  v["loss_window"] = encode(loop.loss_window);
  v["loss_window_count"] = encode(loop.loss_window_count);
  v["best_metric"] = encode(loop.best_metric);
  v["best_step"] = encode(loop.best_step);
  v["evals_without_improvement"] = encode(loop.evals_without_improvement);
  v["has_best_state"] = loop.has_best_state ? "1" : "0";
  v["wall_s"] = encode(loop.wall_s);
  v["train_compute_s"] = encode(loop.train_compute_s);
  v["data_wait_s"] = encode(loop.data_wait_s);
  v["checkpoint_s"] = encode(loop.checkpoint_s);
  v["lost_s"] = encode(loop.lost_s);
  v["checkpoints_written"] = encode(loop.checkpoints_written);
  v["interruptions"] = encode(loop.interruptions);
  v["run_id"] = loop.run_id;
  v["out_dir"] = loop.out_dir;
  v["metrics_bytes"] = encode(loop.metrics_bytes);
  v["threads"] = encode(int64_t(loop.threads));
  for (const auto& [name, value] : loop.loss_scaler) v["loss_scaler." + name] = encode(value);
  return state;
}

LoopState unpack_checkpoint(const io::CheckpointState& state, const std::string& path, nn::Module& model,
                            optim::Optimizer& optimizer, optim::LrSchedule& schedule,
                            std::vector<std::pair<std::string, Tensor>>& best_state) {
  ValueReader r(state.values, path);
  LoopState loop;
  loop.step = r.integer("step");
  if (loop.step != state.step) throw InputError(path + ": checkpoint value 'step' disagrees with its header");
  loop.micro = r.integer("micro");
  loop.epoch = r.integer("epoch");
  loop.batch_in_epoch = r.integer("batch_in_epoch");
  loop.samples_seen = r.integer("samples_seen");
  loop.last_train_loss = r.real("last_train_loss");
  loop.loss_window = r.real("loss_window");
  loop.loss_window_count = r.integer("loss_window_count");
  loop.best_metric = r.real("best_metric");
  loop.best_step = r.integer("best_step");
  loop.evals_without_improvement = r.integer("evals_without_improvement");
  loop.has_best_state = r.integer("has_best_state") != 0;
  loop.wall_s = r.real("wall_s");
  loop.train_compute_s = r.real("train_compute_s");
  loop.data_wait_s = r.real("data_wait_s");
  loop.checkpoint_s = r.real("checkpoint_s");
  loop.lost_s = r.real("lost_s");
  loop.checkpoints_written = r.integer("checkpoints_written");
  loop.interruptions = r.integer("interruptions");
  loop.run_id = r.text("run_id");
  loop.out_dir = r.text("out_dir");
  loop.metrics_bytes = r.integer("metrics_bytes");
  loop.threads = int(r.integer("threads"));
  const std::string scaler_prefix = "loss_scaler.";
  for (const auto& [key, text] : state.values)
    if (key.rfind(scaler_prefix, 0) == 0) loop.loss_scaler.emplace_back(key.substr(scaler_prefix.size()), r.real(key));
  if (loop.step < 0 || loop.micro < 0 || loop.epoch < 0 || loop.batch_in_epoch < 0 || loop.metrics_bytes < 0)
    throw InputError(path + ": checkpoint has a negative position (step, micro-step, epoch, batch or metrics bytes)");

  try {
    model.load_state_dict(with_prefix(state, "model."), /*strict=*/true);
    optimizer.load_state(with_prefix(state, "optim."));
    schedule.load_state(with_prefix(state, "schedule."));
  } catch (const InputError& e) {
    throw InputError(path + ": " + e.what());
  }
  best_state.clear();
  if (loop.has_best_state) {
    // Same names and shapes as the model's state; copied so the checkpoint buffer can go.
    std::vector<std::pair<std::string, Tensor>> best = with_prefix(state, "best.");
    std::vector<std::pair<std::string, Tensor>> own = model.state_dict();
    if (best.size() != own.size()) throw InputError(path + ": checkpoint's best weights do not match the model");
    for (size_t i = 0; i < own.size(); ++i) {
      if (best[i].first != own[i].first || best[i].second.shape() != own[i].second.shape())
        throw InputError(path + ": checkpoint's best weights do not match the model at '" + best[i].first + "'");
      best_state.emplace_back(best[i].first, best[i].second.clone());
    }
  }
  return loop;
}

std::vector<JobDifference> result_differences(const std::string& saved_toml, const std::string& current_toml) {
  std::map<std::string, std::string> saved = job_keys(saved_toml, "checkpoint");
  std::map<std::string, std::string> current = job_keys(current_toml, "job");
  const std::set<std::string> free_keys = {"train.log_every", "train.max_minutes", "run.store", "data.prefetch"};
  const bool evaluation_free = !evaluation_changes_weights(saved) && !evaluation_changes_weights(current);
  std::set<std::string> keys;
  for (const auto& [k, v] : saved) keys.insert(k);
  for (const auto& [k, v] : current) keys.insert(k);
  std::vector<JobDifference> out;
  for (const std::string& key : keys) {
    // [cost] and [budget] only price and bound the run (a budget stops it at a step boundary, where a
    // resume goes on from), so they never change the weights.
    // memory.*: recomputation changes what is kept, never a gradient bit (tests/unit/nn/recompute_test).
    if (key.rfind("checkpoint.", 0) == 0 || key.rfind("cost.", 0) == 0 || key.rfind("budget.", 0) == 0 ||
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
  message += ". Only checkpoint.*, cost.*, budget.*, memory.*, train.log_every, train.max_minutes, run.store, data.prefetch (and "
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
