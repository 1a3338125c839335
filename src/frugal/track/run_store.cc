// SQLite run store. Every write is one short statement or one BEGIN IMMEDIATE transaction, so a
// writer holds the lock for microseconds; SQLITE_BUSY past the busy timeout is retried until a
// deadline. Schema changes are versioned with PRAGMA user_version: version 2 adds the process (pid,
// host) of a running run, so a run whose process died shows as "interrupted".
// Limits: a newer file is refused, never rewritten; a pid reused by another process reads as alive.
#include "frugal/track/run_store.h"

#include <sqlite3.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "frugal/base/error.h"
#include "frugal/base/format.h"

namespace frugal::track {
namespace {

constexpr int kBusyTimeoutMs = 10000;
// Past the busy timeout a statement is retried until this much time has passed in total.
constexpr double kRetryDeadlineSeconds = 60.0;

const char* const kSchemaV1 = R"sql(
CREATE TABLE runs (
  run_id       TEXT PRIMARY KEY,
  name         TEXT NOT NULL,
  status       TEXT NOT NULL,
  job_toml     TEXT NOT NULL,
  job_hash     TEXT NOT NULL,
  out_dir      TEXT NOT NULL,
  summary_json TEXT NOT NULL DEFAULT '{}',
  started_at   TEXT NOT NULL,
  started_unix REAL NOT NULL,
  finished_at  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_by_start ON runs(started_unix);
CREATE TABLE metrics (
  run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
  step   INTEGER NOT NULL,
  kind   TEXT NOT NULL CHECK (kind IN ('train', 'eval')),
  json   TEXT NOT NULL,
  time_s REAL NOT NULL
);
CREATE INDEX metrics_by_run ON metrics(run_id, step);
PRAGMA user_version = 1;
)sql";

// Version 2: the process running the run (0 and '' for runs recorded before).
const char* const kSchemaV2 = R"sql(
ALTER TABLE runs ADD COLUMN pid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN host TEXT NOT NULL DEFAULT '';
PRAGMA user_version = 2;
)sql";

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "";
  return name;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string iso_utc(double unix_seconds) { return utc_time(unix_seconds, "%Y-%m-%dT%H:%M:%SZ"); }

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw InputError("run store " + path + ": " + what);
}

// A full disk or an I/O error is the storage's fault (IoError, exit 74), not the input's.
[[noreturn]] void fail_sqlite(const std::string& path, sqlite3* db, const std::string& doing) {
  const int primary = db ? (sqlite3_extended_errcode(db) & 0xFF) : SQLITE_NOMEM;
  const std::string text = "run store " + path + ": " + doing + ": " + (db ? sqlite3_errmsg(db) : "out of memory");
  if (primary == SQLITE_FULL || primary == SQLITE_IOERR) throw IoError(text);
  throw InputError(text);
}

bool is_busy(int rc) { return (rc & 0xFF) == SQLITE_BUSY || (rc & 0xFF) == SQLITE_LOCKED; }

// One prepared statement; steps retry on SQLITE_BUSY until the deadline.
class Statement {
 public:
  Statement(const std::string& path, sqlite3* db, const char* sql) : path_(path), db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK)
      fail_sqlite(path, db, std::string("cannot prepare '") + sql + "'");
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int index, const std::string& value) {
    sqlite3_bind_text(stmt_, index, value.data(), int(value.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int index, int64_t value) {
    sqlite3_bind_int64(stmt_, index, value);
    return *this;
  }
  Statement& bind(int index, double value) {
    sqlite3_bind_double(stmt_, index, value);
    return *this;
  }

  // True when a row is ready, false when done. `doing` names the operation in errors.
  bool step(const std::string& doing) {
    const auto start = std::chrono::steady_clock::now();
    while (true) {
      int rc = sqlite3_step(stmt_);
      if (rc == SQLITE_ROW) return true;
      if (rc == SQLITE_DONE) return false;
      double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (is_busy(rc) && waited < kRetryDeadlineSeconds) {
        sqlite3_reset(stmt_);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      fail_sqlite(path_, db_, doing);
    }
  }
  void run(const std::string& doing) {
    while (step(doing)) {
    }
  }

  std::string text(int column) const {
    const unsigned char* s = sqlite3_column_text(stmt_, column);
    return s ? std::string(reinterpret_cast<const char*>(s), size_t(sqlite3_column_bytes(stmt_, column))) : "";
  }
  int64_t int64(int column) const { return sqlite3_column_int64(stmt_, column); }
  double real(int column) const { return sqlite3_column_double(stmt_, column); }

 private:
  std::string path_;
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// Runs SQL without results (several statements allowed), retrying while busy.
void exec(const std::string& path, sqlite3* db, const char* sql, const std::string& doing) {
  const auto start = std::chrono::steady_clock::now();
  while (true) {
    int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) return;
    double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (is_busy(rc) && waited < kRetryDeadlineSeconds) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    fail_sqlite(path, db, doing);
  }
}

// BEGIN IMMEDIATE ... COMMIT, rolled back if the body throws.
template <class Body>
void transaction(const std::string& path, sqlite3* db, Body&& body) {
  exec(path, db, "BEGIN IMMEDIATE", "cannot begin a transaction");
  try {
    body();
    exec(path, db, "COMMIT", "cannot commit");
  } catch (...) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

int user_version(const std::string& path, sqlite3* db) {
  Statement s(path, db, "PRAGMA user_version");
  if (!s.step("cannot read the schema version")) return 0;
  return int(s.int64(0));
}

void check_json_object(const std::string& path, const std::string& what, const std::string& json) {
  nlohmann::json value = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !value.is_object()) {
    std::string shown = json.size() > 80 ? json.substr(0, 80) + "..." : json;
    fail(path, what + " must be a JSON object, got '" + shown + "'");
  }
}

// Run ids are used in paths and shell commands, so the name part keeps only safe characters.
std::string id_safe(const std::string& name) {
  std::string out;
  for (char c : name) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-') ? c : '_';
  return out.empty() ? "run" : out;
}

constexpr const char* kRunColumns =
    "run_id, name, status, job_toml, out_dir, summary_json, started_at, finished_at, job_hash, pid, host";

// A run still "running" whose process is gone from this host was killed and not resumed.
bool process_gone(int64_t pid, const std::string& host) {
  if (pid <= 0 || host.empty() || host != host_name()) return false;
  return ::kill(pid_t(pid), 0) != 0 && errno == ESRCH;
}

RunRecord record_from(const Statement& s) {
  RunRecord r;
  r.run_id = s.text(0);
  r.name = s.text(1);
  r.status = s.text(2);
  r.job_toml = s.text(3);
  r.out_dir = s.text(4);
  r.summary_json = s.text(5);
  r.started_at = s.text(6);
  r.finished_at = s.text(7);
  r.job_hash = s.text(8);
  r.pid = s.int64(9);
  r.host = s.text(10);
  if (r.status == "running" && process_gone(r.pid, r.host)) r.status = "interrupted";
  return r;
}

}  // namespace

RunStore::RunStore(const std::string& db_path, Access access) : path_(db_path) {
  const bool read_only = access == Access::read_only;
  std::filesystem::path parent = std::filesystem::path(db_path).parent_path();
  if (!parent.empty() && !read_only) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) fail(path_, "cannot create directory '" + parent.string() + "': " + ec.message());
  }
  const int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(db_path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  try {
    if (rc != SQLITE_OK) fail_sqlite(path_, db_, "cannot open");
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
    // The first statement reads the file header: a file that is not a database fails here.
    const int version = user_version(path_, db_);
    if (version > kSchemaVersion)
      fail(path_, "schema version " + std::to_string(version) + " is newer than this frugal understands (" +
                      std::to_string(kSchemaVersion) + "); use a newer frugal");
    if (read_only) {
      if (version == 0) fail(path_, "not a frugal run store (no schema)");
      if (version < kSchemaVersion)
        fail(path_, "schema version " + std::to_string(version) + " is older than this frugal reads without writing; " +
                        "`frugal runs --store " + path_ + "` upgrades it");
      return;
    }
    {
      Statement wal(path_, db_, "PRAGMA journal_mode = WAL");
      if (!wal.step("cannot switch to WAL mode") || wal.text(0) != "wal")
        fail(path_, "cannot switch to WAL mode (journal_mode is '" + wal.text(0) + "')");
    }
    // NORMAL is safe from corruption in WAL mode; it only risks the last commits on power loss.
    exec(path_, db_, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", "cannot set pragmas");
    if (version < kSchemaVersion) {
      transaction(path_, db_, [&] {
        // Another process may have created the schema while we waited for the lock.
        const int now = user_version(path_, db_);
        if (now == 0) exec(path_, db_, kSchemaV1, "cannot create the schema");
        if (now <= 1) exec(path_, db_, kSchemaV2, "cannot add the process columns");
        else if (now > kSchemaVersion)
          fail(path_, "schema version " + std::to_string(now) + " is newer than this frugal understands");
      });
    }
  } catch (...) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw;
  }
}

RunStore::~RunStore() {
  if (db_) sqlite3_close_v2(db_);
}

std::string RunStore::create_run(const RunStart& start) {
  const double now = unix_now();
  const std::string base = id_safe(start.name) + "-" + utc_time(now, "%Y%m%d-%H%M%S") + "-";
  std::random_device device;
  std::mt19937_64 bits((uint64_t(device()) << 32) ^ uint64_t(::getpid()) ^
                       uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()));
  // 65536 suffixes per name and second; on a clash (primary key) draw another.
  for (int attempt = 0; attempt < 64; ++attempt) {
    char suffix[8];
    std::snprintf(suffix, sizeof suffix, "%04x", unsigned(bits() & 0xFFFFu));
    const std::string run_id = base + suffix;
    Statement s(path_, db_,
                "INSERT OR IGNORE INTO runs (run_id, name, status, job_toml, job_hash, out_dir, started_at, "
                "started_unix, pid, host) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, run_id).bind(2, start.name).bind(3, start.job_toml).bind(4, start.job_hash).bind(5, start.out_dir);
    s.bind(6, iso_utc(now)).bind(7, now).bind(8, int64_t(::getpid())).bind(9, host_name());
    s.run("cannot record run '" + run_id + "'");
    if (sqlite3_changes(db_) == 1) return run_id;
  }
  fail(path_, "cannot find a free run id for '" + base + "xxxx'");
}

void RunStore::log_metrics(const std::string& run_id, int64_t step, const std::string& kind,
                           const std::string& json_object) {
  if (kind != "train" && kind != "eval") fail(path_, "metric kind '" + kind + "', expected \"train\" or \"eval\"");
  check_json_object(path_, "metrics for run '" + run_id + "'", json_object);
  // time_s is measured from the run's start as stored, so every process agrees on it.
  Statement s(path_, db_,
              "INSERT INTO metrics (run_id, step, kind, json, time_s) "
              "SELECT run_id, ?, ?, ?, ? - started_unix FROM runs WHERE run_id = ?");
  s.bind(1, step).bind(2, kind).bind(3, json_object).bind(4, unix_now()).bind(5, run_id);
  s.run("cannot log metrics for run '" + run_id + "'");
  if (sqlite3_changes(db_) != 1) fail(path_, "no run '" + run_id + "' to log metrics for");
}

void RunStore::finish_run(const std::string& run_id, const std::string& status, const std::string& summary_json) {
  if (status.empty() || status == "running") fail(path_, "finish_run needs a final status, got '" + status + "'");
  check_json_object(path_, "summary of run '" + run_id + "'", summary_json);
  Statement s(path_, db_, "UPDATE runs SET status = ?, summary_json = ?, finished_at = ? WHERE run_id = ?");
  s.bind(1, status).bind(2, summary_json).bind(3, iso_utc(unix_now())).bind(4, run_id);
  s.run("cannot finish run '" + run_id + "'");
  if (sqlite3_changes(db_) != 1) fail(path_, "no run '" + run_id + "' to finish");
}

bool RunStore::resume_run(const std::string& run_id, int64_t keep_through_step) {
  // One transaction, so a reader never sees the run running with the redone rows still there.
  Statement begin(path_, db_, "BEGIN IMMEDIATE");
  begin.run("cannot resume run '" + run_id + "'");
  try {
    Statement update(path_, db_,
                     "UPDATE runs SET status = 'running', finished_at = '', pid = ?, host = ? WHERE run_id = ?");
    update.bind(1, int64_t(::getpid())).bind(2, host_name()).bind(3, run_id);
    update.run("cannot resume run '" + run_id + "'");
    bool found = sqlite3_changes(db_) == 1;
    if (found) {
      Statement drop(path_, db_, "DELETE FROM metrics WHERE run_id = ? AND step > ?");
      drop.bind(1, run_id).bind(2, keep_through_step);
      drop.run("cannot drop the redone metric rows of run '" + run_id + "'");
    }
    Statement commit(path_, db_, "COMMIT");
    commit.run("cannot resume run '" + run_id + "'");
    return found;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::vector<RunRecord> RunStore::list_runs(int64_t limit) {
  Statement s(path_, db_,
              (std::string("SELECT ") + kRunColumns + " FROM runs ORDER BY started_unix DESC, rowid DESC LIMIT ?").c_str());
  s.bind(1, limit);
  std::vector<RunRecord> runs;
  while (s.step("cannot list runs")) runs.push_back(record_from(s));
  return runs;
}

std::optional<RunRecord> RunStore::find_run(const std::string& id_or_prefix) {
  {
    Statement exact(path_, db_, (std::string("SELECT ") + kRunColumns + " FROM runs WHERE run_id = ?").c_str());
    exact.bind(1, id_or_prefix);
    if (exact.step("cannot look up run '" + id_or_prefix + "'")) return record_from(exact);
  }
  // substr, not LIKE: LIKE is case-insensitive and treats '_' and '%' in ids as wildcards.
  Statement s(path_, db_,
              (std::string("SELECT ") + kRunColumns +
               " FROM runs WHERE substr(run_id, 1, length(?1)) = ?1 ORDER BY started_unix DESC, rowid DESC LIMIT 11")
                  .c_str());
  s.bind(1, id_or_prefix);
  std::vector<RunRecord> found;
  while (s.step("cannot look up run '" + id_or_prefix + "'")) found.push_back(record_from(s));
  if (found.empty()) return std::nullopt;
  if (found.size() == 1) return found[0];
  std::string candidates;
  for (size_t i = 0; i < found.size() && i < 10; ++i) candidates += (i ? ", " : "") + found[i].run_id;
  if (found.size() > 10) candidates += ", ...";
  fail(path_, "run id prefix '" + id_or_prefix + "' is ambiguous: " + candidates);
}

std::vector<MetricRow> RunStore::metrics(const std::string& run_id) {
  Statement s(path_, db_, "SELECT step, kind, json, time_s FROM metrics WHERE run_id = ? ORDER BY step, rowid");
  s.bind(1, run_id);
  std::vector<MetricRow> rows;
  while (s.step("cannot read metrics of run '" + run_id + "'"))
    rows.push_back(MetricRow{s.int64(0), s.text(1), s.text(2), s.real(3)});
  return rows;
}

std::vector<MetricRow> RunStore::metrics_after(const std::string& run_id, int64_t after_step, int64_t limit) {
  Statement s(path_, db_,
              "SELECT step, kind, json, time_s FROM metrics WHERE run_id = ? AND step > ? ORDER BY step, rowid LIMIT ?");
  s.bind(1, run_id).bind(2, after_step).bind(3, limit);
  std::vector<MetricRow> rows;
  while (s.step("cannot read metrics of run '" + run_id + "'"))
    rows.push_back(MetricRow{s.int64(0), s.text(1), s.text(2), s.real(3)});
  return rows;
}

std::optional<MetricRow> RunStore::last_metric(const std::string& run_id, const std::string& kind) {
  Statement s(path_, db_,
              "SELECT step, kind, json, time_s FROM metrics WHERE run_id = ? AND kind = ? "
              "ORDER BY step DESC, rowid DESC LIMIT 1");
  s.bind(1, run_id).bind(2, kind);
  if (!s.step("cannot read metrics of run '" + run_id + "'")) return std::nullopt;
  return MetricRow{s.int64(0), s.text(1), s.text(2), s.real(3)};
}

}  // namespace frugal::track
