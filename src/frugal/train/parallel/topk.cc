// compression = "topk": top-k sparsification with error feedback (Stich, Cordonnier, Jaggi 2018,
// "Sparsified SGD with memory"; Lin et al. 2018, "Deep Gradient Compression"). For each parameter
// tensor of n entries, a rank sends the k = ceil(topk_ratio * n) entries of largest magnitude of
// acc = grad + residual as (index i32, value f32) pairs; the residual keeps what was not sent
// (acc with the sent entries zeroed), so sent + residual == grad + old residual exactly.
//
// Per tensor, not over the flat gradient: every tensor, a bias or a small output layer included,
// gets its share of the budget every step, where a global top-k would let the tensors with the
// largest gradient scale take it all (DGC selects per layer for the same reason), and the number of
// pairs is known in advance on every rank, so one allgather of fixed size carries them.
//
// Ties in magnitude go to the lower index, so the choice does not depend on the selection algorithm.
// Every rank receives all ranks' pairs and adds them into zeros in rank order, so all ranks hold the
// same sum. Bytes this rank sends: (size - 1) * 8 * sum over tensors of k (an allgather); the exact
// sum sends 2 (size - 1) / size * 4 * n, so at 2 ranks the ratio is topk_ratio * 4.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "frugal/train/parallel/compression_util.h"

namespace frugal::train::compress {
namespace {

struct Pair {
  int32_t index;
  float value;
};
static_assert(sizeof(Pair) == 8);

class TopK : public ResidualCompressor {
 public:
  explicit TopK(const DistSpec& spec) : spec_(spec) {}
  std::string name() const override { return "topk"; }

  void reduce(std::vector<Tensor>& grads, dist::Communicator& comm, int64_t step) override {
    check_f32(grads, name());
    if (step < spec_.warmup_steps) return exact_sum(grads, comm);
    residual_.resize(grads.size());
    std::vector<Pair> mine;
    std::vector<int64_t> ks(grads.size(), 0);
    for (size_t i = 0; i < grads.size(); ++i) {
      if (!grads[i].defined()) continue;
      FRUGAL_CHECK(grads[i].numel() <= INT32_MAX, "topk: a gradient of more than 2^31 entries");
      ks[i] = k_of(grads[i].numel());
      select(i, grads[i], ks[i], mine);
    }
    const size_t total = mine.size();
    if (total == 0) return;
    std::vector<Pair> all(total * size_t(comm.size()));
    comm.allgather(mine.data(), total * sizeof(Pair), all.data());
    size_t at = 0;
    for (size_t i = 0; i < grads.size(); ++i) {
      if (!grads[i].defined()) continue;
      float* g = grads[i].data<float>();
      std::fill(g, g + grads[i].numel(), 0.0f);
      for (int r = 0; r < comm.size(); ++r) {
        const Pair* p = all.data() + size_t(r) * total + at;
        for (int64_t j = 0; j < ks[i]; ++j) g[p[j].index] += p[j].value;
      }
      at += size_t(ks[i]);
    }
  }


 private:
  int64_t k_of(int64_t n) const {
    // ceil in double; the min guards ratio 1 against a rounding of ratio * n just above n.
    return std::clamp<int64_t>(int64_t(std::ceil(spec_.topk_ratio * double(n))), 1, n);
  }

  // Appends tensor i's k pairs (ascending index) to `out` and updates its residual.
  void select(size_t i, const Tensor& grad, int64_t k, std::vector<Pair>& out) {
    const int64_t n = grad.numel();
    const float* g = grad.data<float>();
    float* res = spec_.error_feedback ? residual(i, grad.shape()).data<float>() : nullptr;
    acc_.resize(size_t(n));
    for (int64_t j = 0; j < n; ++j) acc_[size_t(j)] = res ? g[j] + res[j] : g[j];
    order_.resize(size_t(n));
    for (int64_t j = 0; j < n; ++j) order_[size_t(j)] = int32_t(j);
    auto larger = [&](int32_t a, int32_t b) {
      const float ma = std::fabs(acc_[size_t(a)]), mb = std::fabs(acc_[size_t(b)]);
      return ma > mb || (ma == mb && a < b);
    };
    if (k < n) std::nth_element(order_.begin(), order_.begin() + k, order_.end(), larger);
    std::sort(order_.begin(), order_.begin() + k);  // ascending index: a cache-friendly scatter
    if (res) std::memcpy(res, acc_.data(), size_t(n) * sizeof(float));
    for (int64_t j = 0; j < k; ++j) {
      const int32_t idx = order_[size_t(j)];
      out.push_back({idx, acc_[size_t(idx)]});
      if (res) res[idx] = 0.0f;
    }
  }

  DistSpec spec_;
  std::vector<float> acc_;        // scratch
  std::vector<int32_t> order_;    // scratch
};

}  // namespace

std::unique_ptr<GradientCompressor> make_topk(const DistSpec& spec) { return std::make_unique<TopK>(spec); }

}  // namespace frugal::train::compress
