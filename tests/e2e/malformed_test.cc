// The malformed-input corpus: each row is one bad input (a data file, a job key, an option) given to
// the real binary, with the exit code it must give (2 bad input, 74 I/O), the words its message must
// hold (file, line/row/byte, key) and one property for all: stderr is ONE line, never an internal
// error. A case found by a fuzzer or a user is one more row.
// Cases of the same kind tested elsewhere, with checks a row cannot make, stay there: NaN in NPY
// features and inf in weights given to eval (nonfinite_test.cc), a missing `runs --store` creating
// nothing, a full disk (74) saving the weights elsewhere, class names over all splits and checked by
// eval (cli_errors_test.cc), the gzip bombs, thread caps and model memory estimates of other branches.
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "e2e/cli_helpers.h"

namespace frugal::e2e {
namespace {

namespace fs = std::filesystem;

const char* kJob = R"([run]
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

[train]
epochs = 1
batch_size = 8
)";

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size()) text.replace(at, from.size(), to);
  return text;
}

// An NPY v1 file: magic, version 1.0, u16 header length, the header dict, then the raw data.
std::string npy_with_header(const std::string& header_dict, const void* data, size_t bytes) {
  std::string header = header_dict;
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += char(header.size() & 0xff);
  out += char(header.size() >> 8);
  return out + header + std::string(static_cast<const char*>(data), bytes);
}

std::string npy(const std::string& descr, const std::string& shape, const void* data, size_t bytes) {
  return npy_with_header("{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }", data, bytes);
}

// x (16, 2) f32 with `poison` at row 9, column 1, and y (16) i64 labels 0/1.
std::map<std::string, std::string> npy_pair(float poison) {
  std::vector<float> x(32);
  std::vector<int64_t> y(16);
  for (int i = 0; i < 16; ++i) x[size_t(2 * i)] = float(i), x[size_t(2 * i + 1)] = float(i % 3), y[size_t(i)] = i % 2;
  x[size_t(2 * 9 + 1)] = poison;
  return {{"x.npy", npy("<f4", "(16, 2)", x.data(), x.size() * 4)}, {"y.npy", npy("<i8", "(16,)", y.data(), y.size() * 8)}};
}

// A one-tensor safetensors file holding [1, value] (`shape` as written in its JSON header).
std::string safetensors_with(float value, const std::string& shape = "[2]") {
  const std::string header = R"({"layers.1.weight":{"dtype":"F32","shape":)" + shape + R"(,"data_offsets":[0,8]}})";
  std::string file(8, '\0');
  const uint64_t size = header.size();
  std::memcpy(file.data(), &size, 8);
  const float data[2] = {1, value};
  return file + header + std::string(reinterpret_cast<const char*>(data), 8);
}

std::string idx_images() {
  return std::string("\x00\x00\x08\x03\x00\x00\x00\x08\x00\x00\x00\x02\x00\x00\x00\x02", 16) + std::string(32, '\x01');
}
std::string idx_labels(const std::string& eight_labels) { return std::string("\x00\x00\x08\x01\x00\x00\x00\x08", 8) + eight_labels; }

const char* kNpyData = "kind = \"npy\"\ntrain = \"x.npy\"\ntrain_targets = \"y.npy\"";
const char* kIdxData = "kind = \"idx\"\ntrain_images = \"images.idx\"\ntrain_labels = \"labels.idx\"\n"
                       "test_images = \"images.idx\"\ntest_labels = \"test-labels.idx\"";

struct Case {
  std::string name;
  std::map<std::string, std::string> files;  // written into the scratch directory; a name ending in '/' is a directory
  std::string from, to;                      // the job file with `from` replaced by `to` ("" = as is)
  std::string args;                          // after `frugal train job.toml --quiet`; "!..." = the whole command
  int exit_code;
  std::vector<std::string> words;            // each must be in the message
};

std::vector<Case> corpus() {
  const std::string stray_rows = csv_rows(10) + "0.5,0.5,%\n" + csv_rows(20, false);
  return {
      // Labels: outside the integer scheme, named by file and line; one huge label is no class count.
      {"stray label -1", {{"bad.csv", replace_all(stray_rows, "%", "-1")}}, "train.csv", "bad.csv", "", 2,
       {"bad.csv: line 12, column 9: label '-1'", "not a class index"}},
      {"stray label 2.5", {{"bad.csv", replace_all(stray_rows, "%", "2.5")}}, "train.csv", "bad.csv", "", 2,
       {"bad.csv: line 12, column 9: label '2.5'"}},
      {"string label", {{"bad.csv", replace_all(stray_rows, "%", "seven")}}, "train.csv", "bad.csv", "", 2,
       {"bad.csv: line 12, column 9: label 'seven'", "labels = \"names\""}},
      {"label 200", {{"big.csv", csv_rows(30) + "0.5,0.5,200\n"}}, "train.csv", "big.csv", "", 2,
       {"big.csv: line 32: label 200 would make 201 classes", "class_count"}},
      {"label 1e9", {{"big.csv", csv_rows(30) + "0.5,0.5,1e9\n"}}, "train.csv", "big.csv", "", 2,
       {"big.csv: line 32: label 1000000000 would make 1000000001 classes"}},
      {"idx test label above the classes",
       {{"images.idx", idx_images()}, {"labels.idx", idx_labels(std::string("\x00\x01\x00\x01\x00\x01\x00\x01", 8))},
        {"test-labels.idx", idx_labels(std::string("\x00\x01\x00\x01\x00\xc8\x00\x01", 8))}},
       "kind = \"csv\"\ntrain = \"train.csv\"\nval_fraction = 0.2", std::string(kIdxData) + "\nval_fraction = 0.25", "", 2,
       {"test-labels.idx: row 6: label 200 is outside the classes 0..1"}},
      // Non-finite and absurd values.
      {"csv 1e300", {{"bad.csv", "a,b,label\n1,2,0\n3,1e300,1\n"}}, "train.csv", "bad.csv", "", 2,
       {"bad.csv: line 3, column 3 (field 2, 'b'): '1e300' overflows f32"}},
      {"npy inf", npy_pair(std::numeric_limits<float>::infinity()), "kind = \"csv\"\ntrain = \"train.csv\"", kNpyData, "", 2,
       {"x.npy: row 9, column 1"}},
      {"NaN in init weights", {{"nan.safetensors", safetensors_with(std::numeric_limits<float>::quiet_NaN())}},
       "[train]", "[init]\nfrom = \"nan.safetensors\"\n\n[train]", "", 2, {"nan.safetensors", "layers.1.weight", "NaN"}},
      {"sample --temperature nan", {}, "", "", "!sample job.toml --weights none.safetensors --temperature nan", 2,
       {"--temperature nan: expected a number in [0, 100]"}},
      // Paths the filesystem refuses are bad input with the path, not internal errors.
      {"directory as a data path", {{"data_dir/", ""}}, "train.csv", "data_dir", "", 2, {"data_dir: is a directory"}},
      {"missing data file", {}, "train.csv", "nope.csv", "", 2,
       {"/nope.csv: not found ([data] train = \"nope.csv\" in job.toml, resolved against the job file's directory /"}},
      {"missing data file from --set", {}, "", "", "--set data.train=nope.csv", 2,
       {"/nope.csv: not found (--set data.train=nope.csv, resolved against the current directory /"}},
      {"missing catalog", {}, "[train]", "[cost]\ncatalog = \"prices/mine.toml\"\n\n[train]", "", 2,
       {"/prices/mine.toml: not found ([cost] catalog = \"prices/mine.toml\" in job.toml, resolved against the job "
        "file's directory /"}},
      {"missing LoRA adapters", {}, "[train]", "[lora]\ntargets = [\"layers.*\"]\nadapters = \"a.safetensors\"\n\n[train]", "", 2,
       {"/a.safetensors: not found ([lora] adapters = \"a.safetensors\" in job.toml"}},
      {"--out an existing file", {{"taken", "a file"}}, "", "", "--out taken", 2, {"taken"}},
      {"--out under /proc", {}, "", "", "--out /proc/frugal-out", 2, {"--out /proc/frugal-out: a system directory"}},
      {"300-character run name", {}, "name = \"tiny\"", "name = \"" + std::string(300, 'n') + "\"", "", 2, {"too long"}},
      {"5000-character checkpoint dir", {}, "[train]", "[checkpoint]\ndir = \"" + std::string(5000, 'c') + "\"\n\n[train]",
       "", 2, {"too long"}},
      {"checkpoint.dir = /", {}, "[train]", "[checkpoint]\ndir = \"/\"\n\n[train]", "", 2,
       {"[checkpoint] dir: '/' is a system directory"}},
      // Job files and options.
      {"unknown --set section", {}, "", "", "--set trian.steps=3", 2,
       {"job.toml: --set trian.steps: unknown section [trian]; did you mean 'train'?"}},
      {"control character in a job string", {}, "val_fraction = 0.2", "val_fraction = 0.2\nheader = \"de\\ntect\"", "", 2,
       {"job.toml:", "[data] header = \"de\\ntect\": expected one of detect, yes, no"}},
      {"long array in a job error", {}, "hidden = [8]", "hidden = [" + replace_all(std::string(60, '8'), "8", "8, ") + "-1]",
       "", 2, {"job.toml:13: [model] hidden = [8, 8, 8", "...: expected integers in"}},
      {"negative skip_lines", {}, "val_fraction = 0.2", "val_fraction = 0.2\nskip_lines = -1", "", 2,
       {"[data] skip_lines = -1: expected an integer"}},
      {"skip_lines on npy data", npy_pair(1), "kind = \"csv\"\ntrain = \"train.csv\"", std::string(kNpyData) + "\nskip_lines = 1",
       "", 2, {"[data] skip_lines: applies to csv files"}},
      // CSV rough edges.
      {"CR-only line endings", {{"mac.csv", replace_all(csv_rows(40), "\n", "\r")}}, "train.csv", "mac.csv", "", 2,
       {"mac.csv: line endings are CR only", "tr '\\r' '\\n'"}},
      {"stray CR inside a line", {{"cr.csv", "a,b,label\n1,2\r,0\n" + csv_rows(30, false)}}, "train.csv", "cr.csv", "", 2,
       {"cr.csv: line 2, column 4: a carriage return (CR) not followed by a line feed"}},
      {"corrupted first data row", {{"bad.csv", "1.0,2.x,0\n" + csv_rows(30, false)}}, "train.csv", "bad.csv", "", 2,
       {"bad.csv: line 1, column 5 (field 2", "found '2.x'", "header = \"yes\""}},
      {"count on the first line", {{"count.csv", "30\n" + csv_rows(30)}}, "train.csv", "count.csv", "", 2,
       {"count.csv: line 1: found 1 column", "skip_lines"}},
      {"long field with control characters", {{"bad.csv", "a,b,label\n1,\"\x1b[31m" + std::string(200, 'z') + "\",0\n"}},
       "train.csv", "bad.csv", "", 2, {"bad.csv: line 2, column 3", "found '\\x1b[31mzzz", "zzz...'"}},
      // Found by the fuzzers (tests/fuzz/README.md), through the real binary.
      {"empty npy (npy_fuzz)", {{"x.npy", ""}, {"y.npy", npy_pair(1).at("y.npy")}},
       "kind = \"csv\"\ntrain = \"train.csv\"", kNpyData, "", 2, {"x.npy: bad magic at byte 0"}},
      {"number beyond double in a safetensors header (safetensors_fuzz)",
       {{"big.safetensors", safetensors_with(1, "[1E11111111111]")}}, "[train]",
       "[init]\nfrom = \"big.safetensors\"\n\n[train]", "", 2, {"big.safetensors: header (bytes 8-", "is not valid JSON"}},
      // NPY header echo: escaped and cut, on one line.
      {"npy header with junk",
       {{"x.npy", npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), 'junk\n': '" +
                                      std::string(300, 'j') + "', }", "0123456789abcdef", 16)},
        {"y.npy", npy("<i8", "(2,)", "\0\0\0\0\0\0\0\0\1\0\0\0\0\0\0\0", 16)}},
       "kind = \"csv\"\ntrain = \"train.csv\"", kNpyData, "", 2,
       {"x.npy: NPY header at byte", "unexpected key 'junk\\n'", "..."}},
  };
}

TEST(Malformed, EveryCaseIsOneLineWithItsExitCodeAndPlace) {
  const std::vector<Case> cases = corpus();
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(c.name);
    Scratch s("malformed/" + std::to_string(i));
    write_file(s / "train.csv", csv_rows(64));
    for (const auto& [name, content] : c.files) {
      if (name.ends_with("/")) fs::create_directories(s / name);
      else write_file(s / name, content);
    }
    std::string job = kJob;
    if (!c.from.empty()) {
      const size_t at = job.find(c.from);
      ASSERT_NE(at, std::string::npos) << c.from;
      job.replace(at, c.from.size(), c.to);
    }
    write_file(s / "job.toml", job);
    const std::string command = c.args.starts_with("!") ? c.args.substr(1) : "train job.toml --quiet " + c.args;
    CommandResult r = s.frugal(command);
    EXPECT_EQ(r.exit_code, c.exit_code) << r.err << r.out;
    std::string err = r.err;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    EXPECT_EQ(err.find('\n'), std::string::npos) << "more than one line:\n" << r.err;
    EXPECT_EQ(err.find('\r'), std::string::npos) << "a raw CR: " << r.err;
    EXPECT_EQ(err.rfind("frugal: error: ", 0), 0u) << r.err;
    EXPECT_LT(err.size(), 600u) << "an echo was not cut: " << err.size() << " characters";
    if (!c.args.starts_with("!")) {
      EXPECT_FALSE(fs::exists(s / "runs" / "frugal.db")) << "a failed start wrote the run store";
    }
    for (const std::string& word : c.words) EXPECT_NE(err.find(word), std::string::npos) << "missing: " << word << "\nin: " << err;
  }
}

}  // namespace
}  // namespace frugal::e2e
