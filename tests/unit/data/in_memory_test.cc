// The in-memory entry points of the readers (parse_idx, parse_csv, parse_npy, parse_text, used by
// the fuzz targets) read bytes exactly as the read_* functions read the same bytes from a file, gzip
// included, and name the given name in their errors.
#include "frugal/data/readers.h"
#include "test_util.h"
#include "unit/data/temp_files.h"

namespace frugal::data {
namespace {

using frugal::testing::Bytes;
using frugal::testing::TempDir;

std::string_view view(const Bytes& bytes) { return {reinterpret_cast<const char*>(bytes.data()), bytes.size()}; }

TEST(InMemory, IdxBytesReadAsTheFile) {
  TempDir dir;
  Bytes idx = {0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6};
  for (const Bytes& bytes : {idx, frugal::testing::gzip_stored(idx)}) {
    frugal::testing::write_file(dir.file("a.idx"), bytes);
    Tensor from_file = read_idx(dir.file("a.idx")), from_memory = parse_idx(view(bytes), "a.idx");
    EXPECT_EQ(from_memory.shape(), from_file.shape());
    EXPECT_EQ(std::vector<uint8_t>(from_memory.data<uint8_t>(), from_memory.data<uint8_t>() + 6),
              std::vector<uint8_t>(from_file.data<uint8_t>(), from_file.data<uint8_t>() + 6));
  }
  Bytes truncated(idx.begin(), idx.end() - 1);
  EXPECT_INPUT_ERROR(parse_idx(view(truncated), "mem.idx"), "mem.idx: truncated at byte 17 of 18 expected");
}

TEST(InMemory, CsvTextAndNpyAsTheFile) {
  const std::string csv = "a,b,y\n1,2,0\n3,4,1\n";
  CsvTable table = parse_csv(csv, "mem.csv");
  EXPECT_EQ(table.features.shape(), Shape({2, 2}));
  EXPECT_EQ(table.labels.data<int64_t>()[1], 1);
  EXPECT_EQ(table.lines, std::vector<int64_t>({2, 3}));
  EXPECT_INPUT_ERROR(parse_csv("a,b,y\n1,x,0\n", "mem.csv"), "mem.csv: line 2, column 3", "found 'x'");
  EXPECT_EQ(parse_text("hello\n", "mem.txt"), "hello\n");
  Bytes gz = frugal::testing::gzip_stored(Bytes{'h', 'i'});
  EXPECT_EQ(parse_text(view(gz), "mem.txt.gz"), "hi");
  EXPECT_INPUT_ERROR(parse_text("", "mem.txt"), "mem.txt: empty file");
  EXPECT_INPUT_ERROR(parse_npy("PK", "mem.npy"), "mem.npy: bad magic at byte 0");
}

}  // namespace
}  // namespace frugal::data
