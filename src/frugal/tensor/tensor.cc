#include "frugal/tensor/tensor.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <unordered_map>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include "frugal/base/parallel.h"

namespace frugal {

namespace {
// Live and peak bytes of owned storages, in total and by category (index = MemoryCategory).
std::atomic<int64_t> g_live_bytes{0};
std::atomic<int64_t> g_peak_bytes{0};
std::atomic<int64_t> g_category_live_bytes[kMemoryCategories];
std::atomic<int64_t> g_category_peak_bytes[kMemoryCategories];
thread_local MemoryCategory t_memory_category = MemoryCategory::other;

void raise_peak(std::atomic<int64_t>& peak_bytes, int64_t now) {
  int64_t peak = peak_bytes.load();
  while (now > peak && !peak_bytes.compare_exchange_weak(peak, now)) {}
}

void note_category(MemoryCategory category, int64_t bytes) {
  const size_t c = size_t(category);
  const int64_t now = g_category_live_bytes[c].fetch_add(bytes) + bytes;
  if (bytes > 0) raise_peak(g_category_peak_bytes[c], now);
}

void note_alloc(int64_t bytes, MemoryCategory category) {
  note_category(category, bytes);
  raise_peak(g_peak_bytes, g_live_bytes.fetch_add(bytes) + bytes);
}

template <class T>
double load_as_double(const void* p) {
  if constexpr (std::is_same_v<T, bf16_t>) return bf16_to_float(*static_cast<const bf16_t*>(p));
  else if constexpr (std::is_same_v<T, f16_t>) return f16_to_float(*static_cast<const f16_t*>(p));
  else return double(*static_cast<const T*>(p));
}

template <class Fn>
void dispatch_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::f32: fn(float{}); return;
    case DType::f64: fn(double{}); return;
    case DType::bf16: fn(bf16_t{}); return;
    case DType::f16: fn(f16_t{}); return;
    case DType::i8: fn(int8_t{}); return;
    case DType::u8: fn(uint8_t{}); return;
    case DType::i32: fn(int32_t{}); return;
    case DType::i64: fn(int64_t{}); return;
  }
}

template <class D, class S>
D convert_scalar(S s) {
  if constexpr (std::is_same_v<D, S>) return s;
  else if constexpr (std::is_same_v<S, bf16_t>) return convert_scalar<D>(bf16_to_float(s));
  else if constexpr (std::is_same_v<S, f16_t>) return convert_scalar<D>(f16_to_float(s));
  else if constexpr (std::is_same_v<D, bf16_t>) return float_to_bf16(float(s));
  else if constexpr (std::is_same_v<D, f16_t>) return float_to_f16(float(s));
  else if constexpr (std::is_floating_point_v<S> && std::is_integral_v<D>) {
    // A float out of the integer's range is undefined behaviour in C++ (UBSan): go through int64
    // (NaN -> 0, saturated at its limits) and narrow modulo 2^bits, as PyTorch does (256.0 -> u8 0).
    const double v = double(s);
    const int64_t wide = std::isnan(v) ? 0 : v >= 0x1p63 ? INT64_MAX : v < -0x1p63 ? INT64_MIN : int64_t(v);
    return static_cast<D>(wide);
  } else return static_cast<D>(s);
}

std::shared_ptr<TensorImpl> make_impl(const Shape& shape, DType dtype) {
  for (int64_t d : shape) FRUGAL_CHECK(d >= 0, "negative dimension in shape " + shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(size_t(shape_numel(shape)) * dtype_size(dtype));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return impl;
}
}  // namespace

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Strides contiguous_strides(const Shape& shape) {
  Strides strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

std::string shape_str(const Shape& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

int64_t normalize_axis(int64_t axis, int64_t rank) {
  int64_t a = axis < 0 ? axis + rank : axis;
  FRUGAL_CHECK(a >= 0 && a < rank,
               "axis " + std::to_string(axis) + " out of range for rank " + std::to_string(rank));
  return a;
}

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      throw InputError("shapes " + shape_str(a) + " and " + shape_str(b) + " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// ---- Memory categories ----

const char* memory_category_name(MemoryCategory category) {
  switch (category) {
    case MemoryCategory::other: return "other";
    case MemoryCategory::weights: return "weights";
    case MemoryCategory::gradients: return "gradients";
    case MemoryCategory::optimizer_state: return "optimizer_state";
    case MemoryCategory::activations: return "activations";
    case MemoryCategory::workspace: return "workspace";
  }
  return "unknown";
}

MemoryCategoryGuard::MemoryCategoryGuard(MemoryCategory category) : previous_(t_memory_category) {
  t_memory_category = category;
}
MemoryCategoryGuard::~MemoryCategoryGuard() { t_memory_category = previous_; }
MemoryCategory MemoryCategoryGuard::current() { return t_memory_category; }

// ---- Storage ----

// A caching allocator: freed blocks wait in per-size free lists and are handed out again for the
// same rounded size, so a training step, which allocates the same sizes every time, stops calling
// the system allocator (and stops page-faulting fresh memory) after its first step.
namespace {
struct BlockCache {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // rounded size -> blocks
  int64_t cached_bytes = 0;
  int64_t peak_cached_bytes = 0;
  int64_t system_allocations = 0;
};
BlockCache& block_cache() {
  static BlockCache* cache = new BlockCache();  // never destroyed: storages may outlive statics
  return *cache;
}
// Blocks above this size are not kept: training-step tensors are smaller, and keeping a loaded
// dataset's temporaries would only raise the peak memory.
constexpr size_t kMaxCachedBlock = size_t(64) << 20;

// Sizes round up to 64 bytes below 4 KiB, else to a quarter of their power of two, which bounds
// the waste at 25% while keeping the number of distinct sizes small.
size_t round_block(size_t bytes) {
  if (bytes <= 4096) return std::max<size_t>(64, (bytes + 63) / 64 * 64);
  size_t power = size_t(1) << (63 - __builtin_clzll(bytes));
  size_t step = power / 4;
  return (bytes + step - 1) / step * step;
}
}  // namespace

Storage::Storage(size_t bytes) : bytes_(bytes) {
  const size_t rounded = round_block(bytes);
  BlockCache& cache = block_cache();
  {
    std::lock_guard<std::mutex> lock(cache.mutex);
    auto it = cache.free_blocks.find(rounded);
    if (it != cache.free_blocks.end() && !it->second.empty()) {
      data_ = it->second.back();
      it->second.pop_back();
      cache.cached_bytes -= int64_t(rounded);
    } else {
      ++cache.system_allocations;
    }
  }
  if (!data_) data_ = std::aligned_alloc(64, rounded);
  if (!data_) throw std::bad_alloc();
  category_ = t_memory_category;
  note_alloc(int64_t(bytes), category_);
}

void Storage::set_category(MemoryCategory category) {
  if (category == category_) return;
  if (owned_) {
    note_category(category_, -int64_t(bytes_));
    note_category(category, int64_t(bytes_));
  }
  category_ = category;
}

int64_t Storage::system_allocations() {
  BlockCache& cache = block_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  return cache.system_allocations;
}

int64_t Storage::cached_bytes() {
  BlockCache& cache = block_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  return cache.cached_bytes;
}

int64_t Storage::peak_cached_bytes() {
  BlockCache& cache = block_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  return cache.peak_cached_bytes;
}

void Storage::release_cache() {
  BlockCache& cache = block_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  for (auto& [size, blocks] : cache.free_blocks)
    for (void* block : blocks) std::free(block);
  cache.free_blocks.clear();
  cache.cached_bytes = 0;
}

Storage::Storage(void* data, size_t bytes, std::shared_ptr<void> keep_alive)
    : data_(data), bytes_(bytes), owned_(false), keep_alive_(std::move(keep_alive)) {}

Storage::~Storage() {
  if (!owned_) return;
  const size_t rounded = round_block(bytes_);
  g_live_bytes.fetch_sub(int64_t(bytes_));
  note_category(category_, -int64_t(bytes_));
  if (rounded > kMaxCachedBlock) {  // one-off giants (a dataset, its f64 copy) go straight back
    std::free(data_);
    return;
  }
  BlockCache& cache = block_cache();
  {
    std::lock_guard<std::mutex> lock(cache.mutex);
    cache.free_blocks[rounded].push_back(data_);
    cache.cached_bytes += int64_t(rounded);
    cache.peak_cached_bytes = std::max(cache.peak_cached_bytes, cache.cached_bytes);
  }
}

int64_t Storage::live_bytes() { return g_live_bytes.load(); }
int64_t Storage::peak_bytes() { return g_peak_bytes.load(); }
void Storage::reset_peak_bytes() {
  g_peak_bytes.store(g_live_bytes.load());
  for (int c = 0; c < kMemoryCategories; ++c) g_category_peak_bytes[c].store(g_category_live_bytes[c].load());
  BlockCache& cache = block_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  cache.peak_cached_bytes = cache.cached_bytes;
}
int64_t Storage::live_bytes(MemoryCategory category) { return g_category_live_bytes[size_t(category)].load(); }
int64_t Storage::peak_bytes(MemoryCategory category) { return g_category_peak_bytes[size_t(category)].load(); }

// ---- Creation ----

Tensor Tensor::empty(const Shape& shape, DType dtype) { return Tensor(make_impl(shape, dtype)); }

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.raw_data(), 0, t.nbytes());
  return t;
}

Tensor Tensor::ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  t.fill(value);
  return t;
}

Tensor Tensor::scalar(double value, DType dtype) { return full({}, value, dtype); }

Tensor Tensor::arange(int64_t n, DType dtype) {
  Tensor t = empty({n}, dtype);
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = convert_scalar<T>(double(i));
  });
  return t;
}

template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  FRUGAL_CHECK(int64_t(values.size()) == shape_numel(shape),
               std::to_string(values.size()) + " values for shape " + shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>::value);
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return t;
}
template Tensor Tensor::from_vector(const std::vector<float>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<double>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<int32_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<int64_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<uint8_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<int8_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<bf16_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<f16_t>&, const Shape&);

Tensor Tensor::from_blob(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> keep_alive) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(data, size_t(shape_numel(shape)) * dtype_size(dtype),
                                            std::move(keep_alive));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(impl);
}

// ---- Properties ----

int64_t Tensor::size(int64_t axis) const { return shape()[normalize_axis(axis, rank())]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t i = rank() - 1; i >= 0; --i) {
    if (shape()[i] != 1 && strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

Tensor& Tensor::set_requires_grad(bool value) {
  FRUGAL_CHECK(!value || dtype_is_float(dtype()), "requires_grad on a non-float tensor");
  impl_->requires_grad = value;
  return *this;
}

// ---- Views ----

namespace {
Tensor make_view(const Tensor& base, Shape shape, Strides strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(impl);
}
}  // namespace

Tensor Tensor::view(Shape shape) const {
  FRUGAL_CHECK(is_contiguous(), "view() of a non-contiguous tensor; call contiguous() first");
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      FRUGAL_CHECK(infer < 0, "view(): more than one -1 in " + shape_str(shape));
      infer = int64_t(i);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    FRUGAL_CHECK(known > 0 && numel() % known == 0,
                 "view(): cannot infer -1 in " + shape_str(shape) + " from " + shape_str(this->shape()));
    shape[infer] = numel() / known;
  }
  FRUGAL_CHECK(shape_numel(shape) == numel(),
               "view(): " + shape_str(this->shape()) + " has no view as " + shape_str(shape));
  Strides strides = contiguous_strides(shape);
  return make_view(*this, std::move(shape), std::move(strides), offset());
}

Tensor Tensor::permute_view(const std::vector<int64_t>& axes) const {
  FRUGAL_CHECK(int64_t(axes.size()) == rank(), "permute(): wrong number of axes");
  Shape shape(axes.size());
  Strides strides(axes.size());
  std::vector<bool> seen(axes.size(), false);
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t a = normalize_axis(axes[i], rank());
    FRUGAL_CHECK(!seen[a], "permute(): repeated axis");
    seen[a] = true;
    shape[i] = this->shape()[a];
    strides[i] = this->strides()[a];
  }
  return make_view(*this, std::move(shape), std::move(strides), offset());
}

Tensor Tensor::transpose_view(int64_t a, int64_t b) const {
  std::vector<int64_t> axes(rank());
  for (int64_t i = 0; i < rank(); ++i) axes[i] = i;
  std::swap(axes[normalize_axis(a, rank())], axes[normalize_axis(b, rank())]);
  return permute_view(axes);
}

Tensor Tensor::slice_view(int64_t axis, int64_t start, int64_t stop, int64_t step) const {
  axis = normalize_axis(axis, rank());
  int64_t n = shape()[axis];
  FRUGAL_CHECK(step > 0, "slice(): step must be positive");
  if (start < 0) start += n;
  if (stop < 0) stop += n;
  start = std::clamp<int64_t>(start, 0, n);
  stop = std::clamp<int64_t>(stop, start, n);
  Shape shape = this->shape();
  Strides strides = this->strides();
  shape[axis] = (stop - start + step - 1) / step;
  strides[axis] *= step;
  return make_view(*this, std::move(shape), std::move(strides), offset() + start * this->strides()[axis]);
}

Tensor Tensor::select_view(int64_t axis, int64_t index) const {
  axis = normalize_axis(axis, rank());
  FRUGAL_CHECK(index >= 0 && index < shape()[axis], "select(): index out of range");
  Shape shape = this->shape();
  Strides strides = this->strides();
  int64_t new_offset = offset() + index * strides[axis];
  shape.erase(shape.begin() + axis);
  strides.erase(strides.begin() + axis);
  return make_view(*this, std::move(shape), std::move(strides), new_offset);
}

Tensor Tensor::expand_view(const Shape& shape) const {
  FRUGAL_CHECK(int64_t(shape.size()) >= rank(),
               "expand(): " + shape_str(this->shape()) + " to " + shape_str(shape));
  size_t lead = shape.size() - size_t(rank());
  Strides strides(shape.size(), 0);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) continue;
    int64_t d = this->shape()[i - lead];
    FRUGAL_CHECK(d == shape[i] || d == 1,
                 "expand(): " + shape_str(this->shape()) + " to " + shape_str(shape));
    strides[i] = d == 1 ? 0 : this->strides()[i - lead];
  }
  return make_view(*this, shape, std::move(strides), offset());
}

Tensor Tensor::detach() const { return make_view(*this, shape(), strides(), offset()); }

// ---- Copies ----

namespace {
// dst[r * cols + c] = src[c * rows + r] for one plane of 4-byte elements: 16 x 16 blocks through
// AVX-512 registers (the classic unpack / shuffle transpose), the edges element by element.
void transpose_plane(const uint32_t* src, uint32_t* dst, int64_t rows, int64_t cols) {
  int64_t r0 = 0;
#ifdef __AVX512F__
  for (; r0 + 16 <= rows; r0 += 16) {
    int64_t c0 = 0;
    for (; c0 + 16 <= cols; c0 += 16) {
      // The all-lanes maskz forms: GCC 12 warns about the undefined pass-through of the plain ones.
      const __mmask16 all = 0xFFFF;
      const __mmask8 all8 = 0xFF;
      __m512i t[16], u[16];
      for (int i = 0; i < 16; ++i)  // source row c0 + i: 16 values of dst column c0 + i
        t[i] = _mm512_loadu_si512(src + (c0 + i) * rows + r0);
      for (int i = 0; i < 16; i += 2) {
        u[i] = _mm512_maskz_unpacklo_epi32(all, t[i], t[i + 1]);
        u[i + 1] = _mm512_maskz_unpackhi_epi32(all, t[i], t[i + 1]);
      }
      for (int i = 0; i < 16; i += 4) {
        t[i] = _mm512_maskz_unpacklo_epi64(all8, u[i], u[i + 2]);
        t[i + 1] = _mm512_maskz_unpackhi_epi64(all8, u[i], u[i + 2]);
        t[i + 2] = _mm512_maskz_unpacklo_epi64(all8, u[i + 1], u[i + 3]);
        t[i + 3] = _mm512_maskz_unpackhi_epi64(all8, u[i + 1], u[i + 3]);
      }
      for (int i = 0; i < 4; ++i) {
        u[i] = _mm512_maskz_shuffle_i32x4(all, t[i], t[i + 4], 0x88);
        u[i + 4] = _mm512_maskz_shuffle_i32x4(all, t[i], t[i + 4], 0xdd);
        u[i + 8] = _mm512_maskz_shuffle_i32x4(all, t[i + 8], t[i + 12], 0x88);
        u[i + 12] = _mm512_maskz_shuffle_i32x4(all, t[i + 8], t[i + 12], 0xdd);
      }
      for (int i = 0; i < 8; ++i) {
        t[i] = _mm512_maskz_shuffle_i32x4(all, u[i], u[i + 8], 0x88);
        t[i + 8] = _mm512_maskz_shuffle_i32x4(all, u[i], u[i + 8], 0xdd);
      }
      for (int k = 0; k < 16; ++k) _mm512_storeu_si512(dst + (r0 + k) * cols + c0, t[k]);  // t[k]: dst row r0 + k
    }
    for (int64_t r = r0; r < r0 + 16; ++r)
      for (int64_t c = c0; c < cols; ++c) dst[r * cols + c] = src[c * rows + r];
  }
#endif
  for (int64_t r = r0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[r * cols + c] = src[c * rows + r];
}

// Packed NCHW <-> channels-last with 4-byte elements (the layout changes around a CNN's
// convolution blocks): per image a (C, H * W) <-> (H * W, C) transpose. False for any other pair.
bool copy_layout_change(Tensor& dst, const Tensor& src) {
  if (dst.rank() != 4 || src.dtype() != dst.dtype() || dtype_size(dst.dtype()) != 4 || dst.numel() == 0) return false;
  const int64_t N = dst.size(0), C = dst.size(1), HW = dst.size(2) * dst.size(3);
  int64_t rows = 0, cols = 0;
  if (src.is_contiguous() && is_channels_last(dst)) rows = HW, cols = C;       // dst planes (HW, C)
  else if (is_channels_last(src) && dst.is_contiguous()) rows = C, cols = HW;  // dst planes (C, HW)
  else return false;
  const uint32_t* s = static_cast<const uint32_t*>(src.raw_data());
  uint32_t* d = static_cast<uint32_t*>(dst.raw_data());
  parallel_for(N, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) transpose_plane(s + p * rows * cols, d + p * rows * cols, rows, cols);
  });
  return true;
}
}  // namespace

void Tensor::copy_from(const Tensor& src) {
  FRUGAL_CHECK(src.shape() == shape(),
               "copy_from(): shape " + shape_str(src.shape()) + " into " + shape_str(shape()));
  if (src.dtype() == dtype() && src.is_contiguous() && is_contiguous()) {
    std::memmove(raw_data(), src.raw_data(), nbytes());
    return;
  }
  if (src.dtype() == dtype() && rank() >= 1 && strides().back() == 1 && src.strides().back() == 1) {
    // Same type, unit-stride rows on both sides: copy row by row.
    const int64_t row = shape().back(), element = int64_t(dtype_size(dtype()));
    if (numel() == 0) return;
    Shape outer(shape().begin(), shape().end() - 1);
    Strides dst_outer(strides().begin(), strides().end() - 1), src_outer(src.strides().begin(), src.strides().end() - 1);
    char* d = static_cast<char*>(raw_data());
    const char* s = static_cast<const char*>(src.raw_data());
    for_each_offset2(outer, dst_outer, src_outer, [&](int64_t od, int64_t os) {
      std::memcpy(d + od * element, s + os * element, size_t(row * element));
    });
    return;
  }
  if (copy_layout_change(*this, src)) return;
  dispatch_dtype(dtype(), [&](auto dst_tag) {
    using D = decltype(dst_tag);
    dispatch_dtype(src.dtype(), [&](auto src_tag) {
      using S = decltype(src_tag);
      D* d = data<D>();
      const S* s = src.data<S>();
      for_each_offset2(shape(), strides(), src.strides(),
                       [&](int64_t od, int64_t os) { d[od] = convert_scalar<D>(s[os]); });
    });
  });
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  Tensor t = empty(shape(), dtype());
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == this->dtype()) return *this;
  Tensor t = empty(shape(), dtype);
  t.copy_from(*this);
  return t;
}

void Tensor::fill(double value) {
  dispatch_dtype(dtype(), [&](auto tag) {
    using T = decltype(tag);
    T v = convert_scalar<T>(value);
    T* p = data<T>();
    Strides zero(rank(), 0);
    for_each_offset2(shape(), strides(), zero, [&](int64_t o, int64_t) { p[o] = v; });
  });
}

// ---- Reading ----

double Tensor::item() const {
  FRUGAL_CHECK(numel() == 1, "item() on a tensor of shape " + shape_str(shape()));
  double v = 0;
  dispatch_dtype(dtype(), [&](auto tag) { v = load_as_double<decltype(tag)>(raw_data()); });
  return v;
}

double Tensor::at(const std::vector<int64_t>& index) const {
  FRUGAL_CHECK(int64_t(index.size()) == rank(), "at(): wrong number of indices");
  int64_t off = 0;
  for (int64_t i = 0; i < rank(); ++i) {
    FRUGAL_CHECK(index[i] >= 0 && index[i] < shape()[i], "at(): index out of range");
    off += index[i] * strides()[i];
  }
  double v = 0;
  dispatch_dtype(dtype(), [&](auto tag) {
    using T = decltype(tag);
    v = load_as_double<T>(static_cast<const T*>(storage()->data()) + offset() + off);
  });
  return v;
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor packed = to(dtype_of<T>::value).contiguous();
  const T* p = packed.data<T>();
  return std::vector<T>(p, p + numel());
}
template std::vector<float> Tensor::to_vector() const;
template std::vector<double> Tensor::to_vector() const;
template std::vector<int32_t> Tensor::to_vector() const;
template std::vector<int64_t> Tensor::to_vector() const;
template std::vector<uint8_t> Tensor::to_vector() const;

std::string Tensor::str(int64_t max_values) const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream out;
  out << "Tensor " << dtype_name(dtype()) << " " << shape_str(shape()) << " [";
  std::vector<double> values = to_vector<double>();
  for (int64_t i = 0; i < std::min<int64_t>(max_values, numel()); ++i) out << (i ? ", " : "") << values[i];
  if (numel() > max_values) out << ", ...";
  out << "]";
  return out.str();
}

bool is_channels_last(const Tensor& t) {
  if (!t.defined() || t.rank() != 4) return false;
  const Shape& s = t.shape();
  const Strides& st = t.strides();
  const int64_t expected[4] = {s[2] * s[3] * s[1], 1, s[3] * s[1], s[1]};
  for (int i = 0; i < 4; ++i)
    if (s[size_t(i)] != 1 && st[size_t(i)] != expected[i]) return false;
  return true;
}

Tensor empty_channels_last(const Shape& nchw, DType dtype) {
  FRUGAL_CHECK(nchw.size() == 4, "empty_channels_last(): shape " + shape_str(nchw) + " is not (N, C, H, W)");
  return Tensor::empty({nchw[0], nchw[2], nchw[3], nchw[1]}, dtype).permute_view({0, 3, 1, 2});
}

Tensor to_channels_last(const Tensor& t) {
  if (is_channels_last(t)) return t;
  Tensor out = empty_channels_last(t.shape(), t.dtype());
  out.copy_from(t);
  return out;
}

}  // namespace frugal
