// Job keys of distributed training and federated averaging (issue 19): [dist] and [federated],
// parsed apart from job.cc as job_sampling.h is.
#pragma once

#include <set>
#include <string>

#include <toml++/toml.h>

#include "frugal/train/job.h"

namespace frugal::train {

// [dist] and [federated], after [train], [data] and [model]: InputError for a key out of range, a
// compression setting of another method, or [federated] on text data.
void parse_dist_sections(toml::table& root, JobSpec& job, const std::string& path,
                         const std::set<std::string>& overridden);

}  // namespace frugal::train
