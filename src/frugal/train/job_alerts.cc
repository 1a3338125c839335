// [alerts] parsing and the user config file (see job_alerts.h).
#include "frugal/train/job_alerts.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "frugal/base/error.h"
#include "frugal/base/format.h"
#include "frugal/base/suggest.h"

namespace frugal::train {

namespace {

const std::vector<std::string> kKeys = {"webhook",   "on_alert",          "retries",        "backoff_s",
                                        "timeout_s", "command_timeout_s", "flush_timeout_s"};

std::string where(const std::string& file, const toml::node& node) {
  return file + ":" + std::to_string(node.source().begin.line) + ": ";
}

[[noreturn]] void fail(const std::string& file, const toml::node& node, const std::string& key,
                       const std::string& expected) {
  std::ostringstream value;
  if (node.is_string()) value << '"' << *node.value<std::string>() << '"';
  else if (node.is_number()) value << *node.value<double>();
  else value << "(a " << node.type() << ")";
  throw InputError(where(file, node) + "[alerts] " + key + " = " + one_line(value.str()) + ": " + expected);
}

}  // namespace

AlertsSpec parse_alerts(const toml::table* table, const std::string& file) {
  AlertsSpec a;
  if (!table) return a;
  for (const auto& [name, node] : *table) {
    const std::string key(name.str());
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end())
      throw InputError(where(file, node) + "unknown key '" + key + "' in [alerts]" + did_you_mean(key, kKeys) +
                       " (allowed: " + join(kKeys) + ")");
    if (key == "webhook" || key == "on_alert") {
      if (!node.is_string()) fail(file, node, key, "expected a string");
      const std::string text = *node.value<std::string>();
      if (key == "webhook") {
        if (const std::string problem = track::webhook_url_problem(text); !text.empty() && !problem.empty())
          fail(file, node, key, problem);
        a.webhook = text;
      } else {
        a.on_alert = text;
      }
    } else if (key == "retries") {
      if (!node.is_integer()) fail(file, node, key, "expected an integer in [0, 20]");
      const int64_t v = *node.value<int64_t>();
      if (v < 0 || v > 20) fail(file, node, key, "expected an integer in [0, 20]");
      a.retries = v;
    } else {
      // Seconds: finite, > 0 (a zero timeout would never deliver), at most a day.
      const double v = node.is_number() ? *node.value<double>() : NAN;
      if (!std::isfinite(v) || v <= 0 || v > 86400) fail(file, node, key, "expected seconds in (0, 86400]");
      (key == "backoff_s"           ? a.backoff_s
       : key == "timeout_s"         ? a.timeout_s
       : key == "command_timeout_s" ? a.command_timeout_s
                                    : a.flush_timeout_s) = v;
    }
  }
  return a;
}

std::string user_config_path() {
  namespace fs = std::filesystem;
  if (const char* explicit_path = std::getenv("FRUGAL_CONFIG"); explicit_path && *explicit_path) {
    if (!fs::exists(explicit_path))
      throw InputError(std::string(explicit_path) + ": no such file (FRUGAL_CONFIG names the user config file)");
    return explicit_path;
  }
  fs::path base;
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg) base = xdg;
  else if (const char* home = std::getenv("HOME"); home && *home) base = fs::path(home) / ".config";
  else return "";
  const fs::path path = base / "frugal" / "config.toml";
  std::error_code error;
  return fs::is_regular_file(path, error) ? path.string() : "";
}

track::AlertConfig alert_config(const JobSpec& job) {
  AlertsSpec user;
  if (const std::string path = user_config_path(); !path.empty()) {
    toml::table root;
    try {
      root = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
      throw InputError(path + ":" + std::to_string(e.source().begin.line) + ":" +
                       std::to_string(e.source().begin.column) + ": invalid TOML: " + std::string(e.description()));
    }
    if (root.contains("alerts") && !root["alerts"].is_table()) throw InputError(path + ": [alerts] must be a table");
    user = parse_alerts(root["alerts"].as_table(), path);
  }
  const AlertsSpec& mine = job.alerts;
  track::AlertConfig c;
  auto pick = [](const auto& job_value, const auto& user_value, auto fallback) {
    return job_value ? *job_value : user_value ? *user_value : fallback;
  };
  c.webhook = pick(mine.webhook, user.webhook, c.webhook);
  c.on_alert = pick(mine.on_alert, user.on_alert, c.on_alert);
  c.retries = int(pick(mine.retries, user.retries, int64_t(c.retries)));
  c.backoff_s = pick(mine.backoff_s, user.backoff_s, c.backoff_s);
  c.timeout_s = pick(mine.timeout_s, user.timeout_s, c.timeout_s);
  c.command_timeout_s = pick(mine.command_timeout_s, user.command_timeout_s, c.command_timeout_s);
  c.flush_timeout_s = pick(mine.flush_timeout_s, user.flush_timeout_s, c.flush_timeout_s);
  return c;
}

}  // namespace frugal::train
