// `frugal compare RUN_A RUN_B`: what B saved against A (dollars, hours, energy, carbon, counted
// FLOPs), their quality, the job keys that differ and a verdict; where B's evaluations reached A's
// final validation metric, when and at what share of its cost; and where B started from another
// run's weights ([init]), that pretraining's cost and the number of such runs that pays it back.
#include "frugal/cli/compare.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frugal/base/error.h"
#include "frugal/base/units.h"
#include "frugal/cost/figure.h"
#include "frugal/track/run_store.h"
#include "frugal/train/job.h"

namespace frugal::cli {
namespace {

using json = nlohmann::json;

// A run to compare: its summary and job, from a run directory (summary.json, job.toml) or the store.
struct ComparedRun {
  std::string label, job_toml;
  std::string dir;  // the run directory (metrics.jsonl), "" when unknown
  json summary;
};

ComparedRun load_compared_run(const std::string& ref, const std::string& store_path) {
  namespace fs = std::filesystem;
  ComparedRun out;
  out.label = ref;
  if (fs::is_directory(ref)) {
    fs::path summary = fs::path(ref) / "summary.json", job = fs::path(ref) / "job.toml";
    if (!fs::is_regular_file(summary)) throw InputError(ref + ": no summary.json (is the run finished?)");
    std::ifstream s(summary), j(job);
    out.summary = json::parse(s, nullptr, false);
    if (!out.summary.is_object()) throw InputError(summary.string() + ": not a JSON object");
    out.job_toml.assign(std::istreambuf_iterator<char>(j), {});
    out.dir = ref;
    return out;
  }
  if (!fs::exists(store_path)) throw InputError(ref + ": not a run directory, and there is no run store " + store_path);
  track::RunStore store(store_path);
  std::optional<track::RunRecord> run = store.find_run(ref);
  if (!run) throw InputError("no run '" + ref + "' in " + store_path + " (and no run directory of that name)");
  out.label = run->run_id;
  out.job_toml = run->job_toml;
  out.dir = run->out_dir;
  out.summary = run->summary_json.empty() ? json::object() : json::parse(run->summary_json, nullptr, false);
  if (!out.summary.is_object() || !out.summary.contains("cost"))
    throw InputError(run->run_id + ": the run has no cost summary (status " + run->status + ")");
  return out;
}

std::string percent_change(double a, double b) {
  if (a == 0) return b == 0 ? "0%" : "n/a";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%+.1f%%", 100 * (b - a) / a);
  return buffer;
}

std::string format_ratio(double ratio) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3gx", ratio);
  return buffer;
}

// The first evaluation row of `dir`/metrics.jsonl whose `key` is at least as good as `target`:
// {step, time_s}; nullopt when none is, or the file is missing (a row that does not parse is
// skipped: the log of a run killed mid-write may end in a partial line).
std::optional<std::pair<int64_t, double>> first_reaching(const std::string& dir, const std::string& key, double target,
                                                         bool higher_better) {
  if (dir.empty()) return std::nullopt;
  std::ifstream in(std::filesystem::path(dir) / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    json row = json::parse(line, nullptr, false);
    if (!row.is_object() || row.value("kind", std::string()) != "eval" || !row.contains(key) || !row[key].is_number())
      continue;
    const double v = row[key];
    if (higher_better ? v >= target : v <= target)
      return std::make_pair(row.value("step", int64_t(0)), row.value("time_s", 0.0));
  }
  return std::nullopt;
}

// The directory B was trained from: its summary's out_dir is relative to it when relative, so a run
// directory given as ".../runs/b" whose out_dir is "runs/b" was trained in "...". "" when unknown.
std::filesystem::path working_dir_of(const ComparedRun& b) {
  namespace fs = std::filesystem;
  const fs::path out_dir = b.summary.value("out_dir", std::string());
  if (b.dir.empty() || out_dir.empty()) return {};
  if (out_dir.is_absolute()) return {};  // nothing to tell where it ran
  fs::path dir = fs::absolute(b.dir).lexically_normal();
  if (dir.filename().empty()) dir = dir.parent_path();  // a trailing slash
  const std::vector<fs::path> parts(out_dir.begin(), out_dir.end());
  for (auto part = parts.rbegin(); part != parts.rend(); ++part) {  // out_dir's components off dir's end
    if (part->empty() || *part == ".") continue;
    if (dir.filename() != *part) return {};
    dir = dir.parent_path();
  }
  return dir;
}

// The summary of the run whose model B's [init] loaded: the store's run when [init] named one,
// else summary.json beside the file it read (a relative path taken from the directory B was
// trained in); nullopt when neither is found.
std::optional<json> pretraining_summary(const ComparedRun& b, const std::string& store_path) {
  namespace fs = std::filesystem;
  const json& b_summary = b.summary;
  if (!b_summary.contains("init") || !b_summary["init"].is_object()) return std::nullopt;
  const json& init = b_summary["init"];
  if (init.contains("run_id") && init["run_id"].is_string() && fs::exists(store_path)) {
    std::optional<track::RunRecord> run = track::RunStore(store_path).find_run(init["run_id"].get<std::string>());
    if (run && !run->summary_json.empty()) {
      json s = json::parse(run->summary_json, nullptr, false);
      if (s.is_object()) return s;
    }
  }
  fs::path from = init.value("from", std::string());
  if (from.is_relative())
    if (fs::path base = working_dir_of(b); !base.empty()) from = base / from;
  std::ifstream in(from.parent_path() / "summary.json");
  if (!in) return std::nullopt;
  json s = json::parse(in, nullptr, false);
  if (!s.is_object()) return std::nullopt;
  return s;
}

// The verdict's cost basis: dollars when both runs cost money, else energy; A's and B's figures.
struct CostBasis {
  bool dollars;
  const char* key;   // "usd" or "kwh"
  const char* noun;  // "cost" or "energy"
  double a, b;
  const char* unit() const { return dollars ? "USD" : "kWh"; }
};

// When B got to A's quality: the first of B's evaluations at or past A's final validation metric
// `target` (test metrics are measured once, at the end), with B's cost to there pro rata of its wall
// time (estimated). Sets out["b_reached_a"] (null when never) and returns the line to print.
template <typename MetricText>
std::string equal_quality_line(json& out, const ComparedRun& b, const char* key, bool higher_better, double target,
                               const MetricText& metric_text, const CostBasis& cost) {
  std::optional<std::pair<int64_t, double>> hit = first_reaching(b.dir, key, target, higher_better);
  if (!hit) {
    out["b_reached_a"] = nullptr;
    return b.label + " never reached A's final " + key + " " + metric_text(target) + " in its evaluations";
  }
  const double b_wall = b.summary.value("wall_s", 0.0), share = b_wall > 0 ? hit->second / b_wall : 0;
  json r = {{"metric", key}, {"target", target}, {"step", hit->first}, {"time_s", hit->second}};
  char buffer[256];
  int n = std::snprintf(buffer, sizeof buffer, "%s reached A's final %s %s at step %lld, %.1f s into the run",
                        b.label.c_str(), key, metric_text(target).c_str(), (long long)hit->first, hit->second);
  if (cost.a > 0 && share > 0) {
    r[std::string(cost.key) + "_estimated"] = cost.b * share;
    r["share_of_a"] = cost.b * share / cost.a;
    std::snprintf(buffer + n, sizeof buffer - size_t(n), " (about %.3g %s, %.0f%% of A's %s; estimated pro rata of its time)",
                  cost.b * share, cost.unit(), 100 * cost.b * share / cost.a, cost.noun);
  }
  out["b_reached_a"] = r;
  return buffer;
}

// B's pretraining (the summary `p` of the run its [init] loaded): its cost, and after how many runs
// like B the saving against A pays it back, as run and stopped at A's quality. Sets
// out["pretraining"] and returns the line to print.
std::string pretraining_line(json& out, json p, const CostBasis& cost) {
  const json& figure = p["cost"][cost.key];
  const double p_cost = figure.is_object() ? figure.value("value", 0.0) : 0.0;
  json r = {{"run_id", p.value("run_id", std::string())}, {cost.key, p_cost}, {"wall_s", p.value("wall_s", 0.0)}};
  if (p["flops"].is_number()) r["flops"] = p["flops"];
  const double saved = cost.a - cost.b;
  // Stopped where it reached A's quality, B would have cost its share of its wall time.
  const json& reached = out.contains("b_reached_a") ? out["b_reached_a"] : json();
  const double saved_at_reach =
      reached.is_object() && reached.contains("share_of_a") ? cost.a - cost.a * reached["share_of_a"].get<double>() : 0;
  char buffer[320];
  int n = std::snprintf(buffer, sizeof buffer, "B started from %s, whose training cost %.3g %s (%.1f s)",
                        r["run_id"].get<std::string>().c_str(), p_cost, cost.unit(), r["wall_s"].get<double>());
  if (saved_at_reach > 0 && p_cost > 0) r["break_even_runs_at_equal_quality"] = p_cost / saved_at_reach;
  if (saved > 0 && p_cost > 0) {
    r["break_even_runs"] = p_cost / saved;
    n += std::snprintf(buffer + n, sizeof buffer - size_t(n), ": paid back after %.1f runs like B instead of A",
                       p_cost / saved);
    if (saved_at_reach > 0)
      std::snprintf(buffer + n, sizeof buffer - size_t(n), " (%.1f if B stops at A's quality)", p_cost / saved_at_reach);
  } else if (saved_at_reach > 0) {
    std::snprintf(buffer + n, sizeof buffer - size_t(n),
                  ": B as run saves nothing against A; stopped at A's quality, paid back after %.1f runs",
                  p_cost / saved_at_reach);
  } else {
    std::snprintf(buffer + n, sizeof buffer - size_t(n), ": B saves no %s against A to pay it back", cost.noun);
  }
  out["pretraining"] = r;
  return buffer;
}

// A run's cost with the upstream work it used counted in (issue 21: the scoring run behind
// [data_pruning] or a [curriculum] score file: the technique's total_with_scoring); null when none.
json upstream_total(const json& summary) {
  const json techniques = summary.value("techniques", json::object());
  for (const auto& [name, figures] : techniques.items())
    if (figures.is_object() && figures.contains("total_with_scoring")) return figures;
  return nullptr;
}

// "B's data scores (run X) cost $0.01: with them B costs $0.05, 20% less than A" (and the JSON "upstream").
std::string upstream_line(json& out, const ComparedRun& a, const ComparedRun& b, const CostBasis& cost) {
  const json ua = upstream_total(a.summary), ub = upstream_total(b.summary);
  if (ua.is_null() && ub.is_null()) return "";
  auto total = [&](const json& u, double own) { return u.is_null() ? own : u["total_with_scoring"].value(cost.key, own); };
  const double ta = total(ua, cost.a), tb = total(ub, cost.b);
  out["upstream"] = {{"basis", cost.key}, {"a_total", ta}, {"b_total", tb}};
  if (!ua.is_null()) out["upstream"]["a_scoring"] = ua["scoring_cost"];
  if (!ub.is_null()) out["upstream"]["b_scoring"] = ub["scoring_cost"];
  char buffer[320];
  const double change = ta > 0 ? (tb - ta) / ta : 0;
  std::snprintf(buffer, sizeof buffer, "with the data scoring runs they used counted in: A %.3g %s, B %.3g %s (%.0f%% %s)",
                ta, cost.unit(), tb, cost.unit(), 100 * std::fabs(change), change < 0 ? "less" : "more");
  return buffer;
}

struct Row { const char* key; const char* what; };
const Row kRows[] = {{"usd", "dollars"}, {"hours", "time"}, {"kwh", "energy"}, {"co2_kg", "carbon"}};

// The comparison as JSON, and the two sentences the text form prints after the verdict.
struct Comparison {
  json out;
  std::string reached_text, pretraining_text;
  bool metric_percent = false;
};

Comparison compare_runs(const std::string& ref_a, const std::string& ref_b, const std::string& store_path) {
  ComparedRun a = load_compared_run(ref_a, store_path), b = load_compared_run(ref_b, store_path);
  for (const ComparedRun* r : {&a, &b})
    if (!r->summary.contains("cost")) throw InputError(r->label + ": the summary has no cost figures");
  json out = {{"a", a.label}, {"b", b.label}};
  for (const Row& row : kRows) {
    const json &fa = a.summary["cost"][row.key], &fb = b.summary["cost"][row.key];
    double va = fa.value("value", 0.0), vb = fb.value("value", 0.0);
    out[row.key] = {{"a", va}, {"b", vb}, {"difference", vb - va}, {"a_source", fa.value("source", std::string())},
                    {"b_source", fb.value("source", std::string())}};
    if (va != 0) out[row.key]["change"] = (vb - va) / va;
  }
  // Compute: the training FLOPs each run counted (or estimated), and B's as a share of A's.
  const bool compute_known = a.summary["flops"].is_number() && b.summary["flops"].is_number();
  if (compute_known) {
    double va = a.summary["flops"], vb = b.summary["flops"];
    out["flops"] = {{"a", va}, {"b", vb}, {"difference", vb - va},
                    {"a_source", a.summary.value("flops_source", std::string(cost::source_estimated))},
                    {"b_source", b.summary.value("flops_source", std::string(cost::source_estimated))}};
    if (va != 0) {
      out["flops"]["change"] = (vb - va) / va;
      out["flops"]["ratio"] = vb / va;
    }
  }
  // The quality metric: the first one both runs report.
  struct Metric { const char* key; bool percent, higher_better; };
  const Metric metrics[] = {{"val_accuracy", true, true},       {"test_accuracy", true, true},
                            {"val_bits_per_char", false, false}, {"test_bits_per_char", false, false},
                            {"val_loss", false, false},          {"train_loss", false, false}};
  std::string quality;
  std::optional<Metric> used;
  const json &ma = a.summary.value("metrics", json::object()), &mb = b.summary.value("metrics", json::object());
  for (const Metric& m : metrics)
    if (ma.contains(m.key) && mb.contains(m.key) && ma[m.key].is_number() && mb[m.key].is_number()) {
      used = m;
      out["metric"] = {{"name", m.key}, {"a", ma[m.key]}, {"b", mb[m.key]}, {"higher_is_better", m.higher_better}};
      break;
    }
  // Job keys that differ (the budget and cost keys too: they say what was priced and how).
  std::map<std::string, std::string> ka = train::job_keys(a.job_toml, a.label), kb = train::job_keys(b.job_toml, b.label);
  std::set<std::string> keys;
  for (auto& [k, v] : ka) keys.insert(k);
  for (auto& [k, v] : kb) keys.insert(k);
  json differences = json::array();
  for (const std::string& k : keys) {
    std::string va = ka.count(k) ? ka[k] : "", vb = kb.count(k) ? kb[k] : "";
    if (va != vb) differences.push_back({{"key", k}, {"a", va.empty() ? json(nullptr) : json(va)},
                                         {"b", vb.empty() ? json(nullptr) : json(vb)}});
  }
  out["job_differences"] = differences;
  // The verdict: quality of B vs A, and the cost change (dollars when both runs cost money, else energy).
  bool by_dollars = out["usd"]["a"].get<double>() > 0 && out["usd"]["b"].get<double>() > 0;
  const char* basis = by_dollars ? "usd" : "kwh";
  double ca = out[basis]["a"], cb = out[basis]["b"];
  std::string cost_text;
  const char* noun = by_dollars ? "cost" : "energy";
  if (ca <= 0 || cb == ca) cost_text = std::string("for the same ") + noun;
  else {
    char buffer[64];
    double change = (cb - ca) / ca;
    std::snprintf(buffer, sizeof buffer, "for %.0f%% %s %s", 100 * std::fabs(change), change < 0 ? "less" : "more", noun);
    cost_text = buffer;
  }
  // ", 55% less compute" when the counted FLOPs differ.
  if (compute_known && out["flops"].contains("change") && out["flops"]["change"].get<double>() != 0) {
    char buffer[64];
    double change = out["flops"]["change"];
    std::snprintf(buffer, sizeof buffer, ", %.0f%% %s compute", 100 * std::fabs(change), change < 0 ? "less" : "more");
    cost_text += buffer;
  }
  auto metric_text = [&](double v) {
    char buffer[32];
    if (used && used->percent) std::snprintf(buffer, sizeof buffer, "%.1f%%", 100 * v);
    else std::snprintf(buffer, sizeof buffer, "%.4f", v);
    return std::string(buffer);
  };
  // "B reached 91.6% vs 91.7% val_accuracy for 38% less cost".
  std::string verdict = used ? b.label + " reached " + metric_text(mb[used->key]) + " vs " + metric_text(ma[used->key]) +
                                   " " + used->key + " " + cost_text
                             : b.label + " vs " + a.label + ": " + cost_text.substr(4) + " (no quality metric in common)";
  const CostBasis cost{by_dollars, basis, noun, ca, cb};
  std::string reached_text, pretraining_text;
  if (used && std::string(used->key).rfind("val_", 0) == 0)
    reached_text = equal_quality_line(out, b, used->key, used->higher_better, ma[used->key], metric_text, cost);
  if (std::optional<json> p = pretraining_summary(b, store_path)) pretraining_text = pretraining_line(out, *p, cost);
  // Upstream work a run depends on (issue 21: [data_pruning]'s scoring run): its totals with it.
  std::string upstream_text = upstream_line(out, a, b, cost);
  if (!upstream_text.empty()) pretraining_text += (pretraining_text.empty() ? "" : "\n") + upstream_text;
  out["verdict"] = verdict;
  return {out, reached_text, pretraining_text, used && used->percent};
}

}  // namespace

nlohmann::json compare_json(const std::string& ref_a, const std::string& ref_b, const std::string& store_path) {
  return compare_runs(ref_a, ref_b, store_path).out;
}

int cmd_compare(const std::string& ref_a, const std::string& ref_b, const std::string& store_path, bool as_json) {
  Comparison c = compare_runs(ref_a, ref_b, store_path);
  const json& out = c.out;
  if (as_json) {
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  const std::string a_label = out["a"], b_label = out["b"];
  const bool compute_known = out.contains("flops");
  const json* metric = out.contains("metric") ? &out["metric"] : nullptr;
  auto metric_text = [&](double v) {
    char buffer[32];
    if (c.metric_percent) std::snprintf(buffer, sizeof buffer, "%.1f%%", 100 * v);
    else std::snprintf(buffer, sizeof buffer, "%.4f", v);
    return std::string(buffer);
  };
  std::printf("A %s\nB %s\n\n%-18s %16s %16s %9s\n", a_label.c_str(), b_label.c_str(), "", "A", "B", "CHANGE");
  // Human units in the table (base/units.h); --json keeps full precision in USD, h, kWh, kg.
  auto human = [](const std::string& key, double v) {
    return key == "usd" ? usd_text(v) : key == "hours" ? duration_text(v * 3600) : key == "kwh" ? energy_text(v)
                                                                                                   : carbon_text(v);
  };
  for (const Row& row : kRows) {
    const json& r = out[row.key];
    std::printf("%-18s %16s %16s %9s   [%s / %s]\n", row.what, human(row.key, r["a"].get<double>()).c_str(),
                human(row.key, r["b"].get<double>()).c_str(),
                percent_change(r["a"], r["b"]).c_str(), r["a_source"].get<std::string>().c_str(),
                r["b_source"].get<std::string>().c_str());
  }
  if (compute_known) {
    const json& r = out["flops"];
    std::string ratio = r.contains("ratio") ? "   B/A " + format_ratio(r["ratio"]) : "";
    std::printf("%-18s %16.6g %16.6g %9s   [%s / %s]%s\n", "compute (FLOP)", r["a"].get<double>(),
                r["b"].get<double>(), percent_change(r["a"], r["b"]).c_str(), r["a_source"].get<std::string>().c_str(),
                r["b_source"].get<std::string>().c_str(), ratio.c_str());
  }
  if (metric)
    std::printf("%-18s %16s %16s\n", (*metric)["name"].get<std::string>().c_str(),
                metric_text((*metric)["a"]).c_str(), metric_text((*metric)["b"]).c_str());
  std::printf("\njob keys that differ:%s\n", out["job_differences"].empty() ? " none" : "");
  for (const json& d : out["job_differences"])
    std::printf("  %s: %s -> %s\n", d["key"].get<std::string>().c_str(),
                d["a"].is_null() ? "(not set)" : d["a"].get<std::string>().c_str(),
                d["b"].is_null() ? "(not set)" : d["b"].get<std::string>().c_str());
  std::printf("\n%s\n", out["verdict"].get<std::string>().c_str());
  if (!c.reached_text.empty()) std::printf("%s\n", c.reached_text.c_str());
  if (!c.pretraining_text.empty()) std::printf("%s\n", c.pretraining_text.c_str());
  return 0;
}


}  // namespace frugal::cli
