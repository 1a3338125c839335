// Helpers for end-to-end tests: run the built `frugal` binary in a scratch directory and capture
// its exit code and output.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace frugal::e2e {

// Debian's dataset-fashion-mnist, and the small Fashion-MNIST MLP job (64 hidden units, 150 AdamW
// steps of 64, seed 5) that the precision tests train, named `name`, with `precision` as the body
// of its [precision] section (more sections may follow it).
inline const char* kFashionDir = "/usr/share/datasets/fashion-mnist";
inline std::string fashion_mlp_precision_job(const std::string& name, const std::string& precision) {
  const std::string d = kFashionDir;
  return "[run]\nname = \"" + name + "\"\nseed = 5\nthreads = 2\nstore = \"runs.db\"\n\n[data]\nkind = \"idx\"\n"
         "train_images = \"" + d + "/train-images-idx3-ubyte.gz\"\ntrain_labels = \"" + d +
         "/train-labels-idx1-ubyte.gz\"\ntest_images = \"" + d + "/t10k-images-idx3-ubyte.gz\"\ntest_labels = \"" + d +
         "/t10k-labels-idx1-ubyte.gz\"\nval_fraction = 0.05\n\n[model]\nkind = \"mlp\"\nhidden = [64]\n"
         "\n[optim]\nkind = \"adamw\"\nlr = 0.002\n\n[train]\nsteps = 150\nbatch_size = 64\nlog_every = 10\n"
         "eval_every = 150\n\n[precision]\n" + precision;
}

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void write_file(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// A small two-feature CSV (a, b in [0, 1), label = a + b > 0.8) of n rows, with a header line.
inline std::string csv_rows(int n, bool header = true) {
  std::string text = header ? "a,b,label\n" : "";
  for (int i = 0; i < n; ++i) {
    double a = (i % 7) / 7.0, b = (i % 5) / 5.0;
    text += std::to_string(a) + "," + std::to_string(b) + "," + std::to_string(a + b > 0.8 ? 1 : 0) + "\n";
  }
  return text;
}

// A fresh directory per test under the build tree; commands run inside it.
class Scratch {
 public:
  explicit Scratch(const std::string& name)
      : dir_(std::filesystem::path(FRUGAL_BINARY_DIR) / "e2e-scratch" / name) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path operator/(const std::string& p) const { return dir_ / p; }

  // Runs `frugal ARGS` in the scratch directory (args are passed to the shell as written).
  CommandResult frugal(const std::string& args) const {
    std::string binary = std::string(FRUGAL_BINARY_DIR) + "/frugal";
    std::string out_path = (dir_ / ".stdout").string(), err_path = (dir_ / ".stderr").string();
    std::string command = "cd '" + dir_.string() + "' && '" + binary + "' " + args + " >'" + out_path + "' 2>'" +
                          err_path + "' </dev/null";
    int status = std::system(command.c_str());
    CommandResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = read_file(out_path);
    r.err = read_file(err_path);
    return r;
  }

 private:
  std::filesystem::path dir_;
};

inline std::string last_line(const std::string& text) {
  size_t end = text.find_last_not_of('\n');
  if (end == std::string::npos) return "";
  size_t start = text.rfind('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1) + 1);
}

// Runs `frugal ARGS` (with --json), expects exit code 0, and parses its last stdout line; the
// whole result into `result` when given.
inline nlohmann::json run_json(const Scratch& s, const std::string& args, CommandResult* result = nullptr) {
  CommandResult r = s.frugal(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(last_line(r.out), nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  if (result) *result = r;
  return j;
}

}  // namespace frugal::e2e
