// Resource limits of `frugal train` and `frugal sample` (issue 16): a gzip bomb refused at
// data.max_bytes, a model too large for the machine refused with the figures before anything is
// allocated, run.threads capped at the cores available with a warning, and `sample` showing
// progress on stderr only and stopping promptly on SIGTERM with the text made so far.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

#include "e2e/cli_helpers.h"
#include "e2e/process.h"
#include "frugal/base/machine.h"

namespace frugal::e2e {
namespace {

using json = nlohmann::json;

std::string csv_job(const std::string& train_file, const std::string& extra_run, const std::string& extra) {
  return "[run]\nname = \"limits\"\nseed = 1\n" + extra_run + "\n[data]\nkind = \"csv\"\ntrain = \"" + train_file +
         "\"\nval_fraction = 0.2\n" + extra + "\n[model]\nkind = \"mlp\"\nhidden = [8]\n[optim]\nkind = \"sgd\"\n"
         "lr = 0.1\n[train]\nepochs = 1\nbatch_size = 8\n";
}

std::string integer_csv(int n) {
  std::string text = "a,b,label\n";
  for (int i = 0; i < n; ++i) text += std::to_string(i % 7) + "," + std::to_string(i % 5) + "," + std::to_string(i % 2) + "\n";
  return text;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(Limits, GzipBombRefusedAtDataMaxBytes) {
  Scratch s("limits-bomb");
  // 100 MB of zeros after a CSV header: ~100 KB of gzip.
  ASSERT_EQ(std::system(("cd '" + s.dir().string() +
                         "' && (printf 'a,b,label\\n'; head -c 100000000 /dev/zero) | gzip -1 > bomb.csv.gz").c_str()), 0);
  write_file(s / "job.toml", csv_job("bomb.csv.gz", "", "max_bytes = 1000000"));
  auto start = std::chrono::steady_clock::now();
  CommandResult r = s.frugal("train job.toml --out run");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("bomb.csv.gz: gzip data inflates past 1000000 bytes (limit data.max_bytes = 1000000"),
            std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_LT(seconds_since(start), 10.0);
  // A bad value of the key names it.
  write_file(s / "job.toml", csv_job("bomb.csv.gz", "", "max_bytes = 0"));
  r = s.frugal("train job.toml --out run");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("[data] max_bytes = 0: expected an integer in [1, "), std::string::npos) << r.err;
}

TEST(Limits, ModelTooLargeForTheMachineIsRefusedWithTheFigure) {
  Scratch s("limits-model");
  write_file(s / "train.csv", integer_csv(40));
  std::string job = csv_job("train.csv", "", "");
  job.replace(job.find("hidden = [8]"), 12, "hidden = [1048576, 1048576]");
  write_file(s / "job.toml", job);
  auto start = std::chrono::steady_clock::now();
  CommandResult r = s.frugal("train job.toml --out run");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  // (2 + 1) x 1M + 1M x 1M + (1M + 1) x 2 parameters, x 4 bytes (f32) x 2 (weights, gradients):
  // SGD without momentum keeps no state.
  for (const char* part : {"job.toml: [model] needs ~8.0 TiB for parameters and gradients (1099517919234 parameters, f32)",
                           "for the activations of a batch of 8", "this machine has ", " available (of "})
    EXPECT_NE(r.err.find(part), std::string::npos) << "missing: " << part << "\n" << r.err;
  EXPECT_LT(seconds_since(start), 10.0);
  EXPECT_FALSE(std::filesystem::exists(s / "run" / "model.safetensors"));
  // With AdamW the state is named too.
  r = s.frugal("train job.toml --out run --set optim.kind=adamw");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("needs ~16.0 TiB for parameters, gradients and Adam state"), std::string::npos) << r.err;
}

TEST(Limits, HelpNamesTheOutOfMemoryCodeAndSampleFlags) {
  Scratch s("limits-help");
  CommandResult r = s.frugal("--help");
  EXPECT_NE(r.out.find("71 out of memory"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("74 I/O error"), std::string::npos) << r.out;
  r = s.frugal("sample --help");
  for (const char* flag : {"--progress", "--quiet"}) EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
}

TEST(Limits, ThreadsAboveTheCoresAreCappedWithAWarning) {
  Scratch s("limits-threads");
  write_file(s / "train.csv", integer_csv(40));
  const int cores = available_cores();
  write_file(s / "job.toml", csv_job("train.csv", "threads = 64", ""));
  CommandResult r;
  json summary = run_json(s, "train job.toml --json --out capped", &r);
  EXPECT_EQ(summary["threads"], cores);
  const std::string warning = "frugal: warning: job.toml: [run] threads = 64 is more than the " + std::to_string(cores) +
                              " cores available to this process; using " + std::to_string(cores) +
                              " (set run.threads_force = true to use 64 anyway)\n";
  EXPECT_NE(r.err.find(warning), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("threads = 64"), std::string::npos) << "the warning goes to stderr only";
  // Forced: the count asked for, no warning.
  const int more = cores + 1;
  write_file(s / "forced.toml", csv_job("train.csv", "threads = " + std::to_string(more) + "\nthreads_force = true", ""));
  summary = run_json(s, "train forced.toml --json --out forced", &r);
  EXPECT_EQ(summary["threads"], more);
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
}

// A tiny character model to sample from.
void train_gpt(const Scratch& s) {
  std::string text;
  for (int i = 0; i < 60; ++i) text += "in the beginning god created the heaven and the earth. ";
  write_file(s / "text.txt", text);
  write_file(s / "gpt.toml",
             "[run]\nname = \"gpt\"\nseed = 2\nthreads = 1\n[data]\nkind = \"text\"\ntrain = \"text.txt\"\n"
             "val_fraction = 0.1\n[model]\nkind = \"gpt\"\nlayers = 1\nheads = 2\nwidth = 16\ncontext = 16\n"
             "[optim]\nlr = 0.01\n[train]\nsteps = 4\nbatch_size = 8\n");
  CommandResult r = s.frugal("train gpt.toml --out gpt");
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

TEST(Limits, SampleProgressGoesToStderrOnly) {
  Scratch s("limits-sample");
  train_gpt(s);
  const std::string args = "sample gpt.toml --weights gpt/model.safetensors --prompt 'in the ' --tokens 300 --temperature 0";
  CommandResult plain = s.frugal(args);
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.out.size(), std::string("in the ").size() + 300 + 1);
  EXPECT_EQ(plain.out.rfind("in the ", 0), 0u);
  EXPECT_EQ(plain.out.back(), '\n');
  EXPECT_EQ(plain.err.find("tokens/s"), std::string::npos) << "short, not a terminal: no progress by default";
  CommandResult shown = s.frugal(args + " --progress");
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_EQ(shown.out, plain.out) << "stdout is the sample alone";
  EXPECT_NE(shown.err.find("300/300 tokens"), std::string::npos) << shown.err;
  EXPECT_NE(shown.err.find("tokens/s"), std::string::npos) << shown.err;
  EXPECT_NE(shown.err.find("ETA"), std::string::npos) << shown.err;
}

TEST(Limits, SampleStopsPromptlyOnSigtermKeepingTheText) {
  Scratch s("limits-sample-stop");
  train_gpt(s);
  Process p(s, {"sample", "gpt.toml", "--weights", "gpt/model.safetensors", "--prompt", "in the ", "--tokens", "1000000"},
            "stop");
  // Wait until text arrives (stdout is a file: a first buffer of 4 KiB).
  for (int i = 0; i < 300 && p.out().empty() && !p.done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_FALSE(p.done()) << p.err();
  auto start = std::chrono::steady_clock::now();
  p.kill_with(SIGTERM);
  int status = p.wait();
  EXPECT_LT(seconds_since(start), 5.0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 75) << p.err();
  const std::string out = p.out();
  EXPECT_EQ(out.rfind("in the ", 0), 0u);
  EXPECT_EQ(out.back(), '\n');
  EXPECT_GT(out.size(), 4096u);
  EXPECT_NE(p.err().find("frugal: sample stopped by SIGTERM after "), std::string::npos) << p.err();
  EXPECT_NE(p.err().find(" of 1000000 tokens (the text so far is on stdout)"), std::string::npos) << p.err();
}

}  // namespace
}  // namespace frugal::e2e
