// The exact, bucketed gradient sum of a data-parallel step (exact_sum.h).
#include "frugal/train/parallel/exact_sum.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "frugal/base/error.h"
#include "frugal/base/timer.h"

namespace frugal::train {

namespace {
// Rank r owns values [slice_begin(n, N, r), slice_begin(n, N, r + 1)) of a bucket (as allreduce_sum).
int64_t slice_begin(int64_t n, int size, int r) { return n * r / size; }
}  // namespace

ExactGradientSum::ExactGradientSum(std::vector<Tensor> params, dist::Communicator& world, int64_t bucket_bytes)
    : params_(std::move(params)), world_(world), bucket_of_(params_.size()) {
  // Backward finishes the last layers first: buckets are filled from the last parameter back, so
  // bucket 0 is usually the first ready. Each bucket also carries one flag per parameter (1 when it
  // got a gradient), summed with the values: a parameter no rank gave a gradient stays without one.
  const int N = world_.size();
  Bucket bucket;
  for (size_t k = params_.size(); k-- > 0;) {
    const Tensor& p = params_[k];
    FRUGAL_CHECK(p.dtype() == DType::f32, "data-parallel training sums f32 gradients; a parameter is " +
                                              std::string(dtype_name(p.dtype())));
    bucket.params.push_back(k);
    bucket.values += p.numel() + 1;
    bucket_of_[k] = buckets_.size();
    if (bucket.values * int64_t(sizeof(float)) >= bucket_bytes || k == 0) {
      bucket.block = (bucket.values + N - 1) / N;
      buckets_.push_back(std::move(bucket));
      bucket = Bucket();
    }
  }
}

ExactGradientSum::~ExactGradientSum() = default;

ExactGradientSum::Round& ExactGradientSum::round_buffers(int64_t t) {
  const int N = world_.size();
  while (int64_t(rounds_.size()) <= t) {
    Round r;
    for (const Bucket& b : buckets_) {
      r.send.emplace_back(size_t(b.block * N), 0.0f);
      r.recv.emplace_back(size_t(b.block * N), 0.0f);
    }
    r.pending.resize(buckets_.size());
    rounds_.push_back(std::move(r));
  }
  Round& r = rounds_[size_t(t)];
  r.ready.assign(buckets_.size(), 0);
  r.has_grad.assign(params_.size(), 0);
  r.next_to_post = 0;
  return r;
}

void ExactGradientSum::begin_micro_batch(int64_t round) {
  FRUGAL_CHECK(current_ < 0 && round == rounds_posted_, "micro-batch rounds out of order");
  round_buffers(round);
  current_ = round;
  std::unordered_map<const void*, size_t> index;
  for (size_t k = 0; k < params_.size(); ++k) index[params_[k].impl_ptr().get()] = k;
  scope_.emplace([this, index = std::move(index)](const Tensor& leaf) {
    auto it = index.find(leaf.impl_ptr().get());
    if (it == index.end()) return;  // not a trained parameter
    Round& r = rounds_[size_t(current_)];
    r.has_grad[it->second] = 1;
    const size_t b = bucket_of_[it->second];
    // Final once every parameter of the bucket reported (those without a gradient never report:
    // they are settled at end_micro_batch).
    bool reported_all = true;
    for (size_t k : buckets_[b].params) reported_all = reported_all && r.has_grad[k];
    if (reported_all) {
      r.ready[b] = 1;
      post_ready(r);
    }
    for (auto& p : r.pending)  // drive the transfers in flight
      if (p) p->test();
  });
}

// Copies bucket b's gradients into its send buffer: values, then the flags, in owner slices.
void ExactGradientSum::pack(Round& round, size_t b) {
  const Bucket& bucket = buckets_[b];
  const int N = world_.size();
  std::vector<float> flat(size_t(bucket.values), 0.0f);
  size_t at = 0;
  for (size_t k : bucket.params) {
    const Tensor& g = params_[k].grad();
    const size_t n = size_t(params_[k].numel());
    if (g.defined()) {
      const Tensor c = g.contiguous();
      FRUGAL_CHECK(c.dtype() == DType::f32, "a gradient of dtype " + std::string(dtype_name(c.dtype())));
      std::memcpy(&flat[at], c.data<float>(), n * sizeof(float));
    }
    at += n;
  }
  for (size_t k : bucket.params) flat[at++] = round.has_grad[k] ? 1.0f : 0.0f;
  std::vector<float>& send = round.send[b];
  for (int r = 0; r < N; ++r) {
    const int64_t begin = slice_begin(bucket.values, N, r), end = slice_begin(bucket.values, N, r + 1);
    std::copy(flat.begin() + begin, flat.begin() + end, send.begin() + r * bucket.block);
  }
}

void ExactGradientSum::post_ready(Round& r) {
  while (r.next_to_post < buckets_.size() && r.ready[r.next_to_post]) {
    const size_t b = r.next_to_post++;
    pack(r, b);
    r.pending[b] = world_.ialltoall(r.send[b].data(), size_t(buckets_[b].block) * sizeof(float), r.recv[b].data());
  }
}

void ExactGradientSum::end_micro_batch() {
  FRUGAL_CHECK(current_ >= 0, "end_micro_batch without begin_micro_batch");
  scope_.reset();
  Round& r = rounds_[size_t(current_)];
  for (size_t k = 0; k < params_.size(); ++k)
    if (params_[k].grad().defined()) r.has_grad[k] = 1;
  std::fill(r.ready.begin(), r.ready.end(), uint8_t(1));
  post_ready(r);
  for (Tensor& p : params_) p.set_grad(Tensor());  // the next micro-batch starts from none
  current_ = -1;
  ++rounds_posted_;
}

void ExactGradientSum::finish_step(int64_t micro_batches) {
  const int N = world_.size(), me = world_.rank();
  const int64_t rounds = (micro_batches + N - 1) / N;
  // Rounds this rank had no micro-batch in: posted empty, in the same order as the others post them.
  while (rounds_posted_ < rounds) {
    Round& r = round_buffers(rounds_posted_);
    std::fill(r.ready.begin(), r.ready.end(), uint8_t(1));
    post_ready(r);
    ++rounds_posted_;
  }
  Timer waited;
  for (int64_t t = 0; t < rounds; ++t)
    for (auto& p : rounds_[size_t(t)].pending) {
      p->wait();
      p.reset();
    }
  exposed_wait_s_ += waited.seconds();
  // My slice of each bucket: micro-batch 0's values, + micro-batch 1's, ... (rank a % N, round a / N).
  int64_t total_block = 0;
  for (const Bucket& b : buckets_) total_block += b.block;
  std::vector<float> mine(size_t(total_block), 0.0f), all(size_t(total_block * N));
  int64_t offset = 0;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    const Bucket& bucket = buckets_[b];
    const int64_t length = slice_begin(bucket.values, N, me + 1) - slice_begin(bucket.values, N, me);
    for (int64_t i = 0; i < length; ++i) {
      float acc = rounds_[0].recv[b][size_t(i)];
      for (int64_t a = 1; a < micro_batches; ++a)
        acc += rounds_[size_t(a / N)].recv[b][size_t((a % N) * bucket.block + i)];
      mine[size_t(offset + i)] = acc;
    }
    offset += bucket.block;
  }
  world_.allgather(mine.data(), size_t(total_block) * sizeof(float), all.data());
  // Back into .grad: bucket b's slice r sits in rank r's part at the bucket's offset.
  offset = 0;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    const Bucket& bucket = buckets_[b];
    std::vector<float> flat(size_t(bucket.values));
    for (int r = 0; r < N; ++r) {
      const int64_t begin = slice_begin(bucket.values, N, r), end = slice_begin(bucket.values, N, r + 1);
      std::copy(all.begin() + r * total_block + offset, all.begin() + r * total_block + offset + (end - begin),
                flat.begin() + begin);
    }
    size_t at = 0, flag = 0;
    for (size_t k : bucket.params) flag += size_t(params_[k].numel());
    for (size_t k : bucket.params) {
      Tensor& p = params_[k];
      const size_t n = size_t(p.numel());
      if (flat[flag++] > 0) {
        Tensor g = Tensor::empty(p.shape(), DType::f32);
        std::memcpy(g.data<float>(), &flat[at], n * sizeof(float));
        g.storage()->set_category(MemoryCategory::gradients);
        p.set_grad(g);
      } else {
        p.set_grad(Tensor());
      }
      at += n;
    }
    offset += bucket.block;
  }
  rounds_posted_ = 0;
}

}  // namespace frugal::train
