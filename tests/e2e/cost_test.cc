// Cost accounting end to end through the real binary: every summary figure carries its source and
// energy is non-zero (estimated without readable RAPL), the training and evaluation FLOPs are the
// counted ones, phases add up to the wall time, `compare` shows compute and its ratio, unknown
// instances and bad budgets are exit 2, and a budget stop (exit 3, checkpoint) resumed with a larger
// budget ends with the same weights as an unbudgeted run. Limits: tiny runs, so the dollar figures
// are dominated by the 60 s billing minimum (which is what makes a tiny budget trip at step 1).
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "e2e/cli_helpers.h"
#include "frugal/io/safetensors.h"

namespace frugal::e2e {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// A 4-class problem in 8 features from a fixed LCG, so every run of the test sees the same file.
std::string make_csv(int rows) {
  std::string out = "x0,x1,x2,x3,x4,x5,x6,x7,label\n";
  uint64_t state = 987;
  auto uniform = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return double(state >> 11) / double(1ull << 53);
  };
  for (int r = 0; r < rows; ++r) {
    int label = int(uniform() * 4);
    for (int i = 0; i < 8; ++i) {
      char buffer[32];
      std::snprintf(buffer, sizeof buffer, "%.4f,", (uniform() - 0.5) * 2 + (i % 4 == label ? 0.7 : 0.0));
      out += buffer;
    }
    out += std::to_string(label) + "\n";
  }
  return out;
}

const char* kJob =
    "[run]\nname = \"cost\"\nseed = 5\nthreads = 1\nstore = \"runs.db\"\n"
    "[data]\nkind = \"csv\"\ntrain = \"data.csv\"\nval_fraction = 0.1\n"
    "[model]\nkind = \"mlp\"\nhidden = [32]\ndropout = 0.1\n"
    "[optim]\nlr = 0.003\n"
    "[train]\nepochs = 3\nbatch_size = 16\nlog_every = 5\n"
    "[checkpoint]\nevery_steps = 7\n";

Scratch make_scratch(const std::string& name, const std::string& extra = "") {
  Scratch s(name);
  write_file(s / "data.csv", make_csv(400));
  write_file(s / "job.toml", std::string(kJob) + extra);
  return s;
}

json summary_of(const CommandResult& r) { return json::parse(last_line(r.out), nullptr, false); }

// Tensors of a safetensors file by name, as raw bytes (the metadata holds the job hash, which differs
// when only the budget keys differ, so the files are compared tensor by tensor).
std::map<std::string, std::string> tensor_bytes(const fs::path& path) {
  io::SafetensorsFile file = io::read_safetensors(path.string());
  std::map<std::string, std::string> out;
  for (auto& [name, t] : file.tensors) {
    Tensor c = t.contiguous();
    out[name] = std::string(static_cast<const char*>(c.raw_data()), size_t(c.numel()) * dtype_size(c.dtype()));
  }
  return out;
}

bool rapl_readable() {
  std::error_code error;
  for (const auto& e : fs::directory_iterator("/sys/class/powercap", error)) {
    std::ifstream in(e.path() / "energy_uj");
    uint64_t v = 0;
    if (in >> v) return true;
  }
  return false;
}

// A bf16-mixed run's matmuls run in bf16: its MFU is taken against the bf16 peak (where the CPU
// has AVX512-BF16, which this project's machines do), and the printed summary names it.
TEST(Cost, MfuUsesThePeakOfTheRunsPrecision) {
  Scratch s = make_scratch("cost_mfu_bf16");
  CommandResult r = s.frugal("train job.toml --json --out run --set precision.mode='\"bf16-mixed\"'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = summary_of(r);
  ASSERT_TRUE(j["mfu"].is_number()) << j.dump();
  EXPECT_EQ(j["mfu_peak_flops"]["precision"], "bf16");
  EXPECT_EQ(j["mfu_peak_flops"]["source"], "measured");
  EXPECT_GT(j["mfu"].get<double>(), 0.0);
  EXPECT_LT(j["mfu"].get<double>(), 1.0);
  CommandResult text = s.frugal("train job.toml --out run2 --set precision.mode='\"bf16-mixed\"'");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("of the bf16 peak"), std::string::npos) << text.out;
}

TEST(Cost, SummaryCarriesEveryFigureWithItsSource) {
  Scratch s = make_scratch("cost_summary");
  CommandResult r = s.frugal("train job.toml --json --out run");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = summary_of(r);
  ASSERT_TRUE(j.is_object()) << r.out;
  const json& c = j["cost"];
  EXPECT_EQ(c["instance"], "local");
  for (const char* key : {"usd", "kwh", "co2_kg", "hours"}) {
    ASSERT_TRUE(c.contains(key)) << key;
    EXPECT_TRUE(c[key]["value"].is_number()) << key;
    std::string source = c[key]["source"];
    EXPECT_TRUE(source == "measured" || source == "estimated" || source == "catalog" || source == "user") << source;
  }
  // No readable RAPL here: energy is the power model's estimate, and never a silent zero.
  EXPECT_GT(c["kwh"]["value"].get<double>(), 0.0);
  if (!rapl_readable()) {
    EXPECT_EQ(c["kwh"]["source"], "estimated");
  }
  EXPECT_GT(c["co2_kg"]["value"].get<double>(), 0.0);
  EXPECT_EQ(c["co2_kg"]["source"], "catalog");
  EXPECT_EQ(c["usd"]["value"].get<double>(), 0.0);  // local is free unless the user prices it
  EXPECT_EQ(c["hours"]["source"], "measured");
  EXPECT_NEAR(c["hours"]["value"].get<double>() * 3600, j["wall_s"].get<double>(), 1e-6);
  // Training FLOPs as the dense ops counted them, every training micro-batch (evaluation not): the
  // MLP 8 -> 32 -> 4 runs its forward, flops_per_sample, for every sample, and a backward of twice
  // that minus the first Linear's input gradient (2 x 8 x 32 per sample), which the data never needs.
  const double samples = j["samples_seen"].get<double>();
  EXPECT_EQ(j["flops_per_sample"].get<double>(), 2.0 * (8 * 32 + 32 * 4));
  EXPECT_EQ(j["flops_forward"].get<double>(), j["flops_per_sample"].get<double>() * samples);
  EXPECT_EQ(j["flops_backward"].get<double>(),
            2.0 * j["flops_per_sample"].get<double>() * samples - 2.0 * 8 * 32 * samples);
  EXPECT_EQ(j["flops"].get<double>(), j["flops_forward"].get<double>() + j["flops_backward"].get<double>());
  EXPECT_EQ(j["flops_source"], "counted");
  // Achieved FLOP/s: the counted training FLOPs over the wall time (what mfu divides by the peak).
  EXPECT_EQ(j["flops_per_s"].get<double>(), j["flops"].get<double>() / j["wall_s"].get<double>());
  // Evaluation counts apart: a forward over the 40 validation rows per evaluation (each epoch's
  // and the final metrics'), none of it in flops.
  const double eval_passes = j["flops_eval"].get<double>() / (j["flops_per_sample"].get<double>() * 40);
  EXPECT_EQ(eval_passes, std::floor(eval_passes)) << j["flops_eval"];
  EXPECT_GE(eval_passes, 2.0);
  // local states no peak, so MFU is taken against the peak measured on this machine, f32 for an
  // fp32 run.
  EXPECT_GT(j["cpu_s"].get<double>(), 0.0);
  EXPECT_GT(j["cpu_utilization"].get<double>(), 0.0);
  EXPECT_LE(j["cpu_utilization"].get<double>(), 1.05);
  ASSERT_TRUE(j["mfu"].is_number()) << j.dump();
  EXPECT_EQ(j["mfu_peak_flops"]["source"], "measured");
  EXPECT_EQ(j["mfu_peak_flops"]["precision"], "fp32");
  EXPECT_GT(j["mfu_peak_flops"]["value"].get<double>(), 1e9);
  EXPECT_GT(j["mfu"].get<double>(), 0.0);
  EXPECT_LT(j["mfu"].get<double>(), 1.0);
  // Phases add up to the wall time (within 5%), and the training phases all took time.
  double total = 0;
  for (auto& [name, v] : j["phases"].items()) total += v.get<double>();
  EXPECT_NEAR(total, j["wall_s"].get<double>(), 0.05 * j["wall_s"].get<double>());
  for (const char* phase : {"data_wait", "forward", "backward", "optimizer", "evaluation", "checkpoint"})
    EXPECT_GT(j["phases"][phase].get<double>(), 0.0) << phase;
  // The run store keeps the same summary; the human summary prints the cost table with sources.
  CommandResult shown = s.frugal("runs show " + j["run_id"].get<std::string>() + " --store runs.db --json");
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_EQ(json::parse(shown.out)["summary"]["cost"]["kwh"], c["kwh"]);
  // Projections: estimated, with the method, hours = the counted FLOPs / (peak x efficiency).
  ASSERT_TRUE(j["projections"].is_array());
  ASSERT_GE(j["projections"].size(), 2u);
  for (const json& p : j["projections"]) {
    for (const char* key : {"hours", "usd", "kwh", "co2_kg"}) EXPECT_EQ(p[key]["source"], "estimated");
    EXPECT_NE(p["method"].get<std::string>().find("efficiency"), std::string::npos);
    EXPECT_GT(p["hours"]["value"].get<double>(), 0.0);
  }
  const json& first = j["projections"][0];
  EXPECT_EQ(first["instance"], "c7i.2xlarge");
  EXPECT_NEAR(first["hours"]["value"].get<double>(),
              j["flops"].get<double>() / (0.819e12 * first["efficiency"].get<double>()) / 3600, 1e-18);
  CommandResult show = s.frugal("runs show " + j["run_id"].get<std::string>() + " --store runs.db");
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("projections (estimated"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("a2-highgpu-1g"), std::string::npos) << show.out;
  CommandResult human = s.frugal("train job.toml --out human");
  ASSERT_EQ(human.exit_code, 0) << human.err;
  EXPECT_NE(human.out.find("energy"), std::string::npos);
  EXPECT_NE(human.out.find("estimated"), std::string::npos);
}

TEST(Cost, PricedInstanceUserOverridesAndCatalog) {
  Scratch s = make_scratch("cost_priced",
                           "[cost]\ninstance = \"c7i.2xlarge\"\npricing = \"spot\"\nbilling = \"hour\"\n"
                           "carbon_g_per_kwh = 100\n");
  CommandResult r = s.frugal("train job.toml --json --out run");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json c = summary_of(r)["cost"];
  EXPECT_EQ(c["pricing"], "spot");
  EXPECT_EQ(c["billing"], "per-hour");
  // Per-hour billing: one started hour at the spot price.
  EXPECT_NEAR(c["usd"]["value"].get<double>(), c["usd_per_hour"].get<double>(), 1e-12);
  EXPECT_GT(c["usd"]["value"].get<double>(), 0.0);
  EXPECT_EQ(c["usd"]["source"], "catalog");
  EXPECT_EQ(c["co2_kg"]["source"], "user");
  EXPECT_NEAR(c["co2_kg"]["value"].get<double>(), c["kwh"]["value"].get<double>() * 0.1, 1e-15);
  EXPECT_TRUE(summary_of(r)["mfu"].is_number());  // the catalog states c7i's fp32 peak

  // A user catalog file merged over the shipped one prices `local`; its source says "user".
  write_file(s / "mine.toml", "[instance.local]\nusd_per_hour = 3.6\n");
  CommandResult u = s.frugal("train job.toml --json --out user --set cost.instance='\"local\"' "
                             "--set cost.catalog='\"mine.toml\"' --set cost.billing='\"second\"' "
                             "--set cost.pricing='\"on-demand\"'");
  ASSERT_EQ(u.exit_code, 0) << u.err;
  json cu = summary_of(u)["cost"];
  EXPECT_EQ(cu["usd"]["source"], "user");
  EXPECT_NEAR(cu["usd"]["value"].get<double>(), 3.6 * 60 / 3600, 1e-12);  // the 60 s minimum
}

TEST(Cost, UnknownInstanceAndBadValuesAreExit2) {
  Scratch s = make_scratch("cost_errors");
  CommandResult r = s.frugal("train job.toml --out run --set cost.instance='\"c7i.2xlarg\"'");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("c7i.2xlarg"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("did you mean 'c7i.2xlarge'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(s / "run"));
  CommandResult b = s.frugal("train job.toml --out run --set budget.max_usd=-1");
  EXPECT_EQ(b.exit_code, 2);
  EXPECT_NE(b.err.find("max_usd"), std::string::npos) << b.err;
  CommandResult k = s.frugal("train job.toml --out run --set budget.max_dollars=1");
  EXPECT_EQ(k.exit_code, 2);
  EXPECT_NE(k.err.find("max_dollars"), std::string::npos) << k.err;
  CommandResult p = s.frugal("train job.toml --out run --set cost.pricing='\"reserved\"'");
  EXPECT_EQ(p.exit_code, 2);
  EXPECT_NE(p.err.find("pricing"), std::string::npos) << p.err;
  CommandResult cli = s.frugal("train job.toml --out run --budget-usd 0");
  EXPECT_EQ(cli.exit_code, 2);
  EXPECT_NE(cli.err.find("--budget-usd"), std::string::npos) << cli.err;
  write_file(s / "bad.toml", "[instance.local]\nusd_per_hour = -2\n");
  CommandResult cat = s.frugal("train job.toml --out run --set cost.catalog='\"bad.toml\"'");
  EXPECT_EQ(cat.exit_code, 2);
  EXPECT_NE(cat.err.find("bad.toml"), std::string::npos) << cat.err;
}

TEST(Cost, BudgetStopsWithCheckpointAndResumeFinishesBitExact) {
  Scratch s = make_scratch("cost_budget", "[cost]\ninstance = \"c7i.2xlarge\"\n");
  CommandResult ref = s.frugal("train job.toml --json --out ref");
  ASSERT_EQ(ref.exit_code, 0) << ref.err;

  // The 60 s billing minimum costs more than $0.001 at once: the run stops after its first step.
  CommandResult stopped = s.frugal("train job.toml --json --out run --set budget.max_usd=0.001");
  ASSERT_EQ(stopped.exit_code, 3) << stopped.err;
  json j = summary_of(stopped);
  EXPECT_EQ(j["status"], "stopped_budget");
  EXPECT_EQ(j["stop_reason"], "budget");
  EXPECT_EQ(j["steps"], 1);
  EXPECT_EQ(j["checkpoints"], 1);
  EXPECT_FALSE(fs::exists(s / "run" / "model.safetensors"));
  bool checkpoint = false;
  for (const auto& e : fs::directory_iterator(s / "run" / "checkpoints"))
    checkpoint |= e.path().extension() == ".fck";
  EXPECT_TRUE(checkpoint);
  // The warnings are log lines and rows of metrics.jsonl.
  EXPECT_NE(stopped.err.find("budget exceeded: max_usd"), std::string::npos) << stopped.err;
  std::istringstream rows(read_file(s / "run" / "metrics.jsonl"));
  std::string line;
  int budget_rows = 0;
  while (std::getline(rows, line)) {
    json row = json::parse(line);
    if (row["kind"] == "budget") {
      ++budget_rows;
      EXPECT_EQ(row["limit"], "max_usd");
    }
  }
  EXPECT_GE(budget_rows, 1);

  // The same budget on the command line stops again; a larger one finishes the run.
  CommandResult again = s.frugal("train job.toml --json --out run --resume auto --set budget.max_usd=0.001");
  EXPECT_EQ(again.exit_code, 3) << again.err;
  CommandResult done = s.frugal("train job.toml --json --out run --resume auto --set budget.max_usd=0.001 "
                                "--budget-usd 100");
  ASSERT_EQ(done.exit_code, 0) << done.err;
  json d = summary_of(done);
  EXPECT_EQ(d["status"], "completed");
  EXPECT_EQ(d["steps"], summary_of(ref)["steps"]);
  EXPECT_TRUE(tensor_bytes(s / "run" / "model.safetensors") == tensor_bytes(s / "ref" / "model.safetensors"));
  // Meters carry across the resumes: phases still add up to the (cumulative) wall time.
  double total = 0;
  for (auto& [name, v] : d["phases"].items()) total += v.get<double>();
  EXPECT_NEAR(total, d["wall_s"].get<double>(), 0.05 * d["wall_s"].get<double>());
  EXPECT_GT(d["cost"]["kwh"]["value"].get<double>(), 0.0);
}

TEST(Cost, CompareNamesTheDifferingKeyAndGivesAVerdict) {
  Scratch s = make_scratch("cost_compare", "[cost]\ninstance = \"c7i.2xlarge\"\n");
  CommandResult a = s.frugal("train job.toml --json --out a");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  CommandResult b = s.frugal("train job.toml --json --out b --set cost.pricing='\"spot\"'");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  json sa = summary_of(a), sb = summary_of(b);

  // By run id from the store, as JSON.
  CommandResult c = s.frugal("compare " + sa["run_id"].get<std::string>() + " " + sb["run_id"].get<std::string>() +
                             " --store runs.db --json");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  json j = json::parse(c.out);
  ASSERT_EQ(j["job_differences"].size(), 1u) << j.dump();
  EXPECT_EQ(j["job_differences"][0]["key"], "cost.pricing");
  EXPECT_EQ(j["job_differences"][0]["b"], "\"spot\"");
  EXPECT_EQ(j["usd"]["a"], sa["cost"]["usd"]["value"]);
  EXPECT_EQ(j["usd"]["b"], sb["cost"]["usd"]["value"]);
  // Same seed and job math: the same quality; spot is cheaper than on-demand for the billed minute.
  EXPECT_EQ(j["metric"]["name"], "val_accuracy");
  EXPECT_EQ(j["metric"]["a"], j["metric"]["b"]);
  double change = (j["usd"]["b"].get<double>() - j["usd"]["a"].get<double>()) / j["usd"]["a"].get<double>();
  ASSERT_LT(change, 0.0);
  char expected[128];
  double accuracy = 100 * sa["metrics"]["val_accuracy"].get<double>();
  std::snprintf(expected, sizeof expected, " reached %.1f%% vs %.1f%% val_accuracy for %.0f%% less cost", accuracy,
                accuracy, -100 * change);
  EXPECT_EQ(j["verdict"], sb["run_id"].get<std::string>() + expected);

  // By run directory, as text; `frugal runs` shows the cost columns.
  CommandResult t = s.frugal("compare a b");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("cost.pricing: (not set) -> \"spot\""), std::string::npos) << t.out;
  EXPECT_NE(t.out.find(std::string("b") + expected), std::string::npos) << t.out;
  CommandResult runs = s.frugal("runs --store runs.db");
  ASSERT_EQ(runs.exit_code, 0) << runs.err;
  EXPECT_NE(runs.out.find("USD"), std::string::npos);
  EXPECT_NE(runs.out.find("ENERGY"), std::string::npos);
  EXPECT_TRUE(std::regex_search(runs.out, std::regex(" [0-9.]+ m?Wh\\b"))) << runs.out;  // human units (base/units.h)
  CommandResult missing = s.frugal("compare a nosuchrun --store runs.db");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("nosuchrun"), std::string::npos);
}

// Compute in the verdict: B, with a quarter of A's hidden width, trains on the same samples with a
// quarter of A's counted FLOPs (forward 2 x (8 h + 4 h) per sample, backward twice it minus the first
// layer's input gradient 2 x 8 h: 56 h per sample in all).
TEST(Cost, CompareShowsTheCountedComputeAndItsRatio) {
  Scratch s = make_scratch("cost_compare_compute");
  CommandResult a = s.frugal("train job.toml --json --out a");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  CommandResult b = s.frugal("train job.toml --json --out b --set 'model.hidden=[8]'");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  json sa = summary_of(a), sb = summary_of(b);
  EXPECT_EQ(sa["flops"].get<double>(), 56.0 * 32 * sa["samples_seen"].get<double>());
  EXPECT_EQ(sb["flops"].get<double>(), 56.0 * 8 * sb["samples_seen"].get<double>());

  CommandResult c = s.frugal("compare a b --json");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  json j = json::parse(c.out);
  EXPECT_EQ(j["flops"]["a"], sa["flops"]);
  EXPECT_EQ(j["flops"]["b"], sb["flops"]);
  EXPECT_EQ(j["flops"]["a_source"], "counted");
  EXPECT_EQ(j["flops"]["b_source"], "counted");
  EXPECT_EQ(j["flops"]["ratio"].get<double>(), 0.25);
  EXPECT_EQ(j["flops"]["change"].get<double>(), -0.75);
  const std::string verdict = j["verdict"];
  EXPECT_NE(verdict.find(", 75% less compute"), std::string::npos) << verdict;

  CommandResult t = s.frugal("compare a b");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("compute (FLOP)"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("-75.0%   [counted / counted]   B/A 0.25x"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find(verdict), std::string::npos) << t.out;
}

// Equal quality and pretraining in compare: B, one epoch from the weights of a pretrained run P,
// against A, three epochs from scratch. compare names the first of B's evaluations that reached A's
// final val_accuracy (found here by reading B's metrics.jsonl), and P's energy with the number of
// runs like B that pay it back (the runs are free on `local`, so the basis is energy).
TEST(Cost, CompareSaysWhenBReachedAAndWhatItsPretrainingCost) {
  Scratch s = make_scratch("cost_compare_pretraining");
  CommandResult a = s.frugal("train job.toml --json --out a");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  CommandResult p = s.frugal("train job.toml --json --out p --set run.seed=6");
  ASSERT_EQ(p.exit_code, 0) << p.err;
  write_file(s / "finetune.toml", std::string(kJob) + "[init]\nfrom = \"p\"\n");
  CommandResult b = s.frugal("train finetune.toml --json --out b --set train.epochs=1");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  json sa = summary_of(a), sp = summary_of(p), sb = summary_of(b);

  CommandResult c = s.frugal("compare a b --json");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  json j = json::parse(c.out);
  ASSERT_EQ(j["metric"]["name"], "val_accuracy");
  const double target = sa["metrics"]["val_accuracy"];
  json expected = nullptr;
  std::ifstream rows(s / "b" / "metrics.jsonl");
  for (std::string line; std::getline(rows, line);) {
    json row = json::parse(line);
    if (row["kind"] == "eval" && row["val_accuracy"].get<double>() >= target) {
      expected = row;
      break;
    }
  }
  if (expected.is_null()) {
    EXPECT_TRUE(j["b_reached_a"].is_null()) << j.dump();
  } else {
    ASSERT_TRUE(j["b_reached_a"].is_object()) << j.dump();
    EXPECT_EQ(j["b_reached_a"]["step"], expected["step"]);
    EXPECT_EQ(j["b_reached_a"]["time_s"], expected["time_s"]);
    EXPECT_EQ(j["b_reached_a"]["target"], target);
  }
  ASSERT_TRUE(j["pretraining"].is_object()) << j.dump();
  EXPECT_EQ(j["pretraining"]["run_id"], sp["run_id"]);
  EXPECT_EQ(j["pretraining"]["kwh"], sp["cost"]["kwh"]["value"]);
  EXPECT_EQ(j["pretraining"]["flops"], sp["flops"]);
  const double saved = sa["cost"]["kwh"]["value"].get<double>() - sb["cost"]["kwh"]["value"].get<double>();
  ASSERT_GT(saved, 0) << "one epoch should use less energy than three";
  EXPECT_DOUBLE_EQ(j["pretraining"]["break_even_runs"].get<double>(), sp["cost"]["kwh"]["value"].get<double>() / saved);
  if (!expected.is_null()) {  // B's energy to the evaluation that reached A, pro rata of its wall time
    const double share = expected["time_s"].get<double>() / sb["wall_s"].get<double>();
    const double a_kwh = sa["cost"]["kwh"]["value"], b_kwh = sb["cost"]["kwh"]["value"];
    EXPECT_DOUBLE_EQ(j["b_reached_a"]["share_of_a"].get<double>(), b_kwh * share / a_kwh);
    EXPECT_DOUBLE_EQ(j["pretraining"]["break_even_runs_at_equal_quality"].get<double>(),
                     sp["cost"]["kwh"]["value"].get<double>() / (a_kwh - b_kwh * share));
  }

  CommandResult t = s.frugal("compare a b");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("B started from " + sp["run_id"].get<std::string>()), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("paid back after"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find(expected.is_null() ? "never reached A's final val_accuracy" : "reached A's final val_accuracy"),
            std::string::npos)
      << t.out;
  // A run that did not start from weights has no pretraining line.
  CommandResult back = s.frugal("compare b a --json");
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_FALSE(json::parse(back.out).contains("pretraining"));
}

}  // namespace
}  // namespace frugal::e2e
