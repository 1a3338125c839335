// `frugal dashboard`: a read-only HTTP view of the run store (runs table, run pages that follow a
// running run, a JSON API and Prometheus /metrics), served by cpp-httplib from a small thread pool.
// Limits: no authentication and no TLS (loopback by default; the CLI warns otherwise); no write
// endpoint and no file served from disk: pages, CSS and JS are compiled in.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "frugal/track/run_store.h"

namespace frugal::track {

struct DashboardOptions {
  std::string store_path;
  std::string listen = "127.0.0.1";  // an IPv4 or IPv6 address
  int port = 8750;                   // 0 = any free port
  int threads = 4;                   // workers; each holds one read-only store connection
  // A 200 answer is reused for the same path and query for this long (0 = never): a flood of
  // readers then costs one store read and render per page per period, not one per request, so it
  // takes little from a training on the same machine. Pages are at most this much behind the store.
  double cache_s = 1.0;
};

class Dashboard {
 public:
  // Checks the store opens read-only (InputError naming it otherwise) and the listen address.
  explicit Dashboard(DashboardOptions options);
  ~Dashboard();
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  // Binds the socket; returns the port. InputError when the address or port cannot be used.
  int bind();
  // Serves until stop() (from another thread); returns false when the server failed.
  bool serve();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One HTTP answer of the dashboard, independent of the server library (the routes are testable
// without a socket).
struct DashboardReply {
  int status = 200;
  std::string content_type = "text/html; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Recent 200 answers by path and query, each reused until it is `ttl_s` old (0: nothing is kept).
// Bounded: when full (kMaxEntries), the whole cache is dropped (answers are cheap to remake, and only
// 200 answers are kept, which need a real page or run id, so cycling paths gains an attacker
// nothing). Safe from several threads.
class ReplyCache {
 public:
  static constexpr size_t kMaxEntries = 256;
  explicit ReplyCache(double ttl_s) : ttl_(ttl_s) {}
  static std::string key(const std::string& path, const std::multimap<std::string, std::string>& query);
  bool get(const std::string& key, DashboardReply& out);  // true: `out` is a fresh enough answer
  void put(const std::string& key, const DashboardReply& reply);
  size_t size();

 private:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    DashboardReply reply;
    Clock::time_point made;
  };
  std::chrono::duration<double> ttl_;
  std::mutex mutex_;
  std::map<std::string, Entry> entries_;
};

// The answer to GET `path` (already percent-decoded) with these query parameters.
DashboardReply dashboard_reply(RunStore& store, const std::string& path,
                               const std::multimap<std::string, std::string>& query);

// A run id from a URL reaches the store only when it is 1..128 characters of [A-Za-z0-9._-] and
// not "." or "..".
bool valid_run_id(const std::string& id);

// True for 127.0.0.0/8, ::1 and ::ffff:127.x.y.z; false for anything else (including names).
bool is_loopback_address(const std::string& address);
// True for a literal IPv4 or IPv6 address.
bool is_ip_address(const std::string& address);

// The Prometheus text format 0.0.4 page of /metrics.
std::string prometheus_text(RunStore& store);
// A label value escaped per the text format: backslash, double quote and newline.
std::string prometheus_label_value(const std::string& text);

}  // namespace frugal::track
