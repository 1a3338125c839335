// The [dist] compression keys of gradient compression (train/job_dist.cc): each method by name, a
// method key refused under another method, an unknown method refused with the allowed names.
#include <gtest/gtest.h>

#include "frugal/base/error.h"
#include "unit/train/job_scratch.h"

namespace frugal::train {
namespace {

using testing::Scratch;

JobSpec job_with(const Scratch& s, const std::vector<std::string>& overrides) {
  s.write("train.csv", "a,b,label\n1,2,0\n3,4,1\n");
  return s.job("kind = \"csv\"\ntrain = \"" + s.file("train.csv") + "\"\n", overrides);
}

TEST(DistKeys, EachCompressionMethodByName) {
  Scratch s;
  for (const char* method : {"none", "bf16", "topk", "powersgd", "local_sgd", "sign"}) {
    JobSpec job = job_with(s, {std::string("dist.compression=\"") + method + "\""});
    EXPECT_STREQ(name_of(job.dist.compression), method);
  }
  JobSpec sign = job_with(s, {"dist.compression=\"sign\"", "dist.error_feedback=false", "dist.warmup_steps=5"});
  EXPECT_EQ(sign.dist.compression, Compression::sign);
  EXPECT_FALSE(sign.dist.error_feedback);
  EXPECT_EQ(sign.dist.warmup_steps, 5);
}

TEST(DistKeys, AMethodKeyUnderAnotherMethodAndAnUnknownMethodAreRefused) {
  Scratch s;
  try {
    job_with(s, {"dist.compression=\"sign\"", "dist.topk_ratio=0.1"});
    FAIL() << "topk_ratio under sign was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("topk_ratio"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("\"sign\""), std::string::npos) << e.what();
  }
  try {
    job_with(s, {"dist.compression=\"onebit\""});
    FAIL() << "an unknown method was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("sign"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace frugal::train
