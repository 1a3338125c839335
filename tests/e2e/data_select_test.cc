// Issue 21's data selection through the real binary on tiny jobs: `frugal data score` writes a score
// file that a [data_pruning] run uses (its summary counting the scoring run's cost), `frugal active`
// runs its rounds, [data] dedup removes planted duplicate lines of a text; bad inputs exit 2 with one
// line naming what is wrong (a score file of another data set, fraction 0 and 1.5, an unknown
// strategy or score kind).
#include <filesystem>

#include <nlohmann/json.hpp>

#include "csv_data.h"
#include "e2e/cli_helpers.h"

namespace frugal::e2e {
namespace {

using json = nlohmann::json;

std::string csv_job(const std::string& data, const std::string& extra = "") {
  return "[run]\nname = \"select\"\nseed = 2\nthreads = 1\nstore = \"runs.db\"\n[data]\nkind = \"csv\"\ntrain = \"" + data +
         "\"\nval_fraction = 0.1\ntest_fraction = 0.2\n[model]\nkind = \"mlp\"\nhidden = [16]\n"
         "[optim]\nlr = 0.01\n[train]\nepochs = 3\nbatch_size = 16\n" + extra;
}

TEST(DataSelect, ScoreThenPruneCountsTheScoringRun) {
  Scratch s("data-select-prune");
  write_file(s / "data.csv", frugal::testing::four_class_csv(300));
  write_file(s / "job.toml", csv_job("data.csv"));
  CommandResult r = s.frugal("data score job.toml --out scores.safetensors --epochs 2 --run-out scoring --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("el2n, grand, loss, forgetting for 216 training rows"), std::string::npos) << r.out;
  ASSERT_TRUE(std::filesystem::exists(s / "scores.safetensors"));

  write_file(s / "pruned.toml", csv_job("data.csv", "[data_pruning]\nscores = \"scores.safetensors\"\nscore = \"forgetting\"\n"
                                                    "fraction = 0.5\nkeep = \"random\"\n"));
  json summary = run_json(s, "train pruned.toml --json --quiet --out pruned");
  const json& p = summary["techniques"]["data_pruning"];
  EXPECT_EQ(p["kept"], 108) << p.dump();
  EXPECT_EQ(p["of"], 216);  // 300 rows less the val and test fractions
  EXPECT_EQ(summary["samples_seen"], 3 * 108);
  EXPECT_TRUE(p["scoring_cost"]["run_id"].is_string()) << p.dump();
  EXPECT_GT(p["total_with_scoring"]["wall_s"].get<double>(), summary["wall_s"].get<double>());
  CommandResult printed = s.frugal("train pruned.toml --quiet --out pruned-printed");
  ASSERT_EQ(printed.exit_code, 0) << printed.err;
  EXPECT_NE(printed.out.find("data pruning: kept 108 of 216"), std::string::npos) << printed.out;
  // frugal compare counts the scoring run in B's total.
  write_file(s / "full.toml", csv_job("data.csv"));
  ASSERT_EQ(s.frugal("train full.toml --quiet --out full").exit_code, 0);
  CommandResult compared = s.frugal("compare full pruned --store runs.db --json");
  ASSERT_EQ(compared.exit_code, 0) << compared.err;
  json c = json::parse(last_line(compared.out));
  EXPECT_NEAR(c["upstream"]["b_total"].get<double>(), p["total_with_scoring"]["kwh"].get<double>(), 1e-15) << c.dump();
  EXPECT_EQ(c["upstream"]["b_scoring"]["run_id"], p["scoring_cost"]["run_id"]);
  CommandResult text = s.frugal("compare full pruned --store runs.db");
  EXPECT_NE(text.out.find("with the data scoring runs they used counted in"), std::string::npos) << text.out;
}

TEST(DataSelect, BadInputsExit2NamingTheProblem) {
  Scratch s("data-select-bad");
  write_file(s / "small.csv", frugal::testing::four_class_csv(100));
  write_file(s / "data.csv", frugal::testing::four_class_csv(300));
  write_file(s / "small.toml", csv_job("small.csv"));
  ASSERT_EQ(s.frugal("data score small.toml --out small.safetensors --epochs 1 --run-out scoring --quiet").exit_code, 0);
  write_file(s / "other.toml", csv_job("data.csv", "[data_pruning]\nscores = \"small.safetensors\"\n"));
  CommandResult other = s.frugal("train other.toml --quiet --out other");
  EXPECT_EQ(other.exit_code, 2);
  EXPECT_NE(other.err.find("small.safetensors"), std::string::npos) << other.err;
  EXPECT_FALSE(std::filesystem::exists(s / "other" / "model.safetensors"));
  for (const char* fraction : {"0", "1.5"}) {
    write_file(s / "f.toml", csv_job("data.csv", std::string("[data_pruning]\nscores = \"small.safetensors\"\nfraction = ") +
                                                      fraction + "\n"));
    CommandResult f = s.frugal("train f.toml --quiet --out f");
    EXPECT_EQ(f.exit_code, 2) << fraction;
    EXPECT_NE(f.err.find("fraction"), std::string::npos) << f.err;
    EXPECT_NE(f.err.find("(0, 1]"), std::string::npos) << f.err;
  }
  CommandResult kinds = s.frugal("data score small.toml --out x.safetensors --kinds el2n,margin");
  EXPECT_EQ(kinds.exit_code, 2);
  EXPECT_NE(kinds.err.find("margin"), std::string::npos) << kinds.err;
  CommandResult strategy = s.frugal("active data.toml --budget 40 --initial 20 --batch 10 --strategy entropi");
  EXPECT_EQ(strategy.exit_code, 2);
  EXPECT_NE(strategy.err.find("entropi"), std::string::npos) << strategy.err;
}

TEST(DataSelect, ActiveLearningRunsItsRounds) {
  Scratch s("data-select-active");
  write_file(s / "data.csv", frugal::testing::four_class_csv(300));
  write_file(s / "job.toml", csv_job("data.csv"));
  for (const char* strategy : {"margin", "coreset"}) {
    CommandResult r = s.frugal(std::string("active job.toml --budget 60 --initial 20 --batch 20 --seeds 1 --strategy ") +
                               strategy + " --target-accuracy 0.3 --out al-" + strategy + " --json al.json");
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    json out = json::parse(read_file(s / "al.json"));
    ASSERT_EQ(out["seeds"][0]["rounds"].size(), 3u) << out.dump();  // 20, 40, 60 labels
    EXPECT_EQ(out["seeds"][0]["rounds"][2]["labels"], 60);
    EXPECT_NE(r.out.find("total cost of the 3 runs"), std::string::npos) << r.out;
  }
  CommandResult runs = s.frugal("runs --json --store runs.db");
  ASSERT_EQ(runs.exit_code, 0);
  EXPECT_EQ(json::parse(runs.out).size(), 6u) << "every round is a recorded run";
}

TEST(DataSelect, TextDedupRemovesPlantedDuplicates) {
  Scratch s("data-select-dedup");
  std::string text;
  for (int i = 0; i < 200; ++i) text += "line number " + std::to_string(i) + " of the text, with some words\n";
  for (int i = 0; i < 30; ++i) text += "line number " + std::to_string(i * 3) + " of the text, with some words\n";
  for (int i = 0; i < 30; ++i) text += "a distinct tail line " + std::to_string(i) + " for the validation split\n";
  write_file(s / "text.txt", text);
  const std::string job = "[run]\nname = \"dedup\"\nseed = 1\nthreads = 1\nstore = \"runs.db\"\n[data]\nkind = \"text\"\n"
                          "train = \"text.txt\"\nval_fraction = 0.02\ndedup = \"exact\"\n[model]\nkind = \"gpt\"\nlayers = 1\n"
                          "heads = 2\nwidth = 16\ncontext = 16\n[train]\nsteps = 2\nbatch_size = 4\n";
  write_file(s / "job.toml", job);
  json summary = run_json(s, "train job.toml --json --quiet --out run");
  EXPECT_EQ(summary["techniques"]["dedup"]["removed"], 30) << summary["techniques"].dump();
  write_file(s / "bad.toml", csv_job("data.csv", "").replace(csv_job("data.csv").find("val_fraction"), 0, "dedup = \"exact\"\n"));
  CommandResult bad = s.frugal("train bad.toml --quiet");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("dedup"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace frugal::e2e
