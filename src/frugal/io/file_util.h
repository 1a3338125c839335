// File helpers shared by the io readers and writers: whole-file reads into one aligned buffer, a
// crash-safe replace (tmp, fsync, rename, fsync directory), and errors that name the file.
// Limits: POSIX only; files are read whole into memory; one writer per target path at a time.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "frugal/tensor/tensor.h"

namespace frugal::io {

// Throws InputError("<path>: <what>"): every io error names the file first.
[[noreturn]] void fail(const std::string& path, const std::string& what);

// The system's text for the current errno (e.g. "No such file or directory"). Read it before any
// other call that may change errno (close, unlink).
std::string system_message();

// Reads the regular file `path` whole into one 64-byte aligned buffer (so tensors at 64-byte
// aligned offsets in the file can be views into it). Retries EINTR and short reads. Throws
// InputError naming the path if it cannot be opened, is not a regular file, or shrinks while read.
std::shared_ptr<Storage> read_whole_file(const std::string& path);

// Appends `size` bytes to the file being written; throws InputError on failure.
using WriteBytes = std::function<void(const void* bytes, size_t size)>;

// Replaces `path` crash-safely: calls `produce(write)`, whose calls to `write` go to `path.tmp`;
// then fsyncs the tmp file, renames it over `path` and fsyncs the directory. So `path` is only ever
// a complete old or a complete new file. If anything fails or `produce` throws, the tmp file is
// removed and the error propagates, naming the path and the system's message: a full disk, a
// quota or an I/O error as IoError (exit 74), any other failure as InputError. A failure to fsync the directory is reported though `path` is already replaced.
// The directory of `path` must exist.
void write_file_atomic(const std::string& path, const std::function<void(const WriteBytes& write)>& produce);

}  // namespace frugal::io
