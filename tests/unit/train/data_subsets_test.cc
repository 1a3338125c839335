// [data] classes, train_limit and per_class through load_job and prepare_data, on small CSV and NPY
// files made here: which samples every split keeps, the renumbering, the seeded choice (same every
// run, not the first rows, val/test untouched), the log line and the errors. One short training run
// checks that the run's samples and its log line count what is left.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "frugal/train/data_setup.h"
#include "frugal/train/job.h"
#include "frugal/train/trainer.h"
#include "test_util.h"
#include "unit/train/job_scratch.h"

namespace frugal::train {
namespace {

namespace fs = std::filesystem;
using frugal::testing::Scratch;

// rows lines "i,label*10,label": column 0 identifies the row, column 1 its original label.
std::string six_class_csv(int rows) {
  std::string csv = "row,tag,label\n";
  for (int i = 0; i < rows; ++i)
    csv += std::to_string(i) + "," + std::to_string(i % 6 * 10) + "," + std::to_string(i % 6) + "\n";
  return csv;
}

std::vector<int64_t> column(const data::Dataset& d, int64_t k) {
  std::vector<int64_t> out;
  const int64_t width = d.inputs.size(1);
  std::vector<float> x = d.inputs.to_vector<float>();
  for (int64_t i = 0; i < d.size(); ++i) out.push_back(int64_t(x[size_t(i * width + k)]));
  return out;
}

// Every sample's target is the position of its original label (column 1 / 10) in `classes`.
void expect_renumbered(const data::Dataset& d, const std::vector<int64_t>& classes) {
  std::vector<int64_t> tags = column(d, 1), targets = d.targets.to_vector<int64_t>();
  for (size_t i = 0; i < tags.size(); ++i) {
    ASSERT_LT(targets[i], int64_t(classes.size()));
    EXPECT_EQ(classes[size_t(targets[i])] * 10, tags[i]) << "sample " << i;
  }
}

const char* kCsv = "kind = \"csv\"\ntrain = \"{train}\"\nnormalize = \"none\"\n";

std::string csv_data(const Scratch& s, const std::string& extra) {
  std::string data = kCsv;
  data.replace(data.find("{train}"), 7, s.file("train.csv"));
  return data + extra;
}

TEST(DataSubsets, ClassesFilterEverySplitAndRenumberInListedOrder) {
  Scratch s;
  s.write("train.csv", six_class_csv(60));
  s.write("val.csv", six_class_csv(30));
  JobSpec job = s.job(csv_data(s, "val = \"" + s.file("val.csv") + "\"\ntest_fraction = 0.2\nclasses = [4, 1, 5]\n"));
  EXPECT_EQ(job.data.classes, (std::vector<int64_t>{4, 1, 5}));
  PreparedData data = prepare_data(job, s.file("cache"));
  EXPECT_EQ(data.classes, 3);
  // 30 of the 60 rows have labels 1, 4 or 5; the test split takes 20% of them.
  EXPECT_EQ(data.train.size() + data.test.size(), 30);
  EXPECT_EQ(data.test.size(), 6);
  EXPECT_EQ(data.val.size(), 15);
  expect_renumbered(data.train, {4, 1, 5});
  expect_renumbered(data.val, {4, 1, 5});
  expect_renumbered(data.test, {4, 1, 5});
  EXPECT_NE(data.describe.find("(labels 4, 1, 5 as 0..2)"), std::string::npos) << data.describe;
  // Without the key nothing changes: six classes.
  PreparedData all = prepare_data(s.job(csv_data(s, "")), s.file("cache"));
  EXPECT_EQ(all.classes, 6);
  EXPECT_EQ(all.train.size(), 60);
}

// NPY inputs (N, 2) = (row, label * 10) and i64 labels.
void write_npy(const std::string& path, const std::string& descr, const std::string& shape, const void* data,
               size_t bytes) {
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string file = "\x93NUMPY";
  file += char(1);
  file += char(0);
  file += char(header.size() & 0xFF);
  file += char(header.size() >> 8);
  file += header;
  file.append(static_cast<const char*>(data), bytes);
  std::ofstream(path, std::ios::binary) << file;
}

TEST(DataSubsets, ClassesOnNpy) {
  Scratch s;
  std::vector<float> x;
  std::vector<int64_t> y;
  for (int i = 0; i < 40; ++i) {
    x.push_back(float(i));
    x.push_back(float(i % 4 * 10));
    y.push_back(i % 4);
  }
  write_npy(s.file("x.npy"), "<f4", "(40, 2)", x.data(), x.size() * 4);
  write_npy(s.file("y.npy"), "<i8", "(40,)", y.data(), y.size() * 8);
  JobSpec job = s.job("kind = \"npy\"\ntrain = \"" + s.file("x.npy") + "\"\ntrain_targets = \"" + s.file("y.npy") +
                      "\"\nnormalize = \"none\"\nval_fraction = 0.25\nclasses = [2, 0]\n");
  PreparedData data = prepare_data(job, s.file("cache"));
  EXPECT_EQ(data.classes, 2);
  EXPECT_EQ(data.train.size() + data.val.size(), 20);
  expect_renumbered(data.train, {2, 0});
  expect_renumbered(data.val, {2, 0});
}

TEST(DataSubsets, TrainLimitIsASeededChoiceAfterTheSplits) {
  Scratch s;
  s.write("train.csv", six_class_csv(60));
  PreparedData full = prepare_data(s.job(csv_data(s, "val_fraction = 0.2\n")), s.file("cache"));
  ASSERT_EQ(full.train.size(), 48);
  PreparedData ten = prepare_data(s.job(csv_data(s, "val_fraction = 0.2\ntrain_limit = 10\n")), s.file("cache"));
  EXPECT_EQ(ten.train.size(), 10);
  // The validation split is the one the unlimited run has.
  EXPECT_EQ(column(ten.val, 0), column(full.val, 0));
  EXPECT_EQ(ten.classes, 6);
  // A subset of the training split, not its first rows, the same every time, another with another seed.
  std::vector<int64_t> rows = column(ten.train, 0), all = column(full.train, 0);
  std::set<int64_t> all_set(all.begin(), all.end());
  for (int64_t row : rows) EXPECT_TRUE(all_set.count(row)) << row;
  EXPECT_NE(rows, std::vector<int64_t>(all.begin(), all.begin() + 10));
  PreparedData again = prepare_data(s.job(csv_data(s, "val_fraction = 0.2\ntrain_limit = 10\n")), s.file("cache"));
  EXPECT_EQ(column(again.train, 0), rows);
  EXPECT_EQ(again.train.targets.to_vector<int64_t>(), ten.train.targets.to_vector<int64_t>());
  PreparedData other = prepare_data(s.job(csv_data(s, "val_fraction = 0.2\ntrain_limit = 10\n"), {"run.seed=4"}),
                                    s.file("cache"));
  EXPECT_NE(column(other.train, 0), rows);
  EXPECT_NE(ten.describe.find("10 of 48 train (train_limit 10) / 12 val"), std::string::npos) << ten.describe;
}

TEST(DataSubsets, PerClassWithClasses) {
  Scratch s;
  s.write("train.csv", six_class_csv(120));
  PreparedData data =
      prepare_data(s.job(csv_data(s, "val_fraction = 0.1\nclasses = [5, 0, 3]\nper_class = 4\n")), s.file("cache"));
  EXPECT_EQ(data.train.size(), 12);
  EXPECT_EQ(data::class_counts(data.train), (std::vector<int64_t>{4, 4, 4}));
  expect_renumbered(data.train, {5, 0, 3});
  expect_renumbered(data.val, {5, 0, 3});
  EXPECT_EQ(data.val.size(), 6);  // 10% of the 60 samples of classes 5, 0, 3
  EXPECT_NE(data.describe.find("12 of 54 train (per_class 4)"), std::string::npos) << data.describe;
  // Both keys: at most 4 of each class, 7 in all.
  PreparedData both = prepare_data(
      s.job(csv_data(s, "val_fraction = 0.1\nclasses = [5, 0, 3]\nper_class = 4\ntrain_limit = 7\n")), s.file("cache"));
  EXPECT_EQ(both.train.size(), 7);
  for (int64_t count : data::class_counts(both.train)) EXPECT_LE(count, 4);
}

TEST(DataSubsets, Errors) {
  Scratch s;
  s.write("train.csv", six_class_csv(60));
  auto prepare = [&](const std::string& extra) { return prepare_data(s.job(csv_data(s, extra)), s.file("cache")); };
  EXPECT_INPUT_ERROR(prepare("classes = [1, 7]"), "classes lists class 7", "does not occur in the training data");
  EXPECT_INPUT_ERROR(prepare("classes = [1, 1]"), "[data] classes", "class 1 is listed twice");
  EXPECT_INPUT_ERROR(prepare("classes = [1]"), "[data] classes", "at least 2");
  EXPECT_INPUT_ERROR(prepare("classes = [1, -2]"), "[data] classes", "expected integers in [0,");
  EXPECT_INPUT_ERROR(prepare("train_limit = 0"), "[data] train_limit = 0", "expected an integer in [1,");
  EXPECT_INPUT_ERROR(prepare("per_class = -5"), "[data] per_class = -5", "expected an integer in [1,");
  EXPECT_INPUT_ERROR(prepare("val_fraction = 0.2\ntrain_limit = 49"), "train_limit = 49 but only 48 training samples");
  EXPECT_INPUT_ERROR(prepare("per_class = 11"), "per_class = 11 but class 0 has only 10 training samples");
  EXPECT_INPUT_ERROR(prepare("per_class = 2\ntrain_limit = 13"), "train_limit = 13 but only 12", "and per_class");
  // Class names are not class numbers.
  s.write("named.csv", "a,label\n1,cat\n2,dog\n3,cat\n");
  EXPECT_INPUT_ERROR(prepare_data(s.job("kind = \"csv\"\ntrain = \"" + s.file("named.csv") + "\"\nclasses = [0, 1]\n"),
                                  s.file("cache")),
                     "named.csv", "line 2", "'cat' is not a class index");
  EXPECT_INPUT_ERROR(s.job("kind = \"csv\"\ntrain = \"" + s.file("named.csv") + "\"\nlabels = \"names\"\nclasses = [0, 1]\n"),
                     "[data] classes", "labels = \"names\"");
  EXPECT_INPUT_ERROR(s.job("kind = \"text\"\ntrain = \"" + s.file("train.csv") + "\"\nper_class = 3\n"),
                     "[data] per_class", "classification data");
}

TEST(DataSubsets, TheRunCountsWhatIsLeft) {
  Scratch s;
  s.write("train.csv", six_class_csv(60));
  JobSpec job = s.job(csv_data(s, "val_fraction = 0.2\nclasses = [0, 1, 2]\nper_class = 5\n"));
  TrainOptions options;
  options.out_dir = s.file("run");
  const std::string log_path = s.file("log.txt");
  FILE* log = std::fopen(log_path.c_str(), "w");
  ASSERT_NE(log, nullptr);
  options.log = log;
  TrainOutcome outcome = run_training(job, options);
  std::fclose(log);
  EXPECT_EQ(outcome.exit_code, 0);
  EXPECT_EQ(outcome.summary.samples_seen, 15);  // one epoch of 3 classes x 5
  std::ifstream in(log_path);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(text.find("15 of 24 train (per_class 5)"), std::string::npos) << text;
  EXPECT_NE(text.find("3 classes (labels 0, 1, 2 as 0..2)"), std::string::npos) << text;
}

}  // namespace
}  // namespace frugal::train
