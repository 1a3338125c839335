// The summary's "memory" object after a short MLP run through the real binary: weights and
// gradients are the parameter count x 4 bytes, AdamW's state twice that plus its step counters,
// activations and the total peak plausible. Uses a small generated CSV (no dataset needed).
#include <nlohmann/json.hpp>

#include "e2e/cli_helpers.h"

namespace frugal::e2e {
namespace {

using json = nlohmann::json;

// 3 classes in 12 features, from a fixed LCG.
std::string make_csv(int rows) {
  std::string out;
  for (int i = 0; i < 12; ++i) out += "x" + std::to_string(i) + ",";
  out += "label\n";
  uint64_t state = 99;
  auto uniform = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return double(state >> 11) / double(1ull << 53);
  };
  for (int r = 0; r < rows; ++r) {
    int label = int(uniform() * 3);
    for (int i = 0; i < 12; ++i) {
      char buffer[32];
      std::snprintf(buffer, sizeof buffer, "%.4f,", uniform() - 0.5 + (i % 3 == label ? 0.7 : 0.0));
      out += buffer;
    }
    out += std::to_string(label) + "\n";
  }
  return out;
}

TEST(Memory, SummaryOfAnMlpRunAccountsEachCategory) {
  Scratch s("memory");
  write_file(s / "data.csv", make_csv(600));
  write_file(s / "job.toml",
             "[run]\nname = \"memory\"\nseed = 1\nthreads = 2\nstore = \"runs.db\"\n"
             "[data]\nkind = \"csv\"\ntrain = \"data.csv\"\nval_fraction = 0.1\n"
             "[model]\nkind = \"mlp\"\nhidden = [32, 16]\n"
             "[optim]\nkind = \"adamw\"\nlr = 0.01\n"
             "[train]\nsteps = 20\nbatch_size = 32\nclip_norm = 1.0\nlog_every = 10\n");
  CommandResult r = s.frugal("train job.toml --json --out out");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json summary = json::parse(last_line(r.out), nullptr, false);
  ASSERT_FALSE(summary.is_discarded()) << r.out;
  ASSERT_TRUE(summary.contains("memory")) << summary.dump(2);
  const json& m = summary["memory"];
  const int64_t params = summary["params"];
  EXPECT_EQ(params, 12 * 32 + 32 + 32 * 16 + 16 + 16 * 3 + 3);
  EXPECT_EQ(m["weights_bytes"].get<int64_t>(), params * 4);
  EXPECT_EQ(m["gradients_bytes"].get<int64_t>(), params * 4);
  EXPECT_EQ(m["optimizer_state_bytes"].get<int64_t>(), 2 * params * 4 + 6 * 8);  // m, v and 6 step counters
  // Activations of a (32, 12) batch through 32 and 16 units: more than the layer outputs alone.
  EXPECT_GT(m["activations_peak_bytes"].get<int64_t>(), 32 * (32 + 16 + 3) * 4);
  EXPECT_LT(m["activations_peak_bytes"].get<int64_t>(), 1 << 20);
  EXPECT_GE(m["workspace_peak_bytes"].get<int64_t>(), 0);
  EXPECT_GE(m["allocator_cached_bytes"].get<int64_t>(), 0);
  const int64_t total = m["peak_total_bytes"];
  EXPECT_GE(total, m["weights_bytes"].get<int64_t>() + m["optimizer_state_bytes"].get<int64_t>() +
                       m["activations_peak_bytes"].get<int64_t>());
  EXPECT_LE(total, summary["peak_rss_bytes"].get<int64_t>());
  // summary.json carries the same object.
  json file = json::parse(read_file(s / "out" / "summary.json"), nullptr, false);
  EXPECT_EQ(file["memory"], m);
}

}  // namespace
}  // namespace frugal::e2e
