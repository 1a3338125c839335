// Whole-file loading for the readers: raw bytes, transparently inflated when the file starts with
// the gzip magic (1f 8b), whatever its name. Limits: the whole (decompressed) file is held in memory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace frugal::data {

struct FileBytes {
  std::vector<uint8_t> bytes;  // decompressed content
  bool gzip = false;
  // Empty when the gzip stream was complete; else what went wrong and where (compressed offset).
  // Readers check their own format first (a truncated .gz shows up as short data) and then this.
  std::string gzip_problem;
};

// Throws InputError when the file cannot be opened or read.
FileBytes load_file(const std::string& path);

// The same for bytes already in memory (load_file reads the file and calls this).
FileBytes decode_bytes(std::vector<uint8_t> raw);

// Throws InputError(path + ": " + what), with the gzip problem appended in brackets when the stream
// was incomplete (a truncated .gz usually explains a format error found first).
[[noreturn]] void fail_file(const FileBytes& file, const std::string& path, const std::string& what);

// Throws InputError(path + ": " + gzip_problem) if the gzip stream was not complete.
void check_gzip_complete(const FileBytes& file, const std::string& path);

}  // namespace frugal::data
