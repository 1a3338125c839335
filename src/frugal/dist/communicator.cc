// The collectives built on every backend's primitives, the local backend, and open_world (which
// loads the MPI plugin at run time). See communicator.h.
#include "frugal/dist/communicator.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "frugal/base/error.h"

namespace frugal::dist {

namespace fs = std::filesystem;

namespace {

// Rank r owns the slice [begin(r), begin(r + 1)) of an array of n values.
int64_t slice_begin(int64_t n, int size, int r) { return n * r / size; }

template <typename T>
void ordered_sum(Communicator& comm, T* data, int64_t n) {
  const int size = comm.size();
  if (size == 1 || n == 0) return;
  // Blocks of equal size (the largest slice), so one alltoall and one allgather carry them.
  int64_t block = 0;
  for (int r = 0; r < size; ++r) block = std::max(block, slice_begin(n, size, r + 1) - slice_begin(n, size, r));
  std::vector<T> send(size_t(block) * size_t(size), T(0)), recv(send.size());
  for (int r = 0; r < size; ++r) {
    const int64_t b = slice_begin(n, size, r), e = slice_begin(n, size, r + 1);
    std::memcpy(&send[size_t(r * block)], data + b, size_t(e - b) * sizeof(T));
  }
  comm.alltoall(send.data(), size_t(block) * sizeof(T), recv.data());
  // recv block q: rank q's values of my slice; add them in rank order, starting from rank 0's.
  const int me = comm.rank();
  const int64_t mine = slice_begin(n, size, me + 1) - slice_begin(n, size, me);
  std::vector<T> sum(size_t(block), T(0));
  for (int64_t i = 0; i < mine; ++i) {
    T acc = recv[size_t(i)];
    for (int q = 1; q < size; ++q) acc += recv[size_t(q * block + i)];
    sum[size_t(i)] = acc;
  }
  comm.allgather(sum.data(), size_t(block) * sizeof(T), recv.data());
  for (int r = 0; r < size; ++r) {
    const int64_t b = slice_begin(n, size, r), e = slice_begin(n, size, r + 1);
    std::memcpy(data + b, &recv[size_t(r * block)], size_t(e - b) * sizeof(T));
  }
}

class Done : public Pending {
 public:
  bool test() override { return true; }
  void wait() override {}
};

class LocalCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "local"; }
  std::string host() const override {
    char name[256] = {};
    gethostname(name, sizeof(name) - 1);
    return name;
  }
  void allgather(const void* send, size_t bytes, void* recv) override { copy(send, bytes, recv); }
  void alltoall(const void* send, size_t block_bytes, void* recv) override { copy(send, block_bytes, recv); }
  std::unique_ptr<Pending> ialltoall(const void* send, size_t block_bytes, void* recv) override {
    copy(send, block_bytes, recv);
    return std::make_unique<Done>();
  }
  void broadcast(void*, size_t, int root) override {
    FRUGAL_CHECK(root == 0, "broadcast from rank " + std::to_string(root) + " in a world of one");
    ++traffic_.collectives;
  }
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::_Exit(code); }

 private:
  void copy(const void* send, size_t bytes, void* recv) {
    ++traffic_.collectives;
    if (send != recv && bytes) std::memmove(recv, send, bytes);
  }
};

using OpenPlugin = Communicator* (*)(std::string* error);

// The plugin's path candidates, in the order open_world tries them.
std::vector<std::string> plugin_candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("FRUGAL_MPI_PLUGIN"); env && *env) out.push_back(env);
  std::error_code error;
  const fs::path exe = fs::read_symlink("/proc/self/exe", error);
  if (!error) {
    out.push_back((exe.parent_path() / "libfrugal_mpi.so").string());
    out.push_back((exe.parent_path().parent_path() / "lib" / "frugal" / "libfrugal_mpi.so").string());
  }
#ifdef FRUGAL_INSTALLED_MPI_PLUGIN
  out.push_back(FRUGAL_INSTALLED_MPI_PLUGIN);
#endif
  return out;
}

std::unique_ptr<Communicator> open_mpi() {
  std::string tried;
  for (const std::string& path : plugin_candidates()) {
    if (!fs::exists(path)) {
      tried += "\n  " + path + ": not there";
      continue;
    }
    // RTLD_GLOBAL: Open MPI's own components look up libmpi's symbols globally.
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (!handle) {
      tried += "\n  " + path + ": " + dlerror();
      continue;
    }
    auto open = reinterpret_cast<OpenPlugin>(dlsym(handle, "frugal_dist_mpi_open"));
    if (!open) {
      tried += "\n  " + path + ": no frugal_dist_mpi_open in it";
      continue;
    }
    std::string error;
    Communicator* comm = open(&error);
    if (!comm) throw IoError("MPI could not start: " + error);
    return std::unique_ptr<Communicator>(comm);  // the plugin stays loaded for the process
  }
  throw IoError("the MPI backend (libfrugal_mpi.so, Open MPI) could not be loaded; install Debian's openmpi-bin "
                "and build frugal with libopenmpi-dev. Tried:" + tried);
}

}  // namespace

void allreduce_sum(Communicator& comm, float* data, int64_t n) { ordered_sum(comm, data, n); }
void allreduce_sum(Communicator& comm, double* data, int64_t n) { ordered_sum(comm, data, n); }

bool any_rank(Communicator& comm, bool flag) {
  std::vector<uint8_t> all(size_t(comm.size()));
  const uint8_t mine = flag ? 1 : 0;
  comm.allgather(&mine, 1, all.data());
  for (uint8_t v : all)
    if (v) return true;
  return false;
}

std::vector<double> allgather_values(Communicator& comm, double value) {
  std::vector<double> all(size_t(comm.size()));
  comm.allgather(&value, sizeof(double), all.data());
  return all;
}

std::string broadcast_text(Communicator& comm, std::string text, int root) {
  int64_t length = int64_t(text.size());
  comm.broadcast(&length, sizeof(length), root);
  text.resize(size_t(length));
  comm.broadcast(text.data(), size_t(length), root);
  return text;
}

std::unique_ptr<Communicator> make_local() { return std::make_unique<LocalCommunicator>(); }

bool launched_as_ranks() {
  // Not SLURM_NTASKS: every shell of an allocation has it, also a batch script's plain `frugal train`.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"}) {
    const char* v = std::getenv(name);
    if (v && std::atoi(v) > 1) return true;
  }
  // PMIx (Open MPI 4 under mpirun, or srun --mpi=pmix) names the rank even when it names no size.
  return std::getenv("OMPI_COMM_WORLD_RANK") != nullptr || std::getenv("PMIX_RANK") != nullptr;
}

std::unique_ptr<Communicator> open_world(const std::string& backend) {
  if (backend == "local") return make_local();
  if (backend == "mpi" || (backend == "auto" && launched_as_ranks())) return open_mpi();
  FRUGAL_CHECK(backend == "auto", "unknown communicator backend " + backend);
  return make_local();
}

}  // namespace frugal::dist
