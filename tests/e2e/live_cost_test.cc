// Live cost and human units end to end: every train and eval row of metrics.jsonl carries the run's
// cost so far (never decreasing, each figure with its source) and the forecast at the end (which
// at the last step is the cost spent); the printed summary and the progress lines read in human
// units ("$0.017", "0.10 Wh", "g CO2e") while --json keeps base units.
#include <cmath>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "e2e/cli_helpers.h"

namespace frugal::e2e {
namespace {

using json = nlohmann::json;

const char* kJob =
    "[run]\nname = \"live\"\nseed = 3\nthreads = 1\nstore = \"runs.db\"\n"
    "[data]\nkind = \"csv\"\ntrain = \"data.csv\"\nval_fraction = 0.1\n"
    "[model]\nkind = \"mlp\"\nhidden = [16]\n"
    "[optim]\nlr = 0.01\n"
    "[train]\nsteps = 12\nbatch_size = 16\nlog_every = 4\neval_every = 6\n"
    "[cost]\nusd_per_hour = 1.0\n";

Scratch make_scratch(const std::string& name) {
  Scratch s(name);
  write_file(s / "data.csv", csv_rows(160));
  write_file(s / "job.toml", kJob);
  write_file(s / "user.toml", "");
  setenv("FRUGAL_CONFIG", (s / "user.toml").c_str(), 1);  // no alerts from the user's own config
  return s;
}

TEST(LiveCost, EveryTrainAndEvalRowCarriesTheCostSoFarAndTheForecast) {
  Scratch s = make_scratch("live_cost_rows");
  const json summary = run_json(s, "train job.toml --json --out run");
  std::istringstream in(read_file(s / "run" / "metrics.jsonl"));
  double previous_usd = 0, previous_kwh = 0;
  int rows = 0, evals = 0;
  json last;
  for (std::string line; std::getline(in, line);) {
    const json row = json::parse(line);
    if (row["kind"] != "train" && row["kind"] != "eval") continue;
    SCOPED_TRACE(line);
    ++rows;
    evals += row["kind"] == "eval";
    for (const char* key : {"usd", "kwh", "co2_kg"}) {
      ASSERT_TRUE(row["cost"][key]["value"].is_number());
      EXPECT_FALSE(row["cost"][key]["source"].get<std::string>().empty());
    }
    EXPECT_EQ(row["cost"]["usd"]["source"], "user");
    const double usd = row["cost"]["usd"]["value"], kwh = row["cost"]["kwh"]["value"];
    EXPECT_GE(usd, previous_usd);
    EXPECT_GE(kwh, previous_kwh);
    EXPECT_GT(kwh, 0.0);
    previous_usd = usd, previous_kwh = kwh;
    ASSERT_TRUE(row.contains("forecast"));
    const json& f = row["forecast"];
    for (const char* key : {"usd", "kwh", "co2_kg", "wall_s"}) EXPECT_TRUE(f[key].is_number()) << key;
    EXPECT_GE(f["kwh"].get<double>(), kwh * (1 - 1e-12)) << "the end costs at least what is spent";
    EXPECT_GE(f["wall_s"].get<double>(), row["time_s"].get<double>() * (1 - 1e-12));
    EXPECT_NE(f["method"].get<std::string>().find("remaining steps"), std::string::npos);
    last = row;
  }
  EXPECT_EQ(rows, 3 + 2);  // train rows at steps 4, 8, 12; evaluations at 6 and 12
  EXPECT_EQ(evals, 2);
  // The last row is at the last step: nothing remains, the forecast is the spent.
  EXPECT_EQ(last["step"], 12);
  EXPECT_EQ(last["forecast"]["kwh"], last["cost"]["kwh"]["value"]);
  EXPECT_NE(last["forecast"]["method"].get<std::string>().find("+ 0 remaining steps"), std::string::npos);
  // The run store's rows carry the same fields.
  CommandResult show = s.frugal("runs show " + summary["run_id"].get<std::string>() + " --store runs.db --json");
  ASSERT_EQ(show.exit_code, 0) << show.err;
  const json stored = json::parse(show.out)["metrics"];
  ASSERT_FALSE(stored.empty());
  EXPECT_TRUE(stored.back().contains("cost")) << stored.back().dump();
  EXPECT_TRUE(stored.back().contains("forecast"));
}

TEST(LiveCost, TheSummaryAndProgressReadInHumanUnitsAndJsonKeepsBaseUnits) {
  Scratch s = make_scratch("live_cost_text");
  CommandResult r = s.frugal("train job.toml --out run");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // "    dollars  $0.017         user": 60 s billed at $1/h.
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\n    dollars +\\$0\\.017 +user\n"))) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\n    energy +[0-9.]+ (m?Wh|kWh) +(measured|estimated)\n"))) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\n    carbon +[0-9.]+ (mg|g|kg) CO2e +[a-z]+\n"))) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\n    time +[0-9.]+ (us|ms|s) +measured\n"))) << r.out;
  EXPECT_NE(r.out.find("(on-demand, billed per-second, $1.00/h)"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("e-0"), std::string::npos) << "no exponents in the printed figures:\n" << r.out;
  // The progress line of the last step (plain lines when not a terminal): cost so far -> forecast.
  EXPECT_TRUE(std::regex_search(r.out, std::regex("step 12/12 .*  \\$0\\.017->\\$0\\.017 [0-9.]+ (m?Wh|kWh)\n"))) << r.out;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("step ", 0) == 0) EXPECT_LE(line.size(), 100u) << line;
  // --json: full precision in base units.
  const json j = run_json(s, "train job.toml --json --out json");
  EXPECT_DOUBLE_EQ(j["cost"]["usd"]["value"].get<double>(), 60.0 / 3600.0);
}

}  // namespace
}  // namespace frugal::e2e
