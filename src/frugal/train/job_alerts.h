// The [alerts] table, of a job file or of the user config file, and the alert settings of a run:
// the job's keys over the user config's over track::AlertConfig's defaults. Limits: the user config
// is read for its [alerts] table only; other tables there are left to whatever reads them.
#pragma once

#include <set>
#include <string>

#include <toml++/toml.h>

#include "frugal/track/alert_sender.h"
#include "frugal/train/job.h"

namespace frugal::train {

// Validates an [alerts] table (nullptr: none) as job.cc reads its other sections (job_section.h):
// InputError "<file>:<line>: [alerts] KEY = VALUE: expected ..." (or "<file>: --set alerts.KEY: "
// for a key in `overridden`) for a webhook that is not an http(s) URL, a retries outside [0, 20], a
// timeout outside (0, 86400] seconds, or an unknown key (with the allowed ones).
AlertsSpec parse_alerts(toml::table* table, const std::string& file, const std::set<std::string>* overridden = nullptr);

// The user config file: $FRUGAL_CONFIG when set (it must exist), else
// ${XDG_CONFIG_HOME:-$HOME/.config}/frugal/config.toml (absent is fine: "" then).
std::string user_config_path();

// The run's alert settings: the job's [alerts] over the user config's. InputError naming the user
// config file and the key when that file is bad.
track::AlertConfig alert_config(const JobSpec& job);

}  // namespace frugal::train
