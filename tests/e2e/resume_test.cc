// Spot-safe training end to end through the real binary: runs killed with SIGKILL and SIGTERM at
// random moments (some while a checkpoint is being written, some mid-epoch) and resumed with
// --resume auto end with model.safetensors byte-identical to an uninterrupted run (and the same
// metrics and training and evaluation FLOPs); corrupted
// checkpoints fall back or fail cleanly; a changed learning rate is refused; interval = "auto".
// Limits: kill timing is random, so which steps are hit varies from run to run (the checks do not).
#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "csv_data.h"
#include "e2e/cli_helpers.h"
#include "e2e/process.h"
#include "frugal/io/checkpoint.h"

namespace frugal::e2e {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

const char* kMlpJob =
    "[run]\nname = \"mlp\"\nseed = 3\nthreads = 1\nstore = \"runs.db\"\n"
    "[data]\nkind = \"csv\"\ntrain = \"data.csv\"\nval_fraction = 0.1\n"
    "[model]\nkind = \"mlp\"\nhidden = [128, 128]\ndropout = 0.2\n"
    "[optim]\nlr = 0.003\n"
    "[schedule]\nkind = \"warmup_cosine\"\nwarmup_steps = 5\n"
    "[train]\nepochs = 4\nbatch_size = 16\ngrad_accum = 2\nlog_every = 5\neval_every = 25\n"
    "[train.early_stopping]\npatience = 100\n"
    "[checkpoint]\nevery_steps = 4\nkeep = 3\n";

const char* kGptJob =
    "[run]\nname = \"gpt\"\nseed = 7\nthreads = 1\nstore = \"runs.db\"\n"
    "[data]\nkind = \"text\"\ntrain = \"text.txt\"\nval_fraction = 0.1\n"
    "[model]\nkind = \"gpt\"\nlayers = 2\nheads = 2\nwidth = 32\ncontext = 32\ndropout = 0.1\n"
    "[optim]\nlr = 0.01\n"
    "[schedule]\nkind = \"warmup_cosine\"\nwarmup_steps = 10\n"
    "[train]\nsteps = 160\nbatch_size = 8\ngrad_accum = 2\nclip_norm = 1.0\neval_every = 40\neval_tokens = 2000\n"
    "log_every = 10\n"
    "[checkpoint]\nevery_steps = 5\nkeep = 2\n";

std::string gpt_text() {
  std::string text;
  for (int i = 0; i < 300; ++i) text += "the quick brown fox jumps over the lazy dog. pack my box with five dozen jugs. ";
  return text;
}

json last_json(const std::string& out) { return json::parse(last_line(out), nullptr, false); }

std::vector<std::string> train_args(const std::string& out_dir, bool resume, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"train", "job.toml", "--json", "--out", out_dir};
  if (resume) args.insert(args.end(), {"--resume", "auto"});
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::vector<std::string> tmp_files(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code error;
  for (const auto& e : fs::directory_iterator(dir, error))
    if (e.path().extension() == ".tmp") out.push_back(e.path().filename().string());
  return out;
}

std::vector<std::string> checkpoint_files(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code error;
  for (const auto& e : fs::directory_iterator(dir, error))
    if (e.path().extension() == ".fck") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

enum class Kill {
  startup,        // SIGKILL within the first 100 ms: reading data, building the model
  term_random,    // SIGTERM at a random moment of a random step: a checkpoint, then exit 75
  kill_random,    // SIGKILL at a random moment of a random step (a step, an eval, a checkpoint write)
  kill_in_write,  // SIGKILL as soon as a checkpoint's .tmp file appears
};

struct KillReport {
  int interruptions = 0, exits_75 = 0, kills_during_write = 0, mid_epoch_resumes = 0, resumes = 0;
  json final_summary;
};

// Runs the job in `out_dir` under the kill plan, resuming each time, then lets it finish. Kill k lands
// at a random step of the k-th slice of the run (so the run always makes progress, however loaded
// the machine is) and a random number of microseconds into it.
KillReport run_with_kills(const Scratch& s, const std::string& out_dir, const std::vector<Kill>& plan,
                          int64_t total_steps, bool classification) {
  KillReport report;
  std::mt19937_64 random(std::random_device{}());
  const fs::path checkpoints = s / out_dir / "checkpoints";
  fs::create_directories(checkpoints);  // so inotify can watch it from the first process on
  const double slice = double(total_steps) / double(plan.size() + 1);
  for (size_t k = 0; k <= plan.size(); ++k) {
    if (k > 0) {
      // What --resume auto will pick: count the mid-epoch positions.
      if (auto latest = io::load_latest_checkpoint(checkpoints.string())) {
        ++report.resumes;
        if (classification && latest->state.values.at("batch_in_epoch") != "0") ++report.mid_epoch_resumes;
      }
    }
    // The heartbeat still holds the previous process's last step until this one passes it; waiting
    // for a step beyond it makes sure this process is in its training loop (signal handlers in place).
    const int64_t launch_step = heartbeat_step(checkpoints);
    Process p(s, train_args(out_dir, k > 0), std::to_string(k));
    if (k == plan.size()) {
      int status = p.wait();
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << p.err();
      report.final_summary = last_json(p.out());
      return report;
    }
    const Kill kill = plan[k];
    const int64_t target = std::max(launch_step + 1,
        int64_t(slice * (double(k) + std::uniform_real_distribution<double>(0.3, 0.9)(random))));
    auto wait_for_target = [&] {
      while (!p.done() && heartbeat_step(checkpoints) < target) std::this_thread::sleep_for(std::chrono::microseconds(200));
    };
    if (kill == Kill::startup) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 100)(random)));
      p.kill_with(SIGKILL);
    } else if (kill == Kill::kill_in_write) {
      int fd = inotify_init1(IN_NONBLOCK);
      int watch = inotify_add_watch(fd, checkpoints.c_str(), IN_CREATE);
      EXPECT_GE(watch, 0);
      wait_for_target();
      alignas(inotify_event) char buffer[4096];
      while (read(fd, buffer, sizeof buffer) > 0) {}  // forget the writes before the target
      bool seen = false;
      while (!seen && !p.done()) {
        // Woken by the event itself (a sleep-and-poll loop can oversleep a small checkpoint's whole
        // write on a loaded machine); the timeout only rechecks that the run is still going.
        pollfd ready{fd, POLLIN, 0};
        poll(&ready, 1, 5);
        ssize_t n = read(fd, buffer, sizeof buffer);
        for (ssize_t i = 0; i < n && !seen;) {
          auto* event = reinterpret_cast<inotify_event*>(buffer + i);
          std::string name = event->len ? event->name : "";
          if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) {
            p.kill_with(SIGKILL);  // the checkpoint write has just begun
            seen = true;
          }
          i += ssize_t(sizeof(inotify_event) + event->len);
        }
      }
      close(fd);
    } else {
      wait_for_target();
      std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 3000)(random)));
      p.kill_with(kill == Kill::term_random ? SIGTERM : SIGKILL);
    }
    int status = p.wait();
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      ADD_FAILURE() << "the run finished before kill " << k << " landed";
      return report;
    }
    ++report.interruptions;
    if (kill == Kill::term_random) {
      // After the handlers are installed SIGTERM means: checkpoint at the next step boundary, exit 75.
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 75) << p.err();
      if (WIFEXITED(status) && WEXITSTATUS(status) == 75) {
        ++report.exits_75;
        json summary = last_json(p.out());
        EXPECT_EQ(summary["status"], "preempted");
        EXPECT_EQ(summary["stop_reason"], "preempted");
      }
    } else {
      EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    }
    if (kill == Kill::kill_in_write && !tmp_files(checkpoints).empty()) ++report.kills_during_write;
  }
  return report;
}

TEST(Resume, MlpKilledAtRandomMomentsEndsBitIdentical) {
  Scratch s("resume-mlp");
  write_file(s / "data.csv", testing::four_class_csv(2000));
  write_file(s / "job.toml", kMlpJob);

  CommandResult ref = s.frugal("train job.toml --json --out ref");
  ASSERT_EQ(ref.exit_code, 0) << ref.err;
  json ref_summary = last_json(ref.out);
  ASSERT_EQ(ref_summary["status"], "completed");
  EXPECT_EQ(ref_summary["interruptions"], 0);
  EXPECT_TRUE(ref_summary["resumed_from"].is_null());
  EXPECT_GT(ref_summary["checkpoints"].get<int64_t>(), 10);
  EXPECT_GT(ref_summary["checkpoint_bytes"].get<double>(), 0);

  std::vector<Kill> plan = {Kill::startup,       Kill::term_random, Kill::kill_random, Kill::kill_in_write,
                            Kill::term_random,   Kill::kill_in_write, Kill::kill_random, Kill::term_random};
  KillReport report = run_with_kills(s, "run", plan, ref_summary["steps"].get<int64_t>(), /*classification=*/true);
  EXPECT_GE(report.interruptions, 5);
  EXPECT_GE(report.exits_75, 1) << "no SIGTERM reached a step boundary";
  EXPECT_GE(report.kills_during_write, 1) << "no kill left a torn .tmp checkpoint behind";
  EXPECT_GE(report.mid_epoch_resumes, 1);

  std::string a = read_file(s / "ref" / "model.safetensors"), b = read_file(s / "run" / "model.safetensors");
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "the interrupted run's weights differ from the uninterrupted run's";

  const json& summary = report.final_summary;
  EXPECT_EQ(summary["steps"], ref_summary["steps"]);
  EXPECT_EQ(summary["samples_seen"], ref_summary["samples_seen"]);
  EXPECT_EQ(summary["metrics"], ref_summary["metrics"]) << "final losses and accuracies are bit-identical too";
  // The training and evaluation FLOPs too: counted, carried through every checkpoint, the work
  // redone after a kill counted once (its time is lost_s).
  EXPECT_EQ(summary["flops_source"], "counted");
  for (const char* key : {"flops", "flops_forward", "flops_backward", "flops_eval"}) {
    ASSERT_TRUE(ref_summary[key].is_number()) << key;
    EXPECT_EQ(summary[key], ref_summary[key]) << key;
  }
  EXPECT_GE(summary["interruptions"].get<int64_t>(), 1);
  EXPECT_TRUE(summary["resumed_from"].is_string());
  EXPECT_GT(summary["lost_s"].get<double>(), 0.0) << "SIGKILLs between checkpoints lose work";
  EXPECT_GT(summary["checkpoint_s"].get<double>(), 0.0);

  // The run store and metrics.jsonl continue the same run: one id, completed, and no row logged twice.
  CommandResult show = s.frugal("runs show " + summary["run_id"].get<std::string>() + " --store runs.db --json");
  ASSERT_EQ(show.exit_code, 0) << show.err;
  json run = json::parse(show.out);
  EXPECT_EQ(run["status"], "completed");
  std::string ref_metrics = read_file(s / "ref" / "metrics.jsonl"), metrics = read_file(s / "run" / "metrics.jsonl");
  EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), std::count(ref_metrics.begin(), ref_metrics.end(), '\n'));
  CommandResult ref_show = s.frugal("runs show " + ref_summary["run_id"].get<std::string>() + " --store runs.db --json");
  EXPECT_EQ(run["metrics"].size(), json::parse(ref_show.out)["metrics"].size());
}

TEST(Resume, CharGptKilledAtRandomMomentsEndsBitIdentical) {
  Scratch s("resume-gpt");
  write_file(s / "text.txt", gpt_text());
  write_file(s / "job.toml", kGptJob);
  CommandResult ref = s.frugal("train job.toml --json --out ref");
  ASSERT_EQ(ref.exit_code, 0) << ref.err;

  std::vector<Kill> plan = {Kill::kill_random, Kill::term_random, Kill::kill_in_write, Kill::kill_random,
                            Kill::kill_in_write, Kill::term_random};
  KillReport report = run_with_kills(s, "run", plan, last_json(ref.out)["steps"].get<int64_t>(), false);
  EXPECT_GE(report.interruptions, 5);
  EXPECT_GE(report.exits_75, 1);
  EXPECT_GE(report.kills_during_write, 1);
  std::string a = read_file(s / "ref" / "model.safetensors"), b = read_file(s / "run" / "model.safetensors");
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "the interrupted run's weights differ from the uninterrupted run's";
  EXPECT_EQ(report.final_summary["metrics"], last_json(ref.out)["metrics"]);
  for (const char* key : {"flops", "flops_forward", "flops_backward", "flops_eval"}) {
    ASSERT_TRUE(last_json(ref.out)[key].is_number()) << key;
    EXPECT_EQ(report.final_summary[key], last_json(ref.out)[key]) << key;
  }
}

// A short run stopped by SIGTERM after a few checkpoints, for the fallback and refusal tests.
struct Preempted {
  std::string ref_model;
};

Preempted preempted_run(const Scratch& s) {
  write_file(s / "data.csv", testing::four_class_csv(800));
  write_file(s / "job.toml", kMlpJob);
  CommandResult ref = s.frugal("train job.toml --json --out ref");
  EXPECT_EQ(ref.exit_code, 0) << ref.err;
  // SIGTERM once the third checkpoint exists: mid-run, with keep = 3 files to fall back on.
  fs::create_directories(s / "run" / "checkpoints");
  Process p(s, train_args("run", false), "first");
  while (!p.done() && checkpoint_files(s / "run" / "checkpoints").size() < 3)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  p.kill_with(SIGTERM);
  int status = p.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 75) << p.err();
  return {read_file(s / "ref" / "model.safetensors")};
}

void flip_byte(const std::string& path, size_t offset) {
  std::string bytes = read_file(path);
  ASSERT_LT(offset, bytes.size());
  bytes[offset] ^= 0x5a;
  write_file(path, bytes);
}

TEST(Resume, CorruptedNewestCheckpointFallsBackToThePrevious) {
  Scratch s("resume-corrupt");
  Preempted run = preempted_run(s);
  std::vector<std::string> files = checkpoint_files(s / "run" / "checkpoints");
  ASSERT_EQ(files.size(), 3u);
  // Newest: one flipped byte in the tensor data; second newest: torn (truncated).
  flip_byte(files[2], fs::file_size(files[2]) / 2);
  fs::resize_file(files[1], fs::file_size(files[1]) - 100);
  CommandResult r = s.frugal("train job.toml --json --out run --resume auto");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(fs::path(files[2]).filename().string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(fs::path(files[1]).filename().string()), std::string::npos) << r.err;
  json summary = last_json(r.out);
  EXPECT_EQ(fs::path(summary["resumed_from"].get<std::string>()).filename(), fs::path(files[0]).filename());
  EXPECT_TRUE(read_file(s / "run" / "model.safetensors") == run.ref_model);
}

TEST(Resume, AllCheckpointsCorruptedIsExit2AndTouchesNothing) {
  Scratch s("resume-all-corrupt");
  preempted_run(s);
  for (const std::string& f : checkpoint_files(s / "run" / "checkpoints")) flip_byte(f, 30);
  auto snapshot = [&] {
    std::map<std::string, std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(s.dir()))
      if (e.is_regular_file() && e.path().filename().string()[0] != '.')
        files[e.path().string()] = read_file(e.path());
    return files;
  };
  auto before = snapshot();
  CommandResult r = s.frugal("train job.toml --json --out run --resume auto");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("checkpoint-"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("internal"), std::string::npos) << r.err;
  EXPECT_TRUE(snapshot() == before) << "a failed resume changed files";
}

TEST(Resume, ChangedLearningRateIsRefusedNamingIt) {
  Scratch s("resume-refuse");
  Preempted run = preempted_run(s);
  CommandResult r = s.frugal("train job.toml --json --out run --resume auto --set optim.lr=0.01");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("optim.lr"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("train.log_every ("), std::string::npos) << r.err;
  // A fresh run into a directory holding checkpoints would lose them: refused too.
  CommandResult fresh = s.frugal("train job.toml --json --out run");
  EXPECT_EQ(fresh.exit_code, 2);
  EXPECT_NE(fresh.err.find("--resume auto"), std::string::npos) << fresh.err;
  // Keys that cannot change the result may differ; the weights still match the uninterrupted run.
  CommandResult ok = s.frugal("train job.toml --json --out run --resume auto --set train.log_every=3 "
                              "--set checkpoint.every_steps=6 --set checkpoint.keep=2");
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_TRUE(read_file(s / "run" / "model.safetensors").size() > 0);
  // (job_hash in the metadata differs with log_every, so compare the tensors, not the bytes.)
  CommandResult e1 = s.frugal("eval job.toml --weights ref/model.safetensors --split val --json");
  CommandResult e2 = s.frugal("eval job.toml --weights run/model.safetensors --split val --json");
  ASSERT_EQ(e1.exit_code, 0) << e1.err;
  EXPECT_EQ(json::parse(e1.out)["loss"], json::parse(e2.out)["loss"]);
}

TEST(Resume, ResumeFromAGivenFile) {
  Scratch s("resume-path");
  Preempted run = preempted_run(s);
  std::vector<std::string> files = checkpoint_files(s / "run" / "checkpoints");
  ASSERT_FALSE(files.empty());
  CommandResult r = s.frugal("train job.toml --json --resume " + files.front());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json summary = last_json(r.out);
  EXPECT_EQ(summary["out_dir"], "run") << "the run directory comes from the checkpoint";
  EXPECT_TRUE(read_file(s / "run" / "model.safetensors") == run.ref_model);
  CommandResult missing = s.frugal("train job.toml --resume nowhere.fck");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("nowhere.fck"), std::string::npos);
}

TEST(Resume, AutoOnACompletedRunRedoesNothing) {
  Scratch s("resume-completed");
  Preempted run = preempted_run(s);
  CommandResult finish = s.frugal("train job.toml --json --out run --resume auto");
  ASSERT_EQ(finish.exit_code, 0) << finish.err;
  const std::string model = read_file(s / "run" / "model.safetensors");
  const std::string metrics = read_file(s / "run" / "metrics.jsonl");
  CommandResult again = s.frugal("train job.toml --json --out run --resume auto");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("already completed"), std::string::npos) << again.err;
  EXPECT_EQ(last_json(again.out)["status"], "completed");
  EXPECT_TRUE(read_file(s / "run" / "model.safetensors") == model);
  EXPECT_EQ(read_file(s / "run" / "metrics.jsonl"), metrics) << "nothing was redone or logged again";
  (void)run;
}

TEST(Resume, AutoIntervalIsYoungDalyForTheMeasuredCost) {
  Scratch s("resume-auto-interval");
  write_file(s / "data.csv", testing::four_class_csv(800));
  std::string job = kMlpJob;
  job = job.substr(0, job.find("[checkpoint]")) + "[checkpoint]\ninterval = \"auto\"\nmtbi = 2.0\n";
  write_file(s / "job.toml", job);
  CommandResult r = s.frugal("train job.toml --json --out run");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json summary = last_json(r.out);
  double write_s = summary["checkpoint_write_s"], interval = summary["checkpoint_interval_s"];
  EXPECT_GT(write_s, 0);
  EXPECT_DOUBLE_EQ(interval, io::young_daly_interval(write_s, 2.0));
  EXPECT_DOUBLE_EQ(summary["expected_lost_s_per_interruption"].get<double>(),
                   io::expected_lost_seconds_per_interruption(interval, write_s));
  EXPECT_GE(summary["checkpoints"].get<int64_t>(), 1);
  EXPECT_NE(r.err.find("Young/Daly"), std::string::npos) << r.err;
}

TEST(Resume, CheckpointSectionIsValidatedStrictly) {
  Scratch s("resume-validate");
  write_file(s / "data.csv", testing::four_class_csv(100));
  std::string base = kMlpJob;
  base = base.substr(0, base.find("[checkpoint]"));
  struct Case { std::string section, expected; };
  for (const Case& c : std::vector<Case>{
           {"[checkpoint]\nevry_steps = 3\n", "did you mean 'every_steps'"},
           {"[checkpoint]\nkeep = 0\n", "keep"},
           {"[checkpoint]\ninterval = \"auto\"\n", "mtbi"},
           {"[checkpoint]\ninterval = \"sometimes\"\n", "auto"},
           {"[checkpoint]\nmtbi = 100.0\n", "interval"},
           {"[checkpoint]\ninterval = \"auto\"\nmtbi = 10.0\nevery_seconds = 5.0\n", "every_seconds"},
           {"[checkpiont]\nkeep = 2\n", "did you mean 'checkpoint'"}}) {
    write_file(s / "job.toml", base + c.section);
    CommandResult r = s.frugal("train job.toml --out run");
    EXPECT_EQ(r.exit_code, 2) << c.section;
    EXPECT_NE(r.err.find(c.expected), std::string::npos) << c.section << "\n" << r.err;
    EXPECT_NE(r.err.find("job.toml"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace frugal::e2e
