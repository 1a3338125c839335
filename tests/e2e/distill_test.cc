// `frugal train` with [distill] through the binary: a teacher trained first and named by its run id,
// the summary's distill object, the logit cache built then reused (no teacher forward at all, the
// weights file deleted); and every refusal (a bad key, a missing or unparsable teacher job, missing
// weights, a teacher with other classes or another vocabulary, the cache with augmentation or
// text) exits 2 with one line naming what is wrong and starts nothing.
#include <algorithm>
#include <filesystem>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2e/cli_helpers.h"

namespace frugal::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Two features, `classes` classes.
std::string csv_rows(int n, int classes) {
  std::string text = "a,b,label\n";
  for (int i = 0; i < n; ++i) {
    double a = (i % 7) / 7.0, b = (i % 5) / 5.0;
    text += std::to_string(a) + "," + std::to_string(b) + "," + std::to_string(int((a + b) * classes / 2) % classes) +
            "\n";
  }
  return text;
}

std::string classifier_job(const std::string& name, const std::string& train, const std::string& model,
                           const std::string& extra = "") {
  return "[run]\nname = \"" + name + "\"\nseed = 3\nthreads = 2\n"
         "[data]\nkind = \"csv\"\ntrain = \"" + train + "\"\nval_fraction = 0.2\n"
         "[model]\nkind = \"mlp\"\nhidden = " + model + "\n"
         "[optim]\nkind = \"adamw\"\nlr = 0.01\n"
         "[train]\nepochs = 2\nbatch_size = 8\n" + extra;
}

std::string text_job(const std::string& name, const std::string& train, const std::string& extra = "") {
  return "[run]\nname = \"" + name + "\"\nseed = 3\nthreads = 2\n"
         "[data]\nkind = \"text\"\ntrain = \"" + train + "\"\n"
         "[model]\nkind = \"gpt\"\nlayers = 1\nheads = 2\nwidth = 16\ncontext = 8\n"
         "[train]\nsteps = 4\nbatch_size = 4\n" + extra;
}

json last_json(const CommandResult& r) { return json::parse(last_line(r.out)); }

// The student: a narrow MLP on train.csv with `distill_keys` under [distill].
std::string student_job(const std::string& distill_keys) {
  return classifier_job("student", "train.csv", "[4]", "[distill]\n" + distill_keys);
}

class Distill : public ::testing::Test {
 protected:
  Distill() : scratch_(::testing::UnitTest::GetInstance()->current_test_info()->name()) {
    write_file(scratch_ / "train.csv", csv_rows(80, 3));
    write_file(scratch_ / "teacher.toml", classifier_job("teacher", "train.csv", "[32]"));
  }
  // Writes the student job, runs it, expects exit 2 with `message` in stderr and no run started.
  void expect_refused(const std::string& job, const std::string& message) {
    write_file(scratch_ / "student.toml", job);
    CommandResult r = scratch_.frugal("train student.toml --quiet --out student-run");
    EXPECT_EQ(r.exit_code, 2) << r.err << r.out;
    EXPECT_NE(r.err.find(message), std::string::npos) << "stderr: " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
    EXPECT_FALSE(fs::exists(scratch_ / "student-run")) << "nothing written";
  }
  Scratch scratch_;
};

TEST_F(Distill, TrainsFromATeacherRunAndReusesTheCache) {
  CommandResult teacher = scratch_.frugal("train teacher.toml --quiet --json --out teacher-run");
  ASSERT_EQ(teacher.exit_code, 0) << teacher.err;
  const std::string teacher_id = last_json(teacher)["run_id"];

  // weights = a run id prefix from the store.
  write_file(scratch_ / "student.toml",
             student_job("teacher = \"teacher.toml\"\nweights = \"" + teacher_id.substr(0, 12) +
                                "\"\nalpha = 0.8\ntemperature = 2.0\n"));
  CommandResult student = scratch_.frugal("train student.toml --json --out student-run");
  ASSERT_EQ(student.exit_code, 0) << student.err;
  json d = last_json(student)["distill"];
  EXPECT_EQ(d["teacher"], "teacher.toml");
  EXPECT_EQ(d["weights"], (fs::path("teacher-run") / "model.safetensors").string());
  EXPECT_EQ(d["alpha"], 0.8);
  EXPECT_EQ(d["temperature"], 2.0);
  EXPECT_EQ(d["cache"], false);
  EXPECT_EQ(d["teacher_forward_batches"], 16);  // 64 training rows in batches of 8, 2 epochs
  EXPECT_GT(d["teacher_forward_s"].get<double>(), 0.0);
  EXPECT_NE(student.err.find("distill: teacher teacher.toml"), std::string::npos) << student.err;  // progress

  // The cache: built by the first run (in the evaluation phase), reused by the second, which runs
  // no teacher at all: the teacher's weights file is removed before it. weights = a run directory.
  write_file(scratch_ / "cached.toml",
             classifier_job("cached", "train.csv", "[4]",
                            "[distill]\nteacher = \"teacher.toml\"\nweights = \"teacher-run\"\ncache = true\n"));
  CommandResult first = scratch_.frugal("train cached.toml --quiet --json --out cached-1");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  json built = last_json(first)["distill"];
  EXPECT_EQ(built["cache_status"], "built");
  EXPECT_EQ(built["cache_reused"], false);
  EXPECT_GT(built["cache_build_s"].get<double>(), 0.0);
  EXPECT_EQ(built["teacher_forward_batches"], 0);
  EXPECT_TRUE(fs::path(built["cache_path"].get<std::string>()).string().rfind("runs/cache/distill-", 0) == 0)
      << built["cache_path"];
  EXPECT_EQ(built["weights"], (fs::path("teacher-run") / "model.safetensors").string());
  ASSERT_TRUE(fs::remove(scratch_ / "teacher-run" / "model.safetensors"));
  CommandResult second = scratch_.frugal("train cached.toml --json --out cached-2");
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(second.err.find("reused"), std::string::npos) << second.err;
  EXPECT_NE(second.err.find("the teacher does not run (its weights file teacher-run/model.safetensors is gone)"),
            std::string::npos)
      << second.err;
  json reused = last_json(second)["distill"];
  EXPECT_EQ(reused["cache_status"], "reused");
  EXPECT_EQ(reused["cache_reused"], true);
  EXPECT_EQ(reused["cache_build_s"], 0.0);
  EXPECT_EQ(reused["teacher_forward_batches"], 0);
  EXPECT_EQ(reused["teacher_forward_s"], 0.0);
  EXPECT_EQ(read_file(scratch_ / "cached-1" / "model.safetensors"),
            read_file(scratch_ / "cached-2" / "model.safetensors"));
  EXPECT_EQ(last_json(first)["metrics"]["val_accuracy"], last_json(second)["metrics"]["val_accuracy"]);
}

TEST_F(Distill, RefusesAMissingTeacherJobOrWeights) {
  expect_refused(student_job("teacher = \"nope.toml\"\nweights = \"t.safetensors\"\n"),
                 "/nope.toml: not found ([distill] teacher = \"nope.toml\" in ");
  expect_refused(student_job("teacher = \"teacher.toml\"\nweights = \"missing.safetensors\"\n"),
                 "[distill] weights = \"missing.safetensors\": no such file, and no run store at runs/frugal.db");
  expect_refused(student_job("teacher = \"teacher.toml\"\n"),
                 "[distill] weights: missing or empty; expected the teacher's weights");
  // Weights that do not fit the teacher's model.
  write_file(scratch_ / "other.toml", classifier_job("other", "train.csv", "[5]"));
  CommandResult other = scratch_.frugal("train other.toml --quiet --out other-run");
  ASSERT_EQ(other.exit_code, 0) << other.err;
  expect_refused(student_job("teacher = \"teacher.toml\"\nweights = \"other-run/model.safetensors\"\n"),
                 "do not fit the teacher's [model] in teacher.toml");
  // A teacher job that does not parse.
  write_file(scratch_ / "broken.toml", "[model\nkind = \"mlp\"\n");
  expect_refused(student_job("teacher = \"broken.toml\"\nweights = \"t.safetensors\"\n"),
                 "[distill] teacher = \"broken.toml\": broken.toml");
  // A run directory without a model, with and without the cache (which cannot stand in: none).
  fs::create_directories(scratch_ / "empty-run");
  expect_refused(student_job("teacher = \"teacher.toml\"\nweights = \"empty-run\"\n"),
                 "[distill] weights = \"empty-run\": a directory without model.safetensors");
  expect_refused(student_job("teacher = \"teacher.toml\"\nweights = \"empty-run\"\ncache = true\n"),
                 "a directory without model.safetensors (expected a safetensors file or a run directory); and no "
                 "valid logit cache stands in for it (runs/cache/distill-");
  // A run id the store does not know.
  expect_refused(student_job("teacher = \"teacher.toml\"\nweights = \"no-such-run\"\n"),
                 "no such file, and no run with that id in runs/frugal.db");
}

TEST_F(Distill, KeysAreValidated) {
  const std::string teacher = "teacher = \"teacher.toml\"\nweights = \"t.safetensors\"\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {teacher + "alpha = 0.0\n", "[distill] alpha = 0: expected a number in (0, 1]"},
      {teacher + "alpha = 1.5\n", "[distill] alpha = 1.5: expected a number in (0, 1]"},
      {teacher + "temperature = 0\n", "[distill] temperature = 0: expected a number in (0, "},
      {teacher + "temperature = \"hot\"\n", "[distill] temperature = \"hot\": expected a number"},
      {teacher + "cache = 1\n", "[distill] cache = 1: expected true or false"},
      {teacher + "tempreature = 2.0\n", "unknown key 'tempreature' in [distill]; did you mean 'temperature'? "
                                          "(allowed: teacher, weights, alpha, temperature, cache)"},
      {"teacher = \"\"\nweights = \"w\"\n", "[distill] teacher: missing or empty"},
      {"weights = \"w\"\n", "[distill] teacher: missing or empty"},
  };
  for (const auto& [keys, message] : cases) expect_refused(student_job(keys), message);
}

TEST_F(Distill, RefusesATeacherOfOtherClassesOrVocabulary) {
  write_file(scratch_ / "two.csv", csv_rows(80, 2));
  expect_refused(classifier_job("student", "two.csv", "[4]",
                                "[distill]\nteacher = \"teacher.toml\"\nweights = \"t.safetensors\"\n"),
                 "the teacher's data has 3 classes, this job's 2");
  write_file(scratch_ / "wide.csv", "a,b,c,label\n1,2,3,0\n2,3,4,1\n3,4,5,2\n4,5,6,0\n5,6,7,1\n6,7,8,2\n");
  expect_refused(classifier_job("student", "wide.csv", "[4]",
                                "[distill]\nteacher = \"teacher.toml\"\nweights = \"t.safetensors\"\n"),
                 "the teacher's samples have shape (2,), this job's (3,)");

  std::string text_a, text_b;
  for (int i = 0; i < 40; ++i) text_a += "in the beginning was the word\n";
  text_b = "Zebra!\n" + text_a;  // in the training split (the tail is validation)
  write_file(scratch_ / "a.txt", text_a);
  write_file(scratch_ / "b.txt", text_b);
  write_file(scratch_ / "text-teacher.toml", text_job("tt", "b.txt"));
  expect_refused(text_job("student", "a.txt", "[distill]\nteacher = \"text-teacher.toml\"\nweights = \"t.safetensors\"\n"),
                 "the teacher's vocabulary (");
  expect_refused(text_job("student", "a.txt", "[distill]\nteacher = \"text-teacher.toml\"\nweights = \"t.safetensors\"\n"),
                 "only the teacher's has '!', 'Z'");
  // A classifier teacher for a text student.
  expect_refused(text_job("student", "a.txt", "[distill]\nteacher = \"teacher.toml\"\nweights = \"t.safetensors\"\n"),
                 "the teacher is trained on 3 classes but this job on text");
}

TEST_F(Distill, RefusesTheCacheWithAugmentationOrText) {
  const std::string cached = "[distill]\nteacher = \"teacher.toml\"\nweights = \"t.safetensors\"\ncache = true\n";
  for (const char* augmentation : {"flip = true\n", "crop_padding = 2\n"}) {
    std::string job = classifier_job("student", "train.csv", "[4]", cached);
    job.insert(job.find("val_fraction"), augmentation);
    expect_refused(job, "[distill] cache: cache = true cannot be used with data augmentation");
    expect_refused(job, "augmented inputs change each epoch");
  }
  write_file(scratch_ / "a.txt", std::string(400, 'a') + "b\n");
  expect_refused(text_job("student", "a.txt", cached), "[distill] cache: cache = true is for classification data");
  expect_refused(text_job("student", "a.txt", cached), "a text window's teacher logits depend on its random start");
}

}  // namespace
}  // namespace frugal::e2e
