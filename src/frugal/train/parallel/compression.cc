// make_compressor (compression.h): the [dist] compression method of a job; and what the compressors
// share (compression_util.h).
#include "frugal/train/parallel/compression.h"

#include <cstring>
#include <iostream>

#include "frugal/base/error.h"
#include "frugal/train/parallel/compression_util.h"
#include "frugal/train/technique.h"

namespace frugal::train {

std::unique_ptr<GradientCompressor> make_compressor(const DistSpec& spec) {
  switch (spec.compression) {
    case Compression::none: return nullptr;
    case Compression::bf16: return compress::make_bf16_sum(spec);
    case Compression::topk: return compress::make_topk(spec);
    case Compression::powersgd: return compress::make_powersgd(spec);
    case Compression::local_sgd: return compress::make_local_sgd(spec);
    case Compression::sign: return compress::make_sign(spec);
  }
  return nullptr;
}

namespace compress {

void exact_sum(std::vector<Tensor>& grads, dist::Communicator& comm) {
  int64_t total = 0;
  for (const Tensor& g : grads)
    if (g.defined()) total += g.numel();
  if (total == 0) return;
  // One buffer, one collective: the sum of each element is the same left fold over the ranks as
  // per-tensor calls would give.
  std::vector<float> flat(static_cast<size_t>(total));
  int64_t at = 0;
  for (const Tensor& g : grads)
    if (g.defined()) {
      std::memcpy(flat.data() + at, g.data<float>(), size_t(g.numel()) * sizeof(float));
      at += g.numel();
    }
  dist::allreduce_sum(comm, flat.data(), total);
  at = 0;
  for (Tensor& g : grads)
    if (g.defined()) {
      std::memcpy(g.data<float>(), flat.data() + at, size_t(g.numel()) * sizeof(float));
      at += g.numel();
    }
}

void check_f32(std::vector<Tensor>& grads, const std::string& method) {
  for (Tensor& g : grads) {
    if (!g.defined()) continue;
    if (g.dtype() != DType::f32)
      throw InputError("[dist] compression = \"" + method + "\": expected f32 gradients, got " +
                       std::string(dtype_name(g.dtype())));
    if (!g.is_contiguous()) g = g.contiguous();
  }
}

void save_rank_tensors(TechniqueState& out, dist::Communicator& comm, const RankTensors& mine) {
  int64_t n = 0;
  for (const auto& [name, t] : mine) n += t.numel();
  // Every rank holds the same names and shapes (gradients have the same shapes everywhere); a
  // mismatch would gather garbage, so it is checked, not assumed.
  for (double other : dist::allgather_values(comm, double(n)))
    FRUGAL_CHECK(int64_t(other) == n, "compression state: ranks hold different state sizes");
  std::vector<float> flat(static_cast<size_t>(n));
  int64_t at = 0;
  for (const auto& [name, t] : mine) {
    Tensor c = t.contiguous();
    std::memcpy(flat.data() + at, c.data<float>(), size_t(c.numel()) * sizeof(float));
    at += c.numel();
  }
  std::vector<float> all(static_cast<size_t>(n) * size_t(comm.size()));
  if (n > 0) comm.allgather(flat.data(), size_t(n) * sizeof(float), all.data());
  if (comm.rank() != 0) return;
  out.put("compression.world_size", int64_t(comm.size()));
  for (int r = 0; r < comm.size(); ++r) {
    at = int64_t(r) * n;
    for (const auto& [name, t] : mine) {
      Tensor copy = Tensor::empty(t.shape());
      std::memcpy(copy.data<float>(), all.data() + at, size_t(t.numel()) * sizeof(float));
      at += t.numel();
      out.put_tensor("compression.rank" + std::to_string(r) + "." + name, copy);
    }
  }
}

RankTensors load_rank_tensors(const TechniqueState& in, dist::Communicator& comm, const std::string& method) {
  RankTensors mine;
  if (!in.has("compression.world_size")) return mine;
  const int64_t saved = in.integer("compression.world_size");
  if (saved != comm.size()) {
    if (comm.rank() == 0)
      std::cerr << "note: [dist] compression = \"" << method << "\": the checkpoint's per-rank state was saved by "
                << saved << " ranks, this world has " << comm.size() << ": it starts from zero\n";
    return mine;
  }
  const std::string prefix = "compression.rank" + std::to_string(comm.rank()) + ".";
  for (const auto& [name, t] : in.tensors())
    if (name.compare(0, prefix.size(), prefix) == 0) mine.emplace_back(name.substr(prefix.size()), t.contiguous());
  return mine;
}

Tensor find(const RankTensors& state, const std::string& name) {
  for (const auto& [n, t] : state)
    if (n == name) return t;
  return Tensor();
}

Tensor initial_state(const RankTensors& loaded, const std::string& name, const Shape& shape) {
  Tensor saved = find(loaded, name);
  if (!saved.defined()) return Tensor::zeros(shape);
  FRUGAL_CHECK(saved.shape() == shape, "compression state " + name + ": the checkpoint holds " +
                                           shape_str(saved.shape()) + ", the gradient is " + shape_str(shape));
  return saved.clone();
}

void ResidualCompressor::save_state(TechniqueState& out, dist::Communicator& comm) const {
  RankTensors mine;
  for (size_t i = 0; i < residual_.size(); ++i)
    if (residual_[i].defined()) mine.emplace_back("residual." + std::to_string(i), residual_[i]);
  save_rank_tensors(out, comm, mine);
}

void ResidualCompressor::load_state(const TechniqueState& in, dist::Communicator& comm) {
  loaded_ = load_rank_tensors(in, comm, name());
  residual_.clear();
}

Tensor& ResidualCompressor::residual(size_t i, const Shape& shape) {
  if (residual_.size() <= i) residual_.resize(i + 1);
  if (!residual_[i].defined()) residual_[i] = initial_state(loaded_, "residual." + std::to_string(i), shape);
  return residual_[i];
}

}  // namespace compress
}  // namespace frugal::train
