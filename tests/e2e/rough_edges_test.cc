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
