// Every kind of bad input to `frugal train` gives one clear line naming the place and exit code 2,
// and starts nothing (no run directory, no run in the store). The cases the malformed-input corpus
// lists (issue 16) are rows of malformed_test.cc; these are the rest.
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "e2e/cli_helpers.h"

namespace frugal::e2e {
namespace {

const char* kGoodJob = R"([run]
name = "tiny"
seed = 3
threads = 2

[data]
kind = "csv"
train = "train.csv"
val_fraction = 0.2

[model]
kind = "mlp"
hidden = [8]

[optim]
kind = "sgd"
lr = 0.1
momentum = 0.9

[train]
epochs = 2
batch_size = 8
)";

class CliErrors : public ::testing::Test {
 protected:
  CliErrors() : scratch_(::testing::UnitTest::GetInstance()->current_test_info()->name()) {
    write_file(scratch_ / "train.csv", csv_rows(64));
  }
  // Writes the job with `from` replaced by `to`, runs train, expects exit 2 and `message` in stderr.
  void expect_error(const std::string& from, const std::string& to, const std::string& message,
                    const std::string& extra_args = "") {
    std::string job = kGoodJob;
    if (!from.empty()) {
      size_t at = job.find(from);
      ASSERT_NE(at, std::string::npos) << from;
      job.replace(at, from.size(), to);
    }
    write_file(scratch_ / "job.toml", job);
    CommandResult r = scratch_.frugal("train job.toml --quiet " + extra_args);
    EXPECT_EQ(r.exit_code, 2) << r.err << r.out;
    EXPECT_NE(r.err.find(message), std::string::npos) << "stderr: " << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
    EXPECT_FALSE(std::filesystem::exists(scratch_ / "runs" / "frugal.db")) << "a failed start wrote the run store";
  }
  Scratch scratch_;
};

TEST_F(CliErrors, GoodJobTrains) {
  write_file(scratch_ / "job.toml", kGoodJob);
  CommandResult r = scratch_.frugal("train job.toml --json --out out");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(last_line(r.out).find("\"status\":\"completed\""), std::string::npos) << r.out;
  for (const char* f : {"job.toml", "metrics.jsonl", "model.safetensors", "summary.json"})
    EXPECT_TRUE(std::filesystem::exists(scratch_ / "out" / f)) << f;
}

TEST_F(CliErrors, UnknownKeySuggestsTheNearOne) {
  expect_error("epochs = 2", "epohcs = 2", "job.toml:21: unknown key 'epohcs' in [train]; did you mean 'epochs'?");
}
TEST_F(CliErrors, UnknownSection) { expect_error("[optim]", "[optimizer]", "unknown section [optimizer]"); }
TEST_F(CliErrors, WrongType) { expect_error("lr = 0.1", "lr = \"fast\"", "job.toml:17: [optim] lr = \"fast\": expected a number"); }
TEST_F(CliErrors, OutOfRange) { expect_error("lr = 0.1", "lr = -0.1", "[optim] lr = -0.1: expected a number in (0, 10]"); }
TEST_F(CliErrors, BadChoice) { expect_error("kind = \"sgd\"", "kind = \"adam\"", "expected one of sgd, adamw; did you mean 'adamw'?"); }
TEST_F(CliErrors, MissingSection) { expect_error("[train]\nepochs = 2\nbatch_size = 8\n", "", "missing section [train]"); }
TEST_F(CliErrors, InvalidToml) { expect_error("lr = 0.1", "lr = = 0.1", "job.toml:17:"); }
TEST_F(CliErrors, BadOverride) { expect_error("", "", "--set train.batch_size: [train] batch_size = 0", "--set train.batch_size=0"); }
TEST_F(CliErrors, CsvWithBadRow) {
  write_file(scratch_ / "bad.csv", "a,b,label\n1,2,0\n3,x,1\n");
  expect_error("train.csv", "bad.csv", "bad.csv: line 3, column 3 (field 2, 'b'): expected a finite number, found 'x'");
}
TEST_F(CliErrors, CsvWithWrongFieldCount) {
  write_file(scratch_ / "bad.csv", "a,b,label\n1,2,0\n3,4\n");
  expect_error("train.csv", "bad.csv", "bad.csv: line 3: found 2 fields; expected 3");
}
TEST_F(CliErrors, TruncatedIdx) {
  // A header claiming 10 images of 28x28 followed by too few bytes.
  std::string idx("\x00\x00\x08\x03\x00\x00\x00\x0a\x00\x00\x00\x1c\x00\x00\x00\x1c", 16);
  idx += std::string(100, '\x01');
  write_file(scratch_ / "images.idx", idx);
  write_file(scratch_ / "labels.idx", std::string("\x00\x00\x08\x01\x00\x00\x00\x0a", 8) + std::string(10, '\x01'));
  expect_error("kind = \"csv\"\ntrain = \"train.csv\"",
               "kind = \"idx\"\ntrain_images = \"images.idx\"\ntrain_labels = \"labels.idx\"", "images.idx");
}
// [data] classes / per_class (the labels of train.csv are 0 and 1; 51 training rows after the split).
TEST_F(CliErrors, ClassOutOfRange) {
  expect_error("val_fraction = 0.2", "val_fraction = 0.2\nclasses = [1, 3]",
               "job.toml: [data] classes lists class 3, which does not occur in the training data "
               "(its labels are 0..1)");
}
TEST_F(CliErrors, ClassListedTwice) {
  expect_error("val_fraction = 0.2", "val_fraction = 0.2\nclasses = [1, 0, 1]",
               "job.toml:10: [data] classes: class 1 is listed twice");
}
TEST_F(CliErrors, PerClassAboveTheClassCount) {
  expect_error("val_fraction = 0.2", "val_fraction = 0.2\nper_class = 1000",
               "[data] per_class = 1000 but class 0 has only");
}
// [data] labels: integer classes 0..K-1 unless class names are asked for; any label outside the
// scheme names its file and its line there (not its row in a shuffled split), and nothing trains.
TEST_F(CliErrors, ClassNamesNeedLabelsNames) {
  write_file(scratch_ / "names.csv", "a,b,label\n1,2,cat\n3,4,dog\n");
  expect_error("train.csv", "names.csv", "names.csv: line 2, column 5: label 'cat' is not a class index");
}
TEST_F(CliErrors, ValLabelOutsideTheClassesNamesTheValFileLine) {
  write_file(scratch_ / "val.csv", "a,b,label\n1,2,0\n3,4,1\n5,6,5\n");
  expect_error("val_fraction = 0.2", "val = \"val.csv\"", "val.csv: line 4: label 5 is outside the classes 0..1");
}
TEST_F(CliErrors, TrainLabelAboveClassCountNamesTheFileLineBeforeTheSplit) {
  write_file(scratch_ / "train.csv", csv_rows(40) + "0.5,0.5,2\n" + csv_rows(20).substr(10));
  expect_error("val_fraction = 0.2", "val_fraction = 0.2\nclass_count = 2",
               "train.csv: line 42: label 2 is outside the classes 0..1");
}
// Class names: one sorted mapping over train and test (the test file starts with the other class),
// saved with the model; eval refuses data whose names differ.
TEST_F(CliErrors, ClassNamesMappedOverAllSplitsAndCheckedByEval) {
  std::string train = "a,b,label\n", test = "a,b,label\n";
  for (int i = 0; i < 40; ++i) train += std::to_string(i % 2) + "," + std::to_string(i % 3) + "," + (i % 2 ? "dog" : "cat") + "\n";
  for (int i = 0; i < 10; ++i) test += std::to_string(1 - i % 2) + "," + std::to_string(i % 3) + "," + (i % 2 ? "cat" : "dog") + "\n";
  write_file(scratch_ / "train.csv", train);
  write_file(scratch_ / "test.csv", test);
  std::string job = kGoodJob;
  job.replace(job.find("val_fraction = 0.2"), 18, "val_fraction = 0.2\ntest = \"test.csv\"\nlabels = \"names\"");
  job.replace(job.find("epochs = 2"), 10, "epochs = 30");
  write_file(scratch_ / "job.toml", job);
  CommandResult r = scratch_.frugal("train job.toml --json --out out");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The feature a alone decides the class (0: cat, 1: dog) in both files: not permuted, the test is learnt.
  EXPECT_NE(last_line(r.out).find("\"test_accuracy\":1"), std::string::npos) << last_line(r.out);
  std::ifstream model(scratch_ / "out" / "model.safetensors", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(model)), std::istreambuf_iterator<char>());
  EXPECT_NE(bytes.find("\"frugal.labels\":\"[\\\"cat\\\",\\\"dog\\\"]\""), std::string::npos);
  CommandResult ok = scratch_.frugal("eval job.toml --weights out/model.safetensors --split test");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  write_file(scratch_ / "train.csv", train.replace(train.find("dog"), 3, "emu"));
  CommandResult bad = scratch_.frugal("eval job.toml --weights out/model.safetensors --split test");
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("the model's classes ['cat', 'dog'] differ from the job's data ['cat', 'dog', 'emu']"),
            std::string::npos) << bad.err;
}
TEST_F(CliErrors, MissingJobFile) {
  CommandResult r = scratch_.frugal("train nothing.toml");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("nothing.toml: cannot open job file"), std::string::npos) << r.err;
}
TEST_F(CliErrors, UnknownOption) {
  CommandResult r = scratch_.frugal("train job.toml --frobnicate");
  EXPECT_EQ(r.exit_code, 2);
}

// A path the filesystem refuses is bad input (exit 2, the path named), not an internal error.
TEST_F(CliErrors, OutUnderAFile) {
  write_file(scratch_ / "taken", "a file");
  expect_error("", "", "taken/run: Not a directory", "--out taken/run");
}

// A full disk is the storage's fault: exit 74 (EX_IOERR), naming the file. /dev/full answers every
// write with ENOSPC; the final save's temporary file is made a link to it.
TEST_F(CliErrors, DiskFullExits74) {
  write_file(scratch_ / "job.toml", std::string(kGoodJob) + "\n[checkpoint]\nenabled = false\n");
  std::filesystem::create_directories(scratch_ / "out");
  std::filesystem::create_symlink("/dev/full", scratch_ / "out" / "model.safetensors.tmp");
  // With checkpoints off the training would be lost: the weights go to $TMPDIR instead, named.
  const std::filesystem::path safe_dir = scratch_ / "safe";
  std::filesystem::create_directories(safe_dir);
  ::setenv("TMPDIR", safe_dir.c_str(), 1);
  CommandResult r = scratch_.frugal("train job.toml --quiet --out out");
  ::unsetenv("TMPDIR");
  EXPECT_EQ(r.exit_code, 74) << r.err << r.out;
  EXPECT_NE(r.err.find("I/O error: out/model.safetensors"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("the trained weights are safe in " + safe_dir.string()), std::string::npos) << r.err;
  int kept = 0;
  for (const auto& entry : std::filesystem::directory_iterator(safe_dir))
    kept += entry.path().filename().string().find("-model.safetensors") != std::string::npos;
  EXPECT_EQ(kept, 1);
}

// Nothing lost: a fresh run does not overwrite the model of an earlier run, and no run writes into
// a system directory.
TEST_F(CliErrors, FreshRunIntoAnOutHoldingAModelIsRefused) {
  write_file(scratch_ / "out" / "model.safetensors", "the earlier run's weights");
  expect_error("", "", "out/model.safetensors: --out already holds the model of an earlier run", "--out out");
  EXPECT_EQ(read_file(scratch_ / "out" / "model.safetensors"), "the earlier run's weights");
}
TEST_F(CliErrors, CheckpointDirIsUsr) {
  expect_error("[train]", "[checkpoint]\ndir = \"/usr/\"\n\n[train]", "'/usr/' is a system directory");
}
TEST_F(CliErrors, OutIsTheRoot) { expect_error("", "", "--out /: a system directory", "--out /"); }

TEST_F(CliErrors, RunsWithAMissingStoreCreatesNothing) {
  for (const char* command : {"runs --store nowhere/runs.db", "runs show abc --store nowhere/runs.db", "runs list --store nowhere/runs.db"}) {
    CommandResult r = scratch_.frugal(command);
    EXPECT_EQ(r.exit_code, 2) << command << r.err;
    EXPECT_NE(r.err.find("nowhere/runs.db: no run store there"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(scratch_ / "nowhere")) << command;
  }
}

// A length given with --set replaces the job file's, in either unit.
TEST_F(CliErrors, SetStepsReplacesTheJobsEpochs) {
  write_file(scratch_ / "job.toml", kGoodJob);
  CommandResult r = scratch_.frugal("train job.toml --json --quiet --out out --set train.steps=3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(last_line(r.out).find("\"steps\":3,"), std::string::npos) << last_line(r.out);
}
TEST_F(CliErrors, SetEpochsReplacesTheJobsSteps) {
  std::string job = kGoodJob;
  job.replace(job.find("epochs = 2"), 10, "steps = 500");
  write_file(scratch_ / "job.toml", job);
  CommandResult r = scratch_.frugal("train job.toml --json --quiet --out out --set train.epochs=1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(last_line(r.out).find("\"epochs\":1"), std::string::npos) << last_line(r.out);
}
TEST_F(CliErrors, BothLengthsWithSetStillConflict) {
  expect_error("", "", "set either epochs or steps, not both", "--set train.steps=3 --set train.epochs=1");
}

TEST_F(CliErrors, HelpDescribesEveryCommand) {
  CommandResult r = scratch_.frugal("--help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* cmd : {"train", "eval", "sample", "runs"}) EXPECT_NE(r.out.find(cmd), std::string::npos) << cmd;
  for (const char* code : {"2 invalid input", "74 I/O error"}) EXPECT_NE(r.out.find(code), std::string::npos) << code;
  r = scratch_.frugal("train --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* opt : {"--set", "--out", "--json", "--quiet"}) EXPECT_NE(r.out.find(opt), std::string::npos) << opt;
}

}  // namespace
}  // namespace frugal::e2e
