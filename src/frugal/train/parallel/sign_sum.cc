// compression = "sign": 1-bit compression with error feedback (Seide et al. 2014, "1-bit stochastic
// gradient descent"; Karimireddy et al. 2019, "Error Feedback Fixes SignSGD"; the compression step of
// 1-bit Adam). Per parameter tensor of n entries, acc = grad + residual is sent as one bit per entry
// (its sign) and one f32 scale, the mean magnitude ||acc||_1 / n, so that the sent tensor
// scale * sign(acc) has acc's L1 norm; the residual keeps acc - scale * sign(acc).
//
// Gradient-level, not 1-bit Adam's optimizer-level scheme (which freezes Adam's variance after a
// warmup and compresses the momentum): the optimizer (AdamW in the examples) then runs on the
// world's sum of the ranks' scaled signs. warmup_steps of exact sums are 1-bit Adam's warmup in spirit.
//
// Transport: one allgather of, per tensor, its scale and its bits (ceil(n / 8) bytes); this rank sends
// (size - 1) * sum over tensors of (4 + ceil(n / 8)) bytes, about 1/32 of an f32 allgather and 1/16 of
// the exact sum's 2 (size - 1) / size * 4 n at 2 ranks. Every rank adds the ranks' scale * (+-1) in
// rank order in f32, so all ranks hold the same sum. A zero entry counts as positive.
#include <cmath>
#include <cstring>

#include "frugal/train/parallel/compression_util.h"

namespace frugal::train::compress {
namespace {

class SignSum : public ResidualCompressor {
 public:
  explicit SignSum(const DistSpec& spec) : spec_(spec) {}
  std::string name() const override { return "sign"; }

  void reduce(std::vector<Tensor>& grads, dist::Communicator& comm, int64_t step) override {
    check_f32(grads, name());
    if (step < spec_.warmup_steps) return exact_sum(grads, comm);
    residual_.resize(grads.size());
    // Layout of a rank's message: per defined tensor, its f32 scale, then its bits.
    std::vector<int64_t> at(grads.size(), 0);
    int64_t bytes = 0;
    for (size_t i = 0; i < grads.size(); ++i) {
      if (!grads[i].defined()) continue;
      at[i] = bytes;
      bytes += int64_t(sizeof(float)) + (grads[i].numel() + 7) / 8;
    }
    if (bytes == 0) return;
    std::vector<uint8_t> mine(static_cast<size_t>(bytes), 0);
    for (size_t i = 0; i < grads.size(); ++i)
      if (grads[i].defined()) encode(i, grads[i], mine.data() + at[i]);
    std::vector<uint8_t> all(static_cast<size_t>(bytes) * size_t(comm.size()));
    comm.allgather(mine.data(), size_t(bytes), all.data());
    for (size_t i = 0; i < grads.size(); ++i) {
      if (!grads[i].defined()) continue;
      float* g = grads[i].data<float>();
      for (int r = 0; r < comm.size(); ++r) {
        const uint8_t* msg = all.data() + int64_t(r) * bytes + at[i];
        float scale;
        std::memcpy(&scale, msg, sizeof scale);
        const uint8_t* bits = msg + sizeof(float);
        for (int64_t j = 0; j < grads[i].numel(); ++j) {
          const float v = (bits[j >> 3] >> (j & 7)) & 1 ? scale : -scale;
          g[j] = r == 0 ? v : g[j] + v;
        }
      }
    }
  }


 private:
  // Writes tensor i's scale and sign bits to `msg` (zeroed) and updates its residual.
  void encode(size_t i, const Tensor& grad, uint8_t* msg) {
    const int64_t n = grad.numel();
    const float* g = grad.data<float>();
    float* res = spec_.error_feedback ? residual(i, grad.shape()).data<float>() : nullptr;
    acc_.resize(static_cast<size_t>(n));
    double l1 = 0;
    for (int64_t j = 0; j < n; ++j) {
      acc_[size_t(j)] = res ? g[j] + res[j] : g[j];
      l1 += std::fabs(double(acc_[size_t(j)]));
    }
    const float scale = float(l1 / double(n));
    std::memcpy(msg, &scale, sizeof scale);
    uint8_t* bits = msg + sizeof(float);
    for (int64_t j = 0; j < n; ++j) {
      const bool positive = acc_[size_t(j)] >= 0;
      if (positive) bits[j >> 3] = uint8_t(bits[j >> 3] | (1u << (j & 7)));
      if (res) res[j] = acc_[size_t(j)] - (positive ? scale : -scale);
    }
  }

  DistSpec spec_;
  std::vector<float> acc_;        // scratch
};

}  // namespace

std::unique_ptr<GradientCompressor> make_sign(const DistSpec& spec) { return std::make_unique<SignSum>(spec); }

}  // namespace frugal::train::compress
