// compression = "local_sgd": local SGD (Stich 2019, "Local SGD converges fast and communicates
// little"; Lin et al. 2020, "Don't use large mini-batches, use local SGD"). Gradients stay on their
// rank: each rank steps its own copy of the model on its own micro-batches, and every
// local_sgd_every = H steps the parameters are averaged over the ranks (allreduce_sum, then / size,
// so all ranks leave an averaging step with the same weights). With warmup_steps, the first steps
// sum gradients exactly, as the other methods do (Lin et al.'s post-local SGD).
//
// Scale: between averages a rank steps on its own gradient, its micro-batches' share of the global
// batch's loss (each divided by the global micro-batch count), about 1/size of the global gradient.
// AdamW, the examples' optimizer, is invariant to that scale (but for eps); with SGD a local step is
// lr / size of a synchronous one (scale lr by the world size to compare).
//
// Optimizer state (AdamW's moments, SGD's momentum) stays local: only the parameters are averaged,
// as in Lin et al. and in DiLoCo's inner optimizer; averaging the moments too would triple the bytes
// of AdamW for state each rank rebuilds from its own gradients within a few steps.
//
// Bytes this rank sends: those of allreduce_sum over all parameters, 2 (size - 1) / size * 4 bytes
// per parameter, every H steps (1/H of the exact sum's bytes per step, on average).
//
// State: between averages every rank's parameters and optimizer state differ, so a checkpoint holds
// each rank's (gathered to rank 0); a process resuming at the same world size puts its own back at
// run_start (start()); at another world size every rank starts from the checkpoint's (rank 0's) and
// a note says so.
#include <algorithm>
#include <cstring>

#include "frugal/train/parallel/compression_util.h"
#include "frugal/train/technique.h"

namespace frugal::train::compress {
namespace {

class LocalSgd : public GradientCompressor {
 public:
  explicit LocalSgd(const DistSpec& spec) : spec_(spec) {}
  std::string name() const override { return "local_sgd"; }

  bool reduces_gradients(int64_t step) const override { return step < spec_.warmup_steps; }

  // Called at the warmup steps only (reduces_gradients).
  void reduce(std::vector<Tensor>& grads, dist::Communicator& comm, int64_t step) override {
    check_f32(grads, name());
    exact_sum(grads, comm);
  }

  // Whether the parameters are averaged after step `step` (0-based index of the step just taken).
  bool averages_after(int64_t step) const {
    return step >= spec_.warmup_steps && (step - spec_.warmup_steps + 1) % spec_.local_sgd_every == 0;
  }

  void after_step(const std::vector<Tensor>& params, optim::Optimizer& optimizer, dist::Communicator& comm,
                  int64_t step) override {
    params_ = params;
    optimizer_ = &optimizer;
    if (!averages_after(step)) return;
    int64_t n = 0;
    for (const Tensor& p : params) n += p.numel();
    std::vector<float> flat(static_cast<size_t>(n));
    int64_t at = 0;
    for (const Tensor& p : params) {
      std::memcpy(flat.data() + at, p.data<float>(), size_t(p.numel()) * sizeof(float));
      at += p.numel();
    }
    dist::allreduce_sum(comm, flat.data(), n);
    const float size = float(comm.size());
    at = 0;
    for (const Tensor& p : params) {
      float* d = p.data<float>();
      for (int64_t e = 0; e < p.numel(); ++e) d[e] = flat[size_t(at + e)] / size;
      at += p.numel();
    }
  }

  void start(const std::vector<Tensor>& params, optim::Optimizer& optimizer, dist::Communicator& comm) override {
    params_ = params;
    optimizer_ = &optimizer;
    if (loaded_.empty()) return;
    for (size_t k = 0; k < params.size(); ++k) {
      Tensor saved = find(loaded_, "param." + std::to_string(k));
      FRUGAL_CHECK(saved.defined() && saved.shape() == params[k].shape(),
                   "local_sgd: the checkpoint's parameter " + std::to_string(k) + " is missing or of another shape");
      Tensor param = params[k];  // a handle: the model's storage
      param.copy_from(saved);
    }
    // The checkpoint's optimizer state (rank 0's) with this rank's f32 buffers in place of its own;
    // the counters are the same on every rank.
    optim::NamedTensors state = optimizer.state();
    for (const auto& [name, t] : loaded_) {
      if (name.compare(0, 6, "optim.") != 0) continue;
      const std::string key = name.substr(6);
      auto it = std::find_if(state.begin(), state.end(), [&](const auto& e) { return e.first == key; });
      if (it != state.end()) it->second = t.clone();
      else state.emplace_back(key, t.clone());
    }
    optimizer.load_state(state);
    loaded_.clear();
  }

  void save_state(TechniqueState& out, dist::Communicator& comm) const override {
    RankTensors mine;
    for (size_t k = 0; k < params_.size(); ++k) mine.emplace_back("param." + std::to_string(k), params_[k]);
    if (optimizer_)
      for (const auto& [key, t] : optimizer_->state())
        if (t.defined() && t.dtype() == DType::f32) mine.emplace_back("optim." + key, t);
    save_rank_tensors(out, comm, mine);
  }
  void load_state(const TechniqueState& in, dist::Communicator& comm) override {
    loaded_ = load_rank_tensors(in, comm, name());
  }

 private:
  DistSpec spec_;
  std::vector<Tensor> params_;           // the model's, seen at start / after_step (for save_state)
  optim::Optimizer* optimizer_ = nullptr;
  RankTensors loaded_;                   // this rank's checkpointed parameters and optimizer state
};

}  // namespace

std::unique_ptr<GradientCompressor> make_local_sgd(const DistSpec& spec) { return std::make_unique<LocalSgd>(spec); }

}  // namespace frugal::train::compress
