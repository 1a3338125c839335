// file_util: the crash-safe replace writes exactly the produced bytes, and on any failure (a throw
// from the producer, a missing directory) leaves the old file and no tmp; whole-file reads are
// aligned, exact, and name the file when it is missing or not a regular file.
#include "frugal/io/file_util.h"

#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>

#include "test_util.h"

#include "frugal/base/error.h"
#include "unit/data/temp_files.h"

namespace frugal::io {
namespace {

using testing::TempDir;

using frugal::testing::read_bytes;

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// The message of the InputError `f` throws, or "" if it throws none.
template <typename F>
std::string input_error_of(F f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(FileUtil, AtomicWriteReplacesWithTheProducedBytesInOrder) {
  TempDir dir;
  const std::string path = dir.file("out.bin");
  write_file_atomic(path, [](const WriteBytes& write) { write("old", 3); });
  EXPECT_EQ(read_bytes(path), "old");
  std::string big(100000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = char(i * 7 + 3);
  write_file_atomic(path, [&](const WriteBytes& write) {
    write("ab", 2);
    write("", 0);
    write(big.data(), big.size());
    write("z", 1);
  });
  EXPECT_EQ(read_bytes(path), "ab" + big + "z");
  EXPECT_FALSE(exists(path + ".tmp"));
}

TEST(FileUtil, AThrowingProducerLeavesTheOldFileAndNoTmp) {
  TempDir dir;
  const std::string path = dir.file("out.bin");
  write_file_atomic(path, [](const WriteBytes& write) { write("keep me", 7); });
  EXPECT_THROW(write_file_atomic(path,
                                 [](const WriteBytes& write) {
                                   write("partial", 7);
                                   throw std::runtime_error("producer failed");
                                 }),
               std::runtime_error);
  EXPECT_EQ(read_bytes(path), "keep me");
  EXPECT_FALSE(exists(path + ".tmp"));
}

TEST(FileUtil, AMissingDirectoryNamesThePathAndTheTmp) {
  TempDir dir;
  const std::string path = dir.file("no_such_dir/out.bin");
  const std::string message =
      input_error_of([&] { write_file_atomic(path, [](const WriteBytes& write) { write("x", 1); }); });
  EXPECT_EQ(message.rfind(path + ": cannot create temporary file '" + path + ".tmp': ", 0), 0u) << message;
  EXPECT_NE(message.find("No such file or directory"), std::string::npos) << message;
}

// A full disk is the storage's fault (IoError, exit 74), not the input's: /dev/full answers every
// write with ENOSPC, here through the temporary file the write goes to.
TEST(FileUtil, AFullDiskIsAnIoErrorNamingThePath) {
  TempDir dir;
  const std::string path = dir.file("out.bin");
  ASSERT_EQ(::symlink("/dev/full", (path + ".tmp").c_str()), 0);
  std::string message;
  try {
    write_file_atomic(path, [](const WriteBytes& write) { write("x", 1); });
  } catch (const IoError& e) {
    message = e.what();
  }
  EXPECT_EQ(message.rfind(path + ": cannot write '" + path + ".tmp': No space left on device", 0), 0u) << message;
  EXPECT_FALSE(exists(path));
}

// Which errno values are the storage's fault: the rest stay input errors (exit 2).
TEST(FileUtil, FailSystemSortsStorageFailuresFromInputErrors) {
  for (int storage : {ENOSPC, EDQUOT, EIO, EFBIG}) EXPECT_THROW(fail_system("f", storage), IoError) << storage;
  for (int input : {ENOENT, ENOTDIR, EISDIR, EACCES, ENAMETOOLONG, EROFS})
    EXPECT_THROW(fail_system("f", input), InputError) << input;
  EXPECT_EQ(input_error_of([] { fail_system("a/b", ENOTDIR); }), "a/b: Not a directory");
}

TEST(FileUtil, ReadWholeFileIsExactAndAligned) {
  TempDir dir;
  for (size_t size : {size_t(0), size_t(1), size_t(63), size_t(65), size_t(300001)}) {
    std::string bytes(size, '\0');
    for (size_t i = 0; i < size; ++i) bytes[i] = char(i * 13 + size);
    const std::string path = dir.file("f" + std::to_string(size));
    write_file_atomic(path, [&](const WriteBytes& write) { write(bytes.data(), bytes.size()); });
    std::shared_ptr<Storage> buffer = read_whole_file(path);
    ASSERT_EQ(buffer->bytes(), size);
    if (size > 0) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(buffer->data()) % 64, 0u);
      EXPECT_EQ(std::string(static_cast<const char*>(buffer->data()), size), bytes);
    }
  }
}

TEST(FileUtil, ReadErrorsNameTheFile) {
  TempDir dir;
  const std::string missing = dir.file("missing.bin");
  std::string message = input_error_of([&] { read_whole_file(missing); });
  EXPECT_EQ(message.rfind(missing + ": cannot open: ", 0), 0u) << message;
  const std::string directory = dir.file("");
  message = input_error_of([&] { read_whole_file(directory); });
  EXPECT_EQ(message, directory + ": cannot read: not a regular file");
}

TEST(FileUtil, FailPrefixesThePath) {
  EXPECT_EQ(input_error_of([] { fail("a/b.fck", "bad byte at offset 3"); }), "a/b.fck: bad byte at offset 3");
}

}  // namespace
}  // namespace frugal::io
