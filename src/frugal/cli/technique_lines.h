// The printed summary's lines for a run's techniques (RunSummary::techniques).
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace frugal::cli {

// One line (or two) per technique: in words for the known ones (prune, data pruning, dedup, the
// data-efficiency techniques, packed data), else its figures as JSON.
void print_technique_lines(const std::map<std::string, nlohmann::json>& techniques);

}  // namespace frugal::cli
