// The threads backend (communicator.h): N ranks as threads of one process. Each collective posts
// every rank's send buffer in a shared table, waits for all ranks, copies what this rank receives,
// and waits again before any rank may reuse its buffer.
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "frugal/base/error.h"
#include "frugal/base/timer.h"
#include "frugal/dist/communicator.h"

namespace frugal::dist {

namespace {

struct Shared {
  explicit Shared(int size) : size(size), sends(size_t(size), nullptr) {}
  const int size;
  std::mutex mutex;
  std::condition_variable changed;
  int arrived = 0;
  uint64_t generation = 0;
  std::vector<const void*> sends;

  void barrier() {
    std::unique_lock lock(mutex);
    const uint64_t mine = generation;
    if (++arrived == size) {
      arrived = 0;
      ++generation;
      changed.notify_all();
      return;
    }
    changed.wait(lock, [&] { return generation != mine; });
  }
};

class Done : public Pending {
 public:
  bool test() override { return true; }
  void wait() override {}
};

class ThreadCommunicator : public Communicator {
 public:
  ThreadCommunicator(std::shared_ptr<Shared> shared, int rank) : shared_(std::move(shared)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return shared_->size; }
  std::string backend() const override { return "threads"; }
  std::string host() const override {
    char name[256] = {};
    gethostname(name, sizeof(name) - 1);
    return name;
  }

  void allgather(const void* send, size_t bytes, void* recv) override {
    exchange(send, [&](int q, const void* theirs) {
      std::memcpy(static_cast<char*>(recv) + size_t(q) * bytes, theirs, bytes);
    });
    traffic_.bytes_sent += int64_t(bytes) * (size() - 1);
  }
  void alltoall(const void* send, size_t block_bytes, void* recv) override {
    exchange(send, [&](int q, const void* theirs) {
      std::memcpy(static_cast<char*>(recv) + size_t(q) * block_bytes,
                  static_cast<const char*>(theirs) + size_t(rank_) * block_bytes, block_bytes);
    });
    traffic_.bytes_sent += int64_t(block_bytes) * (size() - 1);
  }
  std::unique_ptr<Pending> ialltoall(const void* send, size_t block_bytes, void* recv) override {
    alltoall(send, block_bytes, recv);
    return std::make_unique<Done>();
  }
  void broadcast(void* data, size_t bytes, int root) override {
    FRUGAL_CHECK(root >= 0 && root < size(), "broadcast from rank " + std::to_string(root));
    exchange(data, [&](int q, const void* theirs) {
      if (q == root && rank_ != root) std::memcpy(data, theirs, bytes);
    });
    if (rank_ == root) traffic_.bytes_sent += int64_t(bytes) * (size() - 1);
  }
  void barrier() override {
    Timer waited;
    shared_->barrier();
    traffic_.wait_seconds += waited.seconds();
    ++traffic_.collectives;
  }
  [[noreturn]] void abort(int code) override { std::_Exit(code); }

 private:
  template <typename Copy>
  void exchange(const void* send, Copy copy) {
    Timer waited;
    shared_->sends[size_t(rank_)] = send;
    shared_->barrier();
    for (int q = 0; q < size(); ++q) copy(q, shared_->sends[size_t(q)]);
    shared_->barrier();
    traffic_.wait_seconds += waited.seconds();
    ++traffic_.collectives;
  }

  std::shared_ptr<Shared> shared_;
  int rank_;
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> make_thread_group(int size) {
  FRUGAL_CHECK(size >= 1, "a thread group of " + std::to_string(size) + " ranks");
  auto shared = std::make_shared<Shared>(size);
  std::vector<std::unique_ptr<Communicator>> out;
  for (int r = 0; r < size; ++r) out.push_back(std::make_unique<ThreadCommunicator>(shared, r));
  return out;
}

}  // namespace frugal::dist
