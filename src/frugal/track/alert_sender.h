// Alerts delivered off the caller's thread: a JSON payload POSTed to a webhook (http or https,
// retried with exponential backoff) and/or given on stdin to a command hook run with /bin/sh -c (its
// environment carries FRUGAL_ALERT_EVENT, FRUGAL_RUN_ID, FRUGAL_ALERT_STATUS; killed after a
// timeout). A bounded queue and one background thread: send() never blocks on the network, a full
// queue drops the oldest alert, and the destructor waits at most flush_timeout_s for the rest.
// Limits: delivery is at most once per attempt sequence (a webhook that answers 2xx late may see a
// retry); failures are warning lines, never errors.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace frugal::track {

struct AlertConfig {
  std::string webhook;   // "" = none; http://... or https://...
  std::string on_alert;  // "" = none; a shell command
  int retries = 4;       // webhook retries after the first attempt (backoff 0.5 s, 1, 2, 4, ...)
  double backoff_s = 0.5;          // the first retry's wait; each next one doubles it
  double timeout_s = 5.0;          // one webhook attempt (connect, write, read)
  double command_timeout_s = 10;   // the command hook is killed after this
  double flush_timeout_s = 5.0;    // at the end: how long the destructor waits for what is queued
  size_t queue_capacity = 64;
  bool empty() const { return webhook.empty() && on_alert.empty(); }
};

// One alert: the JSON payload (text) and the fields the command hook gets in its environment.
struct Alert {
  std::string event, run_id, status;
  std::string json;
};

// What happened to the alerts so far (for tests and the end-of-run warning).
struct AlertStats {
  int64_t queued = 0, dropped = 0;  // dropped: the queue was full
  int64_t waiting = 0;              // in the queue now (not counting one being delivered)
  int64_t webhook_attempts = 0, webhook_delivered = 0, webhook_failed = 0;
  int64_t commands_run = 0, commands_failed = 0;
};

// The URL checks the job file reader uses: "" when `url` is an http:// or https:// URL with a host,
// else what is wrong with it.
std::string webhook_url_problem(const std::string& url);

class AlertSender {
 public:
  // warn: one line per failure (default: "frugal: warning: ..." on stderr); called from the sender's
  // thread. Throws InputError when config.webhook is not an http(s) URL.
  explicit AlertSender(AlertConfig config, std::function<void(const std::string&)> warn = {});
  ~AlertSender();  // flush(config.flush_timeout_s), then a warning for what is left undelivered
  AlertSender(const AlertSender&) = delete;
  AlertSender& operator=(const AlertSender&) = delete;

  // Queues the alert and returns at once.
  void send(Alert alert);
  // Waits until everything queued so far is handled (delivered or given up), at most timeout_s;
  // true when it all was.
  bool flush(double timeout_s);
  AlertStats stats() const;

 private:
  struct Shared;
  std::shared_ptr<Shared> shared_;
};

}  // namespace frugal::track
