// Where the paths of a job file point: a relative path written in the job file is relative to the
// job file's directory (as Cargo.toml's are), one given with --set to the current directory, so a
// job runs the same from any directory. Limits: `~` and environment variables are not expanded.
#pragma once

#include <map>
#include <set>
#include <string>

#include "frugal/train/job.h"

namespace frugal::train {

// Rewrites every path key of `job` that `written` holds (the job's keys after overrides, as
// "section.key"): relative ones not in `overridden` get the job file's directory in front. [init]
// from and [distill] weights may name a run id instead: a value without '/' that does not end in
// .safetensors and is no file beside the job stays as written. Records each path's origin in
// job.path_origins and its final value in job.paths.
void resolve_job_paths(JobSpec& job, const std::map<std::string, std::string>& written,
                       const std::set<std::string>& overridden);

// InputError "<absolute path>: not found (<key> = "<as written>" in <job>, resolved against the job
// file's directory <dir>)" when `path` (a value of a path key) does not exist; else nothing (a file
// that exists but cannot be read is left to its reader's message).
void require_job_file(const JobSpec& job, const std::string& path);

}  // namespace frugal::train
