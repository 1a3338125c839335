// Reads and writes the safetensors format (u64 header size, JSON header, raw little-endian data), so
// models move between frugal and PyTorch/Hugging Face. Writes are atomic (tmp + fsync + rename).
// Limits: dtypes F32 F64 BF16 F16 I8 U8 I32 I64 only; the whole file is read into memory.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "frugal/tensor/tensor.h"

namespace frugal::io {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;  // the "__metadata__" object
};

// Reads `path` and checks the header against the spec: sizes, dtypes, shapes, and that the
// data_offsets cover the data section exactly (no overlap, no hole). Throws InputError naming the
// file and the problem. Tensors whose data is aligned to their element size are views into one
// buffer holding the file; the others are copies.
SafetensorsFile read_safetensors(const std::string& path);

// The same for a file's bytes already in memory (read_safetensors reads `path` and calls this);
// `path` names it in messages. The tensors may be views into `buffer`.
SafetensorsFile parse_safetensors(std::shared_ptr<Storage> buffer, const std::string& path);

// Weights must be finite: InputError naming `path`, the first float tensor (in name order) holding a
// NaN or inf and the element's flat index. Not part of read_safetensors: a checkpoint or cache may
// hold what is not a weight.
void check_finite_weights(const SafetensorsFile& file, const std::string& path);

// Writes the tensors in the given order (packed, row-major) with the header padded by spaces to a
// multiple of 8 bytes. Crash-safe: writes `path.tmp`, fsyncs it, renames it over `path` and fsyncs
// the directory; on failure any existing `path` is left untouched. Throws InputError on duplicate or
// reserved names and on I/O failure (naming the path and the system's message).
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The safetensors dtype string ("F32", "BF16", ...) of a frugal dtype.
std::string safetensors_dtype_name(DType dtype);

}  // namespace frugal::io
