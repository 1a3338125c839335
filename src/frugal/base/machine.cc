// Memory and cores of the machine as this process sees them (see machine.h).
#include "frugal/base/machine.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

namespace frugal {

namespace {

// The first integer in a one-line file such as memory.max; -1 when absent or "max".
int64_t read_number(const char* path) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word) || word == "max") return -1;
  try {
    return std::stoll(word);
  } catch (const std::exception&) {
    return -1;
  }
}

// "MemTotal:  24683772 kB" -> bytes; -1 when the key is missing.
int64_t meminfo_bytes(const std::string& text, const std::string& key) {
  size_t at = text.find("\n" + key + ":");
  if (at == std::string::npos && text.rfind(key + ":", 0) == 0) at = 0;
  else if (at != std::string::npos) ++at;
  else return -1;
  std::istringstream line(text.substr(at + key.size() + 1, 64));
  int64_t kib = -1;
  line >> kib;
  return kib < 0 ? -1 : kib * 1024;
}

}  // namespace

MachineMemory machine_memory() {
  MachineMemory memory;
  std::ifstream in("/proc/meminfo");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  memory.total = std::max<int64_t>(0, meminfo_bytes(text, "MemTotal"));
  int64_t available = meminfo_bytes(text, "MemAvailable");
  if (available < 0) available = meminfo_bytes(text, "MemFree");
  memory.available = std::max<int64_t>(0, available);
  // cgroup v2, else v1 (whose "no limit" is a huge number, e.g. 9223372036854771712).
  int64_t limit = read_number("/sys/fs/cgroup/memory.max"), usage = read_number("/sys/fs/cgroup/memory.current");
  if (limit < 0) {
    limit = read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    usage = read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes");
  }
  if (limit > 0 && (memory.total == 0 || limit < memory.total)) {
    memory.cgroup_limited = true;
    memory.total = limit;
    int64_t left = std::max<int64_t>(0, limit - std::max<int64_t>(0, usage));
    memory.available = memory.available > 0 ? std::min(memory.available, left) : left;
  }
  return memory;
}

int available_cores() {
  int cores = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) cores = CPU_COUNT(&set);
  if (cores <= 0) cores = int(std::thread::hardware_concurrency());
  // cgroup v2 "cpu.max" holds "<quota> <period>" or "max <period>"; v1 has two files.
  int64_t quota = -1, period = -1;
  {
    std::ifstream in("/sys/fs/cgroup/cpu.max");
    std::string q;
    if (in >> q >> period && q != "max") quota = std::atoll(q.c_str());
  }
  if (quota <= 0) {
    quota = read_number("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
    period = read_number("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  }
  if (quota > 0 && period > 0) cores = std::min(cores, int((quota + period - 1) / period));
  return std::max(1, cores);
}

std::string bytes_text(int64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " B";
  const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double value = double(bytes) / 1024;
  int unit = 0;
  while (value >= 1024 && unit < 5) value /= 1024, ++unit;
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, "%.1f %s", value, units[unit]);
  return buffer;
}

}  // namespace frugal
