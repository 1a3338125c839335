// compression = "powersgd": PowerSGD (Vogels, Karimireddy, Jaggi 2019, "PowerSGD: Practical
// Low-Rank Gradient Compression for Distributed Optimization"), rank r = powersgd_rank.
//
// Each gradient of 2 or more dimensions is a matrix M of (rows = shape[0], cols = the rest); with
// error feedback M = grad + residual. One power iteration per step, Q warm-started from the last step:
//   P = M Q (rows x r), P summed over the ranks (allreduce_sum), P orthonormalised (Gram-Schmidt),
//   Q_r = M^T P (cols x r) on each rank, Q = sum of Q_r over the ranks (allreduce_sum),
//   the world's sum is approximated by P Q^T = sum over ranks of P P^T M_r.
// The residual is this rank's part of what the approximation missed, M_r - P Q_r^T = M_r - P P^T M_r
// (so sum of residuals + P Q^T = sum of M_r in exact arithmetic). Gradients of fewer than 2
// dimensions (biases, norms), and matrices where r (rows + cols) >= rows * cols (nothing to save),
// are summed exactly; they travel in the same collective as P. The effective rank is
// min(r, rows, cols); at that rank, a matrix of rank <= r is reproduced up to rounding.
//
// Q starts from standard normal values of a Philox stream per parameter, the same on every rank, and
// stays the same on every rank (it is a sum over the ranks), so it is saved once, by rank 0, and
// resumes at any world size; the residuals are per rank (compression.h). A Q column that becomes
// zero (a zero gradient) is drawn again, from a stream of the step, or it would stay zero for good.
//
// Bytes this rank sends per step: those of allreduce_sum over sum (rows * r) + exact entries, then
// over sum (cols * r): 2 (size - 1) / size * 4 bytes per value.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "frugal/base/rng.h"
#include "frugal/train/parallel/compression_util.h"
#include "frugal/train/technique.h"

namespace frugal::train::compress {
namespace {

constexpr uint64_t kQSeed = 0x50'6f'77'65'72'53'47'44ULL;  // "PowerSGD": Q's Philox key

// Columns of `p` (rows x r, row-major) made orthonormal in place: modified Gram-Schmidt in double.
// A column that is (numerically) in the span of the previous ones becomes zero.
void orthonormalize(float* p, int64_t rows, int64_t r) {
  std::vector<double> col(static_cast<size_t>(rows));
  for (int64_t j = 0; j < r; ++j) {
    for (int64_t a = 0; a < rows; ++a) col[size_t(a)] = p[a * r + j];
    double before = 0;
    for (double v : col) before += v * v;
    for (int64_t q = 0; q < j; ++q) {
      double dot = 0;
      for (int64_t a = 0; a < rows; ++a) dot += col[size_t(a)] * double(p[a * r + q]);
      for (int64_t a = 0; a < rows; ++a) col[size_t(a)] -= dot * double(p[a * r + q]);
    }
    double norm = 0;
    for (double v : col) norm += v * v;
    norm = std::sqrt(norm);
    // What is left after removing the earlier directions is rounding noise when it is this small.
    const double scale = norm > 1e-6 * std::sqrt(before) && norm > 0 ? 1.0 / norm : 0.0;
    for (int64_t a = 0; a < rows; ++a) p[a * r + j] = float(col[size_t(a)] * scale);
  }
}

class PowerSgd : public GradientCompressor {
 public:
  explicit PowerSgd(const DistSpec& spec) : spec_(spec) {}
  std::string name() const override { return "powersgd"; }

  void reduce(std::vector<Tensor>& grads, dist::Communicator& comm, int64_t step) override {
    check_f32(grads, name());
    if (step < spec_.warmup_steps) return exact_sum(grads, comm);
    layout(grads);
    // P = M Q for the matrices, then the exact entries, in one buffer.
    std::vector<float> pbuf(static_cast<size_t>(p_total_)), qbuf(size_t(q_total_), 0.0f);
    for (size_t i = 0; i < grads.size(); ++i) {
      const Slot& s = slots_[i];
      if (!grads[i].defined()) continue;
      float* g = grads[i].data<float>();
      if (!s.low_rank) {
        std::memcpy(pbuf.data() + s.p_at, g, size_t(grads[i].numel()) * sizeof(float));
        continue;
      }
      add_gradient(i, grads[i]);
      const float* m = matrix(i, grads[i]);
      const float* q = q_[i].data<float>();
      float* p = pbuf.data() + s.p_at;
      std::fill(p, p + s.rows * s.r, 0.0f);
      for (int64_t a = 0; a < s.rows; ++a)
        for (int64_t c = 0; c < s.cols; ++c) {
          const float v = m[a * s.cols + c];
          for (int64_t j = 0; j < s.r; ++j) p[a * s.r + j] += v * q[c * s.r + j];
        }
    }
    dist::allreduce_sum(comm, pbuf.data(), p_total_);
    for (size_t i = 0; i < grads.size(); ++i) {
      const Slot& s = slots_[i];
      if (!grads[i].defined()) continue;
      if (!s.low_rank) {
        std::memcpy(grads[i].data<float>(), pbuf.data() + s.p_at, size_t(grads[i].numel()) * sizeof(float));
        continue;
      }
      float* p = pbuf.data() + s.p_at;
      orthonormalize(p, s.rows, s.r);
      const float* m = matrix(i, grads[i]);
      float* ql = qbuf.data() + s.q_at;
      for (int64_t a = 0; a < s.rows; ++a)
        for (int64_t c = 0; c < s.cols; ++c) {
          const float v = m[a * s.cols + c];
          for (int64_t j = 0; j < s.r; ++j) ql[c * s.r + j] += v * p[a * s.r + j];
        }
      if (spec_.error_feedback) {  // residual (holding M) -= P Q_r^T
        float* res = residual_[i].data<float>();
        for (int64_t a = 0; a < s.rows; ++a)
          for (int64_t c = 0; c < s.cols; ++c) {
            float approx = 0;
            for (int64_t j = 0; j < s.r; ++j) approx += p[a * s.r + j] * ql[c * s.r + j];
            res[a * s.cols + c] -= approx;
          }
      }
    }
    if (q_total_ > 0) dist::allreduce_sum(comm, qbuf.data(), q_total_);
    for (size_t i = 0; i < grads.size(); ++i) {
      const Slot& s = slots_[i];
      if (!grads[i].defined() || !s.low_rank) continue;
      const float* p = pbuf.data() + s.p_at;
      float* q = q_[i].data<float>();
      std::memcpy(q, qbuf.data() + s.q_at, size_t(s.cols * s.r) * sizeof(float));
      float* g = grads[i].data<float>();
      for (int64_t a = 0; a < s.rows; ++a)
        for (int64_t c = 0; c < s.cols; ++c) {
          float approx = 0;
          for (int64_t j = 0; j < s.r; ++j) approx += p[a * s.r + j] * q[c * s.r + j];
          g[a * s.cols + c] = approx;
        }
      redraw_zero_columns(i, step);
    }
  }

  void save_state(TechniqueState& out, dist::Communicator& comm) const override {
    RankTensors mine;
    for (size_t i = 0; i < residual_.size(); ++i)
      if (residual_[i].defined()) mine.emplace_back("residual." + std::to_string(i), residual_[i]);
    save_rank_tensors(out, comm, mine);
    if (comm.rank() != 0) return;
    for (size_t i = 0; i < q_.size(); ++i)
      if (q_[i].defined()) out.put_tensor("compression.q." + std::to_string(i), q_[i].clone());
  }
  void load_state(const TechniqueState& in, dist::Communicator& comm) override {
    loaded_ = load_rank_tensors(in, comm, name());
    for (const auto& [key, t] : in.tensors())
      if (key.compare(0, 14, "compression.q.") == 0) loaded_.emplace_back(key.substr(12), t.contiguous());
    residual_.clear();
    q_.clear();
    slots_.clear();
  }

 private:
  struct Slot {
    bool low_rank = false;
    int64_t rows = 0, cols = 0, r = 0;
    int64_t p_at = 0, q_at = 0;  // offsets in the P (and exact) buffer and the Q buffer
  };

  // Offsets of the step's gradients; Q and residuals created (or taken from a checkpoint) when first seen.
  void layout(const std::vector<Tensor>& grads) {
    slots_.resize(grads.size());
    residual_.resize(grads.size());
    q_.resize(grads.size());
    p_total_ = q_total_ = 0;
    for (size_t i = 0; i < grads.size(); ++i) {
      Slot& s = slots_[i];
      s = Slot();
      if (!grads[i].defined()) continue;
      const Tensor& g = grads[i];
      const int64_t n = g.numel();
      if (g.rank() >= 2 && n > 0) {
        s.rows = g.size(0);
        s.cols = n / s.rows;
        s.r = std::min({spec_.powersgd_rank, s.rows, s.cols});
        s.low_rank = s.r * (s.rows + s.cols) < n;
      }
      s.p_at = p_total_;
      if (!s.low_rank) {
        p_total_ += n;
        continue;
      }
      p_total_ += s.rows * s.r;
      s.q_at = q_total_;
      q_total_ += s.cols * s.r;
      if (spec_.error_feedback && !residual_[i].defined())
        residual_[i] = initial_state(loaded_, "residual." + std::to_string(i), g.shape());
      if (!q_[i].defined()) {
        Tensor saved = find(loaded_, "q." + std::to_string(i));
        if (saved.defined() && saved.shape() == Shape{s.cols, s.r}) {
          q_[i] = saved.clone();
        } else {
          q_[i] = Tensor::empty({s.cols, s.r});
          float* q = q_[i].data<float>();
          Rng rng(kQSeed, uint64_t(i), RandomPurpose::init);
          for (int64_t e = 0; e < s.cols * s.r; ++e) q[e] = rng.normal();
        }
      }
    }
  }

  // M: with error feedback, the residual buffer, which add_gradient made grad + residual and which
  // holds M until the approximation is taken off; without, the gradient itself.
  const float* matrix(size_t i, const Tensor& grad) const {
    return spec_.error_feedback ? residual_[i].data<float>() : grad.data<float>();
  }
  void add_gradient(size_t i, const Tensor& grad) {
    if (!spec_.error_feedback) return;
    float* res = residual_[i].data<float>();
    const float* g = grad.data<float>();
    for (int64_t e = 0; e < grad.numel(); ++e) res[e] += g[e];
  }

  void redraw_zero_columns(size_t i, int64_t step) {
    const Slot& s = slots_[i];
    float* q = q_[i].data<float>();
    for (int64_t j = 0; j < s.r; ++j) {
      bool zero = true;
      for (int64_t c = 0; c < s.cols && zero; ++c) zero = q[c * s.r + j] == 0.0f;
      if (!zero) continue;
      Rng rng(mix_key(kQSeed, uint64_t(step)), mix_key(uint64_t(i), uint64_t(j)), RandomPurpose::init);
      for (int64_t c = 0; c < s.cols; ++c) q[c * s.r + j] = rng.normal();
    }
  }

  DistSpec spec_;
  std::vector<Slot> slots_;
  std::vector<Tensor> residual_, q_;  // per parameter
  int64_t p_total_ = 0, q_total_ = 0;
  RankTensors loaded_;                // from load_state: where residuals and Q start
};

}  // namespace

std::unique_ptr<GradientCompressor> make_powersgd(const DistSpec& spec) { return std::make_unique<PowerSgd>(spec); }

}  // namespace frugal::train::compress
