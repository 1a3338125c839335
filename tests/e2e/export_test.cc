// `frugal runs export`: the MLflow file-store layout (experiments, run meta.yaml, params, metrics
// with steps, tags) with a few exact file contents, an idempotent re-export, refusal of a directory
// holding something else, and the CSV files read back with an RFC 4180 parser (a name with a comma
// and quotes round-trips). Limits: MLflow itself is not run here (scripts/check_mlflow_export.sh).
#include <filesystem>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "csv_data.h"
#include "e2e/cli_helpers.h"

namespace frugal::e2e {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const char* kJob =
    "[run]\nname = \"tiny,\\\"quoted\\\"\"\nseed = 1\nthreads = 1\nstore = \"runs.db\"\n"
    "[data]\nkind = \"csv\"\ntrain = \"data.csv\"\nval_fraction = 0.2\n"
    "[model]\nkind = \"mlp\"\nhidden = [16]\n"
    "[train]\nepochs = 2\nbatch_size = 16\nlog_every = 2\n";
const char* kName = "tiny,\"quoted\"";

// RFC 4180: fields separated by ',', records by CRLF, a quoted field may hold ',', CR, LF and "".
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> records(1, std::vector<std::string>(1));
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') records.back().back() += '"', ++i;
      else if (c == '"') quoted = false;
      else records.back().back() += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      records.back().emplace_back();
    } else if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      records.emplace_back(1);
      ++i;
    } else {
      records.back().back() += c;
    }
  }
  if (records.back().size() == 1 && records.back()[0].empty()) records.pop_back();
  return records;
}

std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    if (entry.is_regular_file()) files[fs::relative(entry.path(), dir).string()] = read_file(entry.path());
  return files;
}

class Export : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new Scratch("export");
    write_file(*scratch_ / "data.csv", frugal::testing::four_class_csv(200));
    write_file(*scratch_ / "job.toml", kJob);
    summary_ = new json(run_json(*scratch_, "train job.toml --quiet --json --out out"));
  }
  static void TearDownTestSuite() {
    delete summary_;
    delete scratch_;
  }
  static Scratch* scratch_;
  static json* summary_;
};
Scratch* Export::scratch_ = nullptr;
json* Export::summary_ = nullptr;

TEST_F(Export, MlflowLayout) {
  const Scratch& s = *scratch_;
  fs::remove_all(s / "mlruns");
  CommandResult r = s.frugal("runs export --format mlflow mlruns --store runs.db");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("exported 1 runs"), std::string::npos) << r.out;
  EXPECT_NE(read_file(s / "mlruns/0/meta.yaml").find("name: \"Default\""), std::string::npos);
  const std::string experiment = read_file(s / "mlruns/1/meta.yaml");
  EXPECT_NE(experiment.find("experiment_id: '1'\n"), std::string::npos) << experiment;
  EXPECT_NE(experiment.find("name: \"frugal\"\n"), std::string::npos) << experiment;
  EXPECT_NE(experiment.find("lifecycle_stage: active\n"), std::string::npos) << experiment;
  std::vector<fs::path> runs;
  for (const auto& entry : fs::directory_iterator(s / "mlruns/1"))
    if (entry.is_directory()) runs.push_back(entry.path());
  ASSERT_EQ(runs.size(), 1u);
  const fs::path run = runs[0];
  const std::string id = run.filename().string();
  EXPECT_EQ(id.size(), 32u);
  const std::string meta = read_file(run / "meta.yaml");
  for (const std::string& line : {"run_id: " + id + "\n", "run_uuid: " + id + "\n", std::string("status: 3\n"),
                                  std::string("experiment_id: '1'\n"), std::string("lifecycle_stage: active\n"),
                                  std::string("run_name: \"tiny,\\\"quoted\\\"\"\n")})
    EXPECT_NE(meta.find(line), std::string::npos) << line << " in\n" << meta;
  EXPECT_EQ(read_file(run / "tags/mlflow.runName"), kName);
  EXPECT_EQ(read_file(run / "tags/frugal.status"), "completed");
  EXPECT_EQ(read_file(run / "tags/frugal.run_id"), summary_->value("run_id", ""));
  EXPECT_EQ(read_file(run / "params/train.epochs"), "2");
  EXPECT_EQ(read_file(run / "params/model.kind"), "mlp");
  // train.loss: one "<ms> <value> <step>" line per logged train row, steps increasing.
  std::istringstream loss(read_file(run / "metrics/train.loss"));
  long long ms = 0, step = 0, last_step = -1, lines = 0;
  double value = 0;
  while (loss >> ms >> value >> step) {
    EXPECT_GT(ms, 1500000000000LL);
    EXPECT_GT(step, last_step);
    last_step = step, ++lines;
  }
  EXPECT_GT(lines, 2);
  std::istringstream usd(read_file(run / "metrics/final.cost.usd"));
  ASSERT_TRUE(usd >> ms >> value >> step);
  EXPECT_DOUBLE_EQ(value, (*summary_)["cost"]["usd"]["value"].get<double>());
  EXPECT_EQ(step, (*summary_)["steps"].get<long long>());

  // Again: the same files; another kind into it: refused.
  const auto before = snapshot(s / "mlruns");
  ASSERT_EQ(s.frugal("runs export --format mlflow mlruns --store runs.db").exit_code, 0);
  EXPECT_EQ(snapshot(s / "mlruns"), before);
  CommandResult other = s.frugal("runs export --format csv mlruns --store runs.db");
  EXPECT_EQ(other.exit_code, 2);
  EXPECT_NE(other.err.find("not a frugal csv export"), std::string::npos) << other.err;
}

TEST_F(Export, CsvRoundTrip) {
  const Scratch& s = *scratch_;
  fs::remove_all(s / "csv");
  const std::string run_id = summary_->value("run_id", "");
  CommandResult r = s.frugal("runs export --format csv csv " + run_id.substr(0, 6) + " --store runs.db");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto runs = parse_csv(read_file(s / "csv/runs.csv"));
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0], (std::vector<std::string>{"run_id", "name", "status", "started_at", "finished_at", "wall_s", "usd",
                                               "kwh", "co2_kg", "sources", "quality_metric", "quality"}));
  ASSERT_EQ(runs[1].size(), 12u);
  EXPECT_EQ(runs[1][0], run_id);
  EXPECT_EQ(runs[1][1], kName);
  EXPECT_EQ(runs[1][2], "completed");
  EXPECT_DOUBLE_EQ(std::stod(runs[1][6]), (*summary_)["cost"]["usd"]["value"].get<double>());
  EXPECT_NE(runs[1][9].find("usd="), std::string::npos);
  auto metrics = parse_csv(read_file(s / "csv/metrics.csv"));
  ASSERT_GT(metrics.size(), 3u);
  EXPECT_EQ(metrics[0], (std::vector<std::string>{"run_id", "step", "kind", "key", "value", "time_s"}));
  int losses = 0;
  for (size_t i = 1; i < metrics.size(); ++i) {
    ASSERT_EQ(metrics[i].size(), 6u);
    EXPECT_EQ(metrics[i][0], run_id);
    if (metrics[i][2] == "train" && metrics[i][3] == "loss") ++losses;
  }
  EXPECT_GT(losses, 2);
  EXPECT_EQ(s.frugal("runs export --format csv csv --store runs.db").exit_code, 0) << "a re-export is fine";
  EXPECT_EQ(s.frugal("runs export --format csv csv no-such-run --store runs.db").exit_code, 2);
  write_file(s / "busy/keep.txt", "someone's file");
  EXPECT_EQ(s.frugal("runs export --format csv busy --store runs.db").exit_code, 2);
  EXPECT_EQ(read_file(s / "busy/keep.txt"), "someone's file");
}

}  // namespace
}  // namespace frugal::e2e
