// Batches for the trainer, assembled on background threads into a bounded, in-order prefetch queue.
// A batch's content depends only on (seed, epoch, batch index), never on thread timing, so a run
// resumed mid-epoch sees exactly the batches an uninterrupted run would have seen.
// Samples come from a SampleSource (in memory, or packed shards decoded on the producer threads).
// Limits: the producer threads run no OpenMP inside.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "frugal/data/dataset.h"
#include "frugal/data/sample_source.h"
#include "frugal/tensor/tensor.h"

namespace frugal::data {

struct LoaderOptions {
  int64_t batch_size = 0;
  bool shuffle = true;     // permutation per epoch from Rng(seed, epoch, RandomPurpose::shuffle)
  bool drop_last = false;  // drop the final partial batch
  uint64_t seed = 0;
  AugmentOptions augment;  // images (N, C, H, W) only
  int prefetch = 2;        // batches assembled ahead of the consumer (at least 1)
  int workers = 1;         // background threads (at least 1)
};

struct Batch {
  Tensor inputs;   // f32 (B, ...) for Loader; i64 (B, T) for TokenLoader
  Tensor targets;  // i64 (B) for Loader; i64 (B, T) for TokenLoader
  int64_t epoch = 0;
  int64_t index = 0;  // batch index within the epoch (Loader) or the step (TokenLoader)
  // Loader: the dataset rows of the batch's samples, in batch order, i64 (B) (the epoch's shuffled
  // order from epoch_order), so a technique can look up per-sample data (distillation's cached
  // teacher logits); undefined for TokenLoader, whose windows are not dataset rows.
  Tensor sample_indices;
};

// Chooses the samples of an epoch instead of the loader's shuffle (curriculum, importance sampling):
// called by start_epoch on the caller's thread with the epoch and the loader's own order for it
// (epoch_order); returns dataset rows (repeats allowed), exactly as many as the dataset has samples, so
// an epoch keeps its length in batches. It must be a pure function of the epoch and its owner's state
// at that call, and a technique that changes that state mid-epoch keeps what it needs to rebuild the
// same order after a resume (the loader calls it again for a process that resumes mid-epoch).
using EpochOrderFn = std::function<std::vector<int64_t>(int64_t epoch, std::vector<int64_t> shuffled)>;

class Loader {
 public:
  Loader(const Dataset& dataset, LoaderOptions options);
  // Batches from any source; its shuffled_order replaces the loader's Fisher-Yates when shuffling.
  Loader(std::shared_ptr<const SampleSource> source, LoaderOptions options);
  ~Loader();  // stops and joins the threads, also mid-epoch
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int64_t batches_per_epoch() const;
  // Starts producing batches first_batch, first_batch + 1, ... of `epoch`; abandons any epoch in flight.
  // With a stride (set_stride), batches first_batch + offset, + offset + stride, ... instead.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // From the next start_epoch on, only every stride-th batch from first_batch + offset (a rank of a
  // data-parallel world of `stride` ranks takes micro-batches offset, offset + stride, ...).
  void set_stride(int64_t offset, int64_t stride);
  // The next batch in order, or nullopt when the epoch is done. Rethrows a producer's exception.
  std::optional<Batch> next();
  double data_wait_seconds() const;       // total time next() spent waiting for batches
  double last_wait_seconds() const;       // the wait of the latest next() call
  // The sample order of an epoch (identity when shuffle is off); a pure function of (seed, epoch).
  std::vector<int64_t> epoch_order(int64_t epoch) const;
  // From the next start_epoch on, the epoch's samples come from `order` (nullptr: the shuffle again).
  void set_epoch_order(EpochOrderFn order);
  int64_t dataset_size() const { return size_; }
  const SampleSource& source() const { return *source_; }

 private:
  void worker_loop();
  Batch assemble(const std::vector<int64_t>& order, int64_t epoch, int64_t index) const;

  std::shared_ptr<const SampleSource> source_;
  int64_t size_ = 0;
  LoaderOptions options_;
  std::vector<std::thread> workers_;
  EpochOrderFn order_fn_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  bool started_ = false;
  uint64_t generation_ = 0;  // bumped by start_epoch so stale work is discarded
  int64_t epoch_ = 0;
  std::shared_ptr<const std::vector<int64_t>> order_;
  // Slots count the batches this loader delivers: slot k is batch first_ + k * stride_.
  int64_t next_to_claim_ = 0, next_to_deliver_ = 0, end_batch_ = 0;
  int64_t first_ = 0, offset_ = 0, stride_ = 1;
  std::map<int64_t, Batch> ready_;
  std::map<int64_t, std::exception_ptr> failed_;  // surfaced by next() when it reaches that batch
  double wait_total_ = 0, wait_last_ = 0;
};

// Random training windows for language models: the batch of step s holds B windows of T + 1 tokens
// starting at offsets drawn from Rng(seed, s, RandomPurpose::sample); inputs are the first T tokens,
// targets the last T. Steps s+1 .. s+prefetch are prepared in the background after each request.
class TokenLoader {
 public:
  TokenLoader(Tensor tokens /* i64 (N) */, int64_t batch, int64_t context, uint64_t seed, int prefetch = 2);
  ~TokenLoader();
  TokenLoader(const TokenLoader&) = delete;
  TokenLoader& operator=(const TokenLoader&) = delete;

  Batch next_for_step(int64_t step);  // inputs, targets i64 (B, T)
  double data_wait_seconds() const;
  // The pure function behind next_for_step (no threads).
  Batch make_batch(int64_t step) const;

 private:
  void worker_loop();

  Tensor tokens_;  // i64 (N)
  int64_t batch_, context_;
  uint64_t seed_;
  int prefetch_;
  std::thread worker_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  int64_t want_first_ = 0, want_last_ = -1;  // steps the worker should have ready
  std::map<int64_t, Batch> ready_;
  std::vector<int64_t> in_progress_;
  std::exception_ptr error_;
  double wait_total_ = 0;
};

// Consecutive non-overlapping windows over a token split, for evaluation: window k has inputs
// tokens[k*T, k*T + T) and targets tokens[k*T + 1, k*T + T + 1); windows are grouped into batches of
// up to `batch` (the last may be smaller). Tokens after the last full window are not used.
std::vector<std::pair<Tensor, Tensor>> sequential_windows(const Tensor& tokens, int64_t batch, int64_t context);

}  // namespace frugal::data
