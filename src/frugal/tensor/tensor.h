// Tensor: a shared handle to typed, strided, 64-byte aligned storage, with the autograd fields a
// differentiable op needs. This layer does no math: views, copies and dtype conversion only.
// Limits: CPU memory only; at most 8 dimensions in strided loops; element offsets fit in int64.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "frugal/base/error.h"
#include "frugal/tensor/dtype.h"

namespace frugal {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;  // in elements, not bytes

int64_t shape_numel(const Shape& shape);
Strides contiguous_strides(const Shape& shape);
std::string shape_str(const Shape& shape);  // "(2, 3)"
// Resolves a possibly negative axis against rank; throws InternalError when out of range.
int64_t normalize_axis(int64_t axis, int64_t rank);
// The shape two shapes broadcast to (NumPy rules); throws InputError naming both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b);

// What a storage's bytes are for, in the memory accounting: each owned storage is counted under
// the category current on its thread when it was allocated (see MemoryCategoryGuard), or the one
// it was re-tagged with (a parameter, a gradient adopted by a leaf). `other`: everything else
// (data, batches, evaluation, model buffers).
enum class MemoryCategory : uint8_t { other, weights, gradients, optimizer_state, activations, workspace };
constexpr int kMemoryCategories = 6;
const char* memory_category_name(MemoryCategory category);

// Storages allocated on this thread while the guard lives are counted under `category`; guards
// nest (the previous category comes back on destruction). Threads start in `other`.
class MemoryCategoryGuard {
 public:
  explicit MemoryCategoryGuard(MemoryCategory category);
  ~MemoryCategoryGuard();
  MemoryCategoryGuard(const MemoryCategoryGuard&) = delete;
  MemoryCategoryGuard& operator=(const MemoryCategoryGuard&) = delete;
  static MemoryCategory current();

 private:
  MemoryCategory previous_;
};

// Owns one aligned buffer (or borrows memory kept alive by `keep_alive`, e.g. an mmap).
class Storage {
 public:
  explicit Storage(size_t bytes);  // 64-byte aligned, uninitialised
  Storage(void* data, size_t bytes, std::shared_ptr<void> keep_alive);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  // Bytes held by frugal-owned storages right now and at peak (for memory accounting).
  static int64_t live_bytes();
  static int64_t peak_bytes();
  // Also resets the per-category peaks and the cache's peak to their current values.
  static void reset_peak_bytes();
  // The same by category; the live bytes of all categories add up to live_bytes().
  static int64_t live_bytes(MemoryCategory category);
  static int64_t peak_bytes(MemoryCategory category);
  MemoryCategory category() const { return category_; }
  // Moves this storage's bytes to another category (e.g. a temporary adopted as a leaf's .grad).
  void set_category(MemoryCategory category);
  // The caching allocator behind owned storages: blocks the system allocator handed out so far,
  // bytes held for reuse, and a way to return them (e.g. after a run).
  static int64_t system_allocations();
  static int64_t cached_bytes();
  static int64_t peak_cached_bytes();  // since the last reset_peak_bytes()
  static void release_cache();

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  bool owned_ = true;
  MemoryCategory category_ = MemoryCategory::other;
  std::shared_ptr<void> keep_alive_;
};

namespace autograd { struct Node; }

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::f32;
  // Autograd: set only by autograd/; a leaf has requires_grad and no grad_fn.
  bool requires_grad = false;
  std::shared_ptr<struct TensorImpl> grad;  // the .grad tensor's impl (null if none)
  std::shared_ptr<autograd::Node> grad_fn;
  std::string name;  // optional, for messages
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Creation. Values are uninitialised for empty().
  static Tensor empty(const Shape& shape, DType dtype = DType::f32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32);
  static Tensor ones(const Shape& shape, DType dtype = DType::f32);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32);
  static Tensor scalar(double value, DType dtype = DType::f32);
  static Tensor arange(int64_t n, DType dtype = DType::i64);
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape);
  // Wraps memory owned elsewhere (kept alive by keep_alive); no copy.
  static Tensor from_blob(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> keep_alive);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl_->shape; }
  const Strides& strides() const { return impl_->strides; }
  int64_t offset() const { return impl_->offset; }
  int64_t rank() const { return int64_t(impl_->shape.size()); }
  int64_t size(int64_t axis) const;  // negative axis counts from the end
  int64_t numel() const { return shape_numel(impl_->shape); }
  DType dtype() const { return impl_->dtype; }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype()); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return impl_->storage; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

  // Typed pointer to the first element (storage + offset); checks the dtype.
  template <class T> T* data() const {
    FRUGAL_CHECK(dtype_of<T>::value == dtype(), "data<" + std::string(dtype_name(dtype_of<T>::value)) +
                                                    ">() on a " + std::string(dtype_name(dtype())) + " tensor");
    return static_cast<T*>(impl_->storage->data()) + impl_->offset;
  }
  void* raw_data() const {
    return static_cast<char*>(impl_->storage->data()) + impl_->offset * int64_t(dtype_size(dtype()));
  }

  // Views: share storage, no copy, no autograd (autograd/ has differentiable versions).
  Tensor view(Shape shape) const;  // contiguous only; one -1 allowed
  Tensor permute_view(const std::vector<int64_t>& axes) const;
  Tensor transpose_view(int64_t a, int64_t b) const;
  Tensor slice_view(int64_t axis, int64_t start, int64_t stop, int64_t step = 1) const;
  Tensor select_view(int64_t axis, int64_t index) const;  // drops the axis
  Tensor expand_view(const Shape& shape) const;             // broadcasting: size-1 axes get stride 0
  Tensor detach() const;  // same data and view, no autograd history

  // Copies.
  Tensor contiguous() const;  // this if already contiguous, else a packed copy
  Tensor clone() const;       // always a new packed copy
  Tensor to(DType dtype) const;
  void copy_from(const Tensor& src);  // same shape; any strides and dtypes
  void fill(double value);
  void zero() { fill(0.0); }

  // Reading values (converts to double/float; for tests and small tensors).
  double item() const;
  template <class T> std::vector<T> to_vector() const;
  double at(const std::vector<int64_t>& index) const;

  // Autograd fields (the logic lives in autograd/).
  bool requires_grad() const { return impl_ && impl_->requires_grad; }
  Tensor& set_requires_grad(bool value = true);
  Tensor grad() const { return Tensor(impl_->grad); }
  void set_grad(const Tensor& g) { impl_->grad = g.impl_; }
  const std::shared_ptr<autograd::Node>& grad_fn() const { return impl_->grad_fn; }

  std::string str(int64_t max_values = 8) const;  // "Tensor f32 (2, 3) [0.1, ...]"

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Channels-last: an (N, C, H, W) tensor whose memory is (N, H, W, C), densely packed (PyTorch's
// memory format of that name). Strides of size-1 axes are not checked, so a packed tensor with
// C = 1 or H = W = 1 is both contiguous and channels-last. Convolution, batch norm and 2x2 max
// pooling keep this layout from input to output (oneDNN runs NHWC convolutions without reorders).
bool is_channels_last(const Tensor& t);
Tensor empty_channels_last(const Shape& nchw, DType dtype = DType::f32);
Tensor to_channels_last(const Tensor& t);  // t if already channels-last, else a copy (no autograd)

// Visits every element of `shape` in row-major order, calling fn(offset_a, offset_b) with the
// element offsets under two stride sets; the workhorse for strided copies and broadcasting.
template <class Fn>
void for_each_offset2(const Shape& shape, const Strides& a, const Strides& b, Fn&& fn) {
  const int64_t rank = int64_t(shape.size());
  if (shape_numel(shape) == 0) return;
  if (rank == 0) { fn(int64_t{0}, int64_t{0}); return; }
  std::vector<int64_t> index(rank, 0);
  const int64_t inner = shape[rank - 1], inner_a = a[rank - 1], inner_b = b[rank - 1];
  int64_t off_a = 0, off_b = 0;
  while (true) {
    for (int64_t i = 0; i < inner; ++i) fn(off_a + i * inner_a, off_b + i * inner_b);
    int64_t axis = rank - 2;
    while (axis >= 0) {
      ++index[axis];
      off_a += a[axis];
      off_b += b[axis];
      if (index[axis] < shape[axis]) break;
      off_a -= a[axis] * shape[axis];
      off_b -= b[axis] * shape[axis];
      index[axis] = 0;
      --axis;
    }
    if (axis < 0) return;
  }
}

}  // namespace frugal
