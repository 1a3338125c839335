// libFuzzer target for the packed data index (data/packed.h), through parse_pack_index. The input is
// the index without its trailing CRC-32, which is appended here so mutations reach the fields
// (otherwise nearly every one would stop at the checksum). An accepted index has a train split whose
// blocks add up to its sample count and shards whose blocks lie back to back after the header.
#include <zlib.h>

#include "fuzz_util.h"
#include "frugal/data/packed.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace frugal;
  std::string bytes(fuzz::as_text(data, size));
  const uint32_t crc = uint32_t(crc32(0, data, uInt(size)));
  bytes.append(reinterpret_cast<const char*>(&crc), 4);
  data::PackIndex index;
  if (!fuzz::accepted([&] { index = data::parse_pack_index(bytes, "fuzz/index.fpk"); })) return 0;
  const data::PackSplit* train = index.split("train");
  FUZZ_CHECK(train != nullptr && index.classes >= 2 && index.block_samples >= 1);
  for (const data::PackSplit& split : index.splits) {
    int64_t samples = 0;
    for (const data::PackShard& shard : split.shards) {
      uint64_t end = 16;
      for (const data::PackBlock& block : shard.blocks) {
        FUZZ_CHECK(block.offset == end && block.samples >= 1);
        end += block.bytes;
        samples += block.samples;
      }
      FUZZ_CHECK(shard.file_bytes == end && shard.file.find('/') == std::string::npos);
    }
    FUZZ_CHECK(samples == split.samples);
  }
  // What is accepted serializes back to the same bytes.
  FUZZ_CHECK(data::serialize_pack_index(index) == bytes);
  return 0;
}
