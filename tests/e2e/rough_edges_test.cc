// Valid inputs that used to trip a new user, through the real binary: relative paths in a job file
// resolve against its directory (from any current directory) and --set paths against the current
// one; CSV files with a count line, comments or CRLF endings train with skip_lines / comment; a CSV
// job without val/test split warns in one line; `frugal sample` without --prompt works on a model
// whose text had no newline.
#include <filesystem>
#include <string>

#include "e2e/cli_helpers.h"

namespace frugal::e2e {
namespace {

namespace fs = std::filesystem;

std::string csv_job(const std::string& data_lines) {
  return "[run]\nname = \"edge\"\nthreads = 1\n[data]\nkind = \"csv\"\n" + data_lines +
         "\n[model]\nkind = \"mlp\"\nhidden = [4]\n[train]\nepochs = 1\nbatch_size = 8\n";
}

TEST(RoughEdges, JobPathsResolveAgainstTheJobFilesDirectory) {
  Scratch s("rough_paths");
  write_file(s / "jobs" / "data" / "train.csv", csv_rows(40));
  write_file(s / "jobs" / "job.toml", csv_job("train = \"data/train.csv\"\nval_fraction = 0.2"));
  // From the scratch directory: data/train.csv is beside the job, not here.
  CommandResult r = s.frugal("train jobs/job.toml --quiet --json --out out");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // From another directory, with an absolute job path.
  Scratch elsewhere("rough_paths_elsewhere");
  CommandResult again = elsewhere.frugal("train '" + (s / "jobs" / "job.toml").string() + "' --quiet --json --out out2");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  // --set paths are the command line's: relative to the current directory.
  write_file(s / "other.csv", csv_rows(40));
  CommandResult set = s.frugal("train jobs/job.toml --quiet --json --out out3 --set data.train=other.csv");
  ASSERT_EQ(set.exit_code, 0) << set.err;
  CommandResult wrong = s.frugal("train jobs/job.toml --quiet --out out4 --set data.train=data/train.csv");
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_NE(wrong.err.find((s / "data" / "train.csv").string() + ": not found (--set data.train=data/train.csv, "
                           "resolved against the current directory " + s.dir().string() + ")"),
            std::string::npos) << wrong.err;
  // A missing file in the job names the path it looked at and why there.
  write_file(s / "jobs" / "bad.toml", csv_job("train = \"train.csv\"\nval_fraction = 0.2"));
  write_file(s / "train.csv", csv_rows(40));  // beside the current directory, where it is not looked for
  CommandResult missing = s.frugal("train jobs/bad.toml --quiet --out out5");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find((s / "jobs" / "train.csv").string() + ": not found ([data] train = \"train.csv\" in "
                             "jobs/bad.toml, resolved against the job file's directory " + (s / "jobs").string() + ")"),
            std::string::npos) << missing.err;
}

TEST(RoughEdges, CheckpointDirResolvesAgainstTheJobFilesDirectory) {
  Scratch s("rough_checkpoint_dir");
  write_file(s / "jobs" / "train.csv", csv_rows(40));
  write_file(s / "jobs" / "job.toml", csv_job("train = \"train.csv\"\nval_fraction = 0.2") +
                                          "[checkpoint]\ndir = \"ckpt\"\nevery_steps = 2\n");
  CommandResult r = s.frugal("train jobs/job.toml --quiet --json --out out");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(s / "jobs" / "ckpt")) << "checkpoints beside the job file";
  EXPECT_FALSE(fs::exists(s / "ckpt"));
}

TEST(RoughEdges, CsvWithCountLineCommentsAndCrlfTrains) {
  Scratch s("rough_csv");
  std::string rows = csv_rows(40);
  std::string crlf;
  for (char c : rows) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  write_file(s / "counted.csv", "40\r\n# made by a script\r\n" + crlf);
  write_file(s / "job.toml", csv_job("train = \"counted.csv\"\nval_fraction = 0.2\nskip_lines = 1\ncomment = \"#\""));
  CommandResult r = s.frugal("train job.toml --quiet --json --out out");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"status\":\"completed\""), std::string::npos) << r.out;
}

TEST(RoughEdges, NoValidationOrTestSplitWarnsInOneLine) {
  Scratch s("rough_no_split");
  write_file(s / "train.csv", csv_rows(40));
  write_file(s / "job.toml", csv_job("train = \"train.csv\""));
  CommandResult r = s.frugal("train job.toml --quiet --json --out out");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  size_t at = r.err.find("frugal: warning: job.toml: [data] gives no validation or test split");
  ASSERT_NE(at, std::string::npos) << r.err;
  const std::string line = r.err.substr(at, r.err.find('\n', at) - at);
  for (const char* word : {"no validation metric", "early stopping", "val_fraction", "test_fraction", "val and test files"})
    EXPECT_NE(line.find(word), std::string::npos) << word << " in " << line;
  // With a split there is no warning.
  write_file(s / "job.toml", csv_job("train = \"train.csv\"\nval_fraction = 0.2"));
  CommandResult quiet = s.frugal("train job.toml --quiet --json --out out2");
  ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_EQ(quiet.err.find("no validation or test split"), std::string::npos) << quiet.err;
}

TEST(RoughEdges, SampleWithoutPromptOnATextWithoutNewline) {
  Scratch s("rough_sample");
  std::string text;
  for (int i = 0; i < 40; ++i) text += "abc abd abe ";
  write_file(s / "text.txt", text);  // no newline anywhere
  write_file(s / "job.toml", "[run]\nname = \"gpt\"\nthreads = 1\n[data]\nkind = \"text\"\ntrain = \"text.txt\"\n"
                             "[model]\nkind = \"gpt\"\nlayers = 1\nheads = 1\nwidth = 8\ncontext = 8\n"
                             "[train]\nsteps = 2\nbatch_size = 2\n");
  CommandResult r = s.frugal("train job.toml --quiet --json --out out");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  CommandResult sample = s.frugal("sample job.toml --weights out/model.safetensors --tokens 5");
  EXPECT_EQ(sample.exit_code, 0) << sample.err;
  EXPECT_EQ(sample.out.size(), 6u) << sample.out;  // 5 characters and the newline
}

}  // namespace
}  // namespace frugal::e2e
