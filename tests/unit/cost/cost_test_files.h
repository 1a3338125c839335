// Test helpers for the cost module: a temporary directory removed at the end of the test, a
// one-call file writer (catalog snippets, fake powercap trees), and a user catalog entry.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>

namespace frugal::cost::testing {

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("frugal_cost_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string path(const std::string& name) const { return (path_ / name).string(); }

  // Writes `text` to `name` (creating parent folders) and returns the full path.
  std::string write(const std::string& name, const std::string& text) const {
    std::filesystem::path p = path_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }

 private:
  std::filesystem::path path_;
};

// A complete user catalog entry, "box", stating fp32 and bf16 peaks.
inline const char* const kBoxEntry = R"([instance.box]
provider = "acme"
region = "moon-1"
vcpus = 4
memory_gib = 16
usd_per_hour = 0.5
spot_usd_per_hour = 0.2
peak_tflops = { fp32 = 1.5, bf16 = 3 }
tdp_w = 100
carbon_g_per_kwh = 300
source = "acme price list"
date = "2024-06"
)";

}  // namespace frugal::cost::testing
