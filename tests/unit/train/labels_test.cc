// [data] labels and class_count through load_job and prepare_data, on small CSV, NPY and IDX files
// made here: class names mapped once over all splits (a test file starting with another class keeps
// the training numbering), integer classes 0..K-1 with K from class_count or the training labels,
// and every label outside the scheme an InputError naming the file and its line or row in the file.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "frugal/train/data_setup.h"
#include "frugal/train/job.h"
#include "test_util.h"
#include "unit/train/job_scratch.h"

namespace frugal::train {
namespace {

using frugal::testing::Scratch;

// "x,label" rows: x numbers the row so a test can find it after any split.
std::string csv(const std::vector<std::string>& labels) {
  std::string text = "x,label\n";
  for (size_t i = 0; i < labels.size(); ++i) text += std::to_string(i) + "," + labels[i] + "\n";
  return text;
}

std::vector<std::string> repeat(const std::vector<std::string>& labels, int times) {
  std::vector<std::string> out;
  for (int t = 0; t < times; ++t) out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

TEST(Labels, NamesAreOneSortedMappingOverAllSplits) {
  Scratch s;
  s.write("train.csv", csv(repeat({"cat", "dog", "emu"}, 4)));
  s.write("test.csv", csv({"emu", "dog", "cat", "emu"}));  // first row: another class than train's
  s.write("val.csv", csv({"dog", "ant"}));                 // a name the training file lacks
  JobSpec job = s.job("kind = \"csv\"\ntrain = \"" + s.file("train.csv") + "\"\ntest = \"" + s.file("test.csv") +
                      "\"\nval = \"" + s.file("val.csv") + "\"\nlabels = \"names\"");
  PreparedData d = prepare_data(job, s.file("cache"));
  EXPECT_EQ(d.label_names, (std::vector<std::string>{"ant", "cat", "dog", "emu"}));
  EXPECT_EQ(d.classes, 4);
  EXPECT_EQ(d.train.targets.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3}));
  EXPECT_EQ(d.test.targets.to_vector<int64_t>(), (std::vector<int64_t>{3, 2, 1, 3}));
  EXPECT_EQ(d.val.targets.to_vector<int64_t>(), (std::vector<int64_t>{2, 0}));
}

TEST(Labels, IntegerClassesWithoutNamesAreAnError) {
  Scratch s;
  s.write("train.csv", csv(repeat({"cat", "dog"}, 4)));
  JobSpec job = s.job("kind = \"csv\"\ntrain = \"" + s.file("train.csv") + "\"");
  EXPECT_TRUE(job.data.labels == "integer");
  EXPECT_INPUT_ERROR(prepare_data(job, s.file("cache")), s.file("train.csv"), "line 2, column 3", "'cat'",
                     "labels = \"names\"");
}

TEST(Labels, ClassCountFromTheTrainingLabelsOrTheKey) {
  Scratch s;
  s.write("train.csv", csv(repeat({"0", "2", "1"}, 4)));
  const std::string data = "kind = \"csv\"\ntrain = \"" + s.file("train.csv") + "\"";
  EXPECT_EQ(prepare_data(s.job(data), s.file("cache")).classes, 3);
  EXPECT_EQ(prepare_data(s.job(data + "\nclass_count = 5"), s.file("cache")).classes, 5);
  EXPECT_TRUE(prepare_data(s.job(data), s.file("cache")).label_names.empty());
  // class_count below a label: the label's line in the file.
  EXPECT_INPUT_ERROR(prepare_data(s.job(data + "\nclass_count = 2"), s.file("cache")), s.file("train.csv"),
                     "line 3: label 2 is outside the classes 0..1", "class_count = 2");
}

TEST(Labels, OneLargeLabelIsRefusedWithTheClassCountItImplies) {
  Scratch s;
  std::vector<std::string> labels = repeat({"0", "1"}, 6);
  labels[4] = "200";
  s.write("train.csv", csv(labels));
  const std::string data = "kind = \"csv\"\ntrain = \"" + s.file("train.csv") + "\"";
  EXPECT_INPUT_ERROR(prepare_data(s.job(data), s.file("cache")), s.file("train.csv"), "line 6: label 200",
                     "201 classes", "from 12 training samples", "class_count");
  labels[4] = "1e9";
  s.write("train.csv", csv(labels));
  EXPECT_INPUT_ERROR(prepare_data(s.job(data), s.file("cache")), "line 6: label 1000000000", "1000000001 classes");
  // Asked for, 201 classes train on 12 samples.
  labels[4] = "200";
  s.write("train.csv", csv(labels));
  EXPECT_EQ(prepare_data(s.job(data + "\nclass_count = 201"), s.file("cache")).classes, 201);
}

TEST(Labels, OutOfRangeLabelNamedByItsLineInTheFileNotTheShuffledSplit) {
  Scratch s;
  s.write("train.csv", csv(repeat({"0", "1"}, 10)));
  std::vector<std::string> test = repeat({"1", "0"}, 5);
  test[7] = "2";
  s.write("test.csv", csv(test));
  JobSpec job = s.job("kind = \"csv\"\ntrain = \"" + s.file("train.csv") + "\"\ntest = \"" + s.file("test.csv") +
                      "\"\nval_fraction = 0.5");
  EXPECT_INPUT_ERROR(prepare_data(job, s.file("cache")), s.file("test.csv"), "line 9: label 2",
                     "outside the classes 0..1");
  // In the training file with the val split taken from it: still the file's line.
  std::vector<std::string> train = repeat({"0", "1"}, 10);
  train[13] = "3";
  s.write("train.csv", csv(train));
  JobSpec counted = s.job("kind = \"csv\"\ntrain = \"" + s.file("train.csv") + "\"\nval_fraction = 0.5\nclass_count = 2");
  EXPECT_INPUT_ERROR(prepare_data(counted, s.file("cache")), s.file("train.csv"), "line 15: label 3");
}

// An NPY v1 file: header for `descr` and `shape`, then the raw little-endian values.
std::string npy(const std::string& descr, const std::string& shape, const std::string& values) {
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += char(header.size() & 0xFF);
  out += char(header.size() >> 8);
  return out + header + values;
}

std::string npy_i64(const std::vector<int64_t>& labels) {  // i64 (N)
  std::string shape = "(";  // built step by step: GCC 12 warns (-Wrestrict) on "(" + std::to_string(n)
  shape += std::to_string(labels.size()) + ",)";
  return npy("<i8", shape,
             std::string(reinterpret_cast<const char*>(labels.data()), labels.size() * 8));
}

std::string npy_f32_rows(int64_t n) {  // f32 (N, 1): 0, 1, 2, ...
  std::vector<float> x;
  for (int64_t i = 0; i < n; ++i) x.push_back(float(i));
  return npy("<f4", "(" + std::to_string(n) + ", 1)", std::string(reinterpret_cast<const char*>(x.data()), x.size() * 4));
}

TEST(Labels, NpyLabelsNamedByTheirRow) {
  Scratch s;
  s.write("x.npy", npy_f32_rows(6));
  s.write("y.npy", npy_i64({0, 1, 0, -1, 1, 0}));
  const std::string data = "kind = \"npy\"\ntrain = \"" + s.file("x.npy") + "\"\ntrain_targets = \"" + s.file("y.npy") + "\"";
  EXPECT_INPUT_ERROR(prepare_data(s.job(data), s.file("cache")), s.file("y.npy"), "row 4: label -1");
  s.write("y.npy", npy_i64({0, 1, 0, 1, 1, 7}));
  EXPECT_INPUT_ERROR(prepare_data(s.job(data), s.file("cache")), s.file("y.npy"), "row 6: label 7", "8 classes");
}

// IDX: 8 images of 2x2 u8 and their u8 labels.
std::string idx_images(int n) {
  std::string out("\x00\x00\x08\x03\x00\x00\x00", 7);
  out += char(n);
  out += std::string("\x00\x00\x00\x02\x00\x00\x00\x02", 8);
  out += std::string(size_t(n) * 4, '\x05');
  return out;
}
std::string idx_labels(const std::vector<uint8_t>& labels) {
  std::string out("\x00\x00\x08\x01\x00\x00\x00", 7);
  out += char(labels.size());
  for (uint8_t v : labels) out += char(v);
  return out;
}

TEST(Labels, IdxLabelsAboveTheClassCountNamedByTheirRow) {
  Scratch s;
  s.write("images.idx", idx_images(8));
  s.write("labels.idx", idx_labels({0, 1, 2, 0, 1, 2, 0, 1}));
  s.write("test-labels.idx", idx_labels({0, 1, 2, 3, 1, 2, 0, 1}));
  const std::string train = "kind = \"idx\"\ntrain_images = \"" + s.file("images.idx") + "\"\ntrain_labels = \"" +
                            s.file("labels.idx") + "\"";
  EXPECT_EQ(prepare_data(s.job(train), s.file("cache")).classes, 3);
  EXPECT_INPUT_ERROR(prepare_data(s.job(train + "\nclass_count = 2"), s.file("cache")), s.file("labels.idx"),
                     "row 3: label 2 is outside the classes 0..1");
  const std::string with_test = train + "\ntest_images = \"" + s.file("images.idx") + "\"\ntest_labels = \"" +
                                s.file("test-labels.idx") + "\"";
  EXPECT_INPUT_ERROR(prepare_data(s.job(with_test), s.file("cache")), s.file("test-labels.idx"),
                     "row 4: label 3 is outside the classes 0..2");
}

TEST(Labels, JobKeysChecked) {
  Scratch s;
  EXPECT_INPUT_ERROR(s.job("kind = \"npy\"\ntrain = \"x\"\ntrain_targets = \"y\"\nlabels = \"names\""), "labels",
                     "applies to csv");
  EXPECT_INPUT_ERROR(s.job("kind = \"csv\"\ntrain = \"x\"\nlabels = \"names\"\nclass_count = 3"), "class_count");
  EXPECT_INPUT_ERROR(s.job("kind = \"csv\"\ntrain = \"x\"\nlabels = \"names\"\nclasses = [0, 1]"), "classes");
  EXPECT_INPUT_ERROR(s.job("kind = \"csv\"\ntrain = \"x\"\nlabels = \"words\""), "labels", "integer, names");
}

}  // namespace
}  // namespace frugal::train
