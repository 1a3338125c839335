// The mpi backend (communicator.h): Open MPI behind the Communicator interface, built as the plugin
// libfrugal_mpi.so that open_world() loads at run time. The only file of frugal that includes
// <mpi.h>. Only the thread that opened the world calls MPI (MPI_THREAD_FUNNELED).
#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "frugal/dist/communicator.h"

namespace frugal::dist {
namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

int count_of(size_t bytes) {
  if (bytes > size_t(INT_MAX)) throw std::runtime_error("an MPI message of " + std::to_string(bytes) + " bytes (limit 2 GiB)");
  return int(bytes);
}

void check(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(std::string(what) + " failed: " + text);
}

class MpiPending : public Pending {
 public:
  MpiPending(MPI_Request request, Traffic& traffic) : request_(request), traffic_(traffic) {}
  ~MpiPending() override {
    if (request_ != MPI_REQUEST_NULL) MPI_Wait(&request_, MPI_STATUS_IGNORE);
  }
  bool test() override {
    if (request_ == MPI_REQUEST_NULL) return true;
    int done = 0;
    check(MPI_Test(&request_, &done, MPI_STATUS_IGNORE), "MPI_Test");
    return done != 0;
  }
  void wait() override {
    const double start = now();
    check(MPI_Wait(&request_, MPI_STATUS_IGNORE), "MPI_Wait");
    traffic_.wait_seconds += now() - start;
  }

 private:
  MPI_Request request_;
  Traffic& traffic_;
};

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    // Errors come back as codes (check() turns them into exceptions) instead of aborting in MPI.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }
  std::string host() const override {
    char name[MPI_MAX_PROCESSOR_NAME] = {};
    int length = 0;
    MPI_Get_processor_name(name, &length);
    return std::string(name, size_t(length));
  }

  void allgather(const void* send, size_t bytes, void* recv) override {
    timed([&] {
      check(MPI_Allgather(send, count_of(bytes), MPI_BYTE, recv, count_of(bytes), MPI_BYTE, MPI_COMM_WORLD),
            "MPI_Allgather");
    });
    traffic_.bytes_sent += int64_t(bytes) * (size_ - 1);
  }
  void alltoall(const void* send, size_t block_bytes, void* recv) override {
    timed([&] {
      check(MPI_Alltoall(send, count_of(block_bytes), MPI_BYTE, recv, count_of(block_bytes), MPI_BYTE, MPI_COMM_WORLD),
            "MPI_Alltoall");
    });
    traffic_.bytes_sent += int64_t(block_bytes) * (size_ - 1);
  }
  std::unique_ptr<Pending> ialltoall(const void* send, size_t block_bytes, void* recv) override {
    MPI_Request request = MPI_REQUEST_NULL;
    check(MPI_Ialltoall(send, count_of(block_bytes), MPI_BYTE, recv, count_of(block_bytes), MPI_BYTE, MPI_COMM_WORLD,
                        &request),
          "MPI_Ialltoall");
    ++traffic_.collectives;
    traffic_.bytes_sent += int64_t(block_bytes) * (size_ - 1);
    return std::make_unique<MpiPending>(request, traffic_);
  }
  void broadcast(void* data, size_t bytes, int root) override {
    timed([&] { check(MPI_Bcast(data, count_of(bytes), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast"); });
    if (rank_ == root) traffic_.bytes_sent += int64_t(bytes) * (size_ - 1);
  }
  void barrier() override {
    timed([&] { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); });
  }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  template <typename F>
  void timed(F f) {
    const double start = now();
    f();
    traffic_.wait_seconds += now() - start;
    ++traffic_.collectives;
  }

  int rank_ = 0, size_ = 1;
};

}  // namespace
}  // namespace frugal::dist

// The plugin's entry point (dlsym'd by open_world): initialises MPI once and returns the world, or
// nullptr with *error set.
extern "C" __attribute__((visibility("default"))) frugal::dist::Communicator* frugal_dist_mpi_open(std::string* error) {
  try {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      frugal::dist::check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    }
    return new frugal::dist::MpiCommunicator();
  } catch (const std::exception& e) {
    *error = e.what();
    return nullptr;
  }
}
