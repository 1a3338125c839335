// A rank that dies: `mpirun -np 2 frugal train` with checkpoints every 20 steps, rank 1 SIGKILLed
// mid-run. The job must end on its own within a bound (no rank left blocked in a collective), with
// mpirun's exit code as the README documents, the newest checkpoint complete, and `--resume auto` in
// one process (train.grad_accum unchanged) must end bit-identical to an uninterrupted run.
// Limits: skipped without mpirun; the kill lands wherever rank 1 is after the first checkpoints.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "csv_data.h"
#include "e2e/cli_helpers.h"
#include "e2e/process.h"
#include "frugal/io/checkpoint.h"

namespace frugal::e2e {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Thousands of tiny steps, so the kill comes well before the end on a loaded machine.
const char* kJob =
    "[run]\nname = \"dead-rank\"\nseed = 4\nthreads = 1\nstore = \"runs.db\"\n"
    "[data]\nkind = \"csv\"\ntrain = \"data.csv\"\nval_fraction = 0.1\n"
    "[model]\nkind = \"mlp\"\nhidden = [32]\n"
    "[train]\nepochs = 300\nbatch_size = 8\ngrad_accum = 2\nlog_every = 1000\n"
    "[checkpoint]\nevery_steps = 20\nkeep = 3\n";

// The pid of the child of `parent` whose environment says OMPI_COMM_WORLD_RANK=`rank`, or -1.
pid_t rank_pid(pid_t parent, int rank) {
  const std::string want = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream status(entry.path() / "status");
    std::string line;
    pid_t ppid = -1;
    while (std::getline(status, line))
      if (line.rfind("PPid:", 0) == 0) ppid = std::atoi(line.c_str() + 5);
    if (ppid != parent) continue;
    const std::string env = read_file(entry.path() / "environ");
    for (size_t at = 0; at < env.size();) {
      const size_t end = env.find('\0', at);
      if (env.compare(at, (end == std::string::npos ? env.size() : end) - at, want) == 0) return std::atoi(name.c_str());
      if (end == std::string::npos) break;
      at = end + 1;
    }
  }
  return -1;
}

std::string mpirun_path() {
  for (const char* p : {"/usr/bin/mpirun", "/usr/local/bin/mpirun"})
    if (fs::exists(p)) return p;
  return "";
}

TEST(MpiFault, KilledRankEndsTheJobAndResumesInOneProcess) {
  const std::string mpirun = mpirun_path();
  if (mpirun.empty()) GTEST_SKIP() << "mpirun is not installed (Debian's openmpi-bin)";
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  Scratch s("mpi_dead_rank");
  write_file(s / "data.csv", frugal::testing::four_class_csv(200));
  write_file(s / "job.toml", kJob);
  const std::string frugal = std::string(FRUGAL_BINARY_DIR) + "/frugal";
  Process job(s, {"--oversubscribe", "-np", "2", frugal, "train", "job.toml", "--quiet", "--out", "out"}, "job", mpirun);
  // The newest checkpoint file (by step) and its step; -1 when there is none.
  const std::regex name("checkpoint-([0-9]+)\\.fck");
  auto newest_checkpoint = [&](fs::path* path) {
    int64_t newest = -1;
    std::error_code error;
    for (const auto& e : fs::directory_iterator(s / "out" / "checkpoints", error)) {
      std::smatch m;
      const std::string file = e.path().filename().string();
      if (std::regex_match(file, m, name) && std::stoll(m[1]) > newest) {
        newest = std::stoll(m[1]);
        if (path) *path = e.path();
      }
    }
    return newest;
  };
  // Rank 1 running and the checkpoint of step 60 written (the heartbeat of a step comes before its
  // checkpoint, so it does not say the file is there).
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  pid_t victim = -1;
  while (!job.done() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (newest_checkpoint(nullptr) < 60) continue;
    victim = rank_pid(job.pid(), 1);
    if (victim > 0) break;
  }
  ASSERT_GT(victim, 0) << "no checkpoint of step 60 while rank 1 ran; stderr: " << job.err();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  const auto killed = Clock::now();
  // Open MPI notices the dead rank and ends the others; bounded, or the job hangs.
  while (!job.done() && Clock::now() - killed < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const double teardown = std::chrono::duration<double>(Clock::now() - killed).count();
  if (!job.done()) {
    job.kill_with(SIGKILL);
    job.wait();
    FAIL() << "mpirun still running 60 s after rank 1 was killed; stderr: " << job.err();
  }
  const int status = job.wait();
  std::printf("teardown after SIGKILL of rank 1: %.2f s\n", teardown);
  EXPECT_LT(teardown, 30.0);
  // README "Several machines (MPI)": mpirun reports the killed rank as 128 + 9.
  ASSERT_TRUE(WIFEXITED(status)) << job.err();
  EXPECT_EQ(WEXITSTATUS(status), 137) << job.err();
  EXPECT_NE(job.err().find("rank 1"), std::string::npos) << job.err();

  // The newest checkpoint file (by step) is whole: it reads and validates.
  fs::path newest_path;
  const int64_t newest = newest_checkpoint(&newest_path);
  ASSERT_GE(newest, 60);
  io::CheckpointState state;
  ASSERT_NO_THROW(state = io::read_checkpoint(newest_path.string())) << newest_path;
  EXPECT_EQ(state.step, newest);

  // Resumed in one process with the same micro-batches, against an uninterrupted one-process run.
  CommandResult resumed = s.frugal("train job.toml --quiet --out out --resume auto");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  CommandResult straight = s.frugal("train job.toml --quiet --out straight");
  ASSERT_EQ(straight.exit_code, 0) << straight.err;
  const std::string a = read_file(s / "out" / "model.safetensors"), b = read_file(s / "straight" / "model.safetensors");
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "resumed at world size 1 after a dead rank differs from the uninterrupted run";
}

}  // namespace
}  // namespace frugal::e2e
