// The exact gradient sum of a data-parallel step (compression = "none"), bit for bit what one process
// gets by accumulating the step's micro-batches in order: grad = ((g_0 + g_1) + g_2) + ..., where g_i
// is micro-batch i's whole gradient (the loop accumulates that way too, loop.cc).
//
// Each micro-batch's gradients go out in buckets while its backward still runs (GradReadyScope): a
// bucket is sent as soon as its last parameter's gradient is final, as a reduce-scatter (alltoall of
// 1/N slices: rank r owns slice r of each bucket). Buckets are posted in one fixed order on every rank
// (a bucket that is ready early waits for those before it) because MPI matches collectives by order.
// At the step's end the owners add the slices of micro-batches 0, 1, ..., m - 1 in that order (micro-
// batch i came from rank i % N in round i / N), and one all-gather spreads the sums.
// A rank with no micro-batch in a round (the short last step of an epoch) posts that round's buckets
// anyway, with nothing in them that is read. Gradients are f32.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "frugal/autograd/autograd.h"
#include "frugal/dist/communicator.h"
#include "frugal/tensor/tensor.h"

namespace frugal::train {

class ExactGradientSum {
 public:
  // params: the trainable parameters, in the model's order; bucket_bytes: the size of a bucket.
  ExactGradientSum(std::vector<Tensor> params, dist::Communicator& world, int64_t bucket_bytes);
  ~ExactGradientSum();

  // Around one micro-batch's backward, round = its index in the step / world size.
  void begin_micro_batch(int64_t round);
  // After its backward: the buckets not sent yet go, and the parameters' .grad is cleared.
  void end_micro_batch();
  // At the step's end, with m micro-batches in the step over the whole world: every parameter's
  // .grad becomes the sum (undefined for one that got no gradient anywhere).
  void finish_step(int64_t micro_batches);

  int64_t buckets() const { return int64_t(buckets_.size()); }
  // Seconds this rank waited for the sums at finish_step (the communication not hidden by compute).
  double exposed_wait_s() const { return exposed_wait_s_; }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    int64_t values = 0, block = 0;  // floats in the bucket; per-rank slice size (padded)
  };
  struct Round {  // one micro-batch's buffers: per bucket, send and receive (N x block floats)
    std::vector<std::vector<float>> send, recv;
    std::vector<std::unique_ptr<dist::Pending>> pending;
    std::vector<uint8_t> ready;     // per bucket: its gradients are final
    std::vector<uint8_t> has_grad;  // per parameter: it got one in this micro-batch
    size_t next_to_post = 0;
  };

  void on_ready(const Tensor& leaf);
  void post_ready(Round& round);
  void pack(Round& round, size_t b);
  Round& round_buffers(int64_t round);

  std::vector<Tensor> params_;
  dist::Communicator& world_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // parameter -> bucket
  std::vector<Round> rounds_;
  int64_t current_ = -1;            // the round in flight (between begin and end), else -1
  int64_t rounds_posted_ = 0;       // rounds of this step posted so far
  std::optional<autograd::GradReadyScope> scope_;
  double exposed_wait_s_ = 0;
};

}  // namespace frugal::train
