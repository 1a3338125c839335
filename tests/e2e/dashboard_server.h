// For e2e tests of `frugal dashboard`: the server as a child process that dies with the test
// (PR_SET_PDEATHSIG), its port read from its first line, and raw HTTP over a loopback socket (raw,
// so traversal and malformed requests reach the server unnormalised).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2e/cli_helpers.h"

namespace frugal::e2e {

class DashboardServer {
 public:
  DashboardServer(const Scratch& scratch, const std::vector<std::string>& args) {
    int out[2];
    if (pipe(out) != 0) return;
    err_path_ = (scratch / ".dashboard-err").string();
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);  // dies with the test, even when the test crashes
      if (getppid() != parent) _exit(127);
      if (chdir(scratch.dir().c_str()) != 0) _exit(127);
      int err = open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(out[1], 1), dup2(err, 2);
      close(out[0]);
      const std::string binary = std::string(FRUGAL_BINARY_DIR) + "/frugal";
      std::vector<char*> argv = {const_cast<char*>(binary.c_str()), const_cast<char*>("dashboard")};
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(binary.c_str(), argv.data());
      _exit(127);
    }
    close(out[1]);
    out_ = out[0];
    // The first line: "dashboard: http://127.0.0.1:PORT/ (...)".
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (first_line_.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buffer[256];
      ssize_t n = read(out_, buffer, sizeof buffer);
      if (n <= 0) break;
      first_line_.append(buffer, size_t(n));
    }
    const size_t at = first_line_.find("127.0.0.1:");
    if (at != std::string::npos) port_ = std::atoi(first_line_.c_str() + at + 10);
  }
  ~DashboardServer() {
    if (pid_ > 0 && !done_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) close(out_);
  }
  int port() const { return port_; }
  const std::string& first_line() const { return first_line_; }
  std::string err() const { return read_file(err_path_); }
  // SIGTERM, then the exit code (or -1 when it did not exit within `seconds`).
  int stop(double seconds, double* took = nullptr) {
    const auto start = std::chrono::steady_clock::now();
    kill(pid_, SIGTERM);
    int status = 0;
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        done_ = true;
        if (took) *took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1, port_ = -1;
  bool done_ = false;
  std::string first_line_, err_path_;
};

// Sends `request` as is and returns everything the server answers until it closes (or 5 s pass);
// "" when it cannot connect.
inline std::string raw_http(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(uint16_t(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return "";
  }
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may refuse and close before reading it all
    sent += size_t(n);
  }
  std::string answer;
  char buffer[8192];
  while (true) {
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    answer.append(buffer, size_t(n));
  }
  close(fd);
  return answer;
}

struct HttpAnswer {
  int status = 0;  // 0 = no answer
  std::string head, body;
};

inline HttpAnswer parse_answer(const std::string& raw) {
  HttpAnswer a;
  if (raw.rfind("HTTP/1.1 ", 0) == 0) a.status = std::atoi(raw.c_str() + 9);
  const size_t split = raw.find("\r\n\r\n");
  a.head = raw.substr(0, split);
  if (split != std::string::npos) a.body = raw.substr(split + 4);
  return a;
}

inline HttpAnswer http_get(int port, const std::string& path, const std::string& method = "GET") {
  return parse_answer(raw_http(port, method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"));
}

// The id of a run the dashboard on `port` lists as running now ("" when none).
inline std::string running_run_id(int port) {
  const nlohmann::json runs = nlohmann::json::parse(http_get(port, "/api/runs").body, nullptr, false);
  if (!runs.is_object()) return "";
  for (const nlohmann::json& r : runs.value("runs", nlohmann::json::array()))
    if (r.value("status", "") == "running") return r.value("run_id", "");
  return "";
}

}  // namespace frugal::e2e
