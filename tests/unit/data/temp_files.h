// Test helpers for the data readers: a per-test temporary directory, byte writers, and a tiny gzip
// writer (stored deflate blocks + CRC-32) so tests make .gz files without linking zlib themselves.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "test_util.h"
#include <unistd.h>

namespace frugal::testing {

using Bytes = std::vector<uint8_t>;

// A fresh directory named after the running test, removed when the object goes away.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string("frugal_") + (info ? std::string(info->test_suite_name()) + "_" + info->name() : "test") +
                       "_" + std::to_string(::getpid());
    path_ = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

inline void write_text(const std::string& path, const std::string& text) {
  write_file(path, Bytes(text.begin(), text.end()));
}

inline void put_be32(Bytes& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(uint8_t(v >> shift));
}
inline void put_le16(Bytes& out, uint32_t v) { out.push_back(uint8_t(v)); out.push_back(uint8_t(v >> 8)); }
inline void put_le32(Bytes& out, uint32_t v) { put_le16(out, v & 0xFFFF); put_le16(out, v >> 16); }

inline uint32_t crc32(const Bytes& data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (uint8_t byte : data) {
    crc ^= byte;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// A valid gzip member holding `data` in stored (uncompressed) deflate blocks.
inline Bytes gzip_stored(const Bytes& data) {
  Bytes out = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
  size_t position = 0;
  do {
    size_t length = std::min<size_t>(65535, data.size() - position);
    bool last = position + length == data.size();
    out.push_back(last ? 1 : 0);
    put_le16(out, uint32_t(length));
    put_le16(out, uint32_t(~length & 0xFFFF));
    out.insert(out.end(), data.begin() + long(position), data.begin() + long(position + length));
    position += length;
  } while (position < data.size());
  put_le32(out, crc32(data));
  put_le32(out, uint32_t(data.size()));
  return out;
}


}  // namespace frugal::testing
