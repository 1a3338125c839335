// Loader and TokenLoader: producer threads fill an in-order map of ready batches bounded by the
// prefetch depth; the consumer takes batch k only, so timing can change when, never what, it gets.
#include "frugal/data/loader.h"

#include <algorithm>

#include "frugal/base/error.h"
#include "frugal/base/rng.h"
#include "frugal/base/timer.h"

namespace frugal::data {

namespace {

std::shared_ptr<const SampleSource> checked_memory_source(const Dataset& dataset, const LoaderOptions& options) {
  FRUGAL_CHECK(dataset.inputs.defined() && dataset.targets.defined(), "Loader needs inputs and targets");
  FRUGAL_CHECK(dataset.inputs.rank() >= 1 && dataset.targets.size(0) == dataset.inputs.size(0),
               "Loader: inputs " + shape_str(dataset.inputs.shape()) + " and targets " +
                   shape_str(dataset.targets.shape()) + " differ in length");
  if (options.augment.enabled() && (dataset.inputs.rank() != 4 || dataset.inputs.dtype() != DType::f32))
    throw InputError("augmentation (crop_padding, horizontal_flip) needs f32 images (N, C, H, W); inputs are " +
                     std::string(dtype_name(dataset.inputs.dtype())) + " " + shape_str(dataset.inputs.shape()));
  return std::make_shared<InMemorySource>(dataset);
}

}  // namespace

Loader::Loader(const Dataset& dataset, LoaderOptions options)
    : Loader((options.batch_size > 0 ? checked_memory_source(dataset, options) : nullptr), options) {}

Loader::Loader(std::shared_ptr<const SampleSource> source, LoaderOptions options)
    : source_(std::move(source)), options_(options) {
  if (options_.batch_size <= 0)
    throw InputError("batch_size must be a positive integer, got " + std::to_string(options_.batch_size));
  FRUGAL_CHECK(source_ != nullptr, "Loader needs a sample source");
  if (options_.augment.enabled() && source_->sample_shape().size() != 3)
    throw InputError("augmentation (crop_padding, horizontal_flip) needs images (N, C, H, W); samples are " +
                     shape_str(source_->sample_shape()));
  if (options_.augment.crop_padding < 0)
    throw InputError("crop_padding must be >= 0, got " + std::to_string(options_.augment.crop_padding));
  size_ = source_->size();
  options_.prefetch = std::max(options_.prefetch, 1);
  options_.workers = std::max(options_.workers, 1);
  for (int w = 0; w < options_.workers; ++w) workers_.emplace_back([this] { worker_loop(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

int64_t Loader::batches_per_epoch() const {
  const int64_t n = size_, b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<int64_t> Loader::epoch_order(int64_t epoch) const {
  if (options_.shuffle) return source_->shuffled_order(options_.seed, epoch);
  std::vector<int64_t> order(static_cast<size_t>(size_));
  for (int64_t i = 0; i < size_; ++i) order[size_t(i)] = i;
  return order;
}

void Loader::set_epoch_order(EpochOrderFn order) { order_fn_ = std::move(order); }

void Loader::set_stride(int64_t offset, int64_t stride) {
  FRUGAL_CHECK(stride >= 1 && offset >= 0 && offset < stride, "a loader stride of " + std::to_string(stride) +
                                                                  " from offset " + std::to_string(offset));
  std::lock_guard<std::mutex> lock(mutex_);
  offset_ = offset;
  stride_ = stride;
}

void Loader::start_epoch(int64_t epoch, int64_t first_batch) {
  const int64_t batches = batches_per_epoch();
  if (first_batch < 0 || first_batch > batches)
    throw InputError("cannot start epoch " + std::to_string(epoch) + " at batch " + std::to_string(first_batch) +
                     ": an epoch has " + std::to_string(batches) + " batches (batch_size " +
                     std::to_string(options_.batch_size) + ", " + std::to_string(size_) + " samples)");
  std::vector<int64_t> chosen = epoch_order(epoch);
  if (order_fn_) {
    chosen = order_fn_(epoch, std::move(chosen));
    FRUGAL_CHECK(int64_t(chosen.size()) == size_,
                 "an epoch order must list " + std::to_string(size_) + " samples, got " +
                     std::to_string(chosen.size()));
    for (int64_t row : chosen)
      FRUGAL_CHECK(row >= 0 && row < size_, "an epoch order lists row " + std::to_string(row));
  }
  auto order = std::make_shared<const std::vector<int64_t>>(std::move(chosen));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++generation_;
    started_ = true;
    epoch_ = epoch;
    order_ = std::move(order);
    first_ = first_batch + offset_;
    next_to_claim_ = next_to_deliver_ = 0;
    end_batch_ = first_ >= batches ? 0 : (batches - first_ + stride_ - 1) / stride_;  // in slots
    ready_.clear();
    failed_.clear();
  }
  changed_.notify_all();
}

std::optional<Batch> Loader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  FRUGAL_CHECK(started_, "Loader::next() before start_epoch()");
  if (next_to_deliver_ >= end_batch_) return std::nullopt;
  Timer timer;
  const int64_t index = next_to_deliver_;  // a slot
  changed_.wait(lock, [&] { return ready_.count(index) || failed_.count(index); });
  wait_last_ = timer.seconds();
  wait_total_ += wait_last_;
  if (auto failed = failed_.find(index); failed != failed_.end()) std::rethrow_exception(failed->second);
  Batch batch = std::move(ready_.extract(index).mapped());
  ++next_to_deliver_;
  lock.unlock();
  changed_.notify_all();  // room for one more batch in the queue
  return batch;
}

double Loader::data_wait_seconds() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return wait_total_;
}

double Loader::last_wait_seconds() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return wait_last_;
}

Batch Loader::assemble(const std::vector<int64_t>& order, int64_t epoch, int64_t index) const {
  const int64_t begin = index * options_.batch_size;
  const int64_t end = std::min(begin + options_.batch_size, size_);
  std::vector<int64_t> samples(order.begin() + begin, order.begin() + end);
  Dataset rows = source_->gather(samples);
  augment_batch(rows.inputs, samples, epoch, options_.seed, options_.augment);
  Tensor sample_indices = Tensor::empty({end - begin}, DType::i64);  // (B)
  std::copy(samples.begin(), samples.end(), sample_indices.data<int64_t>());
  return {rows.inputs, rows.targets, epoch, index, sample_indices};
}

void Loader::worker_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    changed_.wait(lock, [&] {
      return stopping_ || (started_ && next_to_claim_ < end_batch_ && next_to_claim_ < next_to_deliver_ + options_.prefetch);
    });
    if (stopping_) return;
    const int64_t index = next_to_claim_++, epoch = epoch_;  // a slot
    const int64_t batch_index = first_ + index * stride_;
    const uint64_t generation = generation_;
    std::shared_ptr<const std::vector<int64_t>> order = order_;
    lock.unlock();
    Batch batch;
    std::exception_ptr error;
    try {
      batch = assemble(*order, epoch, batch_index);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    if (generation != generation_) continue;  // start_epoch() abandoned this work
    if (error) failed_.emplace(index, error);
    else ready_.emplace(index, std::move(batch));
    changed_.notify_all();
  }
}

// ---- TokenLoader ----

TokenLoader::TokenLoader(Tensor tokens, int64_t batch, int64_t context, uint64_t seed, int prefetch)
    : batch_(batch), context_(context), seed_(seed), prefetch_(std::max(prefetch, 0)) {
  FRUGAL_CHECK(tokens.defined() && tokens.rank() == 1 && !dtype_is_float(tokens.dtype()),
               "TokenLoader needs integer tokens (N)");
  if (batch <= 0 || context <= 0)
    throw InputError("batch and context must be positive, got batch " + std::to_string(batch) + ", context " +
                     std::to_string(context));
  if (tokens.size(0) < context + 1)
    throw InputError("the token split has " + std::to_string(tokens.size(0)) + " tokens; a window of context " +
                     std::to_string(context) + " needs at least " + std::to_string(context + 1));
  tokens_ = tokens.to(DType::i64).contiguous();
  if (prefetch_ > 0) worker_ = std::thread([this] { worker_loop(); });
}

TokenLoader::~TokenLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (worker_.joinable()) worker_.join();
}

Batch TokenLoader::make_batch(int64_t step) const {
  const int64_t n = tokens_.size(0), t_len = context_;
  const int64_t* tokens = tokens_.data<int64_t>();
  Batch batch;
  batch.inputs = Tensor::empty({batch_, t_len}, DType::i64);   // (B, T)
  batch.targets = Tensor::empty({batch_, t_len}, DType::i64);  // (B, T)
  int64_t* inputs = batch.inputs.data<int64_t>();
  int64_t* targets = batch.targets.data<int64_t>();
  Rng rng(seed_, uint64_t(step), RandomPurpose::sample);
  for (int64_t b = 0; b < batch_; ++b) {
    const int64_t start = int64_t(rng.below(uint64_t(n - t_len)));  // window [start, start + T] inclusive
    std::copy(tokens + start, tokens + start + t_len, inputs + b * t_len);
    std::copy(tokens + start + 1, tokens + start + t_len + 1, targets + b * t_len);
  }
  batch.epoch = 0;
  batch.index = step;
  return batch;
}

Batch TokenLoader::next_for_step(int64_t step) {
  std::unique_lock<std::mutex> lock(mutex_);
  Timer timer;
  want_first_ = step + 1;
  want_last_ = step + prefetch_;
  std::optional<Batch> batch;
  while (!batch) {
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
    if (auto it = ready_.find(step); it != ready_.end()) {
      batch = std::move(it->second);
      ready_.erase(it);
    } else if (std::find(in_progress_.begin(), in_progress_.end(), step) != in_progress_.end()) {
      changed_.wait(lock);
    } else {  // not prefetched (first step, or a jump): build it here
      lock.unlock();
      batch = make_batch(step);
      lock.lock();
    }
  }
  std::erase_if(ready_, [&](const auto& entry) { return entry.first < want_first_ || entry.first > want_last_; });
  wait_total_ += timer.seconds();
  lock.unlock();
  changed_.notify_all();
  return std::move(*batch);
}

double TokenLoader::data_wait_seconds() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return wait_total_;
}

void TokenLoader::worker_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    int64_t step = 0;
    auto find_work = [&] {
      for (int64_t s = want_first_; s <= want_last_; ++s)
        if (!ready_.count(s) && std::find(in_progress_.begin(), in_progress_.end(), s) == in_progress_.end()) {
          step = s;
          return true;
        }
      return false;
    };
    changed_.wait(lock, [&] { return stopping_ || find_work(); });
    if (stopping_) return;
    in_progress_.push_back(step);
    lock.unlock();
    std::optional<Batch> batch;
    std::exception_ptr error;
    try {
      batch = make_batch(step);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    std::erase(in_progress_, step);
    if (error) error_ = error;
    else if (step >= want_first_ - 1 && step <= want_last_) ready_.emplace(step, std::move(*batch));
    changed_.notify_all();
  }
}

std::vector<std::pair<Tensor, Tensor>> sequential_windows(const Tensor& tokens, int64_t batch, int64_t context) {
  FRUGAL_CHECK(tokens.defined() && tokens.rank() == 1 && !dtype_is_float(tokens.dtype()),
               "sequential_windows needs integer tokens (N)");
  if (batch <= 0 || context <= 0)
    throw InputError("batch and context must be positive, got batch " + std::to_string(batch) + ", context " +
                     std::to_string(context));
  const int64_t n = tokens.size(0);
  const int64_t windows = (n - 1) / context;
  if (n < 1 || windows == 0)
    throw InputError("the token split has " + std::to_string(n) + " tokens; a window of context " +
                     std::to_string(context) + " needs at least " + std::to_string(context + 1));
  Tensor packed = tokens.to(DType::i64).contiguous();
  const int64_t* source = packed.data<int64_t>();
  std::vector<std::pair<Tensor, Tensor>> out;
  for (int64_t first = 0; first < windows; first += batch) {
    const int64_t rows = std::min(batch, windows - first);
    Tensor inputs = Tensor::empty({rows, context}, DType::i64);   // (b, T)
    Tensor targets = Tensor::empty({rows, context}, DType::i64);  // (b, T)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t start = (first + r) * context;
      std::copy(source + start, source + start + context, inputs.data<int64_t>() + r * context);
      std::copy(source + start + 1, source + start + context + 1, targets.data<int64_t>() + r * context);
    }
    out.emplace_back(inputs, targets);
  }
  return out;
}

}  // namespace frugal::data
