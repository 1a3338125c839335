// safetensors reader and writer. The reader trusts nothing in the file: every size and offset is
// checked (with overflow checks) before it is used, following the format's rules: the header starts
// with '{', is at most 100 MB, and the tensors' byte ranges tile the data section exactly.
// Limits: little-endian hosts only (as the format); the file is read whole, not mapped.
#include "frugal/io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "frugal/io/file_util.h"

namespace frugal::io {
namespace {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

// The reference implementation refuses larger headers too; it bounds memory for hostile files.
constexpr uint64_t kMaxHeaderBytes = uint64_t(100) << 20;

struct DTypeName {
  DType dtype;
  const char* name;
};
constexpr DTypeName kDTypeNames[] = {{DType::f32, "F32"}, {DType::f64, "F64"}, {DType::bf16, "BF16"},
                                     {DType::f16, "F16"}, {DType::i8, "I8"},   {DType::u8, "U8"},
                                     {DType::i32, "I32"}, {DType::i64, "I64"}};

// Spec dtypes frugal has no type for; named in the error so the user knows the file is not corrupt.
constexpr const char* kUnsupportedSpecDTypes[] = {"BOOL", "I16", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2"};

std::string supported_list() {
  std::string s;
  for (const DTypeName& d : kDTypeNames) s += std::string(s.empty() ? "" : ", ") + d.name;
  return s;
}

// ---- Reading ----

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;  // relative to the data section
};

uint64_t checked_uint(const std::string& path, const std::string& where, const nlohmann::json& value) {
  if (!value.is_number_unsigned())
    fail(path, where + " must be a non-negative integer, got " + value.dump());
  return value.get<uint64_t>();
}

Entry parse_entry(const std::string& path, const std::string& name, const nlohmann::json& info) {
  const std::string where = "header: tensor '" + name + "'";
  if (!info.is_object()) fail(path, where + " must be an object with dtype, shape, data_offsets");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!info.contains(key)) fail(path, where + " has no \"" + key + "\"");
  Entry entry;
  entry.name = name;

  const nlohmann::json& dtype = info["dtype"];
  if (!dtype.is_string()) fail(path, where + ": dtype must be a string, got " + dtype.dump());
  const std::string dtype_name = dtype.get<std::string>();
  const DTypeName* found = nullptr;
  for (const DTypeName& d : kDTypeNames)
    if (dtype_name == d.name) found = &d;
  if (!found) {
    bool in_spec = std::any_of(std::begin(kUnsupportedSpecDTypes), std::end(kUnsupportedSpecDTypes),
                               [&](const char* s) { return dtype_name == s; });
    fail(path, where + ": " + (in_spec ? "unsupported" : "unknown") + " dtype \"" + dtype_name +
                   "\", expected one of " + supported_list());
  }
  entry.dtype = found->dtype;

  const nlohmann::json& shape = info["shape"];
  if (!shape.is_array()) fail(path, where + ": shape must be an array, got " + shape.dump());
  uint64_t numel = 1;
  bool overflow = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    uint64_t dim = checked_uint(path, where + ": shape[" + std::to_string(i) + "]", shape[i]);
    if (dim > uint64_t(INT64_MAX)) overflow = true;
    if (dim != 0 && numel > uint64_t(INT64_MAX) / dim) overflow = true;
    numel = overflow ? 0 : numel * dim;
    entry.shape.push_back(int64_t(dim));
  }
  if (!overflow && numel > uint64_t(INT64_MAX) / dtype_size(entry.dtype)) overflow = true;
  if (overflow) fail(path, where + ": shape " + shape.dump() + " is too large");
  const uint64_t nbytes = numel * dtype_size(entry.dtype);

  const nlohmann::json& offsets = info["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    fail(path, where + ": data_offsets must be [begin, end], got " + offsets.dump());
  entry.begin = checked_uint(path, where + ": data_offsets[0]", offsets[0]);
  entry.end = checked_uint(path, where + ": data_offsets[1]", offsets[1]);
  if (entry.end < entry.begin) fail(path, where + ": data_offsets " + offsets.dump() + " end before begin");
  if (entry.end - entry.begin != nbytes)
    fail(path, where + ": data_offsets " + offsets.dump() + " hold " + std::to_string(entry.end - entry.begin) +
                   " bytes but shape " + shape_str(entry.shape) + " x " + dtype_name + " needs " +
                   std::to_string(nbytes));
  return entry;
}

}  // namespace

std::string safetensors_dtype_name(DType dtype) {
  for (const DTypeName& d : kDTypeNames)
    if (d.dtype == dtype) return d.name;
  FRUGAL_CHECK(false, "dtype without a safetensors name");
  return "";
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<Tensor> packed;  // keeps the contiguous copies alive until written
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    FRUGAL_CHECK(tensor.defined(), "write_safetensors: tensor '" + name + "' is undefined");
    if (name == "__metadata__") fail(path, "tensor name \"__metadata__\" is reserved by the format");
    if (!names.insert(name).second) fail(path, "tensor name '" + name + "' given twice");
    Tensor t = tensor.contiguous();
    const uint64_t nbytes = t.nbytes();
    header[name] = {{"dtype", safetensors_dtype_name(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    packed.push_back(t);
  }
  std::string text = header.dump();
  // Pad with spaces (allowed trailing JSON whitespace) so the data section starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t size_bytes[8];
  const uint64_t header_size = text.size();
  std::memcpy(size_bytes, &header_size, 8);  // little-endian host

  write_file_atomic(path, [&](const WriteBytes& write) {
    write(size_bytes, 8);
    write(text.data(), text.size());
    for (const Tensor& t : packed)
      if (t.nbytes() > 0) write(t.raw_data(), t.nbytes());
  });
}

SafetensorsFile read_safetensors(const std::string& path) { return parse_safetensors(read_whole_file(path), path); }

SafetensorsFile parse_safetensors(std::shared_ptr<Storage> buffer, const std::string& path) {
  const char* bytes = static_cast<const char*>(buffer->data());
  const uint64_t file_size = buffer->bytes();
  if (file_size < 8)
    fail(path, "file is " + std::to_string(file_size) + " bytes, too short for the 8-byte header size");
  uint64_t header_size;
  std::memcpy(&header_size, bytes, 8);
  if (header_size > kMaxHeaderBytes)
    fail(path, "header size " + std::to_string(header_size) + " (bytes 0-7) is over the 100 MB limit");
  if (header_size > file_size - 8)
    fail(path, "header size " + std::to_string(header_size) + " (bytes 0-7) is beyond the end of the file (" +
                   std::to_string(file_size) + " bytes)");
  if (header_size < 2 || bytes[8] != '{')
    fail(path, "header at byte offset 8 must be a JSON object starting with '{'");

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + header_size);
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is the 1-based position in the header of the character that failed.
    const uint64_t at = 8 + (e.byte > 0 ? e.byte - 1 : 0);
    std::string what = e.what();
    size_t colon = what.find(": ");  // drop "[json.exception.parse_error.101] parse error at ...: "
    if (colon != std::string::npos) what = what.substr(colon + 2);
    fail(path, "header is not valid JSON at byte offset " + std::to_string(at) + ": " + what);
  } catch (const nlohmann::json::out_of_range& e) {  // a number beyond double's range, e.g. 1e999
    std::string what = e.what();
    size_t bracket = what.find("] ");  // drop "[json.exception.out_of_range.406] "
    if (bracket != std::string::npos) what = what.substr(bracket + 2);
    fail(path, "header (bytes 8-" + std::to_string(8 + header_size - 1) + ") is not valid JSON: " + what);
  }
  if (!header.is_object()) fail(path, "header at byte offset 8 must be a JSON object");

  SafetensorsFile file;
  std::vector<Entry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (!info.is_object()) fail(path, "header: __metadata__ must be an object of strings");
      for (const auto& [key, value] : info.items()) {
        if (!value.is_string())
          fail(path, "header: __metadata__[\"" + key + "\"] must be a string, got " + value.dump());
        file.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, name, info));
  }

  // The ranges must tile [0, data_size) exactly: no overlap, and no hole (the spec forbids holes so a
  // file cannot hide a second payload).
  const uint64_t data_start = 8 + header_size;
  const uint64_t data_size = file_size - data_start;
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t expected = 0;
  const Entry* previous = nullptr;
  for (const Entry* e : by_offset) {
    // Built by appending: GCC 12 gives a false -Wrestrict for `"[" + std::to_string(...)`.
    std::string range = "[";
    range.append(std::to_string(e->begin)).append(", ").append(std::to_string(e->end)).append("]");
    if (e->end > data_size)
      fail(path, "header: tensor '" + e->name + "': data_offsets " + range + " go past the data section (" +
                     std::to_string(data_size) + " bytes from byte offset " + std::to_string(data_start) + ")");
    if (e->begin < expected)
      fail(path, "header: tensor '" + e->name + "': data_offsets " + range + " overlap tensor '" +
                     previous->name + "' (which ends at " + std::to_string(expected) + ")");
    if (e->begin > expected)
      fail(path, "header: tensor '" + e->name + "': data_offsets " + range + " leave a hole of " +
                     std::to_string(e->begin - expected) + " bytes at data offset " + std::to_string(expected));
    expected = e->end;
    previous = e;
  }
  if (expected != data_size)
    fail(path, "data section has " + std::to_string(data_size - expected) +
                   " bytes not covered by any tensor (from byte offset " + std::to_string(data_start + expected) +
                   "); the format allows no holes");

  for (const Entry& e : entries) {
    const uint64_t at = data_start + e.begin;
    const size_t element = dtype_size(e.dtype);
    Tensor t;
    if (e.end == e.begin) {
      t = Tensor::empty(e.shape, e.dtype);
    } else if (at % element == 0) {
      // The buffer is 64-byte aligned, so an aligned file offset gives an aligned view.
      t = Tensor::from_blob(const_cast<char*>(bytes) + at, e.shape, e.dtype, buffer);
    } else {  // a writer that did not align this tensor: copy so typed access stays aligned
      t = Tensor::empty(e.shape, e.dtype);
      std::memcpy(t.raw_data(), bytes + at, e.end - e.begin);
    }
    t.impl()->name = e.name;
    file.tensors[e.name] = t;
  }
  return file;
}

void check_finite_weights(const SafetensorsFile& file, const std::string& path) {
  for (const auto& [name, tensor] : file.tensors) {
    if (!dtype_is_float(tensor.dtype())) continue;
    const Tensor values = tensor.dtype() == DType::f64 ? tensor.contiguous() : tensor.to(DType::f64);
    const double* data = values.data<double>();
    for (int64_t i = 0; i < values.numel(); ++i) {
      if (std::isfinite(data[i])) continue;
      throw InputError(path + ": tensor '" + name + "' " + shape_str(tensor.shape()) + " holds " +
                       (std::isnan(data[i]) ? "NaN" : "inf") + " at element " + std::to_string(i) +
                       " (flat index, 0-based); expected finite weights (was the run that wrote it diverging?)");
    }
  }
}

}  // namespace frugal::io
