// The run store: one SQLite file recording every training run (its job, status, summary) and its
// metric rows, read back by `frugal runs`, `compare` and `report`. Safe with several processes
// writing at once (WAL, busy timeout, short transactions). Limits: one connection per object, not
// shared between threads; a process that forks opens its own RunStore in the child.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace frugal::track {

struct RunStart {
  std::string name;      // the job's name; characters outside [A-Za-z0-9._-] become '_' in the run id
  std::string job_toml;  // the job file as run
  std::string out_dir;
  std::string job_hash;
};

struct RunRecord {
  std::string run_id, name, status, job_toml, out_dir, summary_json;
  std::string started_at, finished_at;  // ISO-8601 UTC ("2024-05-01T12:34:56Z"); finished_at "" while running
  std::string job_hash;
  // The process that runs (or last ran) it. A "running" run whose process is gone from this host
  // reads as status "interrupted": killed and not resumed (--resume auto goes on from its checkpoint).
  int64_t pid = 0;
  std::string host;
};

struct MetricRow {
  int64_t step;
  std::string kind;  // "train" | "eval"
  std::string json;  // a JSON object
  double time_s;     // seconds since the run started
};

class RunStore {
 public:
  enum class Access { read_write, read_only };
  // Opens or creates the store (and its parent directories). Throws InputError naming db_path when
  // the file is not a database, is from a newer frugal, or cannot be opened or written.
  // Access::read_only (the dashboard, exports) opens an existing store with SQLITE_OPEN_READONLY:
  // nothing is created, upgraded or written, and a store of an older schema is refused (any
  // read-write command upgrades it). Readers never block a writer (WAL).
  explicit RunStore(const std::string& db_path, Access access = Access::read_write);
  ~RunStore();
  RunStore(const RunStore&) = delete;
  RunStore& operator=(const RunStore&) = delete;

  // Records a new run with status "running" and this process (pid, host); returns its id
  // `<name>-<YYYYmmdd-HHMMSS>-<4 hex>` (UTC).
  std::string create_run(const RunStart& start);
  // Appends one metric row; json_object must be a JSON object, kind "train" or "eval".
  void log_metrics(const std::string& run_id, int64_t step, const std::string& kind, const std::string& json_object);
  // Sets the final status (e.g. "completed", "failed", "stopped") and summary (a JSON object).
  void finish_run(const std::string& run_id, const std::string& status, const std::string& summary_json);
  // For a run resumed from a checkpoint of step `keep_through_step`: sets its status back to
  // "running" (finished_at cleared) and deletes its metric rows of later steps, which the resumed
  // process logs again. Returns false (changing nothing) when the store has no such run.
  bool resume_run(const std::string& run_id, int64_t keep_through_step);

  std::vector<RunRecord> list_runs(int64_t limit = 100);  // newest first
  // The run with this id, or the only run whose id starts with it; nullopt when none. Throws
  // InputError listing the candidates when the prefix is ambiguous.
  std::optional<RunRecord> find_run(const std::string& id_or_prefix);
  std::vector<MetricRow> metrics(const std::string& run_id);  // in step order
  // At most `limit` rows of steps after `after_step`, in step order (live curves poll with it).
  std::vector<MetricRow> metrics_after(const std::string& run_id, int64_t after_step, int64_t limit);
  // The run's row of this kind with the highest step (the latest logged), nullopt when none.
  std::optional<MetricRow> last_metric(const std::string& run_id, const std::string& kind);

  const std::string& path() const { return path_; }
  static constexpr int kSchemaVersion = 2;

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
};

}  // namespace frugal::track
