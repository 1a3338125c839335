// Whole-file read and crash-safe replace for the io formats (see file_util.h).
// Limits: POSIX calls (open, pread, fsync, rename); no O_DIRECT, no memory mapping.
#include "frugal/io/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "frugal/base/error.h"

namespace frugal::io {
namespace {

// Writes all of `bytes`, retrying on short writes and EINTR.
bool write_all(int fd, const char* bytes, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, bytes, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes += n;
    size -= size_t(n);
  }
  return true;
}

// The rename of `path` into `dir` is durable only once the directory entry is on disk.
void fsync_directory(const std::string& dir, const std::string& path) {
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) fail_system(path + ": written, but cannot open directory '" + dir + "' to fsync it", errno);
  int rc = ::fsync(dir_fd);
  int error_number = errno;
  ::close(dir_fd);
  if (rc != 0) fail_system(path + ": written, but cannot fsync directory '" + dir + "'", error_number);
}

}  // namespace

void fail(const std::string& path, const std::string& what) { throw InputError(path + ": " + what); }

std::string system_message() { return std::strerror(errno); }

std::shared_ptr<Storage> read_whole_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, "cannot open: " + system_message());
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    std::string message = S_ISREG(st.st_mode) ? system_message() : "not a regular file";
    ::close(fd);
    fail(path, "cannot read: " + message);
  }
  auto buffer = std::make_shared<Storage>(size_t(st.st_size));
  char* out = static_cast<char*>(buffer->data());
  size_t done = 0;
  while (done < size_t(st.st_size)) {
    ssize_t n = ::pread(fd, out + done, size_t(st.st_size) - done, off_t(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string message = n < 0 ? system_message() : "file shrank while being read";
      ::close(fd);
      fail(path, "cannot read at byte offset " + std::to_string(done) + ": " + message);
    }
    done += size_t(n);
  }
  ::close(fd);
  return buffer;
}

void write_file_atomic(const std::string& path, const std::function<void(const WriteBytes& write)>& produce) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail_system(path + ": cannot create temporary file '" + tmp + "'", errno);
  try {
    // fail_system() reads errno before the handler below closes and unlinks, so the message stays
    // right; a full disk or an I/O error becomes IoError (exit 74), anything else InputError.
    produce([&](const void* bytes, size_t size) {
      if (!write_all(fd, static_cast<const char*>(bytes), size)) fail_system(path + ": cannot write '" + tmp + "'", errno);
    });
    if (::fsync(fd) != 0) fail_system(path + ": cannot fsync '" + tmp + "'", errno);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    int error_number = errno;
    ::unlink(tmp.c_str());
    fail_system(path + ": cannot close '" + tmp + "'", error_number);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int error_number = errno;
    ::unlink(tmp.c_str());
    fail_system(path + ": cannot rename '" + tmp + "' over it", error_number);
  }
  const std::string parent = std::filesystem::path(path).parent_path().string();
  fsync_directory(parent.empty() ? "." : parent, path);
}

}  // namespace frugal::io
