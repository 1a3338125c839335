// Path keys of a job resolved against the job file's directory (see job_paths.h).
#include "frugal/train/job_paths.h"

#include <filesystem>
#include <functional>
#include <vector>

#include "frugal/base/error.h"
#include "frugal/base/format.h"

namespace frugal::train {

namespace fs = std::filesystem;

namespace {

std::string absolute_text(const fs::path& path) {
  std::error_code error;
  fs::path absolute = fs::absolute(path, error);
  std::string text = (error ? path : absolute).lexically_normal().string();
  if (text.size() > 1 && text.back() == '/') text.pop_back();  // "/home/me/." normalizes to "/home/me/"
  return text;
}

// "[data] train" for "data.train"; "[train.early_stopping] x" for deeper keys.
std::string key_text(const std::string& key) {
  const size_t dot = key.rfind('.');
  return "[" + key.substr(0, dot) + "] " + key.substr(dot + 1);
}

}  // namespace

void resolve_job_paths(JobSpec& job, const std::map<std::string, std::string>& written,
                       const std::set<std::string>& overridden) {
  const fs::path dir = fs::path(job.path).parent_path();
  const std::string dir_text = absolute_text(dir.empty() ? fs::path(".") : dir);
  auto resolve = [&](const std::string& key, std::string& value, bool may_be_run_id) {
    if (value.empty() || !written.count(key)) return;
    const fs::path given(value);
    std::string origin;
    if (overridden.count(key)) {
      origin = "--set " + key + "=" + echo_text(value) +
               (given.is_absolute() ? "" : ", resolved against the current directory " + absolute_text("."));
    } else {
      origin = key_text(key) + " = \"" + echo_text(value) + "\" in " + job.path;
      if (!given.is_absolute()) {
        std::error_code error;
        const bool run_id = may_be_run_id && value.find('/') == std::string::npos && !value.ends_with(".safetensors") &&
                            !fs::exists(dir / given, error);
        if (run_id) return;
        value = (dir / given).lexically_normal().string();
        origin += ", resolved against the job file's directory " + dir_text;
      }
    }
    job.path_origins[value] = origin;
    job.paths[key] = value;
  };
  DataSpec& d = job.data;
  for (auto [key, value] : std::vector<std::pair<const char*, std::string*>>{
           {"data.train_images", &d.train_images}, {"data.train_labels", &d.train_labels},
           {"data.test_images", &d.test_images},   {"data.test_labels", &d.test_labels},
           {"data.train", &d.train},               {"data.val", &d.val},
           {"data.test", &d.test},                 {"data.train_targets", &d.train_targets},
           {"data.val_targets", &d.val_targets},   {"data.test_targets", &d.test_targets},
           {"data.path", &d.path},
           {"run.store", &job.run.store},          {"checkpoint.dir", &job.checkpoint.dir},
           {"cost.catalog", &job.cost.user_catalog}, {"lora.adapters", &job.lora.adapters}})
    resolve(key, *value, false);
  resolve("init.from", job.init.from, true);
  if (job.curriculum.enabled) resolve("curriculum.scores", job.curriculum.scores, false);  // issue 21
  resolve("data_pruning.scores", job.data_pruning.scores, false);
  if (job.distill) {
    resolve("distill.teacher", job.distill->teacher, false);
    resolve("distill.weights", job.distill->weights, true);
  }
}

void require_job_file(const JobSpec& job, const std::string& path) {
  std::error_code error;
  if (path.empty() || fs::exists(path, error)) return;
  auto it = job.path_origins.find(path);
  throw InputError(absolute_text(path) + ": not found" + (it == job.path_origins.end() ? "" : " (" + it->second + ")"));
}

}  // namespace frugal::train
