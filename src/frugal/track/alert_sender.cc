// The alert sender (see alert_sender.h): one background thread takes alerts from a bounded queue,
// POSTs each to the webhook with retries and backoff, then runs the command hook. The thread owns a
// shared state, so a destructor that stops waiting (a dead endpoint) can leave it to finish or give
// up on its own without touching freed memory.
#include "frugal/track/alert_sender.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include <httplib.h>

#include "frugal/base/error.h"

extern char** environ;

namespace frugal::track {

namespace {

using Clock = std::chrono::steady_clock;

struct Url {
  std::string scheme_host_port;  // "https://example.com:8443"
  std::string path;              // "/hook?x=1" ("/" when none)
};

std::string parse_url(const std::string& url, Url* out) {
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return "expected an http:// or https:// URL";
  const std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") return "expected an http:// or https:// URL, not " + scheme + "://";
  const size_t host_start = scheme_end + 3;
  size_t path_start = url.find_first_of("/?", host_start);
  const std::string authority = url.substr(host_start, path_start == std::string::npos ? std::string::npos
                                                                                       : path_start - host_start);
  if (authority.empty() || authority.front() == ':') return "expected a host after " + scheme + "://";
  for (char c : authority)
    if (c == ' ' || c == '@' || c < 0x21 || c > 0x7e) return "expected a host[:port] without spaces or user info";
  if (out) {
    out->scheme_host_port = scheme + "://" + authority;
    out->path = path_start == std::string::npos ? "/" : url.substr(path_start);
    if (out->path.front() == '?') out->path = "/" + out->path;
  }
  return "";
}

void default_warn(const std::string& line) {
  std::fflush(stdout);
  std::fprintf(stderr, "frugal: warning: %s\n", line.c_str());
}

void set_timeout(httplib::Client& client, double seconds) {
  const auto whole = time_t(seconds);
  const auto micro = time_t((seconds - double(whole)) * 1e6);
  client.set_connection_timeout(whole, micro);
  client.set_read_timeout(whole, micro);
  client.set_write_timeout(whole, micro);
}

// Runs `command` with /bin/sh -c, the payload on stdin and the alert's fields in the environment;
// "" on success (exit 0), else what went wrong. Killed (its process group) after timeout_s.
std::string run_command(const std::string& command, const Alert& alert, double timeout_s) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    if (entry.rfind("FRUGAL_ALERT_EVENT=", 0) == 0 || entry.rfind("FRUGAL_RUN_ID=", 0) == 0 ||
        entry.rfind("FRUGAL_ALERT_STATUS=", 0) == 0)
      continue;
    env.push_back(entry);
  }
  env.push_back("FRUGAL_ALERT_EVENT=" + alert.event);
  env.push_back("FRUGAL_RUN_ID=" + alert.run_id);
  env.push_back("FRUGAL_ALERT_STATUS=" + alert.status);
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string sh = "sh", dash_c = "-c", cmd = command;
  char* argv[] = {sh.data(), dash_c.data(), cmd.data(), nullptr};

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return std::string("pipe: ") + std::strerror(errno);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[0], 0);  // dup2 clears close-on-exec on stdin
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group: a timeout kills what it started too
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, "/bin/sh", &actions, &attr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(fds[0]);
  if (spawned != 0) {
    close(fds[1]);
    return std::string("cannot start /bin/sh: ") + std::strerror(spawned);
  }
  // A command that does not read its stdin: EPIPE (SIGPIPE is blocked on this thread), not a crash.
  for (size_t done = 0; done < alert.json.size();) {
    ssize_t n = write(fds[1], alert.json.data() + done, alert.json.size() - done);
    if (n <= 0) break;
    done += size_t(n);
  }
  close(fds[1]);
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  int status = 0;
  while (true) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0) return std::string("waitpid: ") + std::strerror(errno);
    if (Clock::now() >= deadline) {
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      char text[96];
      std::snprintf(text, sizeof text, "killed after %.3g s (alerts command_timeout_s)", timeout_s);
      return text;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  return "ended by signal " + std::to_string(WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

}  // namespace

std::string webhook_url_problem(const std::string& url) { return parse_url(url, nullptr); }

struct AlertSender::Shared {
  AlertConfig config;
  std::function<void(const std::string&)> warn;
  Url url;
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<Alert> queue;
  bool busy = false;     // an alert is being delivered
  bool closing = false;  // no more alerts: the thread ends once the queue is empty
  bool abandon = false;  // stop retrying and end now (the destructor stopped waiting)
  AlertStats stats;
  std::thread thread;

  void run();
  void deliver(const Alert& alert);
  void report(const std::string& line);
  bool post(const Alert& alert);
};

void AlertSender::Shared::run() {
  // Writing to a command hook that exited, or to a closed TLS connection, must not kill the run.
  sigset_t pipe_signal;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
  std::unique_lock<std::mutex> lock(mutex);
  while (true) {
    changed.wait(lock, [&] { return !queue.empty() || closing || abandon; });
    if (abandon || queue.empty()) return;  // closing with nothing left
    Alert alert = std::move(queue.front());
    queue.pop_front();
    busy = true;
    lock.unlock();
    deliver(alert);
    lock.lock();
    busy = false;
    changed.notify_all();
  }
}

// A warning, unless the sender gave up on this thread: its owner (and what `warn` refers to) may be
// gone then. Under the lock, so the destructor's give-up waits for a warning in progress.
void AlertSender::Shared::report(const std::string& line) {
  std::lock_guard<std::mutex> lock(mutex);
  if (!abandon) warn(line);
}

void AlertSender::Shared::deliver(const Alert& alert) {
  if (!config.webhook.empty() && !post(alert)) {
    std::lock_guard<std::mutex> lock(mutex);
    ++stats.webhook_failed;
  }
  if (!config.on_alert.empty()) {
    const std::string problem = run_command(config.on_alert, alert, config.command_timeout_s);
    {
      std::lock_guard<std::mutex> lock(mutex);
      ++stats.commands_run;
      stats.commands_failed += !problem.empty();
    }
    if (!problem.empty()) report("alert " + alert.event + ": [alerts] on_alert command " + problem);
  }
}

// The first attempt and config.retries more, waiting backoff_s, 2 backoff_s, ... between them.
bool AlertSender::Shared::post(const Alert& alert) {
  std::string last_error;
  double wait_s = config.backoff_s;
  for (int attempt = 0; attempt <= config.retries; ++attempt) {
    if (attempt > 0) {
      std::unique_lock<std::mutex> lock(mutex);
      if (changed.wait_for(lock, std::chrono::duration<double>(wait_s), [&] { return abandon; })) break;
      wait_s *= 2;
    }
    {
      std::lock_guard<std::mutex> lock(mutex);
      ++stats.webhook_attempts;
    }
    httplib::Client client(url.scheme_host_port);
    set_timeout(client, config.timeout_s);
    httplib::Headers headers = {{"User-Agent", "frugal"}, {"X-Frugal-Event", alert.event}};
    httplib::Result result = client.Post(url.path.c_str(), headers, alert.json, "application/json");
    if (result && result->status >= 200 && result->status < 300) {
      std::lock_guard<std::mutex> lock(mutex);
      ++stats.webhook_delivered;
      return true;
    }
    last_error = result ? "HTTP " + std::to_string(result->status) : httplib::to_string(result.error());
  }
  const int attempts = config.retries + 1;
  report("alert " + alert.event + " not delivered to " + config.webhook + " after " + std::to_string(attempts) +
         (attempts == 1 ? " attempt" : " attempts") + " (last: " + last_error + ")");
  return false;
}

AlertSender::AlertSender(AlertConfig config, std::function<void(const std::string&)> warn)
    : shared_(std::make_shared<Shared>()) {
  if (!config.webhook.empty()) {
    const std::string problem = parse_url(config.webhook, &shared_->url);
    if (!problem.empty()) throw InputError("[alerts] webhook = \"" + config.webhook + "\": " + problem);
  }
  if (config.queue_capacity == 0) config.queue_capacity = 1;
  shared_->config = std::move(config);
  shared_->warn = warn ? std::move(warn) : default_warn;
  std::shared_ptr<Shared> shared = shared_;
  shared_->thread = std::thread([shared] { shared->run(); });
}

AlertSender::~AlertSender() {
  const bool done = flush(shared_->config.flush_timeout_s);
  std::unique_lock<std::mutex> lock(shared_->mutex);
  shared_->closing = true;
  if (shared_->stats.dropped > 0)
    shared_->warn(std::to_string(shared_->stats.dropped) + " alert(s) dropped: more than " +
                  std::to_string(shared_->config.queue_capacity) + " were waiting at once");
  if (!done) {
    const size_t left = shared_->queue.size() + (shared_->busy ? 1 : 0);
    shared_->abandon = true;
    lock.unlock();
    char text[160];
    std::snprintf(text, sizeof text, "%zu alert(s) not delivered within [alerts] flush_timeout_s = %g s; giving up",
                  left, shared_->config.flush_timeout_s);
    shared_->warn(text);
    shared_->changed.notify_all();
    // An attempt in flight ends by its own timeout; the thread holds the shared state till then.
    shared_->thread.detach();
    return;
  }
  lock.unlock();
  shared_->changed.notify_all();
  shared_->thread.join();
}

void AlertSender::send(Alert alert) {
  std::lock_guard<std::mutex> lock(shared_->mutex);
  if (shared_->queue.size() >= shared_->config.queue_capacity) {
    // The oldest goes: the newest (a run's end) says the most.
    shared_->queue.pop_front();
    ++shared_->stats.dropped;
  }
  shared_->queue.push_back(std::move(alert));
  ++shared_->stats.queued;
  shared_->changed.notify_all();
}

bool AlertSender::flush(double timeout_s) {
  std::unique_lock<std::mutex> lock(shared_->mutex);
  return shared_->changed.wait_for(lock, std::chrono::duration<double>(timeout_s < 0 ? 0 : timeout_s),
                                   [&] { return shared_->queue.empty() && !shared_->busy; });
}

AlertStats AlertSender::stats() const {
  std::lock_guard<std::mutex> lock(shared_->mutex);
  AlertStats stats = shared_->stats;
  stats.waiting = int64_t(shared_->queue.size());
  return stats;
}

}  // namespace frugal::track
