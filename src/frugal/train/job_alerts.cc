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
#include "frugal/train/job_section.h"

namespace frugal::train {

AlertsSpec parse_alerts(toml::table* table, const std::string& file, const std::set<std::string>* overridden) {
  job_file::Section s(file, "alerts", table, overridden);
  AlertsSpec a;
  if (s.has("webhook")) {
    a.webhook = s.get_string("webhook", "");
    const std::string problem = track::webhook_url_problem(*a.webhook);
    if (!a.webhook->empty() && !problem.empty()) s.fail(*table->get("webhook"), "webhook", problem);
  }
  if (s.has("on_alert")) a.on_alert = s.get_string("on_alert", "");
  if (s.has("retries")) a.retries = s.get_int("retries", 0, 0, 20);
  // Seconds: finite, > 0 (a zero timeout would never deliver), at most a day.
  auto seconds = [&](const char* key, std::optional<double>& out) {
    if (s.has(key)) out = s.get_double(key, 0.0, 0.0, 86400, /*min_open=*/true);
  };
  seconds("backoff_s", a.backoff_s);
  seconds("timeout_s", a.timeout_s);
  seconds("command_timeout_s", a.command_timeout_s);
  seconds("flush_timeout_s", a.flush_timeout_s);
  s.check_unknown();
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
