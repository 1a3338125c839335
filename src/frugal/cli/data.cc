// The `frugal data` group. `data pack JOB --out DIR`: the job's classification splits, as training
// would prepare them (classes, val/test fractions, limits applied) but before u8 -> f32 and
// normalization, written as zstd shards plus an index (data/packed.h) for [data] kind = "packed".
// Limits: the splits are read into memory once to be packed (as `frugal train` would read them);
// --repeat writes the training split several times over (a set larger than memory, for benchmarks).
#include "frugal/cli/data.h"

#include <cstdio>
#include <memory>
#include <string>

#include "frugal/base/error.h"
#include "frugal/base/machine.h"
#include "frugal/base/timer.h"
#include "frugal/cli/data_score.h"
#include "frugal/data/packed.h"
#include "frugal/train/data_setup.h"
#include "frugal/train/job.h"

namespace frugal::cli {
namespace {

struct PackArgs {
  std::string job, out;
  std::vector<std::string> sets;
  double shard_mb = 64;
  int level = 3;
  int64_t block = 256, repeat = 1;
};

int run_pack(const PackArgs& args) {
  train::JobSpec job = train::load_job(args.job, args.sets);
  if (job.data.kind == train::DataKind::text || job.data.kind == train::DataKind::packed)
    throw InputError(args.job + ": [data] kind = \"" + std::string(train::name_of(job.data.kind)) +
                     "\": frugal data pack packs classification files (kind = idx, csv or npy)");
  Timer timer;
  train::PreparedData data = train::prepare_splits(job);
  for (const std::string& warning : data.warnings) std::fprintf(stderr, "warning: %s\n", warning.c_str());
  data::PackOptions options;
  options.shard_bytes = int64_t(args.shard_mb * 1048576.0);
  options.level = args.level;
  options.block_samples = args.block;
  options.repeat = args.repeat;
  data::PackReport report =
      data::write_pack(args.out, data.train, data.val, data.test, data.classes, data.label_names, options);
  for (const data::PackSplit& split : report.index.splits) {
    int64_t blocks = 0;
    for (const data::PackShard& shard : split.shards) blocks += int64_t(shard.blocks.size());
    std::printf("  %-5s %lld samples, %zu shards, %lld blocks\n", split.name.c_str(), (long long)split.samples,
                split.shards.size(), (long long)blocks);
  }
  char fingerprint[17];
  std::snprintf(fingerprint, sizeof fingerprint, "%016llx", (unsigned long long)report.index.fingerprint);
  std::printf("packed %s %s samples, %lld classes: %s raw -> %s on disk (%.2fx, zstd level %d) in %.1f s, fingerprint %s\n",
              std::string(dtype_name(report.index.dtype)).c_str(), shape_str(report.index.sample_shape).c_str(), (long long)report.index.classes,
              bytes_text(int64_t(report.raw_bytes)).c_str(), bytes_text(int64_t(report.packed_bytes)).c_str(),
              double(report.raw_bytes) / double(std::max<uint64_t>(report.packed_bytes, 1)), args.level, timer.seconds(),
              fingerprint);
  std::printf("wrote %s (train it with [data] kind = \"packed\", path = \"%s\")\n", args.out.c_str(), args.out.c_str());
  return 0;
}

Command add_pack_command(CLI::App& group) {
  auto args = std::make_shared<PackArgs>();
  CLI::App* cmd = group.add_subcommand(
      "pack", "Write a job's classification data as zstd-compressed shards with an index, for [data] kind = \"packed\"");
  cmd->add_option("job", args->job, "Job file (TOML) whose [data] section reads the raw files (idx, csv, npy)")->required();
  cmd->add_option("--out", args->out, "Directory to write (must not hold a pack already)")->required();
  cmd->add_option("--shard-mb", args->shard_mb, "Compressed megabytes per shard file (default 64)")
      ->check(CLI::Range(0.001, 1048576.0));
  cmd->add_option("--level", args->level, "zstd compression level, 1..19 (default 3)")->check(CLI::Range(1, 19));
  cmd->add_option("--block", args->block, "Samples per compressed block, the unit of random access (default 256)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_option("--repeat", args->repeat, "Write the training split this many times (a large set for benchmarks)")
      ->check(CLI::Range(int64_t(1), int64_t(10000)));
  cmd->add_option("--set", args->sets, "Override a job key (repeatable)");
  return {cmd, [args] { return run_pack(*args); }};
}

}  // namespace

std::vector<Command> add_data_commands(CLI::App& app) {
  CLI::App* group = app.add_subcommand("data", "Work on a job's data set: pack it into shards, score its samples");
  group->require_subcommand(1);
  std::vector<Command> commands;
  commands.push_back(add_pack_command(*group));
  commands.push_back(add_score_command(*group));
  return commands;
}

}  // namespace frugal::cli
