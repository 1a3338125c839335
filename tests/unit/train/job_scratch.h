// Test helper for the [data] tests of train/: a scratch directory named after the running test, and
// job() writing job.toml with a given [data] section (a tiny MLP otherwise) and loading it.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "frugal/train/job.h"

namespace frugal::testing {

// A scratch directory; job() writes job.toml with a [data] section and loads it.
class Scratch {
 public:
  Scratch() {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) / ("frugal-train-" + std::string(info->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~Scratch() { std::filesystem::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  void write(const std::string& name, const std::string& text) const { std::ofstream(dir_ / name) << text; }
  train::JobSpec job(const std::string& data, const std::vector<std::string>& overrides = {}) const {
    write("job.toml", "[run]\nseed = 3\nthreads = 1\nstore = \"" + file("runs.db") + "\"\n[data]\n" + data +
                          "\n[model]\nkind = \"mlp\"\nhidden = [4]\n[train]\nepochs = 1\nbatch_size = 8\n");
    return train::load_job(file("job.toml"), overrides);
  }

 private:
  std::filesystem::path dir_;
};

}  // namespace frugal::testing
