// [data] kind = "packed" through load_job and prepare_data: the keys it takes and the ones it refuses
// (each by name), and a CSV job packed with prepare_splits + write_pack giving the same splits,
// classes and normalized values as the in-memory job it came from.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "frugal/data/packed.h"
#include "frugal/train/data_setup.h"
#include "frugal/train/job.h"
#include "test_util.h"
#include "unit/train/job_scratch.h"

namespace frugal::train {
namespace {

using frugal::testing::Scratch;

std::string job_error(const Scratch& s, const std::string& data) {
  try {
    s.job(data);
  } catch (const InputError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(PackedData, KeysAreCheckedByName) {
  Scratch s;
  const JobSpec job = s.job("kind = \"packed\"\npath = \"p\"\nshuffle_buffer = 512\nworkers = 3\nflip = true\n");
  EXPECT_EQ(job.data.kind, DataKind::packed);
  EXPECT_EQ(job.data.path, s.file("p"));  // relative to the job file
  EXPECT_EQ(job.data.shuffle_buffer, 512);
  EXPECT_EQ(job.data.workers, 3);
  EXPECT_NE(job_error(s, "kind = \"packed\"\n").find("path"), std::string::npos);
  for (const char* key : {"val_fraction = 0.1", "train_limit = 5", "classes = [1, 2]", "train = \"x.csv\""}) {
    const std::string error = job_error(s, "kind = \"packed\"\npath = \"p\"\n" + std::string(key) + "\n");
    EXPECT_NE(error.find(std::string(key).substr(0, std::string(key).find(' '))), std::string::npos) << error;
    EXPECT_NE(error.find("applied when the pack is written"), std::string::npos) << error;
  }
  EXPECT_NE(job_error(s, "kind = \"csv\"\ntrain = \"a.csv\"\nshuffle_buffer = 10\n").find("applies to packed data"),
            std::string::npos);
  EXPECT_NE(job_error(s, "kind = \"packed\"\npath = \"p\"\nshuffle_buffer = 0\n").find("shuffle_buffer"), std::string::npos);
  EXPECT_NE(job_error(s, "kind = \"packed\"\npath = \"p\"\nworkers = 0\n").find("workers"), std::string::npos);
  EXPECT_EQ(s.job("kind = \"csv\"\ntrain = \"a.csv\"\nworkers = 2\n").data.workers, 2);  // any classification kind
}

TEST(PackedData, PackedCsvMatchesTheInMemoryJob) {
  Scratch s;
  std::string csv = "a,b,label\n";
  for (int i = 0; i < 90; ++i) csv += std::to_string(i) + "," + std::to_string(i % 7 * 0.5) + "," + std::to_string(i % 3) + "\n";
  s.write("data.csv", csv);
  const JobSpec raw = s.job("kind = \"csv\"\ntrain = \"data.csv\"\nval_fraction = 0.2\ntest_fraction = 0.1\nnormalize = \"per-feature\"\n");
  const PreparedData memory = prepare_data(raw, s.file("cache"));
  const PreparedData splits = prepare_splits(raw);
  EXPECT_EQ(splits.train.inputs.dtype(), DType::f32);
  data::PackOptions options;
  options.block_samples = 8;
  data::write_pack(s.file("p"), splits.train, splits.val, splits.test, splits.classes, splits.label_names, options);

  const JobSpec packed_job = s.job("kind = \"packed\"\npath = \"p\"\nnormalize = \"per-feature\"\n");
  const PreparedData packed = prepare_data(packed_job, s.file("cache"));
  ASSERT_TRUE(packed.train_packed);
  EXPECT_FALSE(packed.train.inputs.defined());
  EXPECT_EQ(packed.train_size(), memory.train.size());
  EXPECT_EQ(packed.classes, memory.classes);
  EXPECT_EQ(packed.sample_shape, memory.sample_shape);
  EXPECT_EQ(packed.val.inputs.to_vector<float>(), memory.val.inputs.to_vector<float>());
  EXPECT_EQ(packed.test.targets.to_vector<int64_t>(), memory.test.targets.to_vector<int64_t>());
  std::vector<int64_t> rows(size_t(memory.train.size()));
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = int64_t(i);
  EXPECT_EQ(packed.train_packed->gather(rows).inputs.to_vector<float>(), memory.train.inputs.to_vector<float>());
  EXPECT_NE(packed.describe.find("packed: 1 shards"), std::string::npos) << packed.describe;
}

}  // namespace
}  // namespace frugal::train
