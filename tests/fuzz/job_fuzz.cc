// libFuzzer target for the TOML job-file parser, through parse_job (no file is read or written). An
// accepted job has a resolved TOML text and its hash, and the resolved text parses to the same job.
#include "fuzz_util.h"
#include "frugal/train/job.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace frugal;
  train::JobSpec job;
  if (!fuzz::accepted([&] { job = train::parse_job(fuzz::as_text(data, size), "/fuzz/job.toml"); })) return 0;
  FUZZ_CHECK(!job.resolved_toml.empty() && !job.hash.empty());
  train::JobSpec again;
  FUZZ_CHECK(fuzz::accepted([&] { again = train::parse_job(job.resolved_toml, "/fuzz/job.toml"); }));
  FUZZ_CHECK(again.hash == job.hash);
  return 0;
}
