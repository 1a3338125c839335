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

std::string csv_rows(int n) {
  std::string text = "a,b,label\n";
  for (int i = 0; i < n; ++i) {
    double a = (i % 7) / 7.0, b = (i % 5) / 5.0;
    text += std::to_string(a) + "," + std::to_string(b) + "," + std::to_string(a + b > 0.8 ? 1 : 0) + "\n";
  }
  return text;
}

std::string csv_job(const std::string& data_lines) {
  return "[run]\nname = \"edge\"\nthreads = 1\n[data]\nkind = \"csv\"\n" + data_lines +
         "\n[model]\nkind = \"mlp\"\nhidden = [4]\n[train]\nepochs = 1\nbatch_size = 8\n";
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
