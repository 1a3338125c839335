// End-to-end tests that interrupt a training process: a child process in a scratch directory the
// test can signal and wait for, and the step of the trainer's last heartbeat (how far it got).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "e2e/cli_helpers.h"

namespace frugal::e2e {

// A process started in the scratch directory, so the test can signal it: `frugal` by default, or
// another binary (a program built against libfrugal).
class Process {
 public:
  Process(const Scratch& scratch, const std::vector<std::string>& args, const std::string& tag,
          std::string binary = std::string(FRUGAL_BINARY_DIR) + "/frugal") {
    out_path_ = (scratch / (".out-" + tag)).string();
    err_path_ = (scratch / (".err-" + tag)).string();
    pid_ = fork();
    if (pid_ == 0) {
      if (chdir(scratch.dir().c_str()) != 0) _exit(127);
      int out = open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int err = open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int in = open("/dev/null", O_RDONLY);
      dup2(out, 1), dup2(err, 2), dup2(in, 0);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(binary.c_str()));
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(binary.c_str(), argv.data());
      _exit(127);
    }
  }
  pid_t pid() const { return pid_; }
  // Non-blocking: true once the process ended (status then valid).
  bool done() {
    if (finished_) return true;
    pid_t r = waitpid(pid_, &status_, WNOHANG);
    if (r == pid_) finished_ = true;
    return finished_;
  }
  int wait() {
    if (!finished_) waitpid(pid_, &status_, 0), finished_ = true;
    return status_;
  }
  void kill_with(int signal) { ::kill(pid_, signal); }
  std::string out() const { return read_file(out_path_); }
  std::string err() const { return read_file(err_path_); }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  bool finished_ = false;
  std::string out_path_, err_path_;
};

// The step of the last heartbeat the trainer wrote in `checkpoints`, -1 when there is none yet.
inline int64_t heartbeat_step(const std::filesystem::path& checkpoints) {
  std::istringstream in(read_file(checkpoints / "heartbeat"));
  std::string magic, run_id;
  int version = 0;
  long long step = -1;
  if (!(in >> magic >> version >> run_id >> step) || magic != "frugal-heartbeat") return -1;
  return step;
}

}  // namespace frugal::e2e
