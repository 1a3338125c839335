// The dashboard server (see dashboard.h): routes, the JSON API and the hardening around
// cpp-httplib. Only GET and HEAD are answered (anything else 405, before a body is read); paths are
// matched exactly against the routes below, and a run id taken from a path is validated before it
// reaches the store, so no request can name a file. Each worker thread opens its own read-only
// store connection (RunStore is not shared between threads). Limits: httplib 0.11 bounds the request
// line and each header line (8 KiB) but not the number of headers; requests past 64 headers or
// 16 KiB of headers are refused here, after httplib read them. A client that trickles its request
// holds a worker up to the read timeout per piece: a few such clients can stall the dashboard (never
// the training, which does not wait for it). Answers are cached for DashboardOptions::cache_s.
#include "frugal/track/dashboard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <limits>
#include <map>
#include <mutex>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "frugal/base/error.h"
#include "frugal/track/dashboard_pages.h"
#include "frugal/track/report.h"
#include "frugal/track/run_figures.h"

namespace frugal::track {
namespace {

using json = nlohmann::json;

constexpr int64_t kMaxListedRuns = 500;
constexpr int64_t kMaxRowsPerAnswer = 10000;
constexpr size_t kMaxRunIdLength = 128;
constexpr size_t kMaxHeaders = 64;
constexpr size_t kMaxHeaderBytes = 16 * 1024;
constexpr size_t kMaxPayloadBytes = 1024;  // no endpoint takes a body

const char* const kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

json sourced_json(const std::optional<SourcedValue>& v) {
  if (!v) return nullptr;
  return {{"value", v->value}, {"source", v->source}};
}

json optional_json(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

json run_list_json(const dashboard::ListedRun& r) {
  const RunFigures& f = r.figures;
  return {{"run_id", r.record.run_id},
          {"name", r.record.name},
          {"status", r.record.status},
          {"started_at", r.record.started_at},
          {"finished_at", r.record.finished_at},
          {"wall_s", optional_json(f.wall_s)},
          {"step", f.step ? json(*f.step) : json(nullptr)},
          {"usd", sourced_json(f.usd)},
          {"kwh", sourced_json(f.kwh)},
          {"co2_kg", sourced_json(f.co2_kg)},
          {"quality", f.quality ? json{{"key", f.quality_key}, {"value", *f.quality}} : json(nullptr)}};
}

dashboard::ListedRun listed(RunStore& store, const RunRecord& run) {
  if (run.status == "running")
    return {run, run_figures(run, store.last_metric(run.run_id, "train"), store.last_metric(run.run_id, "eval"))};
  return {run, run_figures(run, std::nullopt, std::nullopt)};
}

std::vector<dashboard::ListedRun> listed_runs(RunStore& store) {
  std::vector<dashboard::ListedRun> runs;
  for (const RunRecord& run : store.list_runs(kMaxListedRuns)) runs.push_back(listed(store, run));
  std::stable_partition(runs.begin(), runs.end(), [](const dashboard::ListedRun& r) { return r.record.status == "running"; });
  return runs;
}

DashboardReply html(int status, std::string body) {
  DashboardReply r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

DashboardReply json_reply(int status, const json& body) {
  DashboardReply r;
  r.status = status;
  r.content_type = "application/json";
  r.body = body.dump() + "\n";
  return r;
}

DashboardReply not_found(RunStore& store, const std::string& what, bool api) {
  if (api) return json_reply(404, {{"error", what}});
  return html(404, dashboard::not_found_page(store.path(), what));
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

// /runs/<id>, /runs/<id>/fragment, /api/runs/<id>, /api/runs/<id>/metrics.
DashboardReply run_reply(RunStore& store, const std::string& id, const std::string& view,
                         const std::multimap<std::string, std::string>& query, bool api) {
  if (!valid_run_id(id)) return not_found(store, "no such run (a run id is letters, digits, '.', '_' and '-')", api);
  std::optional<RunRecord> run;
  try {
    run = store.find_run(id);
  } catch (const InputError& e) {  // an ambiguous prefix
    return not_found(store, e.what(), api);
  }
  if (!run) return not_found(store, "no run '" + id + "' in the store", api);
  const bool final = is_final_status(run->status);
  if (api && view.empty()) {
    json out = run_list_json(listed(store, *run));
    out["job"] = run->job_toml;
    out["out_dir"] = run->out_dir;
    json summary = json::parse(run->summary_json, nullptr, false);
    out["summary"] = summary.is_discarded() ? json(nullptr) : summary;
    return json_reply(200, out);
  }
  if (api && view == "metrics") {
    int64_t after = std::numeric_limits<int64_t>::min();
    if (auto it = query.find("after"); it != query.end()) {
      const std::string& text = it->second;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), after);
      if (ec != std::errc() || end != text.data() + text.size())
        return json_reply(400, {{"error", "after must be an integer step"}});
    }
    std::vector<MetricRow> rows = store.metrics_after(run->run_id, after, kMaxRowsPerAnswer + 1);
    const bool more = int64_t(rows.size()) > kMaxRowsPerAnswer;
    if (more) rows.pop_back();
    json out = {{"run_id", run->run_id}, {"status", run->status}, {"more", more}, {"rows", json::array()}};
    for (const MetricRow& row : rows) {
      json parsed = json::parse(row.json, nullptr, false);
      out["rows"].push_back({{"step", row.step}, {"kind", row.kind}, {"time_s", row.time_s},
                             {"row", parsed.is_discarded() ? json(nullptr) : parsed}});
    }
    out["last_step"] = rows.empty() ? json(nullptr) : json(rows.back().step);
    return json_reply(200, out);
  }
  if (api) return not_found(store, "no such endpoint", true);
  if (view != "" && view != "fragment") return not_found(store, "no such page", false);
  std::vector<ReportRun> runs = {ReportRun{*run, store.metrics(run->run_id)}};
  ReportOptions options;
  DashboardReply r;
  if (view == "fragment") {
    options.fragment = true;
    r = html(200, report_html(runs, options));
  } else if (final) {
    r = html(200, report_html(runs, options));
  } else {
    options.fragment = true;
    r = html(200, dashboard::live_run_page(*run, store.path(), report_html(runs, options)));
  }
  r.headers.emplace_back("X-Frugal-Final", final ? "1" : "0");
  return r;
}

// One read-only store connection per worker thread, opened on first use.
RunStore& thread_store(const std::string& path) {
  thread_local std::unique_ptr<RunStore> store;
  thread_local std::string opened;
  if (!store || opened != path) {
    store = std::make_unique<RunStore>(path, RunStore::Access::read_only);
    opened = path;
  }
  return *store;
}

}  // namespace

bool valid_run_id(const std::string& id) {
  if (id.empty() || id.size() > kMaxRunIdLength || id == "." || id == "..") return false;
  for (char c : id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
  return true;
}

bool is_ip_address(const std::string& address) {
  unsigned char buffer[sizeof(in6_addr)];
  return inet_pton(AF_INET, address.c_str(), buffer) == 1 || inet_pton(AF_INET6, address.c_str(), buffer) == 1;
}

bool is_loopback_address(const std::string& address) {
  in_addr v4{};
  if (inet_pton(AF_INET, address.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, address.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
  return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

DashboardReply dashboard_reply(RunStore& store, const std::string& path,
                               const std::multimap<std::string, std::string>& query) {
  if (path.empty() || path[0] != '/' || path.find('\0') != std::string::npos)
    return not_found(store, "no such page", false);
  if (path == "/") {
    return html(200, dashboard::page("frugal runs", store.path(),
                                     "<div data-poll=\"/fragment\" data-every=\"3000\">\n" +
                                         dashboard::runs_table(listed_runs(store)) + "</div>\n"));
  }
  if (path == "/fragment") return html(200, dashboard::runs_table(listed_runs(store)));
  if (path == "/metrics") {
    DashboardReply r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = prometheus_text(store);
    return r;
  }
  if (path == "/static/dashboard.css" || path == "/static/dashboard.js") {
    DashboardReply r;
    const bool css = path == "/static/dashboard.css";
    r.content_type = css ? "text/css; charset=utf-8" : "text/javascript; charset=utf-8";
    r.body = css ? dashboard::kCss : dashboard::kJs;
    return r;
  }
  if (path == "/api/runs") {
    json runs = json::array();
    for (const dashboard::ListedRun& r : listed_runs(store)) runs.push_back(run_list_json(r));
    return json_reply(200, {{"store", store.path()}, {"runs", runs}});
  }
  const std::vector<std::string> parts = split_path(path);
  if (parts.size() >= 2 && parts.size() <= 3 && parts[0] == "runs")
    return run_reply(store, parts[1], parts.size() == 3 ? parts[2] : "", query, false);
  if (parts.size() >= 3 && parts.size() <= 4 && parts[0] == "api" && parts[1] == "runs")
    return run_reply(store, parts[2], parts.size() == 4 ? parts[3] : "", query, true);
  return not_found(store, "no such page", path.rfind("/api/", 0) == 0);
}

std::string ReplyCache::key(const std::string& path, const std::multimap<std::string, std::string>& query) {
  std::string k = path;
  for (const auto& [name, value] : query) k += '\n' + name + '=' + value;  // a multimap: in name order
  return k;
}

bool ReplyCache::get(const std::string& key, DashboardReply& out) {
  if (ttl_.count() <= 0) return false;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end() || Clock::now() - it->second.made > ttl_) return false;
  out = it->second.reply;
  return true;
}

void ReplyCache::put(const std::string& key, const DashboardReply& reply) {
  if (ttl_.count() <= 0 || reply.status != 200) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (entries_.size() >= kMaxEntries) entries_.clear();
  entries_[key] = {reply, Clock::now()};
}

size_t ReplyCache::size() {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_.size();
}

struct Dashboard::Impl {
  DashboardOptions options;
  httplib::Server server;
  int port = -1;
  std::unique_ptr<ReplyCache> cache;
};

Dashboard::Dashboard(DashboardOptions options) : impl_(std::make_unique<Impl>()) {
  if (!is_ip_address(options.listen))
    throw InputError("--listen '" + options.listen + "': expected an IPv4 or IPv6 address such as 127.0.0.1 or ::1");
  if (options.port < 0 || options.port > 65535)
    throw InputError("--port " + std::to_string(options.port) + ": expected 0 (any free port) to 65535");
  if (options.threads < 1 || options.threads > 64) throw InputError("dashboard threads must be 1..64");
  RunStore check(options.store_path, RunStore::Access::read_only);  // InputError naming the store
  impl_->options = std::move(options);
  impl_->cache = std::make_unique<ReplyCache>(impl_->options.cache_s);

  httplib::Server& s = impl_->server;
  const int threads = impl_->options.threads;
  s.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  s.set_payload_max_length(kMaxPayloadBytes);
  s.set_read_timeout(2, 0);
  s.set_write_timeout(5, 0);
  // httplib serves a connection on one worker for as long as it lives, and a kept-alive client
  // idling between polls would hold one of the few workers (measured: 20 clients polling every
  // 100 ms got 41 answers/s and 1.8 s p99 with keep-alive, 176/s and 6 ms without). So one
  // request per connection (a loopback connect costs microseconds), and a connection that sends
  // nothing is dropped after 1 s.
  s.set_keep_alive_max_count(1);
  s.set_keep_alive_timeout(1);
  // httplib's default sets SO_REUSEPORT, with which a second server (or any process of this user)
  // binds the same port silently and takes a share of the connections: SO_REUSEADDR alone refuses
  // a port in use and still allows a quick restart past TIME_WAIT.
  s.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  // Small answers would otherwise wait ~40 ms on Nagle + delayed ACK.
  s.set_tcp_nodelay(true);
  s.set_default_headers({{"Cache-Control", "no-store"},
                         {"X-Content-Type-Options", "nosniff"},
                         {"Content-Security-Policy", kContentSecurityPolicy},
                         {"Referrer-Policy", "no-referrer"},
                         {"X-Frame-Options", "DENY"}});
  s.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    if (req.method != "GET" && req.method != "HEAD") {
      res.status = 405;
      res.set_header("Allow", "GET, HEAD");
      res.set_header("Connection", "close");  // a body we did not read must not be taken for a request
      res.set_content("method not allowed: the dashboard is read-only\n", "text/plain; charset=utf-8");
      return httplib::Server::HandlerResponse::Handled;
    }
    size_t header_bytes = 0;
    for (const auto& [key, value] : req.headers) header_bytes += key.size() + value.size() + 4;
    if (req.headers.size() > kMaxHeaders || header_bytes > kMaxHeaderBytes) {
      res.status = 431;
      res.set_header("Connection", "close");
      res.set_content("request headers too large\n", "text/plain; charset=utf-8");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!req.body.empty() || req.has_header("Content-Length") || req.has_header("Transfer-Encoding")) {
      if (req.get_header_value("Content-Length") != "0") {
        res.status = 413;
        res.set_header("Connection", "close");
        res.set_content("a GET takes no body\n", "text/plain; charset=utf-8");
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  const std::string store_path = impl_->options.store_path;
  ReplyCache* cache = impl_->cache.get();
  s.Get(".*", [store_path, cache](const httplib::Request& req, httplib::Response& res) {
    std::multimap<std::string, std::string> query(req.params.begin(), req.params.end());
    DashboardReply reply;
    const std::string key = ReplyCache::key(req.path, query);
    try {
      if (!cache->get(key, reply)) {
        reply = dashboard_reply(thread_store(store_path), req.path, query);
        cache->put(key, reply);
      }
    } catch (const std::exception& e) {
      reply.status = 503;
      reply.content_type = "text/plain; charset=utf-8";
      reply.body = std::string("the run store cannot be read now: ") + e.what() + "\n";
    }
    res.status = reply.status;
    for (const auto& [key, value] : reply.headers) res.set_header(key.c_str(), value);
    res.set_content(reply.body, reply.content_type.c_str());
  });
  s.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty())
      res.set_content("HTTP " + std::to_string(res.status) + "\n", "text/plain; charset=utf-8");
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    res.status = 500;
    res.set_content("internal error\n", "text/plain; charset=utf-8");
  });
}

Dashboard::~Dashboard() = default;

int Dashboard::bind() {
  const DashboardOptions& o = impl_->options;
  httplib::Server& s = impl_->server;
  if (o.port == 0) impl_->port = s.bind_to_any_port(o.listen);
  else impl_->port = s.bind_to_port(o.listen, o.port) ? o.port : -1;
  if (impl_->port <= 0)
    throw InputError("cannot listen on " + o.listen + " port " + std::to_string(o.port) +
                     " (in use, not an address of this host, or not permitted)");
  return impl_->port;
}

bool Dashboard::serve() { return impl_->server.listen_after_bind(); }

void Dashboard::stop() { impl_->server.stop(); }

}  // namespace frugal::track
