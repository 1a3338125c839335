// Federated averaging through the real binary (train/parallel/federated.h): a small FedProx job on
// Fashion-MNIST (2000 samples, Dirichlet split over 4 clients) runs, writes a model, round rows and
// the run; the same job twice gives the same model bytes; SIGKILL after a round's checkpoint and
// SIGTERM (exit 75) both resume with --resume auto to the same bytes; `mpirun -np 2` (clients as
// ranks) gives the same bytes as the simulated run, also going on from a simulated run's checkpoint;
// bad inputs exit 2 naming the key.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "e2e/cli_helpers.h"
#include "e2e/process.h"

namespace frugal::e2e {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string fed_job(int rounds, const std::string& federated_extra = "", const std::string& extra = "") {
  const std::string d = kFashionDir;
  return "[run]\nname = \"fed\"\nseed = 4\nthreads = 1\nstore = \"runs.db\"\n\n[data]\nkind = \"idx\"\n"
         "train_images = \"" + d + "/train-images-idx3-ubyte.gz\"\ntrain_labels = \"" + d +
         "/train-labels-idx1-ubyte.gz\"\ntest_images = \"" + d + "/t10k-images-idx3-ubyte.gz\"\ntest_labels = \"" + d +
         "/t10k-labels-idx1-ubyte.gz\"\nval_fraction = 0.1\ntrain_limit = 2000\n\n[model]\nkind = \"mlp\"\n"
         "hidden = [64]\ndropout = 0.1\n\n[optim]\nkind = \"adamw\"\nlr = 0.002\n\n[train]\nbatch_size = 32\n\n"
         "[federated]\nalgorithm = \"fedprox\"\nmu = 0.01\nclients = 4\nclients_per_round = 3\nrounds = " +
         std::to_string(rounds) + "\nlocal_epochs = 1\nsplit = \"dirichlet\"\nalpha = 0.5\n" + federated_extra + extra;
}

std::vector<json> round_rows(const fs::path& metrics) {
  std::vector<json> rows;
  std::istringstream in(read_file(metrics));
  for (std::string line; std::getline(in, line);) {
    json row = json::parse(line, nullptr, false);
    if (row.is_object() && row.value("kind", "") == "round") rows.push_back(row);
  }
  return rows;
}

bool have_dataset() { return fs::exists(fs::path(kFashionDir) / "train-images-idx3-ubyte.gz"); }

TEST(Federated, RunsWritesModelRowsAndRepeatsBitForBit) {
  if (!have_dataset()) GTEST_SKIP() << "no Fashion-MNIST in " << kFashionDir;
  Scratch s("federated-run");
  write_file(s / "job.toml", fed_job(3, "target_accuracy = 0.5\n"));
  CommandResult r;
  json summary = run_json(s, "train job.toml --json --quiet --out a", &r);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(summary["status"], "completed");
  const json& f = summary["techniques"]["federated"];
  EXPECT_EQ(f["rounds"], 3) << f.dump();
  EXPECT_EQ(f["clients"], 4);
  EXPECT_EQ(f["algorithm"], "fedprox");
  // 784*64 + 64 + 64*10 + 10 floats per model, down and up for each of 3 clients in each of 3 rounds.
  const double floats = 784 * 64 + 64 + 64 * 10 + 10;
  EXPECT_EQ(f["model_floats"], int64_t(floats));
  EXPECT_EQ(f["bytes"].get<double>(), 2 * floats * 4 * 3 * 3);
  EXPECT_TRUE(f["target_round"].is_number()) << f.dump();  // 50% on 10 classes after a round or two
  EXPECT_GT(summary["metrics"]["test_accuracy"].get<double>(), 0.5) << summary.dump();
  ASSERT_TRUE(fs::exists(s / "a" / "model.safetensors"));
  const std::vector<json> rows = round_rows(s / "a" / "metrics.jsonl");
  ASSERT_EQ(rows.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(rows[size_t(i)]["round"], i + 1);
    EXPECT_TRUE(rows[size_t(i)]["val_accuracy"].is_number());
    EXPECT_EQ(rows[size_t(i)]["bytes"].get<double>(), 2 * floats * 4 * 3 * (i + 1));
  }
  // The run is in the store.
  CommandResult runs = s.frugal("runs --store runs.db");
  EXPECT_NE(runs.out.find(summary["run_id"].get<std::string>()), std::string::npos) << runs.out;
  // Same seed, same bits.
  ASSERT_EQ(s.frugal("train job.toml --quiet --out b").exit_code, 0);
  EXPECT_EQ(read_file(s / "a" / "model.safetensors"), read_file(s / "b" / "model.safetensors"));
}

// Waits until `file` exists (or the process ends); true when it appeared.
bool wait_for(const fs::path& file, Process& p, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (fs::exists(file)) return true;
    if (p.done()) return fs::exists(file);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

TEST(Federated, ResumesAfterSigkillAndSigtermBitIdentical) {
  if (!have_dataset()) GTEST_SKIP() << "no Fashion-MNIST in " << kFashionDir;
  Scratch s("federated-resume");
  write_file(s / "job.toml", fed_job(6));
  ASSERT_EQ(s.frugal("train job.toml --quiet --out whole").exit_code, 0);
  const std::string whole = read_file(s / "whole" / "model.safetensors");
  ASSERT_FALSE(whole.empty());
  const std::vector<json> whole_rows = round_rows(s / "whole" / "metrics.jsonl");

  // SIGKILL right after round 2's checkpoint: rounds 3.. are redone.
  {
    Process p(s, {"train", "job.toml", "--quiet", "--out", "killed"}, "killed");
    ASSERT_TRUE(wait_for(s / "killed" / "checkpoints" / "checkpoint-000000000002.fck", p, 120)) << p.err();
    p.kill_with(SIGKILL);
    p.wait();
    ASSERT_FALSE(fs::exists(s / "killed" / "model.safetensors")) << "the run ended before the kill";
    CommandResult r = s.frugal("train job.toml --quiet --out killed --resume auto");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(read_file(s / "killed" / "model.safetensors"), whole);
    const std::vector<json> rows = round_rows(s / "killed" / "metrics.jsonl");
    ASSERT_EQ(rows.size(), whole_rows.size());  // the rows of redone rounds were cut back
    for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(rows[i]["val_accuracy"], whole_rows[i]["val_accuracy"]) << i;
  }
  // SIGTERM: the round in progress finishes, its checkpoint is written, exit 75.
  {
    Process p(s, {"train", "job.toml", "--quiet", "--out", "termed"}, "termed");
    ASSERT_TRUE(wait_for(s / "termed" / "checkpoints" / "checkpoint-000000000001.fck", p, 120)) << p.err();
    p.kill_with(SIGTERM);
    const int status = p.wait();
    ASSERT_TRUE(WIFEXITED(status)) << p.err();
    EXPECT_EQ(WEXITSTATUS(status), 75) << p.err();
    const json stopped = json::parse(read_file(s / "termed" / "summary.json"));
    EXPECT_EQ(stopped["status"], "preempted");
    CommandResult r = s.frugal("train job.toml --quiet --out termed --resume auto");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(read_file(s / "termed" / "model.safetensors"), whole);
    // Once completed, --resume auto has nothing to redo.
    CommandResult again = s.frugal("train job.toml --out termed --resume auto");
    EXPECT_EQ(again.exit_code, 0);
    EXPECT_NE(again.out.find("already completed"), std::string::npos) << again.out;
  }
}

TEST(Federated, MpiRanksGiveTheSimulatedRunsBytes) {
  if (!have_dataset()) GTEST_SKIP() << "no Fashion-MNIST in " << kFashionDir;
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0) GTEST_SKIP() << "no mpirun";
  Scratch s("federated-mpi");
  write_file(s / "job.toml", fed_job(3));
  ASSERT_EQ(s.frugal("train job.toml --quiet --out simulated").exit_code, 0);
  const std::string command = "cd '" + s.dir().string() + "' && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
                              "mpirun --oversubscribe -np 2 --mca btl self,tcp '" + std::string(FRUGAL_BINARY_DIR) +
                              "/frugal' train job.toml --json --quiet --out ranks >.mpi-out 2>.mpi-err";
  const int status = std::system(command.c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_file(s / ".mpi-err") << read_file(s / ".mpi-out");
  EXPECT_EQ(read_file(s / "ranks" / "model.safetensors"), read_file(s / "simulated" / "model.safetensors"));
  // One summary (rank 0's), with the bytes the ranks actually sent.
  const json summary = json::parse(last_line(read_file(s / ".mpi-out")));
  const json& f = summary["techniques"]["federated"];
  EXPECT_EQ(f["world_size"], 2) << f.dump();
  EXPECT_GT(f["bytes_measured"].get<double>(), 0);

  // Checkpoints do not depend on the world size: a simulated run stopped after round 1 goes on as 2 ranks.
  Process p(s, {"train", "job.toml", "--quiet", "--out", "moved"}, "moved");
  ASSERT_TRUE(wait_for(s / "moved" / "checkpoints" / "checkpoint-000000000001.fck", p, 120)) << p.err();
  p.kill_with(SIGKILL);
  p.wait();
  ASSERT_FALSE(fs::exists(s / "moved" / "model.safetensors")) << "the run ended before the kill";
  const std::string resumed = "cd '" + s.dir().string() + "' && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
                              "mpirun --oversubscribe -np 2 --mca btl self,tcp '" + std::string(FRUGAL_BINARY_DIR) +
                              "/frugal' train job.toml --quiet --out moved --resume auto >.moved-out 2>.moved-err";
  const int moved = std::system(resumed.c_str());
  ASSERT_TRUE(WIFEXITED(moved) && WEXITSTATUS(moved) == 0) << read_file(s / ".moved-err");
  EXPECT_EQ(read_file(s / "moved" / "model.safetensors"), read_file(s / "simulated" / "model.safetensors"));
}

TEST(Federated, BadInputsExit2NamingTheKey) {
  if (!have_dataset()) GTEST_SKIP() << "no Fashion-MNIST in " << kFashionDir;
  Scratch s("federated-bad");
  struct Case {
    std::string job, expected;
  };
  std::string packed_job = fed_job(2);  // [data] replaced by a pack's (refused before it is read)
  const size_t data = packed_job.find("[data]"), model = packed_job.find("[model]");
  packed_job.replace(data, model - data, "[data]\nkind = \"packed\"\npath = \"pack\"\n\n");
  const std::vector<Case> cases = {
      {fed_job(2, "", "").replace(fed_job(2).find("clients = 4"), 11, "clients = 5000"), "clients: expected at most the 2000 training samples"},
      {fed_job(2, "", "[dist]\ncompression = \"topk\"\n"), "[dist] compression: does not combine with [federated]"},
      {fed_job(2, "", "[curriculum]\nscore = \"self\"\n"), "[federated] and [curriculum] do not combine"},
      {fed_job(2, "", "[importance_sampling]\n"), "[federated] and [importance_sampling] do not combine"},
      {fed_job(2, "", "[data_pruning]\nscores = \"none.safetensors\"\n"), "[data_pruning]"},
      {fed_job(2, "beta = 1\n"), "beta"},
      {fed_job(2).replace(fed_job(2).find("batch_size = 32"), 15, "batch_size = 32\nepochs = 3"),
       "[train] epochs: is not used with [federated]"},
      {packed_job, "[federated] needs the training split in memory"},
      {fed_job(2).replace(fed_job(2).find("alpha = 0.5\n"), 12, "alpha = 0\n"), "alpha"},
  };
  int i = 0;
  for (const Case& c : cases) {
    const std::string name = "bad" + std::to_string(i++) + ".toml";
    write_file(s / name, c.job);
    CommandResult r = s.frugal("train " + name + " --quiet --out out-" + name);
    EXPECT_EQ(r.exit_code, 2) << name << ": " << r.err << r.out;
    EXPECT_NE(r.err.find(c.expected), std::string::npos) << name << ": " << r.err;
    EXPECT_FALSE(fs::exists(s / ("out-" + name) / "model.safetensors"));
  }
}

}  // namespace
}  // namespace frugal::e2e
