// machine_memory and available_cores read real figures of this machine; bytes_text formats them.
#include "frugal/base/machine.h"

#include <gtest/gtest.h>

#include <thread>

namespace frugal {
namespace {

TEST(Machine, MemoryIsReadAndConsistent) {
  MachineMemory memory = machine_memory();
  EXPECT_GT(memory.total, int64_t(64) << 20);  // any machine that builds frugal has more than 64 MiB
  EXPECT_GT(memory.available, 0);
  EXPECT_LE(memory.available, memory.total);
}

TEST(Machine, CoresWithinHardware) {
  int cores = available_cores();
  EXPECT_GE(cores, 1);
  EXPECT_LE(cores, int(std::max(1u, std::thread::hardware_concurrency())));
}

TEST(Machine, BytesText) {
  EXPECT_EQ(bytes_text(0), "0 B");
  EXPECT_EQ(bytes_text(1023), "1023 B");
  EXPECT_EQ(bytes_text(1536), "1.5 KiB");
  EXPECT_EQ(bytes_text(int64_t(24) << 30), "24.0 GiB");
  EXPECT_EQ(bytes_text(int64_t(3) << 40), "3.0 TiB");
}

}  // namespace
}  // namespace frugal
