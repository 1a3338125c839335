// For e2e tests that open pages in headless Chromium: runs tests/e2e/browser_check.py (the DevTools
// protocol over a pipe) and returns the JSON it prints. Needs Debian's chromium and /usr/bin/python3
// (scripts/setup.sh --test); tests check chromium_installed() first and fail saying so.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "e2e/cli_helpers.h"

namespace frugal::e2e {

inline std::string browser_checker() { return std::string(FRUGAL_SOURCE_DIR) + "/tests/e2e/browser_check.py"; }

// Runs the checker with `args` (its JSON is stdout's last line); fails the test when it cannot.
inline nlohmann::json run_browser_checker(const std::string& args) {
  const std::string command = "timeout 120 /usr/bin/python3 '" + browser_checker() + "' " + args;
  std::array<char, 4096> buffer;
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return nlohmann::json::object();
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) out.append(buffer.data(), n);
  const int status = pclose(pipe);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << command << "\n" << out;
  nlohmann::json j = nlohmann::json::parse(last_line(out), nullptr, false);
  EXPECT_TRUE(j.is_object()) << out;
  return j.is_object() ? j : nlohmann::json::object();
}

inline bool chromium_installed() { return std::system("command -v chromium >/dev/null 2>&1") == 0; }

}  // namespace frugal::e2e
