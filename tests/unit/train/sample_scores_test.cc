// The per-sample score file: a round trip keeps every score bit-exactly with its bill; scores of
// another data set, a file that is not a score file, and a missing kind are refused with the path.
#include <cmath>
#include <limits>

#include "frugal/base/error.h"
#include "frugal/io/safetensors.h"
#include "frugal/train/sampling/sample_scores.h"
#include "test_util.h"
#include "unit/data/temp_files.h"

namespace frugal::train {
namespace {

data::Dataset tiny(float shift) {
  return {Tensor::from_vector(std::vector<float>{0, 1, 2, 3, 4, 5 + shift}, {3, 2}),
          Tensor::from_vector(std::vector<int64_t>{0, 1, 0}, {3})};
}

TEST(SampleScores, RoundTripAndChecks) {
  testing::TempDir dir;
  const std::string path = dir.file("scores.safetensors");
  SampleScores scores;
  scores.samples = 3;
  scores.fingerprint = dataset_fingerprint(tiny(0));
  scores.scores["el2n"] = {0.5f, 1e-30f, 3.25f};
  scores.scores["loss"] = {1, 2, 3};
  scores.cost = {{"run_id", "abc"}, {"usd", 0.125}};
  write_sample_scores(path, scores);

  SampleScores back = read_sample_scores(path, tiny(0));
  EXPECT_EQ(back.scores, scores.scores);
  EXPECT_EQ(back.cost, scores.cost);
  EXPECT_EQ(back.get("el2n")[1], 1e-30f);
  EXPECT_INPUT_ERROR(back.get("grand"), "has: el2n, loss");
  // One changed input value is another data set.
  EXPECT_NE(dataset_fingerprint(tiny(1)), scores.fingerprint);
  EXPECT_INPUT_ERROR(read_sample_scores(path, tiny(1)), "scores of another data set");

  const std::string model = dir.file("model.safetensors");
  io::write_safetensors(model, {{"w", Tensor::from_vector(std::vector<float>{1, 2, 3}, {3})}});
  EXPECT_INPUT_ERROR(read_sample_scores(model, tiny(0)), "not a score file");

  scores.scores["loss"][2] = std::numeric_limits<float>::quiet_NaN();
  write_sample_scores(path, scores);
  EXPECT_INPUT_ERROR(read_sample_scores(path, tiny(0)), "score.loss[2] is not finite");
}

}  // namespace
}  // namespace frugal::train
