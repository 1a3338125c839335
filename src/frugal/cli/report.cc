// `frugal report`: loads each run (store or run directory) with its metric rows, adds `frugal
// compare`'s JSON for each later run against the first, and writes the page (atomically: a temp file
// renamed) or prints a short text report. Limits: a run directory without summary.json reads as a
// run still going; a comparison that cannot be made (no cost summary yet) says so in the ledger.
#include "frugal/cli/report.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <fstream>
#include <optional>

#include <nlohmann/json.hpp>

#include "frugal/base/error.h"
#include "frugal/base/units.h"
#include "frugal/cli/compare.h"
#include "frugal/track/report.h"
#include "frugal/track/run_store.h"
#include "frugal/train/job.h"

namespace frugal::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string file_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A run directory as a store record: summary.json (absent while the run goes on), job.toml and the
// train and eval rows of metrics.jsonl (a line that does not parse, e.g. a partial last one, skipped).
track::ReportRun load_run_directory(const std::string& dir) {
  track::ReportRun run;
  track::RunRecord& r = run.record;
  r.out_dir = dir;
  r.job_toml = file_text(fs::path(dir) / "job.toml");
  json summary = json::parse(file_text(fs::path(dir) / "summary.json"), nullptr, false);
  if (summary.is_object()) {
    r.summary_json = summary.dump();
    r.run_id = summary.value("run_id", std::string());
    r.status = summary.value("status", std::string());
  }
  if (r.status.empty()) r.status = "running";
  if (r.run_id.empty()) r.run_id = fs::path(dir).lexically_normal().filename().string();
  if (!r.job_toml.empty()) {
    try {
      auto keys = train::job_keys(r.job_toml, dir + "/job.toml");
      if (auto name = keys.find("run.name"); name != keys.end()) {
        r.name = name->second;
        if (r.name.size() >= 2 && r.name.front() == '"' && r.name.back() == '"') r.name = r.name.substr(1, r.name.size() - 2);
      }
    } catch (const InputError&) {
      // The name is only shown; a job file that does not parse leaves it empty.
    }
  }
  std::ifstream in(fs::path(dir) / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    json row = json::parse(line, nullptr, false);
    if (!row.is_object()) continue;
    const std::string kind = row.value("kind", std::string());
    if (kind != "train" && kind != "eval") continue;
    const json& step = row.contains("step") ? row["step"] : json(0);
    const json& time = row.contains("time_s") ? row["time_s"] : json(0.0);
    run.metrics.push_back({step.is_number() ? step.get<int64_t>() : 0, kind, row.dump(), time.is_number() ? time.get<double>() : 0.0});
  }
  return run;
}

track::ReportRun load_run(const std::string& ref, const std::string& store_path) {
  if (fs::is_directory(ref)) {
    if (!fs::exists(fs::path(ref) / "metrics.jsonl") && !fs::exists(fs::path(ref) / "summary.json"))
      throw InputError(ref + ": not a run directory (no metrics.jsonl or summary.json)");
    return load_run_directory(ref);
  }
  if (!fs::exists(store_path)) throw InputError(ref + ": not a run directory, and there is no run store " + store_path);
  track::RunStore store(store_path);
  std::optional<track::RunRecord> record = store.find_run(ref);
  if (!record) throw InputError("no run '" + ref + "' in " + store_path + " (and no run directory of that name)");
  track::ReportRun run{*record, store.metrics(record->run_id)};
  return run;
}

// Writes `text` to `path` through a temp file beside it, renamed over it: a reader never sees half a page.
void write_atomically(const std::string& path, const std::string& text) {
  const fs::path target(path);
  if (fs::is_directory(target)) throw InputError(path + ": is a directory; expected an HTML file to write");
  const fs::path temp = target.parent_path() / (target.filename().string() + ".tmp-" + std::to_string(getpid()));
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) throw InputError(path + ": cannot write the report there (no such directory, or not writable)");
    out << text;
    out.flush();
    if (!out) {
      std::error_code ignored;
      fs::remove(temp, ignored);
      throw IoError(path + ": writing the report failed");
    }
  }
  std::error_code error;
  fs::rename(temp, target, error);
  if (error) {
    fs::remove(temp, error);
    throw InputError(path + ": cannot write the report there (" + error.message() + ")");
  }
}

void print_text(const track::ReportRun& run) {
  const json s = run.record.summary_json.empty() ? json::object() : json::parse(run.record.summary_json, nullptr, false);
  std::printf("%s  (%s)\n", run.record.run_id.c_str(), run.record.status.c_str());
  if (!s.is_object() || s.empty()) {
    std::printf("  no summary yet; %zu metric rows\n\n", run.metrics.size());
    return;
  }
  const json m = s.value("metrics", json::object());
  std::string quality;
  for (const char* key : {"val_accuracy", "test_accuracy", "val_bits_per_char", "val_loss", "train_loss"})
    if (m.contains(key) && m[key].is_number()) {
      const double v = m[key];
      quality += std::string(quality.empty() ? "" : ", ") + key + " " +
                 (std::string(key).find("accuracy") != std::string::npos ? significant_text(100 * v, 3) + "%" : significant_text(v, 4));
    }
  std::printf("  quality: %s\n", quality.empty() ? "n/a" : quality.c_str());
  const json c = s.value("cost", json::object());
  auto figure = [&](const char* key, std::string (*text)(double)) {
    if (!c.contains(key) || !c[key].is_object() || !c[key].contains("value") || !c[key]["value"].is_number()) return std::string("n/a");
    return text(c[key]["value"].get<double>()) + " [" + c[key].value("source", std::string()) + "]";
  };
  std::printf("  cost: %s, %s, %s; wall %s on %s %s\n", figure("usd", usd_text).c_str(), figure("kwh", energy_text).c_str(),
              figure("co2_kg", carbon_text).c_str(), duration_text(s.value("wall_s", 0.0)).c_str(),
              c.value("instance", std::string("?")).c_str(), c.value("pricing", std::string()).c_str());
  const json phases = s.value("phases", json::object());
  double total = 0;
  for (auto& [name, v] : phases.items()) total += v.is_number() ? v.get<double>() : 0;
  std::string line;
  for (auto& [name, v] : phases.items())
    if (v.is_number() && v.get<double>() > 0)
      line += (line.empty() ? "" : ", ") + name + " " + duration_text(v.get<double>()) + " (" +
              significant_text(total > 0 ? 100 * v.get<double>() / total : 0, 2) + "%)";
  std::printf("  phases: %s\n\n", line.empty() ? "n/a" : line.c_str());
}

}  // namespace

int cmd_report(const std::vector<std::string>& refs, const std::string& html_path, const std::string& store_path) {
  std::vector<track::ReportRun> runs;
  for (const std::string& ref : refs) runs.push_back(load_run(ref, store_path));
  track::ReportOptions options;
  for (size_t i = 1; i < refs.size(); ++i) {
    try {
      options.comparisons_json.push_back(compare_json(refs[0], refs[i], store_path).dump());
    } catch (const InputError& e) {
      // A run still going has no cost summary: the ledger says why instead of failing the page.
      options.comparisons_json.push_back(json({{"a", runs[0].record.run_id}, {"b", runs[i].record.run_id},
                                               {"verdict", std::string("not compared: ") + e.what()}})
                                             .dump());
    }
  }
  if (html_path.empty()) {
    for (const track::ReportRun& run : runs) print_text(run);
    for (const std::string& c : options.comparisons_json) std::printf("%s\n", json::parse(c).value("verdict", std::string()).c_str());
    return 0;
  }
  write_atomically(html_path, track::report_html(runs, options));
  std::printf("wrote %s\n", html_path.c_str());
  return 0;
}

Command add_report_command(CLI::App& app, std::string& store_path) {
  auto refs = std::make_shared<std::vector<std::string>>();
  auto html = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "report",
      "Report runs side by side: without --html a short text report on stdout, with --html FILE one self-contained "
      "HTML page (curves against step, time and dollars (energy when no run has a price), throughput, phases, "
      "memory, cost table, savings ledger)");
  cmd->add_option("runs", *refs, "Run ids (or unique prefixes) or run directories; later runs are compared with the first")
      ->required();
  cmd->add_option("--html", *html, "Write the HTML page to this file (atomically)");
  cmd->add_option("--store", store_path, "Run store (SQLite)");
  return {cmd, [refs, html, &store_path] { return cmd_report(*refs, *html, store_path); }};
}

}  // namespace frugal::cli
