// Job keys of the data-efficiency techniques and of packed data (issue 21), parsed apart from job.cc
// as job_alerts.h is: the [data] keys through the [data] Section, the sections from the TOML root.
#pragma once

#include <set>
#include <string>

#include <toml++/toml.h>

#include "frugal/train/job.h"
#include "frugal/train/job_section.h"

namespace frugal::train {

// [data] dedup, dedup_unit, dedup_threshold, dedup_shingle (text data only; the near-duplicate keys
// with dedup = "near" only). d.kind is parsed already.
void parse_data_dedup(job_file::Section& s, DataSpec& d);
// [data] path, shuffle_buffer, workers; with kind = "packed", the keys applied when the pack was
// written (splits, classes, limits, the raw files) are refused by name.
void parse_data_packed(job_file::Section& s, DataSpec& d);
// [data_pruning], [seq_warmup], [curriculum], [selective_backprop], [importance_sampling] (each
// present = on), after [data], [model] and [distill]: InputError for a section that does not fit the
// data or model, [curriculum] with [importance_sampling], and, on packed data, what needs the
// training split in memory ([distill], [data_pruning], a [curriculum] score file).
void parse_data_efficiency(toml::table& root, JobSpec& job, const std::string& path,
                           const std::set<std::string>& overridden);

}  // namespace frugal::train
