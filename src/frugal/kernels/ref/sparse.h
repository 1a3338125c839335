// A Linear weight held in compressed rows (CSR), and the scalar oracle of the sparse linear map
// y = x W^T + b that cpu/sparse.h computes fast. Inference only: there is no gradient here. Limits:
// f32 only; column indices are int32 (in < 2^31); the weight is copied, not viewed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace frugal {
namespace kernels {

// W (rows, cols) with its exact zeros dropped. Row o's nonzeros are column[row_start[o] ..
// row_start[o + 1]) with value[...] in increasing column order.
struct SparseMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> row_start;  // (rows + 1)
  std::vector<int32_t> column;     // (nnz)
  std::vector<float> value;        // (nnz)
  int64_t nonzeros() const { return int64_t(value.size()); }
  // Share of stored entries, in [0, 1]; 0 for an empty matrix.
  double density() const { return rows * cols > 0 ? double(nonzeros()) / double(rows * cols) : 0.0; }
};

// w (rows, cols), row-major contiguous; every entry that is not exactly +-0 is kept (NaN included).
inline SparseMatrix to_sparse(const float* w, int64_t rows, int64_t cols) {
  SparseMatrix s;
  s.rows = rows;
  s.cols = cols;
  s.row_start.assign(std::size_t(rows + 1), 0);
  for (int64_t o = 0; o < rows; ++o) {
    for (int64_t c = 0; c < cols; ++c) {
      const float v = w[o * cols + c];
      if (v != 0.0f || v != v) {
        s.column.push_back(int32_t(c));
        s.value.push_back(v);
      }
    }
    s.row_start[std::size_t(o + 1)] = int64_t(s.value.size());
  }
  return s;
}

// Number of exact zeros in w (n values), for the density a caller checks before compressing.
inline int64_t count_zeros(const float* w, int64_t n) {
  int64_t zeros = 0;
  for (int64_t i = 0; i < n; ++i) zeros += w[i] == 0.0f;
  return zeros;
}

namespace ref {

// y (n, w.rows) = x (n, w.cols) W^T (+ bias (w.rows) when not null), rows contiguous; double sums.
inline void sparse_linear(const float* x, int64_t n, const SparseMatrix& w, const float* bias, float* y) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < w.rows; ++o) {
      double total = bias ? double(bias[o]) : 0.0;
      for (int64_t e = w.row_start[std::size_t(o)]; e < w.row_start[std::size_t(o + 1)]; ++e)
        total += double(w.value[std::size_t(e)]) * double(x[i * w.cols + w.column[std::size_t(e)]]);
      y[i * w.rows + o] = float(total);
    }
}

}  // namespace ref
}  // namespace kernels
}  // namespace frugal
