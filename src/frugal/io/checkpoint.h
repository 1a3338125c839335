// Checkpoint files for spot-safe training: one self-checking file per saved step, written
// crash-safely, the newest K kept, and the newest good one found again after a kill or a torn write.
// Limits: little-endian hosts; a file is read whole into memory; one writer per directory at a time.
//
// File format, version 1 (all integers little-endian):
//   offset 0   8 bytes   magic "FRUGALCK"
//   offset 8   u32       format version (1)
//   offset 12  u64       H, the length of the JSON header in bytes
//   offset 20  H bytes   JSON header (UTF-8):
//                          {"step": S, "job_hash": "...", "values": {"key": "string", ...},
//                           "data_bytes": D,
//                           "tensors": [{"name": "...", "dtype": "f32", "shape": [2, 3],
//                                        "offset": 0, "length": 24}, ...]}
//              zero bytes up to the next multiple of 64: the data section starts at
//              data_start = round_up(20 + H, 64)
//   data_start D bytes   packed row-major tensor data; each tensor's "offset" is relative to
//                        data_start and a multiple of 64 (zero bytes pad between tensors), so every
//                        tensor is 64-byte aligned in the file and in the read buffer
//   then       u64       XXH64 (seed 0) of every byte before it: [0, data_start + D)
//   then       8 bytes   magic "FRUGALCK" again
// A file is good only if its length is exactly data_start + D + 16 and both magics, the version and
// the checksum match; tensors are listed in the order they were given and must not overlap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "frugal/tensor/tensor.h"

namespace frugal::io {

constexpr uint32_t kCheckpointVersion = 1;

// Everything a run needs to continue: tensors (weights, optimizer moments, RNG state, ...) and small
// values as strings (step, epoch, batch index, early-stopping state, meters, JSON blobs, ...).
struct CheckpointState {
  std::vector<std::pair<std::string, Tensor>> tensors;  // names unique; any dtype, shape and strides
  std::map<std::string, std::string> values;
  std::string job_hash;  // hash of the resolved job, compared on resume
  int64_t step = 0;      // names the file; >= 0
};

struct CheckpointWrite {
  std::string path;                  // the checkpoint written
  int64_t bytes = 0;                 // its size
  double seconds = 0;                // wall time of the whole call (write, fsyncs, pruning)
  std::vector<std::string> removed;  // older checkpoints and stale .tmp files deleted
  std::vector<std::string> warnings; // old files that could not be deleted (the new one is good)
};

// "checkpoint-000000001234.fck": the file name of a step (12 digits, zero-padded, more if needed).
std::string checkpoint_file_name(int64_t step);

// Writes dir/checkpoint_file_name(state.step) crash-safely: the bytes go to "<path>.tmp", which is
// fsynced, renamed over <path>, and then the directory is fsynced; a kill at any moment leaves either
// the old directory contents or the complete new file (plus, perhaps, a .tmp file that is ignored).
// Only after that, checkpoints of earlier steps beyond the newest `keep` (counting the new one) and
// leftover .tmp files are deleted, so a good checkpoint exists at every moment. Checkpoints of later
// steps than state.step (from a run that went further before being resumed from an earlier file)
// are left alone. Creates `dir` if needed. keep >= 1; keep >= 2 also survives a newest file that is
// corrupted after it was written. Throws InputError naming the file on any I/O failure (the
// existing checkpoints are then untouched).
CheckpointWrite write_checkpoint(const std::string& dir, const CheckpointState& state, int keep);

// Reads and validates a checkpoint file. Throws InputError naming the file and what is wrong: not a
// checkpoint (magic), unknown version, truncated at byte N, trailing bytes, checksum mismatch, or a
// header that does not describe the data. Tensors are views into one 64-byte aligned buffer holding
// the file (kept alive while any of them is).
CheckpointState read_checkpoint(const std::string& path);

// The same for a file's bytes already in memory (read_checkpoint reads `path` and calls this);
// `path` names it in messages. The tensors are views into `buffer`.
CheckpointState parse_checkpoint(std::shared_ptr<Storage> buffer, const std::string& path);

struct LatestCheckpoint {
  std::string path;
  CheckpointState state;
  std::vector<std::string> warnings;  // one per newer checkpoint skipped: its path and the reason
};

// The newest good checkpoint in `dir` by step. Bad files (torn, corrupted, or whose header step does
// not match the name) are skipped with a warning; .tmp files and other names are ignored. Returns
// nullopt when `dir` holds no checkpoint (or does not exist); throws InputError listing every file
// and its reason when there are checkpoints but none is good. Never modifies the directory.
std::optional<LatestCheckpoint> load_latest_checkpoint(const std::string& dir);

// XXH64 of `size` bytes, the checksum of the format. Streaming: update() any number of times.
class Xxh64 {
 public:
  explicit Xxh64(uint64_t seed = 0);
  void update(const void* data, size_t size);
  uint64_t digest() const;

 private:
  uint64_t lanes_[4];
  uint64_t seed_;
  uint64_t total_ = 0;
  unsigned char buffer_[32];
  size_t buffered_ = 0;
};
uint64_t xxh64(const void* data, size_t size, uint64_t seed = 0);

// ---- When to checkpoint ----
// C = seconds to write one checkpoint, M = mean time between interruptions (seconds of wall time),
// T = seconds of work between the end of one checkpoint and the start of the next.

// Daly's higher-order optimum of T (J. T. Daly, "A higher order estimate of the optimum checkpoint
// interval for restart dumps", FGCS 2006), which refines Young's sqrt(2 C M):
//   T = sqrt(2 C M) * (1 + sqrt(C / (2 M)) / 3 + (C / (2 M)) / 9) - C   when C < 2 M,
//   T = M                                                               otherwise.
// Requires C >= 0 and M > 0. C = 0 gives 0 (checkpoint as often as possible).
double young_daly_interval(double checkpoint_seconds, double mtbi_seconds);

// Expected work lost to one interruption: it strikes uniformly within a cycle of T work plus C
// writing, and everything since the last completed checkpoint is redone: (T + C) / 2 seconds.
double expected_lost_seconds_per_interruption(double interval_seconds, double checkpoint_seconds);

// Expected fraction of wall time spent redoing work lost to interruptions (first order, valid for
// T + C much smaller than M): one interruption per M seconds, each losing (T + C) / 2: (T + C) / (2 M).
double expected_lost_work_fraction(double interval_seconds, double checkpoint_seconds, double mtbi_seconds);

// Expected fraction of wall time wasted in all, to first order (Young's model, restart time not
// counted): C / (T + C) writing checkpoints plus (T + C) / (2 M) redoing lost work. Daly's interval
// is close to its minimum. Requires T + C > 0 and M > 0.
double expected_waste_fraction(double interval_seconds, double checkpoint_seconds, double mtbi_seconds);

}  // namespace frugal::io
