// `frugal runs export --format mlflow|csv DIR [RUN...]`: the store's runs (all, or the ids and
// unique prefixes given) written by track/export.cc, the job keys flattened by train::job_keys.
// Prints one line: how many runs, values and files were written where.
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <vector>
#include <set>

#include "frugal/base/error.h"
#include "frugal/cli/dashboard.h"
#include "frugal/track/export.h"
#include "frugal/track/run_store.h"
#include "frugal/train/job.h"

namespace frugal::cli {
namespace {

struct ExportArgs {
  std::string format, dir;
  std::vector<std::string> runs;
};

// A TOML string value as plain text ("\"mlp\"" -> "mlp"); anything else as written.
std::string param_text(const std::string& toml_value) {
  if (toml_value.size() >= 2 && toml_value.front() == '"' && toml_value.back() == '"' &&
      toml_value.find('\\') == std::string::npos)
    return toml_value.substr(1, toml_value.size() - 2);
  return toml_value;
}

int run_export(const ExportArgs& args, const std::string& store_path) {
  if (!std::filesystem::exists(store_path))
    throw InputError(store_path + ": no run store there (frugal train creates one); name an existing one with --store");
  track::RunStore store(store_path, track::RunStore::Access::read_only);
  std::vector<track::RunRecord> records;
  if (args.runs.empty()) {
    records = store.list_runs(std::numeric_limits<int64_t>::max());
  } else {
    std::set<std::string> seen;
    for (const std::string& id : args.runs) {
      std::optional<track::RunRecord> run = store.find_run(id);
      if (!run) throw InputError("no run '" + id + "' in " + store_path);
      if (seen.insert(run->run_id).second) records.push_back(*run);
    }
  }
  std::vector<track::ExportRun> runs;
  for (const track::RunRecord& record : records) {
    track::ExportRun run{record, store.metrics(record.run_id), {}};
    for (const auto& [key, value] : train::job_keys(record.job_toml, "the job of run " + record.run_id))
      run.params[key] = param_text(value);
    runs.push_back(std::move(run));
  }
  const track::ExportCounts counts =
      args.format == "mlflow" ? track::export_mlflow(runs, args.dir) : track::export_csv(runs, args.dir);
  std::printf("exported %lld runs (%lld metric values, %lld files) as %s to %s\n", (long long)counts.runs,
              (long long)counts.metric_values, (long long)counts.files, args.format.c_str(), args.dir.c_str());
  return 0;
}

}  // namespace

Command add_runs_export_command(CLI::App& runs, std::string& store_path) {
  auto args = std::make_shared<ExportArgs>();
  CLI::App* cmd = runs.add_subcommand(
      "export",
      "Write runs (all, or the ones named) for other tools: --format mlflow writes an MLflow file store "
      "(`mlflow ui --backend-store-uri DIR` shows params, metrics with steps, tags; MLflow 3.x wants "
      "MLFLOW_ALLOW_FILE_STORE=true for a file store); --format csv writes runs.csv "
      "and metrics.csv (long format). Refuses a non-empty DIR that is not an export of that format; exporting "
      "again replaces the runs' files");
  cmd->add_option("--format", args->format, "mlflow or csv")->required()->check(CLI::IsMember({"mlflow", "csv"}));
  cmd->add_option("dir", args->dir, "Directory to write (created when missing)")->required();
  cmd->add_option("runs", args->runs, "Run ids or unique prefixes (default: every run)");
  cmd->add_option("--store", store_path, "Run store (SQLite), opened read-only");
  std::string* store = &store_path;
  return {cmd, [args, store] { return run_export(*args, *store); }};
}

}  // namespace frugal::cli
