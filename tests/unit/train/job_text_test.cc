// parse_job (the fuzz target's entry point) reads a job's text in memory as load_job reads the file,
// and findings of tests/fuzz/job_fuzz stay fixed.
#include <gtest/gtest.h>

#include "frugal/train/job.h"
#include "test_util.h"

namespace frugal::train {
namespace {

const char* minimal_job = "[data]\nkind = \"csv\"\ntrain = \"t.csv\"\n[model]\nkind = \"mlp\"\n[train]\nsteps = 3\n";

TEST(JobText, ParseReadsTextInMemoryAsTheFile) {
  JobSpec job = parse_job(minimal_job, "/jobs/mem.toml");
  EXPECT_EQ(job.path, "/jobs/mem.toml");
  EXPECT_EQ(job.train.steps, 3);
  EXPECT_EQ(job.data.kind, DataKind::csv);
  EXPECT_EQ(parse_job(job.resolved_toml, "/jobs/mem.toml").hash, job.hash);
  EXPECT_INPUT_ERROR(parse_job("[data\n", "/jobs/mem.toml"), "/jobs/mem.toml:1:", "invalid TOML");
  EXPECT_INPUT_ERROR(parse_job("[data]\n", "/jobs/mem.toml"), "/jobs/mem.toml", "missing section [model]");
}

}  // namespace
}  // namespace frugal::train
