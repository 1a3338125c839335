// The MPI backend where a user runs it: `mpirun --oversubscribe -np 1/2/4 dist_probe` passes every
// collective check on every rank; the binary trains without MPI when its plugin is gone (copied to a
// folder without libfrugal_mpi.so) and does not link libmpi; a world that needs the missing plugin
// fails with the IoError naming the paths tried (exit code 74 through mpirun: dist_probe and frugal).
// Limits: skipped (GTEST_SKIP) when mpirun is not installed; all ranks on this one host.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "csv_data.h"
#include "e2e/cli_helpers.h"

namespace frugal::e2e {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kBuild = FRUGAL_BINARY_DIR;

bool have_mpirun() { return std::system("command -v mpirun >/dev/null 2>&1") == 0; }

// mpirun refuses root unless told; tests in containers run as root.
void allow_root() {
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
}

// Runs a shell command in `dir`, bounded by `timeout` seconds (coreutils timeout: exit 124).
CommandResult shell(const fs::path& dir, const std::string& command, int timeout = 120) {
  const std::string out = (dir / ".sh-out").string(), err = (dir / ".sh-err").string();
  const std::string line = "cd '" + dir.string() + "' && timeout " + std::to_string(timeout) + " " + command + " >'" +
                           out + "' 2>'" + err + "' </dev/null";
  const int status = std::system(line.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

std::string mpirun(int ranks) {
  return "mpirun --oversubscribe -np " + std::to_string(ranks) + " ";
}

// One parsed JSON line per rank (keyed by rank) from dist_probe's stdout.
std::map<int, json> probe_lines(const std::string& out) {
  std::map<int, json> ranks;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.contains("rank")) ranks[j["rank"].get<int>()] = j;
  }
  return ranks;
}

const char* kTinyJob =
    "[run]\nname = \"no-mpi\"\nseed = 2\nthreads = 1\nstore = \"runs.db\"\n"
    "[data]\nkind = \"csv\"\ntrain = \"data.csv\"\nval_fraction = 0.1\n"
    "[model]\nkind = \"mlp\"\nhidden = [16]\n"
    "[train]\nsteps = 20\nbatch_size = 8\nlog_every = 10\n";

TEST(Mpi, ProbeWithoutMpirunIsTheLocalWorld) {
  Scratch s("mpi_probe_local");
  unsetenv("OMPI_COMM_WORLD_SIZE");
  CommandResult r = shell(s.dir(), "'" + kBuild + "/dist_probe'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto ranks = probe_lines(r.out);
  ASSERT_EQ(ranks.size(), 1u) << r.out;
  EXPECT_EQ(ranks[0]["backend"], "local");
  EXPECT_EQ(ranks[0]["bytes_sent"], 0);
}

TEST(Mpi, ProbePassesAtOneTwoAndFourRanks) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed (Debian's openmpi-bin); the MPI backend is untested";
  allow_root();
  Scratch s("mpi_probe");
  int64_t bytes_two = 0;
  for (int n : {1, 2, 4}) {
    CommandResult r = shell(s.dir(), mpirun(n) + "'" + kBuild + "/dist_probe'");
    ASSERT_EQ(r.exit_code, 0) << "-np " << n << ": " << r.err << r.out;
    auto ranks = probe_lines(r.out);
    ASSERT_EQ(int(ranks.size()), n) << r.out;
    for (int rank = 0; rank < n; ++rank) {
      ASSERT_TRUE(ranks.count(rank)) << "no line from rank " << rank << ": " << r.out;
      const json& j = ranks[rank];
      EXPECT_EQ(j["size"], n);
      EXPECT_EQ(j["backend"], "mpi") << "mpirun -np " << n << " must open the MPI world";
      EXPECT_TRUE(j["ok"].get<bool>()) << r.err;
      const int64_t sent = j["bytes_sent"].get<int64_t>();
      if (n == 1) {
        EXPECT_EQ(sent, 0);
      } else {
        EXPECT_GT(sent, 0);
      }
      if (n == 2 && rank == 0) bytes_two = sent;
      if (n == 4 && rank == 0) {
        EXPECT_GT(sent, bytes_two);  // 3 peers instead of 1
      }
    }
  }
}

// A copy of `binary` alone in `dir`/bin: open_world finds no plugin next to it (nor in ../lib/frugal).
fs::path lonely_copy(const Scratch& s, const std::string& binary) {
  fs::create_directories(s / "bin");
  const fs::path copy = s / "bin" / binary;
  fs::copy_file(kBuild + "/" + binary, copy, fs::copy_options::overwrite_existing);
  return copy;
}

// The install's plugin path (FRUGAL_INSTALLED_MPI_PLUGIN) would be found even by a lonely copy.
bool installed_plugin_present() {
  return fs::exists("/usr/local/lib/frugal/libfrugal_mpi.so") || fs::exists("/usr/lib/frugal/libfrugal_mpi.so");
}

TEST(Mpi, TrainsWithoutThePluginWhenNoMpiIsUsed) {
  Scratch s("mpi_no_plugin_train");
  const fs::path frugal = lonely_copy(s, "frugal");
  ASSERT_FALSE(fs::exists(s / "bin" / "libfrugal_mpi.so"));
  // The binary itself must not need libmpi: only the plugin links it.
  CommandResult needed = shell(s.dir(), "readelf -d '" + frugal.string() + "'");
  ASSERT_EQ(needed.exit_code, 0) << needed.err;
  EXPECT_EQ(needed.out.find("libmpi"), std::string::npos) << needed.out;
  write_file(s / "data.csv", frugal::testing::four_class_csv(120));
  write_file(s / "job.toml", kTinyJob);
  unsetenv("FRUGAL_MPI_PLUGIN");
  // (Appended, not one + chain: GCC 12 warns falsely about overlapping copies in that chain.)
  std::string command = "'";
  command += frugal.string();
  command += "' train job.toml --quiet --out out";
  CommandResult r = shell(s.dir(), command);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(s / "out" / "model.safetensors"));
}

TEST(Mpi, MissingPluginUnderMpirunIsAnIoError) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed (Debian's openmpi-bin)";
  if (installed_plugin_present()) GTEST_SKIP() << "an installed libfrugal_mpi.so would be found by any copy";
  allow_root();
  unsetenv("FRUGAL_MPI_PLUGIN");
  Scratch s("mpi_no_plugin_probe");
  const fs::path probe = lonely_copy(s, "dist_probe");
  CommandResult r = shell(s.dir(), mpirun(2) + "'" + probe.string() + "'");
  // IoError is exit code 74 in frugal (and in dist_probe); mpirun passes a rank's code on.
  EXPECT_EQ(r.exit_code, 74) << r.err;
  EXPECT_NE(r.err.find("libfrugal_mpi.so"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find((s / "bin" / "libfrugal_mpi.so").string() + ": not there"), std::string::npos) << r.err;
  EXPECT_TRUE(probe_lines(r.out).empty()) << r.out;

  // `frugal train` the same way: every rank stops before writing anything.
  const fs::path frugal = lonely_copy(s, "frugal");
  write_file(s / "data.csv", frugal::testing::four_class_csv(120));
  write_file(s / "job.toml", kTinyJob);
  std::string command = mpirun(2);
  command += "'";
  command += frugal.string();
  command += "' train job.toml --quiet --out out";
  CommandResult train = shell(s.dir(), command);
  EXPECT_EQ(train.exit_code, 74) << train.err;
  EXPECT_NE(train.err.find("could not be loaded"), std::string::npos) << train.err;
  EXPECT_FALSE(fs::exists(s / "out" / "model.safetensors"));
}

}  // namespace
}  // namespace frugal::e2e
