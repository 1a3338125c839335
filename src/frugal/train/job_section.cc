// node_text for job file messages (job_section.h).
#include "frugal/train/job_section.h"

#include <charconv>

namespace frugal::train::job_file {

std::string node_text(const toml::node& node) {
  std::ostringstream out;
  if (node.is_string()) out << '"' << *node.value<std::string>() << '"';
  else if (node.is_array()) {  // on one line: toml++ prints a long array across lines
    out << '[';
    const toml::array& array = *node.as_array();
    for (size_t i = 0; i < array.size(); ++i) out << (i ? ", " : "") << node_text(array[i]);
    out << ']';
  }
  else if (node.is_table()) out << "{...}";
  else if (node.is_floating_point()) {
    char buffer[64];
    auto result = std::to_chars(buffer, buffer + sizeof buffer, *node.value<double>());
    out << std::string(buffer, result.ptr);
  } else out << toml::node_view<const toml::node>(node);
  return out.str();
}

}  // namespace frugal::train::job_file
