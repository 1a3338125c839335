// number_text: an ostringstream with default flags, the form the messages have always used.
// echo_text / one_line: C-style escapes for control bytes; other bytes (UTF-8 included) kept.
#include "frugal/base/format.h"

#include <ctime>

#include <cstdio>
#include <sstream>

namespace frugal {

std::string number_text(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

namespace {

void append_escaped(std::string& out, char c) {
  switch (c) {
    case '\n': out += "\\n"; return;
    case '\r': out += "\\r"; return;
    case '\t': out += "\\t"; return;
    default: break;
  }
  const unsigned char u = static_cast<unsigned char>(c);
  if (u < 0x20 || u == 0x7f) {
    char buffer[8];
    std::snprintf(buffer, sizeof buffer, "\\x%02x", unsigned(u));
    out += buffer;
  } else {
    out += c;
  }
}

}  // namespace

std::string echo_text(std::string_view text, size_t max_chars) {
  std::string out;
  const bool cut = text.size() > max_chars;
  if (cut) text = text.substr(0, max_chars);
  for (char c : text) append_escaped(out, c);
  if (cut) out += "...";
  return out;
}

std::string one_line(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  std::string out;
  out.reserve(text.size());
  for (char c : text) append_escaped(out, c);
  return out;
}

std::string utc_time(double unix_seconds, const char* format) {
  const std::time_t t = std::time_t(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char text[64];
  std::strftime(text, sizeof text, format, &tm);
  return text;
}

}  // namespace frugal
