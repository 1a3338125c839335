// Whole-file loading for the readers: raw bytes, transparently inflated when the file starts with
// the gzip magic (1f 8b), whatever its name. Inflation stops (InputError) past the size limit
// (data.max_bytes) or past what the format's header promises, so a gzip bomb costs little memory
// and time. Limits: the whole (decompressed) file is held in memory.
#pragma once

#include <cstdint>
#include <functional>
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

// The most bytes one data file may hold, raw or inflated (the job key data.max_bytes). Process-wide:
// the training setup sets it from the job before reading data. 0 = default_max_file_bytes().
void set_max_file_bytes(int64_t bytes);
int64_t max_file_bytes();
// Half the memory available now (base/machine.h), at most 4 GiB (4 GiB when unknown): a larger
// file needs data.max_bytes set; a gzip bomb of 4 MB (4 GB of zeros) stops at the cap.
int64_t default_max_file_bytes();

// What the bytes inflated so far say the whole file must be: `bytes` < 0 while the header is not
// complete yet; `what` names the header for messages, e.g. "its IDX header (60 x 28 x 28)".
struct ExpectedSize {
  int64_t bytes = -1;
  std::string what;
};
using ExpectSize = std::function<ExpectedSize(const std::vector<uint8_t>& head)>;

// Throws InputError when the file cannot be opened or read, when it is (or inflates to) more than
// max_file_bytes(), or when gzip data inflates past what `expect` (if given) says the file holds.
FileBytes load_file(const std::string& path, const ExpectSize& expect = {});

// The same for bytes already in memory (load_file reads the file and calls this); `path` names
// them in messages.
FileBytes decode_bytes(std::vector<uint8_t> raw, const std::string& path = "(bytes)", const ExpectSize& expect = {});


// Throws InputError(path + ": " + what), with the gzip problem appended in brackets when the stream
// was incomplete (a truncated .gz usually explains a format error found first).
[[noreturn]] void fail_file(const FileBytes& file, const std::string& path, const std::string& what);

// Throws InputError(path + ": " + gzip_problem) if the gzip stream was not complete.
void check_gzip_complete(const FileBytes& file, const std::string& path);

}  // namespace frugal::data
