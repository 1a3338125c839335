// PyTorch interop through the real binary: `frugal eval` of a model trained by PyTorch and of one
// trained by frugal (both committed in tests/interop/, made by make_interop.py) gives exactly the
// test-set result PyTorch recorded, and a state dict with a wrong key or shape is refused by name.
// Limits: needs Debian's dataset-fashion-mnist (skipped without it); covers the MLP mapping only.
#include <cmath>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2e/cli_helpers.h"
#include "frugal/io/safetensors.h"

namespace frugal::e2e {
namespace {

using json = nlohmann::json;
const char* kFashion = "/usr/share/datasets/fashion-mnist";

std::filesystem::path interop_dir() { return std::filesystem::path(FRUGAL_SOURCE_DIR) / "tests" / "interop"; }
std::string job_path() { return (interop_dir() / "job.toml").string(); }

json expected() {
  json j = json::parse(read_file(interop_dir() / "expected.json"), nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "tests/interop/expected.json is not valid JSON";
  return j;
}

// Runs `frugal eval` on a committed weight file and checks it against PyTorch's numbers.
void expect_same_as_pytorch(const std::string& file) {
  Scratch s("interop-" + file);
  json want = expected()[file];
  ASSERT_TRUE(want.is_object()) << "expected.json has no entry for " << file;
  CommandResult r = s.frugal("eval '" + job_path() + "' --weights '" + (interop_dir() / file).string() + "' --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json got = json::parse(last_line(r.out), nullptr, false);
  ASSERT_FALSE(got.is_discarded()) << r.out;
  ASSERT_EQ(got["samples"].get<int64_t>(), want["samples"].get<int64_t>());
  int64_t samples = got["samples"];
  int64_t correct = std::llround(got["accuracy"].get<double>() * double(samples));
  // PyTorch found no sample whose two largest float64 logits are within `tie_margin`, so kernel
  // rounding (~1e-6 relative in f32) cannot flip a prediction: the counts must agree exactly.
  ASSERT_EQ(want["near_ties"].get<int64_t>(), 0) << "regenerate the files: a near-tie makes the count fragile";
  EXPECT_EQ(correct, want["correct"].get<int64_t>()) << file << ": frugal accuracy " << got["accuracy"];
  // The mean loss sums 10000 f32 cross-entropies from logits computed by different kernels (frugal:
  // oneDNN, PyTorch: MKL) in different orders; they agree to ~1e-8 relative, 1e-5 leaves headroom
  // for other CPUs while still catching a wrong weight (which moves the loss by percent).
  double want_loss = want["loss"];
  EXPECT_NEAR(got["loss"].get<double>(), want_loss, 1e-5 * want_loss) << file;
}

TEST(Interop, TorchTrainedMlpEvaluatesAsInPyTorch) {
  if (!std::filesystem::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  expect_same_as_pytorch("torch_mlp.safetensors");
}

TEST(Interop, FrugalTrainedMlpEvaluatesAsInPyTorch) {
  if (!std::filesystem::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  expect_same_as_pytorch("frugal_mlp.safetensors");
}

// A state dict with one key renamed or one tensor reshaped: exit code 2 and the key in the message.
TEST(Interop, WrongNameOrShapeIsRefusedNamingTheKey) {
  if (!std::filesystem::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  Scratch s("interop-bad");
  io::SafetensorsFile good = io::read_safetensors((interop_dir() / "torch_mlp.safetensors").string());
  ASSERT_EQ(good.tensors.size(), 4u);

  // A common mistake: PyTorch attribute names (fc1) instead of the Sequential's indices.
  std::vector<std::pair<std::string, Tensor>> renamed;
  for (const auto& [name, t] : good.tensors) renamed.emplace_back(name == "layers.1.weight" ? "fc1.weight" : name, t);
  io::write_safetensors((s / "renamed.safetensors").string(), renamed);
  CommandResult r = s.frugal("eval '" + job_path() + "' --weights renamed.safetensors --json");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("renamed.safetensors"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'fc1.weight'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'layers.1.weight'"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;

  // Another: a weight stored (in, out) instead of PyTorch's (out, in).
  std::vector<std::pair<std::string, Tensor>> transposed;
  for (const auto& [name, t] : good.tensors)
    transposed.emplace_back(name, name == "layers.3.weight" ? t.transpose_view(0, 1).contiguous() : t);
  io::write_safetensors((s / "transposed.safetensors").string(), transposed);
  r = s.frugal("eval '" + job_path() + "' --weights transposed.safetensors --json");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("transposed.safetensors"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'layers.3.weight'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("(64, 10)"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

}  // namespace
}  // namespace frugal::e2e
