// MLflow file-store and CSV exports (see export.h). The MLflow layout follows mlflow's FileStore
// (mlflow/store/tracking/file_store.py): <root>/<experiment id>/meta.yaml, <root>/<experiment
// id>/<run id>/{meta.yaml, params/<key>, metrics/<key>, tags/<key>}, a metric file holding lines
// "<timestamp ms> <value> <step>". Limits: keys outside [A-Za-z0-9_.-] are written with '_'.
#include "frugal/track/export.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "frugal/base/error.h"
#include "frugal/track/run_figures.h"

namespace frugal::track {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kMarker = ".frugal-export";
constexpr const char* kExperimentId = "1";

std::string number_text(double v) {
  char buffer[40];  // the shortest text that reads back as the same double
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
  return std::string(buffer, ec == std::errc() ? end : buffer);
}

void write_text(const fs::path& path, const std::string& text, ExportCounts& counts) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw IoError(path.string() + ": cannot write the export file");
  ++counts.files;
}

// A non-empty dir must already be an export of this kind.
void prepare_dir(const fs::path& dir, const std::string& kind) {
  if (fs::exists(dir) && !fs::is_directory(dir)) throw InputError(dir.string() + ": not a directory");
  if (fs::exists(dir) && !fs::is_empty(dir)) {
    std::ifstream marker(dir / kMarker);
    std::string line;
    std::getline(marker, line);
    if (line != "frugal export: " + kind)
      throw InputError(dir.string() + ": not empty and not a frugal " + kind +
                       " export (no " + kMarker + " saying so); choose an empty or new directory");
  }
  fs::create_directories(dir);
}

std::string safe_key(const std::string& key) {
  std::string out;
  for (char c : key) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-') ? c : '_';
  if (out.empty() || out == "." || out == "..") out = "_" + out;
  return out;
}

void flatten(const json& value, const std::string& prefix, std::map<std::string, double>& out) {
  if (value.is_number()) {
    if (!prefix.empty()) out[prefix] = value.get<double>();
    return;
  }
  if (!value.is_object()) return;
  // A sourced figure {"value": V, "source": S} stands for its value.
  if (value.contains("value") && value["value"].is_number() && value.contains("source")) {
    if (!prefix.empty()) out[prefix] = value["value"].get<double>();
    return;
  }
  for (const auto& [key, item] : value.items()) flatten(item, prefix.empty() ? key : prefix + "." + key, out);
}

int64_t unix_ms(const std::string& iso) {
  std::tm tm{};
  if (iso.size() < 19 || std::sscanf(iso.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
    return 0;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return int64_t(::timegm(&tm)) * 1000;
}

// YAML scalars: quoted as JSON strings (a subset of YAML), so any text is safe.
std::string yaml_text(const std::string& text) { return json(text).dump(); }

std::string experiment_yaml(const fs::path& root, const std::string& id, const std::string& name, int64_t time_ms) {
  return "artifact_location: " + yaml_text("file://" + fs::absolute(root / id).lexically_normal().string()) +
         "\ncreation_time: " + std::to_string(time_ms) + "\nexperiment_id: '" + id +
         "'\nlast_update_time: " + std::to_string(time_ms) + "\nlifecycle_stage: active\nname: " + yaml_text(name) + "\n";
}

// FNV-1a, 64 bits, with a seed: two of them make the 128-bit run id.
uint64_t fnv1a(const std::string& text, uint64_t seed) {
  uint64_t h = 14695981039346656037ull ^ seed;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::optional<MetricRow> last_of(const std::vector<MetricRow>& rows, const char* kind) {
  for (auto it = rows.rbegin(); it != rows.rend(); ++it)
    if (it->kind == kind) return *it;
  return std::nullopt;
}

// Metric key -> lines "<timestamp ms> <value> <step>".
std::map<std::string, std::string> mlflow_metrics(const ExportRun& run, int64_t start_ms, int64_t& values) {
  std::map<std::string, std::string> files;
  for (const MetricRow& row : run.metrics) {
    const int64_t time_ms = start_ms + int64_t(std::llround(row.time_s * 1000));
    for (const auto& [key, value] : flat_numbers(row.json)) {
      if (key == "step" || !std::isfinite(value)) continue;
      files[safe_key(row.kind + "." + key)] += std::to_string(time_ms) + " " + number_text(value) + " " +
                                                std::to_string(row.step) + "\n";
      ++values;
    }
  }
  json summary = json::parse(run.record.summary_json, nullptr, false);
  if (summary.is_object()) {
    const int64_t step = summary.value("steps", int64_t(0));
    const int64_t time_ms = unix_ms(run.record.finished_at) ? unix_ms(run.record.finished_at) : start_ms;
    std::map<std::string, double> finals;
    if (summary.contains("metrics")) flatten(summary["metrics"], "", finals);
    if (summary.contains("cost") && summary["cost"].is_object())
      for (const char* key : {"usd", "kwh", "co2_kg", "hours"})
        if (summary["cost"].contains(key)) flatten(summary["cost"][key], std::string("cost.") + key, finals);
    if (summary.contains("wall_s")) flatten(summary["wall_s"], "wall_s", finals);
    for (const auto& [key, value] : finals) {
      if (!std::isfinite(value)) continue;
      files[safe_key("final." + key)] += std::to_string(time_ms) + " " + number_text(value) + " " + std::to_string(step) + "\n";
      ++values;
    }
  }
  return files;
}

}  // namespace

std::map<std::string, double> flat_numbers(const std::string& json_object) {
  std::map<std::string, double> out;
  json value = json::parse(json_object, nullptr, false);
  if (value.is_object()) flatten(value, "", out);
  return out;
}

std::string mlflow_run_id(const std::string& frugal_run_id) {
  char text[33];
  std::snprintf(text, sizeof text, "%016llx%016llx", (unsigned long long)fnv1a(frugal_run_id, 0),
                (unsigned long long)fnv1a(frugal_run_id, 0x9e3779b97f4a7c15ull));
  return text;
}

int mlflow_status(const std::string& status) {
  if (status == "running") return 1;
  if (status == "completed") return 3;
  if (status == "failed") return 4;
  return 5;  // stopped at a limit, preempted, interrupted: ended before its end, not by an error
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

ExportCounts export_mlflow(const std::vector<ExportRun>& runs, const std::string& dir_text) {
  const fs::path root(dir_text);
  prepare_dir(root, "mlflow");
  ExportCounts counts;
  write_text(root / kMarker, "frugal export: mlflow\n", counts);
  fs::create_directories(root / ".trash");
  const int64_t now_ms = int64_t(std::time(nullptr)) * 1000;
  // Experiment files are written once: a re-export keeps their times.
  for (const auto& [id, name] : {std::pair<std::string, std::string>{"0", "Default"}, {kExperimentId, "frugal"}}) {
    fs::create_directories(root / id);
    if (!fs::exists(root / id / "meta.yaml")) write_text(root / id / "meta.yaml", experiment_yaml(root, id, name, now_ms), counts);
  }
  for (const ExportRun& run : runs) {
    const RunRecord& r = run.record;
    const std::string id = mlflow_run_id(r.run_id);
    const fs::path run_dir = root / kExperimentId / id;
    fs::remove_all(run_dir);  // a re-export replaces the run whole
    for (const char* sub : {"params", "metrics", "tags", "artifacts"}) fs::create_directories(run_dir / sub);
    const int64_t start_ms = unix_ms(r.started_at);
    const std::string end = r.finished_at.empty() ? "null" : std::to_string(unix_ms(r.finished_at));
    write_text(run_dir / "meta.yaml",
               "artifact_uri: " + yaml_text("file://" + fs::absolute(run_dir / "artifacts").lexically_normal().string()) +
                   "\nend_time: " + end + "\nentry_point_name: ''\nexperiment_id: '" + kExperimentId +
                   "'\nlifecycle_stage: active\nrun_id: " + id + "\nrun_name: " + yaml_text(r.name) +
                   "\nrun_uuid: " + id + "\nsource_name: ''\nsource_type: 4\nsource_version: ''\nstart_time: " +
                   std::to_string(start_ms) + "\nstatus: " + std::to_string(mlflow_status(r.status)) +
                   "\ntags: []\nuser_id: frugal\n",
               counts);
    for (const auto& [key, value] : run.params) write_text(run_dir / "params" / safe_key(key), value, counts);
    for (const auto& [key, lines] : mlflow_metrics(run, start_ms, counts.metric_values))
      write_text(run_dir / "metrics" / key, lines, counts);
    RunFigures f = run_figures(r, last_of(run.metrics, "train"), last_of(run.metrics, "eval"));
    std::map<std::string, std::string> tags = {{"mlflow.runName", r.name},
                                               {"mlflow.source.name", "frugal"},
                                               {"mlflow.user", "frugal"},
                                               {"frugal.run_id", r.run_id},
                                               {"frugal.status", r.status},
                                               {"frugal.job_hash", r.job_hash},
                                               {"frugal.out_dir", r.out_dir}};
    if (f.usd) tags["frugal.usd_source"] = f.usd->source;
    if (f.kwh) tags["frugal.kwh_source"] = f.kwh->source;
    if (f.co2_kg) tags["frugal.co2_kg_source"] = f.co2_kg->source;
    for (const auto& [key, value] : tags) write_text(run_dir / "tags" / key, value, counts);
    ++counts.runs;
  }
  return counts;
}

ExportCounts export_csv(const std::vector<ExportRun>& runs, const std::string& dir_text) {
  const fs::path root(dir_text);
  prepare_dir(root, "csv");
  ExportCounts counts;
  write_text(root / kMarker, "frugal export: csv\n", counts);
  std::string runs_csv = "run_id,name,status,started_at,finished_at,wall_s,usd,kwh,co2_kg,sources,quality_metric,quality\r\n";
  std::string metrics_csv = "run_id,step,kind,key,value,time_s\r\n";
  auto opt = [](const std::optional<double>& v) { return v ? number_text(*v) : std::string(); };
  for (const ExportRun& run : runs) {
    const RunRecord& r = run.record;
    RunFigures f = run_figures(r, last_of(run.metrics, "train"), last_of(run.metrics, "eval"));
    std::string sources;
    for (const auto& [key, v] : {std::pair{"usd", &f.usd}, {"kwh", &f.kwh}, {"co2_kg", &f.co2_kg}})
      if (*v) sources += (sources.empty() ? "" : ";") + std::string(key) + "=" + (*v)->source;
    const std::vector<std::string> fields = {
        r.run_id, r.name, r.status, r.started_at, r.finished_at, opt(f.wall_s),
        f.usd ? number_text(f.usd->value) : "", f.kwh ? number_text(f.kwh->value) : "",
        f.co2_kg ? number_text(f.co2_kg->value) : "", sources, f.quality_key, opt(f.quality)};
    for (size_t i = 0; i < fields.size(); ++i) runs_csv += (i ? "," : "") + csv_field(fields[i]);
    runs_csv += "\r\n";
    for (const MetricRow& row : run.metrics) {
      for (const auto& [key, value] : flat_numbers(row.json)) {
        if (key == "step") continue;
        metrics_csv += csv_field(r.run_id) + "," + std::to_string(row.step) + "," + csv_field(row.kind) + "," +
                       csv_field(key) + "," + number_text(value) + "," + number_text(row.time_s) + "\r\n";
        ++counts.metric_values;
      }
    }
    ++counts.runs;
  }
  write_text(root / "runs.csv", runs_csv, counts);
  write_text(root / "metrics.csv", metrics_csv, counts);
  return counts;
}

}  // namespace frugal::track
