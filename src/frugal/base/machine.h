// What this machine gives the process, for limits checked before work starts: memory (MemTotal and
// MemAvailable from /proc/meminfo, capped by a cgroup v2 or v1 memory limit) and cores (the CPU
// affinity mask, capped by a cgroup CPU quota). Limits: Linux only; the cgroup files are read at
// /sys/fs/cgroup (a container's own cgroup), not at the process's path in the hierarchy.
#pragma once

#include <cstdint>
#include <string>

namespace frugal {

struct MachineMemory {
  int64_t total = 0;      // MemTotal, or the cgroup limit when lower; 0 when unknown
  int64_t available = 0;  // MemAvailable, or what the cgroup limit leaves when lower; 0 when unknown
  bool cgroup_limited = false;  // a cgroup limit below MemTotal applies
};
MachineMemory machine_memory();

// Cores this process may run on: sched_getaffinity's count, capped by the cgroup CPU quota rounded
// up; at least 1.
int available_cores();

// Bytes for messages: "512 B", "3.5 KiB", "24.0 GiB" (one decimal from KiB on).
std::string bytes_text(int64_t bytes);

}  // namespace frugal
