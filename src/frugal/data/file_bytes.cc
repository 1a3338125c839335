// Reads a file into memory, inflating gzip (all members, as gzip -d does) when the magic says so.
#include "frugal/data/file_bytes.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include <sys/stat.h>
#include <zlib.h>

#include "frugal/base/error.h"

namespace frugal::data {

namespace {

std::vector<uint8_t> read_raw(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw InputError(path + ": cannot open (" + std::strerror(errno) + ")");
  // fopen opens a directory too; reading it would fail later with no useful message.
  struct stat st {};
  if (::fstat(::fileno(file.get()), &st) == 0 && S_ISDIR(st.st_mode))
    throw InputError(path + ": is a directory; expected a data file");
  std::vector<uint8_t> bytes;
  if (std::fseek(file.get(), 0, SEEK_END) == 0) {
    long size = std::ftell(file.get());
    if (size > 0) bytes.reserve(size_t(size));
    std::fseek(file.get(), 0, SEEK_SET);
  }
  uint8_t buffer[1 << 16];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) bytes.insert(bytes.end(), buffer, buffer + got);
  if (std::ferror(file.get())) fail_system(path + ": read error after " + std::to_string(bytes.size()) + " bytes", errno);
  return bytes;
}

// Inflates every gzip member of `in` into out; returns "" or a description of the problem.
std::string inflate_gzip(const std::vector<uint8_t>& in, std::vector<uint8_t>& out) {
  out.reserve(in.size() * 4);
  size_t position = 0;  // compressed offset of the current member
  while (position < in.size()) {
    z_stream stream{};
    if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) return "zlib inflateInit2 failed";
    stream.next_in = const_cast<Bytef*>(in.data() + position);
    stream.avail_in = uInt(in.size() - position);
    int status = Z_OK;
    while (status == Z_OK) {
      if (out.size() == out.capacity()) out.reserve(out.capacity() * 2 + (1 << 16));
      size_t before = out.size();
      size_t room = out.capacity() - before;
      out.resize(out.capacity());
      stream.next_out = out.data() + before;
      stream.avail_out = uInt(std::min<size_t>(room, 1u << 30));
      status = inflate(&stream, Z_NO_FLUSH);
      out.resize(before + (std::min<size_t>(room, 1u << 30) - stream.avail_out));
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

FileBytes load_file(const std::string& path) { return decode_bytes(read_raw(path)); }

FileBytes decode_bytes(std::vector<uint8_t> raw) {
  FileBytes file;
  if (raw.size() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b) {
    file.gzip = true;
    file.gzip_problem = inflate_gzip(raw, file.bytes);
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
