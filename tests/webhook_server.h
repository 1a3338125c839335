// A webhook for the alert tests: an HTTP server on 127.0.0.1 (any free port) in the test process
// that answers 500 to the first `failures` POSTs to /hook, then 200, recording each request's time,
// body and X-Frugal-Event header; it stops when the test ends. Shared by the sender's unit test and
// the end-to-end alerts test (both link cpp-httplib with its pkg-config flags, tests/CMakeLists.txt).
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

namespace frugal::testing {

class WebhookServer {
 public:
  using Clock = std::chrono::steady_clock;

  explicit WebhookServer(int failures = 0) : failures_(failures) {
    server_.Post("/hook", [this](const httplib::Request& request, httplib::Response& response) {
      std::lock_guard<std::mutex> lock(mutex_);
      times_.push_back(Clock::now());
      bodies_.push_back(request.body);
      events_.push_back(request.get_header_value("X-Frugal-Event"));
      response.status = int(bodies_.size()) <= failures_ ? 500 : 200;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~WebhookServer() {
    server_.stop();
    thread_.join();
  }
  WebhookServer(const WebhookServer&) = delete;
  WebhookServer& operator=(const WebhookServer&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  std::vector<Clock::time_point> times() {
    std::lock_guard<std::mutex> lock(mutex_);
    return times_;
  }
  std::vector<std::string> bodies() {
    std::lock_guard<std::mutex> lock(mutex_);
    return bodies_;
  }
  std::vector<std::string> events() {
    std::lock_guard<std::mutex> lock(mutex_);
    return events_;
  }

 private:
  int failures_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<Clock::time_point> times_;
  std::vector<std::string> bodies_, events_;
};

}  // namespace frugal::testing
