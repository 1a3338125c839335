// `frugal compare`: two runs side by side (cli/compare.cc says what it prints).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace frugal::cli {

// Prints (or with as_json, one JSON object) the comparison of run B against the baseline A; each is
// a run directory or a run id (prefix) of the store at store_path. Returns the exit code (0);
// InputError for a run that cannot be found or has no cost summary.
// The comparison `frugal compare --json` prints, as an object (for `frugal report`'s ledger too).
nlohmann::json compare_json(const std::string& ref_a, const std::string& ref_b, const std::string& store_path);

int cmd_compare(const std::string& ref_a, const std::string& ref_b, const std::string& store_path, bool as_json);

}  // namespace frugal::cli
