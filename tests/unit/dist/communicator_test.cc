// The local and threads backends and the collectives built on them (dist/communicator.h).
#include "frugal/dist/communicator.h"

#include <gtest/gtest.h>

#include <thread>

namespace frugal::dist {
namespace {

// Runs body(comm) on each rank of a thread group, one thread per rank.
template <typename Body>
void on_ranks(int size, Body body) {
  auto comms = make_thread_group(size);
  std::vector<std::thread> threads;
  for (auto& comm : comms) threads.emplace_back([&, c = comm.get()] { body(*c); });
  for (auto& t : threads) t.join();
}

// Values whose sum depends on the order of addition in f32.
float value(int rank, int64_t i) { return (rank % 2 ? 1e8f : 1.0f) * (1.0f + 0.37f * float(i % 7)) / float(rank + 3); }

TEST(Communicator, AllreduceSumIsALeftFoldInRankOrderOnEveryRank) {
  for (int size : {1, 2, 3, 4}) {
    const int64_t n = 1001;  // not a multiple of the world size
    std::vector<float> expected(n);
    for (int64_t i = 0; i < n; ++i) {
      float acc = value(0, i);
      for (int r = 1; r < size; ++r) acc += value(r, i);
      expected[size_t(i)] = acc;
    }
    on_ranks(size, [&](Communicator& comm) {
      std::vector<float> data(n);
      for (int64_t i = 0; i < n; ++i) data[size_t(i)] = value(comm.rank(), i);
      allreduce_sum(comm, data.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(data[size_t(i)], expected[size_t(i)]) << "size " << size << " i " << i;
      // Payload: an alltoall and an allgather of blocks of ceil(n / size) floats.
      const int64_t block = (n + size - 1) / size;
      EXPECT_EQ(comm.traffic().bytes_sent, 2 * (size - 1) * block * int64_t(sizeof(float)));
    });
  }
}

TEST(Communicator, BroadcastAnyRankAndGather) {
  on_ranks(3, [](Communicator& comm) {
    double x = comm.rank() == 2 ? 42.5 : -1;
    comm.broadcast(&x, sizeof x, 2);
    EXPECT_EQ(x, 42.5);
    EXPECT_TRUE(any_rank(comm, comm.rank() == 1));
    EXPECT_FALSE(any_rank(comm, false));
    EXPECT_EQ(allgather_values(comm, comm.rank() * 10.0), (std::vector<double>{0, 10, 20}));
    comm.barrier();
  });
}

TEST(Communicator, LocalWorldIsOneRankAndOpensWithoutMpi) {
  auto world = open_world("local");
  EXPECT_EQ(world->size(), 1);
  EXPECT_EQ(world->backend(), "local");
  std::vector<double> v = {1, 2, 3};
  allreduce_sum(*world, v.data(), 3);
  EXPECT_EQ(v, (std::vector<double>{1, 2, 3}));
}

}  // namespace
}  // namespace frugal::dist
