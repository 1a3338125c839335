// Non-finite numbers never train silently: a run whose loss turns NaN/inf stops with exit 4, a
// checkpoint of the weights before the bad step and a line naming the step; NaN or inf inputs (NPY)
// and weights (eval --weights) are refused with exit 2 naming the file and the element or tensor.
#include <cstring>
#include <filesystem>
#include <limits>
#include <vector>

#include "e2e/cli_helpers.h"

namespace frugal::e2e {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Features of 1e30 and the largest SGD rate: the first step's update overflows the next forward.
const char* kDivergingJob = R"([run]
name = "diverge"
seed = 1
threads = 1
[data]
kind = "csv"
train = "train.csv"
val_fraction = 0.2
normalize = "none"
[model]
kind = "mlp"
hidden = [8]
[optim]
kind = "sgd"
lr = 10.0
[train]
epochs = 3
batch_size = 8
log_every = 1
)";

std::string huge_rows(int n) {
  std::string text = "a,b,label\n";
  for (int i = 0; i < n; ++i)
    text += std::to_string(1 + i % 7) + "e30," + std::to_string(1 + i % 5) + "e30," + std::to_string(i % 2) + "\n";
  return text;
}

TEST(Nonfinite, DivergingRunStopsWithExit4AndACheckpoint) {
  Scratch s("nonfinite_diverge");
  write_file(s / "train.csv", huge_rows(64));
  write_file(s / "job.toml", kDivergingJob);
  CommandResult r = s.frugal("train job.toml --json --out run");
  ASSERT_EQ(r.exit_code, 4) << r.err << r.out;
  const std::string line = "non-finite loss";
  EXPECT_NE(r.err.find(line), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("the step was not applied"), std::string::npos) << r.err;
  json j = json::parse(last_line(r.out));
  EXPECT_EQ(j["status"], "stopped_nonfinite");
  EXPECT_EQ(j["stop_reason"], "nonfinite");
  const int64_t steps = j["steps"];
  EXPECT_NE(r.err.find("at step " + std::to_string(steps)), std::string::npos) << r.err;
  EXPECT_LT(steps, 24) << "stopped before the end of its 3 epochs";
  EXPECT_GE(int64_t(j["checkpoints"]), 1);
  bool checkpoint = false;
  for (const auto& e : fs::directory_iterator(s / "run" / "checkpoints")) checkpoint |= e.path().extension() == ".fck";
  EXPECT_TRUE(checkpoint);
  EXPECT_FALSE(fs::exists(s / "run" / "model.safetensors")) << "no model from a diverged run";
  // Without --json: the summary says what happened.
  CommandResult plain = s.frugal("train job.toml --out run2");
  EXPECT_EQ(plain.exit_code, 4) << plain.err;
  EXPECT_NE(plain.out.find("stopped at a non-finite loss"), std::string::npos) << plain.out;
}

// An NPY file as NumPy lays it out (version 1, header padded to 64 bytes).
std::string npy(const std::string& descr, const std::string& shape, const void* data, size_t bytes) {
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += char(header.size() & 0xff);
  out += char(header.size() >> 8);
  return out + header + std::string(static_cast<const char*>(data), bytes);
}

TEST(Nonfinite, NpyWithNanRefusedNamingTheElement) {
  Scratch s("nonfinite_npy");
  std::vector<float> x(16 * 2);
  std::vector<int64_t> y(16);
  for (int i = 0; i < 16; ++i) x[size_t(2 * i)] = float(i), x[size_t(2 * i + 1)] = float(i % 3), y[size_t(i)] = i % 2;
  x[size_t(2 * 9 + 1)] = std::numeric_limits<float>::quiet_NaN();
  write_file(s / "x.npy", npy("<f4", "(16, 2)", x.data(), x.size() * 4));
  write_file(s / "y.npy", npy("<i8", "(16,)", y.data(), y.size() * 8));
  write_file(s / "job.toml", "[data]\nkind = \"npy\"\ntrain = \"x.npy\"\ntrain_targets = \"y.npy\"\n"
                             "[model]\nkind = \"mlp\"\nhidden = [4]\n[train]\nepochs = 1\nbatch_size = 4\n");
  CommandResult r = s.frugal("train job.toml --quiet --out run");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("x.npy: row 9, column 1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("NaN"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(s / "run")) << "nothing written";
}

TEST(Nonfinite, WeightsWithInfRefusedNamingTheTensor) {
  Scratch s("nonfinite_weights");
  write_file(s / "train.csv", "a,b,label\n1,2,0\n2,1,1\n3,1,0\n1,3,1\n");
  write_file(s / "job.toml", "[data]\nkind = \"csv\"\ntrain = \"train.csv\"\ntest = \"train.csv\"\n"
                             "[model]\nkind = \"mlp\"\nhidden = [4]\n[train]\nepochs = 1\nbatch_size = 2\n");
  // A one-tensor safetensors file: u64 header size, JSON header, f32 data [1, inf].
  const std::string header = R"({"layers.1.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string file(8, '\0');
  const uint64_t size = header.size();
  std::memcpy(file.data(), &size, 8);
  const float data[2] = {1, std::numeric_limits<float>::infinity()};
  file += header + std::string(reinterpret_cast<const char*>(data), 8);
  write_file(s / "bad.safetensors", file);
  CommandResult r = s.frugal("eval job.toml --weights bad.safetensors");
  EXPECT_EQ(r.exit_code, 2) << r.err << r.out;
  EXPECT_NE(r.err.find("bad.safetensors: tensor 'layers.1.weight'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("inf at element 1"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace frugal::e2e
