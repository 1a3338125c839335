// Run store: the create/log/finish/list/find round trip, prefix lookup, refusal of files that are
// not run stores (random bytes, a newer schema, a directory), and two processes writing at once.
#include "frugal/track/run_store.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "frugal/base/error.h"
#include "frugal/base/rng.h"

namespace frugal::track {
namespace {

class RunStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "frugal_run_store_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }
  std::string dir_;
};

RunStart start(const std::string& name) { return RunStart{name, "[model]\nkind = \"mlp\"\n", "/tmp/out/" + name, "hash-" + name}; }

std::string expect_input_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an InputError";
  return "";
}

TEST_F(RunStoreTest, CreateLogFinishListFind) {
  const std::string db = dir_ + "/nested/dir/runs.db";  // parent directories are created
  std::string id;
  {
    RunStore store(db);
    id = store.create_run(start("fashion mlp/1"));
    EXPECT_TRUE(std::regex_match(id, std::regex(R"(fashion_mlp_1-\d{8}-\d{6}-[0-9a-f]{4})"))) << id;

    std::optional<RunRecord> r = store.find_run(id);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->run_id, id);
    EXPECT_EQ(r->name, "fashion mlp/1");
    EXPECT_EQ(r->status, "running");
    EXPECT_EQ(r->job_toml, "[model]\nkind = \"mlp\"\n");
    EXPECT_EQ(r->out_dir, "/tmp/out/fashion mlp/1");
    EXPECT_EQ(r->job_hash, "hash-fashion mlp/1");
    EXPECT_TRUE(std::regex_match(r->started_at, std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)"))) << r->started_at;
    EXPECT_EQ(r->finished_at, "");
    // The id's timestamp is the start time.
    std::string stamp = r->started_at.substr(0, 4) + r->started_at.substr(5, 2) + r->started_at.substr(8, 2) + "-" +
                        r->started_at.substr(11, 2) + r->started_at.substr(14, 2) + r->started_at.substr(17, 2);
    EXPECT_NE(id.find(stamp), std::string::npos) << id << " vs " << r->started_at;

    for (int64_t step = 1; step <= 5; ++step)
      store.log_metrics(id, step, "train", R"({"loss":)" + std::to_string(1.0 / double(step)) + "}");
    store.log_metrics(id, 3, "eval", R"({"accuracy":0.5,"note":"héllo"})");
    store.finish_run(id, "completed", R"({"accuracy":0.91,"seconds":12.5})");
  }
  // Everything is there after reopening.
  RunStore store(db);
  std::vector<MetricRow> rows = store.metrics(id);
  ASSERT_EQ(rows.size(), 6u);
  std::vector<int64_t> steps;
  for (const MetricRow& row : rows) steps.push_back(row.step);
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 3, 4, 5}));
  EXPECT_EQ(rows[2].kind, "train");
  EXPECT_EQ(rows[3].kind, "eval");
  EXPECT_EQ(rows[3].json, R"({"accuracy":0.5,"note":"héllo"})");
  for (const MetricRow& row : rows) {
    EXPECT_GE(row.time_s, 0.0);
    EXPECT_LT(row.time_s, 60.0);
  }
  std::optional<RunRecord> r = store.find_run(id);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, "completed");
  EXPECT_EQ(r->summary_json, R"({"accuracy":0.91,"seconds":12.5})");
  EXPECT_TRUE(std::regex_match(r->finished_at, std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)")));
  EXPECT_GE(r->finished_at, r->started_at);

  // list_runs: newest first, limited.
  std::string second = store.create_run(start("second"));
  std::string third = store.create_run(start("third"));
  std::vector<RunRecord> runs = store.list_runs();
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].run_id, third);
  EXPECT_EQ(runs[1].run_id, second);
  EXPECT_EQ(runs[2].run_id, id);
  EXPECT_EQ(store.list_runs(1).size(), 1u);
  EXPECT_TRUE(store.metrics(second).empty());
}

TEST_F(RunStoreTest, BadCallsAreInputErrors) {
  RunStore store(dir_ + "/runs.db");
  std::string id = store.create_run(start("m"));
  std::string message = expect_input_error([&] { store.log_metrics("nope", 1, "train", "{}"); });
  EXPECT_NE(message.find("no run 'nope'"), std::string::npos) << message;
  EXPECT_NE(message.find(dir_ + "/runs.db"), std::string::npos) << message;
  expect_input_error([&] { store.log_metrics(id, 1, "test", "{}"); });
  expect_input_error([&] { store.log_metrics(id, 1, "train", "[1, 2]"); });
  expect_input_error([&] { store.log_metrics(id, 1, "train", "{\"loss\": "); });
  expect_input_error([&] { store.finish_run("nope", "completed", "{}"); });
  expect_input_error([&] { store.finish_run(id, "completed", "not json"); });
  expect_input_error([&] { store.finish_run(id, "running", "{}"); });
  EXPECT_TRUE(store.metrics(id).empty());
  EXPECT_EQ(store.find_run(id)->status, "running");
}

TEST_F(RunStoreTest, PrefixLookup) {
  RunStore store(dir_ + "/runs.db");
  std::string a1 = store.create_run(start("alpha"));
  std::string a2 = store.create_run(start("alpha"));
  std::string b = store.create_run(start("beta"));
  ASSERT_NE(a1, a2);
  EXPECT_EQ(store.find_run("beta")->run_id, b);
  EXPECT_EQ(store.find_run("b")->run_id, b);
  EXPECT_EQ(store.find_run(a1)->run_id, a1);
  // The shortest prefix of a2 that a1 does not share finds a2 alone.
  size_t common = 0;
  while (a1[common] == a2[common]) ++common;
  EXPECT_EQ(store.find_run(a2.substr(0, common + 1))->run_id, a2);
  EXPECT_FALSE(store.find_run("gamma").has_value());
  EXPECT_FALSE(store.find_run("ALPHA").has_value());  // case-sensitive
  EXPECT_FALSE(store.find_run("alpha%").has_value()); // no LIKE wildcards
  std::string message = expect_input_error([&] { store.find_run("alpha-"); });
  EXPECT_NE(message.find("ambiguous"), std::string::npos) << message;
  EXPECT_NE(message.find(a1), std::string::npos) << message;
  EXPECT_NE(message.find(a2), std::string::npos) << message;
}

TEST_F(RunStoreTest, RandomBytesAreNotADatabase) {
  const std::string db = dir_ + "/corrupt.db";
  {
    Rng rng(11, 0, RandomPurpose::test);
    std::ofstream out(db, std::ios::binary);
    for (int i = 0; i < 8192; ++i) out.put(char(rng.next_u32() & 0xFF));
  }
  std::string message = expect_input_error([&] { RunStore store(db); });
  EXPECT_NE(message.find(db), std::string::npos) << message;
  EXPECT_NE(message.find("not a database"), std::string::npos) << message;

  // A directory where the database should be.
  const std::string dir_path = dir_ + "/a_directory.db";
  ASSERT_EQ(::mkdir(dir_path.c_str(), 0755), 0);
  message = expect_input_error([&] { RunStore store(dir_path); });
  EXPECT_NE(message.find(dir_path), std::string::npos) << message;
}

TEST_F(RunStoreTest, NewerSchemaVersionIsRefused) {
  const std::string db = dir_ + "/runs.db";
  { RunStore store(db); }  // closing the last connection checkpoints the WAL into the file
  // user_version is the big-endian u32 at byte offset 60 of the database header.
  std::fstream f(db, std::ios::in | std::ios::out | std::ios::binary);
  char version[4];
  f.seekg(60);
  f.read(version, 4);
  ASSERT_EQ(std::string(version, 4), std::string("\0\0\0\2", 4)) << "schema version 2 expected on disk";
  f.seekp(60);
  f.write("\0\0\0\3", 4);
  f.close();
  std::string message = expect_input_error([&] { RunStore store(db); });
  EXPECT_NE(message.find("schema version 3 is newer"), std::string::npos) << message;
  EXPECT_NE(message.find(db), std::string::npos) << message;
}

// A store of schema version 1 (before pid and host) is upgraded when opened: its runs stay readable,
// an old "running" run (no process recorded) stays "running", and new runs record their process.
TEST_F(RunStoreTest, VersionOneStoreGainsTheProcessColumns) {
  const std::string db = dir_ + "/old.db";
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
  const char* v1 =
      "CREATE TABLE runs (run_id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, job_toml TEXT NOT NULL,"
      " job_hash TEXT NOT NULL, out_dir TEXT NOT NULL, summary_json TEXT NOT NULL DEFAULT '{}', started_at TEXT NOT NULL,"
      " started_unix REAL NOT NULL, finished_at TEXT NOT NULL DEFAULT '');"
      "CREATE INDEX runs_by_start ON runs(started_unix);"
      "CREATE TABLE metrics (run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE, step INTEGER NOT NULL,"
      " kind TEXT NOT NULL CHECK (kind IN ('train', 'eval')), json TEXT NOT NULL, time_s REAL NOT NULL);"
      "CREATE INDEX metrics_by_run ON metrics(run_id, step);"
      "INSERT INTO runs (run_id, name, status, job_toml, job_hash, out_dir, started_at, started_unix)"
      " VALUES ('old-run', 'old', 'running', '', 'h', 'out', '2024-01-01T00:00:00Z', 1704067200);"
      "PRAGMA user_version = 1;";
  ASSERT_EQ(sqlite3_exec(raw, v1, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(raw);
  sqlite3_close(raw);
  RunStore store(db);
  std::optional<RunRecord> old = store.find_run("old-run");
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->status, "running");
  EXPECT_EQ(old->pid, 0);
  const std::string id = store.create_run(start("new"));
  EXPECT_EQ(store.find_run(id)->pid, int64_t(::getpid()));
}

// A run whose process was killed before finishing it reads as "interrupted", naming the process;
// a run of a live process stays "running".
TEST_F(RunStoreTest, RunOfAProcessThatIsGoneIsInterrupted) {
  const std::string db = dir_ + "/runs.db";
  RunStore store(db);
  const std::string live = store.create_run(start("live"));
  int ids[2];
  ASSERT_EQ(::pipe(ids), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::string id;
    try {
      id = RunStore(db).create_run(start("killed"));
    } catch (...) {
    }
    (void)!::write(ids[1], id.data(), id.size());
    ::_exit(0);  // never finishes its run, as a killed training
  }
  ::close(ids[1]);
  char buffer[256];
  ssize_t n = ::read(ids[0], buffer, sizeof buffer);
  ::close(ids[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_GT(n, 0);
  std::optional<RunRecord> killed = store.find_run(std::string(buffer, size_t(n)));
  ASSERT_TRUE(killed.has_value());
  EXPECT_EQ(killed->status, "interrupted");
  EXPECT_EQ(killed->pid, int64_t(child));
  EXPECT_FALSE(killed->host.empty());
  std::optional<RunRecord> running = store.find_run(live);
  ASSERT_TRUE(running.has_value());
  EXPECT_EQ(running->status, "running");
  EXPECT_EQ(running->pid, int64_t(::getpid()));
  bool listed = false;
  for (const RunRecord& r : store.list_runs())
    if (r.run_id == killed->run_id) listed = r.status == "interrupted";
  EXPECT_TRUE(listed);
}

// Two processes append 200 rows each to the same run and each creates and finishes its own run,
// at the same time: every row arrives and neither sees an error.
TEST_F(RunStoreTest, TwoProcessesWriteConcurrently) {
  const std::string db = dir_ + "/runs.db";
  std::string shared_run;
  { shared_run = RunStore(db).create_run(start("shared")); }

  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  std::vector<pid_t> children;
  for (int k = 0; k < 2; ++k) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(go[1]);
      char c;
      (void)!::read(go[0], &c, 1);  // wait until both children exist, then start together
      int code = 0;
      try {
        RunStore store(db);
        std::string own = store.create_run(start("worker" + std::to_string(k)));
        for (int step = 0; step < 200; ++step)
          store.log_metrics(shared_run, step, k == 0 ? "train" : "eval",
                            "{\"proc\":" + std::to_string(k) + ",\"step\":" + std::to_string(step) + "}");
        store.finish_run(own, "completed", "{}");
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child %d: %s\n", k, e.what());
        code = 1;
      }
      ::_exit(code);
    }
    children.push_back(pid);
  }
  ::close(go[0]);
  ::close(go[1]);  // EOF releases both children at once
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a child failed (see stderr)";
  }

  RunStore store(db);
  std::vector<MetricRow> rows = store.metrics(shared_run);
  EXPECT_EQ(rows.size(), 400u);
  std::set<std::pair<std::string, int64_t>> seen;
  for (const MetricRow& row : rows) {
    seen.insert({row.kind, row.step});
    std::string proc = row.kind == "train" ? "0" : "1";
    EXPECT_EQ(row.json, "{\"proc\":" + proc + ",\"step\":" + std::to_string(row.step) + "}");
  }
  EXPECT_EQ(seen.size(), 400u);
  std::vector<RunRecord> runs = store.list_runs();
  ASSERT_EQ(runs.size(), 3u);
  int completed = 0;
  for (const RunRecord& r : runs) completed += r.status == "completed";
  EXPECT_EQ(completed, 2);
}

// The dashboard's and exports' access: read-only (creates and writes nothing, refuses a schema it
// would have to upgrade) while a writer goes on; rows after a step and the latest row of a kind.
TEST_F(RunStoreTest, ReadOnlyReaderBesideAWriter) {
  const std::string db = dir_ + "/runs.db";
  EXPECT_NE(expect_input_error([&] { RunStore(db, RunStore::Access::read_only); }).find(db), std::string::npos);
  EXPECT_FALSE(std::ifstream(db).good()) << "a read-only open must not create the store";
  RunStore writer(db);
  const std::string id = writer.create_run(start("live"));
  for (int64_t step = 1; step <= 5; ++step) writer.log_metrics(id, step, "train", "{\"step\":" + std::to_string(step) + "}");
  writer.log_metrics(id, 4, "eval", R"({"val_loss":1})");
  RunStore reader(db, RunStore::Access::read_only);
  std::vector<MetricRow> after = reader.metrics_after(id, 3, 100);
  ASSERT_EQ(after.size(), 3u);  // train 4, eval 4, train 5
  EXPECT_EQ(after[0].step, 4);
  EXPECT_EQ(after.back().step, 5);
  EXPECT_EQ(reader.metrics_after(id, 0, 2).size(), 2u);
  ASSERT_TRUE(reader.last_metric(id, "train").has_value());
  EXPECT_EQ(reader.last_metric(id, "train")->step, 5);
  EXPECT_EQ(reader.last_metric(id, "eval")->step, 4);
  EXPECT_FALSE(reader.last_metric("nope", "train").has_value());
  // The writer goes on while the reader is open; the reader sees its new rows.
  writer.log_metrics(id, 6, "train", R"({"step":6})");
  EXPECT_EQ(reader.last_metric(id, "train")->step, 6);
  expect_input_error([&] { reader.log_metrics(id, 7, "train", "{}"); });
  EXPECT_EQ(writer.metrics(id).size(), 7u);
}

}  // namespace
}  // namespace frugal::track
