// dist_probe: opens the job's world (dist::open_world("auto"), so `mpirun -np N dist_probe` runs on
// Open MPI) and checks every collective against values each rank computes on its own: allreduce_sum
// bit for bit against the left fold over the ranks, allgather, alltoall, ialltoall + wait, a
// broadcast from the last rank, a barrier, and the bytes each rank counts as sent. Prints one JSON
// line per rank and exits 1 on any mismatch (74 when the world cannot be opened, as `frugal` does).
// `--alltoall-mib M` also times alltoalls of M MiB per rank (the transport's bandwidth), `--repeat K`
// times. Not a gtest: the e2e tests (mpi_test.cc, mpi_netns.sh) and bench/dist_scaling launch it.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "frugal/base/error.h"
#include "frugal/dist/communicator.h"

namespace {

using frugal::dist::Communicator;

int g_failures = 0;

void fail(const Communicator& comm, const std::string& what) {
  ++g_failures;
  std::fprintf(stderr, "dist_probe rank %d/%d: %s\n", comm.rank(), comm.size(), what.c_str());
}

// Rank r's i-th summand: magnitudes spread over 2^-20..2^20 with both signs, so a sum in any other
// order than rank 0 + rank 1 + ... differs in its last bits.
template <typename T>
T summand(int r, int64_t i) {
  const uint64_t h = (uint64_t(i) * 2654435761u + uint64_t(r) * 40503u + 17) % 1000003;
  const T mantissa = T(1) + T(h % 1000) / T(1000);
  const int exponent = int((uint64_t(i) + uint64_t(r) * 7) % 41) - 20;
  return ((h >> 3) & 1 ? -1 : 1) * std::ldexp(mantissa, exponent);
}

// The byte rank `from` puts at offset i of what it sends to rank `to` in test `salt`.
uint8_t pattern(int from, int to, size_t i, int salt) {
  return uint8_t((size_t(from) * 131 + size_t(to) * 31 + i * 7 + size_t(salt) * 101) & 0xff);
}

// allreduce_sum of n values of type T; returns the bytes the ordered sum should have counted as sent.
template <typename T>
int64_t check_sum(Communicator& comm, int64_t n, const char* type) {
  const int size = comm.size();
  std::vector<T> data(static_cast<size_t>(n)), expected(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    data[size_t(i)] = summand<T>(comm.rank(), i);
    T acc = summand<T>(0, i);
    for (int q = 1; q < size; ++q) acc += summand<T>(q, i);
    expected[size_t(i)] = acc;
  }
  frugal::dist::allreduce_sum(comm, data.data(), n);
  int64_t wrong = 0, first = -1;
  for (int64_t i = 0; i < n; ++i)
    if (std::memcmp(&data[size_t(i)], &expected[size_t(i)], sizeof(T)) != 0) wrong += 1, first = first < 0 ? i : first;
  if (wrong)
    fail(comm, "allreduce_sum<" + std::string(type) + "> of " + std::to_string(n) + " values: " + std::to_string(wrong) +
                   " differ from the left fold over the ranks, first at " + std::to_string(first));
  if (size == 1 || n == 0) return 0;
  // One alltoall and one allgather of blocks of the largest slice (communicator.cc).
  int64_t block = 0;
  for (int r = 0; r < size; ++r) block = std::max(block, n * (r + 1) / size - n * r / size);
  return 2 * block * int64_t(sizeof(T)) * (size - 1);
}

int64_t check_allgather(Communicator& comm, size_t bytes) {
  const int size = comm.size(), me = comm.rank();
  std::vector<uint8_t> send(bytes), recv(bytes * size_t(size), 0);
  for (size_t i = 0; i < bytes; ++i) send[i] = pattern(me, 0, i, 1);
  comm.allgather(send.data(), bytes, recv.data());
  for (int r = 0; r < size; ++r)
    for (size_t i = 0; i < bytes; ++i)
      if (recv[size_t(r) * bytes + i] != pattern(r, 0, i, 1)) {
        fail(comm, "allgather: byte " + std::to_string(i) + " from rank " + std::to_string(r) + " is wrong");
        r = size;
        break;
      }
  return int64_t(bytes) * (size - 1);
}

// alltoall (or ialltoall with some work while it is in flight when `nonblocking`).
int64_t check_alltoall(Communicator& comm, size_t block, bool nonblocking) {
  const int size = comm.size(), me = comm.rank(), salt = nonblocking ? 3 : 2;
  std::vector<uint8_t> send(block * size_t(size)), recv(send.size(), 0);
  for (int to = 0; to < size; ++to)
    for (size_t i = 0; i < block; ++i) send[size_t(to) * block + i] = pattern(me, to, i, salt);
  const char* name = nonblocking ? "ialltoall" : "alltoall";
  if (nonblocking) {
    auto pending = comm.ialltoall(send.data(), block, recv.data());
    // Work the rank does while the exchange runs (what overlapping a backward pass looks like).
    volatile double busy = 0;
    for (int i = 0; i < 100000 && !pending->test(); ++i) busy = busy + std::sqrt(double(i));
    pending->wait();
  } else {
    comm.alltoall(send.data(), block, recv.data());
  }
  for (int from = 0; from < size; ++from)
    for (size_t i = 0; i < block; ++i)
      if (recv[size_t(from) * block + i] != pattern(from, me, i, salt)) {
        fail(comm, std::string(name) + ": byte " + std::to_string(i) + " from rank " + std::to_string(from) + " is wrong");
        from = size;
        break;
      }
  return int64_t(block) * (size - 1);
}

int64_t check_broadcast(Communicator& comm, size_t bytes) {
  const int size = comm.size(), root = size - 1;
  std::vector<uint8_t> data(bytes);
  for (size_t i = 0; i < bytes; ++i) data[i] = comm.rank() == root ? pattern(root, 0, i, 4) : uint8_t(0);
  comm.broadcast(data.data(), bytes, root);
  for (size_t i = 0; i < bytes; ++i)
    if (data[i] != pattern(root, 0, i, 4)) {
      fail(comm, "broadcast from rank " + std::to_string(root) + ": byte " + std::to_string(i) + " is wrong");
      break;
    }
  return comm.rank() == root ? int64_t(bytes) * (size - 1) : 0;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Bandwidth {
  double mib = 0, best_seconds = 0, median_seconds = 0;
  int64_t bytes_sent = 0;  // per alltoall, this rank
};

// Times `repeat` alltoalls of `mib` MiB per rank (size blocks), after one warm-up.
Bandwidth time_alltoall(Communicator& comm, double mib, int repeat) {
  const int size = comm.size();
  const size_t block = size_t(mib * 1048576.0) / size_t(size);
  std::vector<uint8_t> send(block * size_t(size), uint8_t(comm.rank())), recv(send.size());
  comm.alltoall(send.data(), block, recv.data());
  std::vector<double> times;
  for (int k = 0; k < repeat; ++k) {
    comm.barrier();
    const auto start = std::chrono::steady_clock::now();
    comm.alltoall(send.data(), block, recv.data());
    times.push_back(seconds_since(start));
  }
  std::sort(times.begin(), times.end());
  return {mib, times.front(), times[times.size() / 2], int64_t(block) * (size - 1)};
}

int run(int argc, char** argv) {
  double mib = 0;
  int repeat = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--alltoall-mib" && i + 1 < argc) {
      mib = std::atof(argv[++i]);
    } else if (arg == "--repeat" && i + 1 < argc) {
      repeat = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: dist_probe [--alltoall-mib M] [--repeat K]\n");
      return 2;
    }
  }
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<Communicator> world = frugal::dist::open_world("auto");
  Communicator& comm = *world;
  int64_t expected_bytes = 0;
  // Sizes below, at and above the world size: slices of zero values, one value, uneven slices.
  for (int64_t n : {int64_t(1), int64_t(3), int64_t(1000), int64_t(100003)}) {
    expected_bytes += check_sum<float>(comm, n, "float");
    expected_bytes += check_sum<double>(comm, n, "double");
  }
  expected_bytes += check_allgather(comm, 1);
  expected_bytes += check_allgather(comm, 70001);
  expected_bytes += check_alltoall(comm, 13, false);
  expected_bytes += check_alltoall(comm, 300007, false);
  expected_bytes += check_alltoall(comm, 300007, true);
  expected_bytes += check_broadcast(comm, 65537);
  comm.barrier();
  if (comm.traffic().bytes_sent != expected_bytes)
    fail(comm, "counted " + std::to_string(comm.traffic().bytes_sent) + " bytes sent, expected " +
                   std::to_string(expected_bytes));
  // Every rank learns whether any rank failed, so all exit alike.
  const bool any_failed = frugal::dist::any_rank(comm, g_failures > 0);
  const double check_seconds = seconds_since(start);
  Bandwidth bw;
  if (mib > 0) bw = time_alltoall(comm, mib, repeat);
  std::string line = "{\"rank\":" + std::to_string(comm.rank()) + ",\"size\":" + std::to_string(comm.size()) +
                     ",\"backend\":\"" + comm.backend() + "\",\"host\":\"" + comm.host() + "\",\"pid\":" +
                     std::to_string(getpid()) + ",\"bytes_sent\":" + std::to_string(comm.traffic().bytes_sent) +
                     ",\"failures\":" + std::to_string(g_failures) + ",\"ok\":" + (any_failed ? "false" : "true") +
                     ",\"seconds\":" + std::to_string(check_seconds);
  if (mib > 0) {
    char text[256];
    std::snprintf(text, sizeof(text),
                  ",\"alltoall_mib\":%g,\"alltoall_bytes_sent\":%lld,\"alltoall_best_s\":%.9f,\"alltoall_median_s\":%.9f,"
                  "\"send_gbit_s\":%.3f",
                  bw.mib, (long long)bw.bytes_sent, bw.best_seconds, bw.median_seconds,
                  bw.best_seconds > 0 ? double(bw.bytes_sent) * 8 / bw.best_seconds / 1e9 : 0.0);
    line += text;
  }
  line += "}\n";
  std::fputs(line.c_str(), stdout);
  std::fflush(stdout);
  return any_failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const frugal::IoError& e) {
    std::fprintf(stderr, "dist_probe: %s\n", e.what());
    return 74;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dist_probe: %s\n", e.what());
    return 1;
  }
}
