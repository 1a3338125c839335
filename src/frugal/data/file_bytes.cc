// Reads a file into memory, inflating gzip (all members, as gzip -d does) when the magic says so,
// within the size limit and what the header promises.
#include "frugal/data/file_bytes.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include <sys/stat.h>
#include <zlib.h>

#include "frugal/base/error.h"
#include "frugal/base/machine.h"

namespace frugal::data {

namespace {

std::atomic<int64_t> g_max_file_bytes{0};

std::string limit_text(int64_t limit) {
  return "limit data.max_bytes = " + std::to_string(limit) + " (" + bytes_text(limit) + ")";
}

std::vector<uint8_t> read_raw(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw InputError(path + ": cannot open (" + std::strerror(errno) + ")");
  // fopen opens a directory too; reading it would fail later with no useful message.
  struct stat st {};
  if (::fstat(::fileno(file.get()), &st) == 0 && S_ISDIR(st.st_mode))
    throw InputError(path + ": is a directory; expected a data file");
  const int64_t limit = max_file_bytes();
  if (::fstat(::fileno(file.get()), &st) == 0 && S_ISREG(st.st_mode) && int64_t(st.st_size) > limit)
    throw InputError(path + ": " + std::to_string(int64_t(st.st_size)) + " bytes, more than the " + limit_text(limit));
  std::vector<uint8_t> bytes;
  if (std::fseek(file.get(), 0, SEEK_END) == 0) {
    long size = std::ftell(file.get());
    if (size > 0) bytes.reserve(size_t(size));
    std::fseek(file.get(), 0, SEEK_SET);
  }
  uint8_t buffer[1 << 16];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) {
    bytes.insert(bytes.end(), buffer, buffer + got);
    if (int64_t(bytes.size()) > limit)  // a pipe or a file still growing
      throw InputError(path + ": more than " + std::to_string(limit) + " bytes (" + limit_text(limit) + ")");
  }
  if (std::ferror(file.get())) fail_system(path + ": read error after " + std::to_string(bytes.size()) + " bytes", errno);
  return bytes;
}

// Where inflating must stop: past the size limit, or past what the header read so far promises.
class InflateBound {
 public:
  InflateBound(const std::string& path, const ExpectSize& expect) : path_(path), expect_(expect), limit_(max_file_bytes()) {}

  // The most bytes `out` may hold; growing past it is refused by check().
  int64_t most() const { return expected_.bytes >= 0 ? std::min(expected_.bytes, limit_) : limit_; }

  // Output bytes per inflate call: small until the header has told the size, so a bomb behind a
  // small header is caught after a few KiB.
  size_t step() const { return expect_ && expected_.bytes < 0 ? size_t(1) << 16 : size_t(1) << 30; }

  void check(const std::vector<uint8_t>& out) {
    if (expect_ && expected_.bytes < 0) expected_ = expect_(out);
    const int64_t size = int64_t(out.size());
    if (expected_.bytes >= 0 && size > expected_.bytes && expected_.bytes <= limit_)
      throw InputError(path_ + ": gzip data inflates past " + std::to_string(expected_.bytes) + " bytes, the size " +
                       expected_.what + " promises; the file is corrupt or not what it claims");
    if (size > limit_)
      throw InputError(path_ + ": gzip data inflates past " + std::to_string(limit_) + " bytes (" + limit_text(limit_) +
                       "; raise [data] max_bytes if the file is genuine)");
  }

 private:
  const std::string& path_;
  const ExpectSize& expect_;
  const int64_t limit_;
  ExpectedSize expected_;
};

// Inflates every gzip member of `in` into out; returns "" or a description of the problem. Throws
// InputError as soon as out grows past what `bound` allows, so a bomb is refused after at most
// the allowed bytes (plus one buffer).
std::string inflate_gzip(const std::vector<uint8_t>& in, std::vector<uint8_t>& out, InflateBound& bound) {
  // The ISIZE trailer (size mod 2^32 of the last member) is only a hint for the first buffer: it
  // may lie, so the bound is checked as the data comes. Deflate expands at most 1032:1, so a hint
  // beyond that is a lie (a corrupt 20-byte file must not reserve and zero 256 MiB).
  size_t hint = in.size() * 4;
  if (in.size() >= 18) hint = std::max<size_t>(hint, size_t(in[in.size() - 4]) | size_t(in[in.size() - 3]) << 8 |
                                                         size_t(in[in.size() - 2]) << 16 | size_t(in[in.size() - 1]) << 24);
  hint = std::min(hint, in.size() * 1032 + (size_t(1) << 16));
  out.reserve(std::min<size_t>({hint, size_t(bound.most()) + 1, size_t(256) << 20}));
  size_t position = 0;  // compressed offset of the current member
  while (position < in.size()) {
    z_stream stream{};
    if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) return "zlib inflateInit2 failed";
    stream.next_in = const_cast<Bytef*>(in.data() + position);
    stream.avail_in = uInt(in.size() - position);
    int status = Z_OK;
    while (status == Z_OK) {
      // Room for one byte past the bound, so that going past it shows.
      if (out.size() == out.capacity())
        out.reserve(std::max(out.size() + 1, std::min<size_t>(out.capacity() * 2 + (1 << 16), size_t(bound.most()) + 1)));
      size_t before = out.size();
      size_t room = std::min<size_t>(out.capacity() - before, bound.step());
      out.resize(before + room);
      stream.next_out = out.data() + before;
      stream.avail_out = uInt(room);
      status = inflate(&stream, Z_NO_FLUSH);
      out.resize(before + (room - stream.avail_out));
      try {
        bound.check(out);
      } catch (...) {
        inflateEnd(&stream);
        throw;
      }
      if (status == Z_BUF_ERROR && stream.avail_in == 0) break;  // input ran out mid-stream
      if (status == Z_BUF_ERROR) status = Z_OK;                   // output full: grow and retry
    }
    size_t consumed = size_t(stream.next_in - in.data());
    std::string zlib_message = stream.msg ? stream.msg : "zlib error " + std::to_string(status);
    inflateEnd(&stream);
    if (status == Z_STREAM_END) {
      position = consumed;
      // Trailing zero padding after the last member is tolerated, like gzip -d does.
      while (position < in.size() && in[position] == 0) ++position;
      if (position < in.size() && (in.size() - position < 2 || in[position] != 0x1f || in[position + 1] != 0x8b))
        return "unexpected bytes after the gzip stream at compressed byte " + std::to_string(position) + " of " +
               std::to_string(in.size());
      continue;
    }
    if (status == Z_BUF_ERROR || status == Z_OK)
      return "gzip stream truncated at compressed byte " + std::to_string(in.size()) + " (" +
             std::to_string(out.size()) + " bytes decompressed so far)";
    return "corrupt gzip data near compressed byte " + std::to_string(consumed) + " of " + std::to_string(in.size()) +
           " (" + zlib_message + ")";
  }
  return "";
}

}  // namespace

void set_max_file_bytes(int64_t bytes) { g_max_file_bytes = bytes; }

int64_t max_file_bytes() {
  int64_t bytes = g_max_file_bytes;
  return bytes > 0 ? bytes : default_max_file_bytes();
}

int64_t default_max_file_bytes() {
  const int64_t available = machine_memory().available;
  if (available <= 0) return int64_t(4) << 30;
  return std::min(available / 2, int64_t(4) << 30);
}

FileBytes load_file(const std::string& path, const ExpectSize& expect) {
  return decode_bytes(read_raw(path), path, expect);
}

FileBytes decode_bytes(std::vector<uint8_t> raw, const std::string& path, const ExpectSize& expect) {
  FileBytes file;
  if (raw.size() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b) {
    file.gzip = true;
    InflateBound bound(path, expect);
    file.gzip_problem = inflate_gzip(raw, file.bytes, bound);
  } else {
    file.bytes = std::move(raw);
  }
  return file;
}

void check_gzip_complete(const FileBytes& file, const std::string& path) {
  if (!file.gzip_problem.empty()) throw InputError(path + ": " + file.gzip_problem);
}

void fail_file(const FileBytes& file, const std::string& path, const std::string& what) {
  std::string gz = file.gzip_problem.empty() ? "" : " [" + file.gzip_problem + "]";
  throw InputError(path + ": " + what + gz);
}

}  // namespace frugal::data
