// Packed data through the real binary: `frugal data pack` of a Fashion-MNIST subset, training on it
// ([data] kind = "packed", two loader threads, augmentation), a run killed with SIGKILL mid-epoch and
// resumed ending byte-identical to an uninterrupted one, and bad packs (a corrupted block, a truncated
// or missing shard, an index of another pack, a key packing already applied) exiting 2 with one line
// naming the file, shard and block, and no model written.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "e2e/cli_helpers.h"
#include "e2e/process.h"
#include "frugal/data/packed.h"

namespace frugal::e2e {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// The raw job: 1500 training images (after a 10% val split) of Fashion-MNIST, and its test split.
std::string raw_job(const std::string& name) {
  const std::string d = kFashionDir;
  return "[run]\nname = \"" + name + "\"\nseed = 3\nthreads = 1\nstore = \"runs.db\"\n[data]\nkind = \"idx\"\n"
         "train_images = \"" + d + "/train-images-idx3-ubyte.gz\"\ntrain_labels = \"" + d +
         "/train-labels-idx1-ubyte.gz\"\ntest_images = \"" + d + "/t10k-images-idx3-ubyte.gz\"\ntest_labels = \"" + d +
         "/t10k-labels-idx1-ubyte.gz\"\nval_fraction = 0.1\ntrain_limit = 1500\n"
         "[model]\nkind = \"mlp\"\nhidden = [32]\n[optim]\nlr = 0.003\n[train]\nepochs = 3\nbatch_size = 50\n"
         "log_every = 1000\n";
}

std::string packed_job(const std::string& name, const std::string& extra = "") {
  return "[run]\nname = \"" + name + "\"\nseed = 3\nthreads = 1\nstore = \"runs.db\"\n[data]\nkind = \"packed\"\n"
         "path = \"pack\"\nshuffle_buffer = 300\nworkers = 2\n" + extra +
         "[model]\nkind = \"mlp\"\nhidden = [32]\n[optim]\nlr = 0.003\n[train]\nepochs = 3\nbatch_size = 50\n"
         "log_every = 1000\n[checkpoint]\nevery_steps = 7\nkeep = 2\n";
}

void pack(const Scratch& s, const std::string& out = "pack") {
  write_file(s / "raw.toml", raw_job("raw"));
  CommandResult r = s.frugal("data pack raw.toml --out " + out + " --shard-mb 0.1 --block 64");
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("train 1500 samples"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("val   6000 samples"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("test  10000 samples"), std::string::npos) << r.out;
}

TEST(Packed, PackThenTrainOnTheShards) {
  Scratch s("packed-train");
  pack(s);
  EXPECT_GT(std::distance(fs::directory_iterator(s / "pack"), fs::directory_iterator{}), 4);  // several shards
  write_file(s / "job.toml", packed_job("packed"));
  CommandResult r = s.frugal("train job.toml --json --quiet --out run");
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  json summary = json::parse(last_line(r.out), nullptr, false);
  ASSERT_TRUE(summary.is_object()) << r.out;
  EXPECT_EQ(summary["status"], "completed");
  EXPECT_EQ(summary["steps"], 90);  // 3 epochs of 1500 / 50
  EXPECT_GT(summary["metrics"]["test_accuracy"].get<double>(), 0.65) << summary["metrics"].dump();
  const json& packed = summary["techniques"]["packed_data"];
  EXPECT_EQ(packed["samples"], 1500) << packed.dump();
  EXPECT_EQ(packed["workers"], 2);
  // 24 blocks, each read at least once; the cache (2 windows + 8 blocks) keeps some across epochs.
  EXPECT_GE(packed["blocks_decompressed"].get<int64_t>(), 24) << packed.dump();
  EXPECT_LE(packed["blocks_decompressed"].get<int64_t>(), 3 * 24 + 6) << packed.dump();
  EXPECT_TRUE(fs::exists(s / "run/model.safetensors"));
  EXPECT_TRUE(summary.contains("data_wait_s"));
}

// Techniques that choose rows through the loader work on packed data; those that need the split in
// memory (a score file's fingerprint, a subset of rows) refuse it by name, before any run.
TEST(Packed, SamplingTechniquesOnPackedData) {
  Scratch s("packed-sampling");
  pack(s);
  write_file(s / "is.toml", packed_job("is") + "[importance_sampling]\nsmoothing = 0.5\n");
  CommandResult r = s.frugal("train is.toml --json --quiet --out is");
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  json summary = json::parse(last_line(r.out), nullptr, false);
  ASSERT_TRUE(summary.is_object()) << r.out;
  EXPECT_EQ(summary["steps"], 90);
  EXPECT_TRUE(summary["techniques"].contains("importance_sampling")) << summary["techniques"].dump();

  write_file(s / "scores.safetensors", "not used: refused first");
  write_file(s / "pruned.toml", packed_job("pruned", "") + "[data_pruning]\nscores = \"scores.safetensors\"\n");
  r = s.frugal("train pruned.toml --quiet --out pruned");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("[data_pruning] needs the training split in memory"), std::string::npos) << r.err;
  write_file(s / "plain.toml", packed_job("plain"));
  r = s.frugal("data score plain.toml --out scores2.safetensors --quiet");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("packed data streams it"), std::string::npos) << r.err;
  r = s.frugal("active plain.toml --budget 200 --initial 100 --batch 50 --strategy margin");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("packed data streams it"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(s / "pruned"));
}

TEST(Packed, KilledMidEpochResumesByteIdentical) {
  Scratch s("packed-resume");
  pack(s);
  // Augmentation off: the MLP takes flat images; crop/flip are covered by the CNN bench.
  write_file(s / "job.toml", packed_job("resume"));
  CommandResult whole = s.frugal("train job.toml --json --quiet --out whole");
  ASSERT_EQ(whole.exit_code, 0) << whole.err;

  Process p(s, {"train", "job.toml", "--json", "--quiet", "--out", "cut"}, "cut");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!p.done() && heartbeat_step(s / "cut" / "checkpoints") < 35 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_FALSE(p.done()) << "the run finished before it could be killed: " << p.err();
  p.kill_with(SIGKILL);
  p.wait();
  ASSERT_FALSE(fs::exists(s / "cut/model.safetensors"));
  // Another pack at the same path (repacked with another split seed) is refused by its fingerprint.
  CommandResult other = s.frugal("data pack raw.toml --out other --shard-mb 0.1 --block 64 --set run.seed=4");
  ASSERT_EQ(other.exit_code, 0) << other.err;
  fs::rename(s / "pack", s / "pack.orig");
  fs::rename(s / "other", s / "pack");
  CommandResult refused = s.frugal("train job.toml --quiet --out cut --resume auto");
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_NE(refused.err.find("trained on the pack with fingerprint"), std::string::npos) << refused.err;
  fs::remove_all(s / "pack");
  fs::rename(s / "pack.orig", s / "pack");
  CommandResult resumed = s.frugal("train job.toml --json --quiet --out cut --resume auto");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  json summary = json::parse(last_line(resumed.out), nullptr, false);
  EXPECT_EQ(summary["steps"], 90);
  EXPECT_FALSE(summary["resumed_from"].is_null()) << resumed.out;
  EXPECT_TRUE(read_file(s / "cut/model.safetensors") == read_file(s / "whole/model.safetensors"))
      << "a packed run resumed mid-epoch (from step >= 35, epoch 2 of 3) must end byte-identical";
}

void damage(const fs::path& file, uint64_t offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(std::streamoff(offset));
  char c = 0;
  f.read(&c, 1);
  c = char(c ^ 0x5a);
  f.seekp(std::streamoff(offset));
  f.write(&c, 1);
}

TEST(Packed, BadPacksExitTwoNamingTheShard) {
  Scratch s("packed-bad");
  pack(s);
  write_file(s / "job.toml", packed_job("bad"));
  const fs::path shard = s / "pack/train-00001.shard";
  const std::string saved = read_file(shard);
  std::string bad_file, bad_where;
  uint64_t bad_offset = 0;

  {  // A block of the last shuffle window of epoch 0 (the order is a function of the index and seed 3),
     // so checkpoints are written before the run meets it.
    const data::PackIndex index = data::read_pack_index((s / "pack").string());
    data::PackedSourceOptions options;
    options.shuffle_buffer = 300;
    const int64_t last_row = data::PackedSource((s / "pack").string(), index, "train", options).shuffled_order(3, 0).back();
    int64_t first = 0;
    for (size_t h = 0; h < index.splits[0].shards.size() && bad_file.empty(); ++h)
      for (size_t b = 0; b < index.splits[0].shards[h].blocks.size(); ++b) {
        const data::PackBlock& block = index.splits[0].shards[h].blocks[b];
        if (last_row < first + block.samples) {
          bad_file = index.splits[0].shards[h].file;
          bad_where = bad_file + ": shard " + std::to_string(h) + " of the train split, block " + std::to_string(b) +
                      " at byte offset " + std::to_string(block.offset);
          bad_offset = block.offset + block.bytes / 2;
          break;
        }
        first += block.samples;
      }
  }
  ASSERT_FALSE(bad_file.empty());
  const std::string bad_saved = read_file(s / "pack" / bad_file);
  damage(s / "pack" / bad_file, bad_offset);
  CommandResult r = s.frugal("train job.toml --quiet --out corrupt");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(bad_where), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("checksum mismatch"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(s / "corrupt/model.safetensors")) << "nothing trained on a corrupt block is written";
  // The checkpoints written before the bad block stay good: with the shard repaired, the run resumes
  // from them and ends as a run that never met the damage.
  int checkpoints = 0;
  for (const auto& entry : fs::directory_iterator(s / "corrupt/checkpoints")) checkpoints += entry.path().extension() == ".fck";
  EXPECT_GT(checkpoints, 0) << "the bad block is met after the first checkpoint (every 7 steps)";
  write_file(s / "pack" / bad_file, bad_saved);
  CommandResult repaired = s.frugal("train job.toml --quiet --json --out corrupt --resume auto");
  ASSERT_EQ(repaired.exit_code, 0) << repaired.err;
  EXPECT_FALSE(json::parse(last_line(repaired.out), nullptr, false)["resumed_from"].is_null()) << repaired.out;
  CommandResult clean = s.frugal("train job.toml --quiet --out clean");
  ASSERT_EQ(clean.exit_code, 0) << clean.err;
  EXPECT_TRUE(read_file(s / "corrupt/model.safetensors") == read_file(s / "clean/model.safetensors"));

  fs::resize_file(shard, saved.size() - 10);
  r = s.frugal("train job.toml --quiet --out truncated");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("train-00001.shard: shard 1 of the train split: byte offset"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;

  fs::remove(shard);
  r = s.frugal("train job.toml --quiet --out missing");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("train-00001.shard: cannot open shard 1 of the train split"), std::string::npos) << r.err;
  write_file(shard, saved);

  // An index written for another pack (same files, other content) over this one's shards.
  CommandResult other = s.frugal("data pack raw.toml --out other --shard-mb 0.1 --block 64 --set run.seed=4");
  ASSERT_EQ(other.exit_code, 0) << other.err;
  fs::copy_file(s / "other/index.fpk", s / "pack/index.fpk", fs::copy_options::overwrite_existing);
  r = s.frugal("train job.toml --quiet --out foreign");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("shard 0 of the train split"), std::string::npos) << r.err;
  EXPECT_TRUE(r.err.find("belongs to another pack") != std::string::npos ||
              r.err.find("the index expects") != std::string::npos)
      << r.err;  // the sizes differ first, or (same sizes) the fingerprint in the shard header

  write_file(s / "frac.toml", packed_job("frac", "val_fraction = 0.2\n"));
  r = s.frugal("train frac.toml --quiet --out frac");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("val_fraction"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("applied when the pack is written"), std::string::npos) << r.err;
  r = s.frugal("data pack raw.toml --out pack");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace frugal::e2e
