// The processes of one training job (its ranks) and what they exchange. A Communicator is a rank's
// view of its world: rank(), size(), and a few collectives over bytes. Every rank calls the same
// collectives in the same order; they block until done, except ialltoall, which returns a Pending.
//
// Backends:
//   local    world size 1 (the default): every collective is a copy.
//   threads  N ranks as threads of one process (make_thread_group): unit tests, simulated clients.
//   mpi      Open MPI, loaded at run time from the plugin libfrugal_mpi.so (dist/mpi/), so the
//            binary runs where MPI is not installed as long as no MPI is used. Only dist/mpi
//            includes <mpi.h>.
//
// Sums (allreduce_sum) run in a fixed order, rank 0's value + rank 1's + ..., whatever the backend or
// the timing: the result is a left fold over the ranks, bit for bit what one process gets by adding
// the same values in rank order. They are built from alltoall and allgather (each rank sums its
// 1/size slice of the array, then the slices are gathered), so a rank sends 2 (size - 1) / size of
// the array, as a ring all-reduce does.
//
// Traffic: each rank counts the payload bytes it hands to other ranks (a collective's logical
// volume: alltoall (size - 1) blocks, allgather and a broadcast root (size - 1) copies), not what
// the transport adds; compression methods are compared by it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace frugal::dist {

// A nonblocking collective in flight. Its buffers must stay alive and untouched until wait()
// returns or test() returned true.
class Pending {
 public:
  virtual ~Pending() = default;
  virtual bool test() = 0;  // true when done (and drives the transfer on)
  virtual void wait() = 0;
};

struct Traffic {
  int64_t bytes_sent = 0;     // payload this rank handed to other ranks
  int64_t collectives = 0;    // calls
  double wait_seconds = 0;    // time blocked inside collectives and wait()
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "local", "threads", "mpi"
  // This rank's host name as the backend sees it (MPI: MPI_Get_processor_name).
  virtual std::string host() const = 0;

  // recv holds size() * bytes: rank r's `send` at offset r * bytes.
  virtual void allgather(const void* send, size_t bytes, void* recv) = 0;
  // send holds size() blocks of block_bytes, block r for rank r; recv gets block r from rank r.
  virtual void alltoall(const void* send, size_t block_bytes, void* recv) = 0;
  virtual std::unique_ptr<Pending> ialltoall(const void* send, size_t block_bytes, void* recv) = 0;
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  virtual void barrier() = 0;
  // Ends every rank of the job with this exit code (MPI_Abort); the local backend exits the process.
  [[noreturn]] virtual void abort(int code) = 0;

  const Traffic& traffic() const { return traffic_; }

 protected:
  Traffic traffic_;
};

// Sums `n` values over the ranks in rank order; every rank ends with the same sum (see above).
void allreduce_sum(Communicator& comm, float* data, int64_t n);
void allreduce_sum(Communicator& comm, double* data, int64_t n);
// True on every rank when `flag` is true on any rank.
bool any_rank(Communicator& comm, bool flag);
// Every rank's value, in rank order.
std::vector<double> allgather_values(Communicator& comm, double value);
// `root`'s text on every rank (what the others pass is ignored).
std::string broadcast_text(Communicator& comm, std::string text, int root);

// World size 1.
std::unique_ptr<Communicator> make_local();
// `size` communicators sharing one process; rank r's must be used by one thread (its rank's).
std::vector<std::unique_ptr<Communicator>> make_thread_group(int size);

// True when this process was started by mpirun / mpiexec or srun as one of several ranks
// (OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_SIZE > 1, or OMPI_COMM_WORLD_RANK / PMIX_RANK set).
bool launched_as_ranks();

// The job's world. backend "local": world size 1; "mpi": the MPI plugin (IoError naming the paths
// tried when it or Open MPI cannot be loaded); "auto": mpi when launched_as_ranks(), else local.
// The plugin is looked up in FRUGAL_MPI_PLUGIN (a file path), next to the running binary, in
// <binary>/../lib/frugal/, then in the install's library folder. MPI is initialised once per process.
std::unique_ptr<Communicator> open_world(const std::string& backend = "auto");

}  // namespace frugal::dist
