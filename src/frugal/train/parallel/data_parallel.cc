// Data-parallel training (data_parallel.h): the gradient sum, BatchNorm's running statistics and the
// samples seen made the world's at each step, and the ranks' stops agreed.
#include "frugal/train/parallel/data_parallel.h"

#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

#include "frugal/base/error.h"

namespace frugal::train {

DataParallel::DataParallel(const DistSpec& spec, dist::Communicator& world)
    : spec_(spec), world_(world), compressor_(make_compressor(spec)) {}

DataParallel::~DataParallel() = default;

EventSet DataParallel::events() const {
  return event_set({Event::run_start, Event::batch_loaded, Event::after_backward, Event::before_optimizer_step,
                    Event::after_optimizer_step, Event::fit_end, Event::run_end});
}

void DataParallel::on(Event event, TrainState& state) {
  switch (event) {
    case Event::run_start:
      for (const Tensor& p : state.params)
        if (p.requires_grad()) params_.push_back(p);
      if (!compressor_) exact_ = std::make_unique<ExactGradientSum>(params_, world_, int64_t(spec_.bucket_mib * 1048576));
      // After load_state: local SGD puts back this rank's own parameters and optimizer state.
      if (compressor_) compressor_->start(params_, state.optimizer, world_);
      if (state.loader) state.loader->set_stride(world_.rank(), world_.size());
      // BatchNorm counts its training forwards in num_batches_tracked (module code, not the
      // captured update): each rank counts its own micro-batches, and the step adds the others'.
      for (const auto& [buffer_name, buffer] : state.model.named_buffers())
        if (buffer_name.size() >= 19 && buffer_name.compare(buffer_name.size() - 19, 19, "num_batches_tracked") == 0 &&
            buffer.dtype() == DType::i64 && buffer.numel() == 1)
          batch_counters_.push_back(buffer);
      samples_at_step_start_ = state.samples_seen;
      step_first_micro_ = state.micro;
      start_cost(state);
      break;
    case Event::batch_loaded: {
      // The loop set state.micro to this micro-batch's index in the run: rank + round * N in the step.
      const int64_t round = (state.micro - step_first_micro_ - world_.rank()) / world_.size();
      records_.emplace_back();
      capture_.emplace([this](RunningStatsUpdate u) { records_.back().stats.push_back(std::move(u)); });
      if (exact_) exact_->begin_micro_batch(round);
      break;
    }
    case Event::after_backward:
      capture_.reset();
      records_.back().samples = state.batch.inputs.size(0);
      if (exact_) exact_->end_micro_batch();
      break;
    case Event::before_optimizer_step:
      finish_step(state);
      break;
    case Event::after_optimizer_step:
      if (compressor_) compressor_->after_step(params_, state.optimizer, world_, state.step - 1);
      samples_at_step_start_ = state.samples_seen;
      step_first_micro_ = state.micro;
      break;
    case Event::fit_end:  // the training's cost, before the summary is made
      gather_cost();
      break;
    case Event::run_end:
      bill_world(state);
      break;
    default:
      break;
  }
}

void DataParallel::finish_step(TrainState& state) {
  if (exact_) {
    exact_->finish_step(state.micro_batches);
  } else if (compressor_->reduces_gradients(state.step)) {
    std::vector<Tensor> grads;
    for (const Tensor& p : params_) grads.push_back(p.grad());
    compressor_->reduce(grads, world_, state.step);
    for (size_t i = 0; i < params_.size(); ++i) params_[i].set_grad(grads[i]);
  }
  exchange_step_records(state);
  records_.clear();
}

// Each rank's micro-batches of the step as numbers: samples, then per BatchNorm update its count,
// mean and var; all ranks gather them and apply the updates in the order one process makes them.
void DataParallel::exchange_step_records(TrainState& state) {
  const int N = world_.size();
  const int64_t m = state.micro_batches, rounds = (m + N - 1) / N;
  if (stats_targets_.empty() && !records_.empty()) stats_targets_ = records_.front().stats;
  int64_t per_micro = 1;
  for (const RunningStatsUpdate& u : stats_targets_) per_micro += 1 + 2 * u.mean.numel();
  std::vector<double> mine(size_t(rounds * per_micro), 0.0), all(size_t(N * rounds * per_micro));
  for (size_t t = 0; t < records_.size(); ++t) {
    const MicroRecord& r = records_[t];
    FRUGAL_CHECK(r.stats.size() == stats_targets_.size(), "a micro-batch made " + std::to_string(r.stats.size()) +
                                                              " BatchNorm updates, the first made " +
                                                              std::to_string(stats_targets_.size()));
    double* at = &mine[t * size_t(per_micro)];
    *at++ = double(r.samples);
    for (const RunningStatsUpdate& u : r.stats) {
      *at++ = double(u.count);
      for (const Tensor* v : {&u.mean, &u.var})
        for (double x : v->to_vector<double>()) *at++ = x;
    }
  }
  world_.allgather(mine.data(), mine.size() * sizeof(double), all.data());
  int64_t samples = 0;
  for (int64_t a = 0; a < m; ++a) {
    const double* at = &all[size_t(((a % N) * rounds + a / N) * per_micro)];
    samples += int64_t(*at++);
    for (const RunningStatsUpdate& target : stats_targets_) {
      const int64_t C = target.mean.numel();
      RunningStatsUpdate u = target;
      u.count = int64_t(*at++);
      u.mean = Tensor::from_vector(std::vector<double>(at, at + C), {C});
      u.var = Tensor::from_vector(std::vector<double>(at + C, at + 2 * C), {C});
      at += 2 * C;
      apply_running_stats(u);
    }
  }
  state.samples_seen = samples_at_step_start_ + samples;
  const int64_t others = m - int64_t(records_.size());
  for (Tensor& counter : batch_counters_) counter.data<int64_t>()[0] += others;
}

void DataParallel::start_cost(TrainState& state) {
  meter_ = &state.meter;
  // Every rank's host name, in rank order (fixed-size records: a collective of equal sizes).
  char host_name[64] = {};
  std::strncpy(host_name, world_.host().c_str(), sizeof(host_name) - 1);
  std::vector<char> all(sizeof(host_name) * size_t(world_.size()));
  world_.allgather(host_name, sizeof(host_name), all.data());
  for (int r = 0; r < world_.size(); ++r) hosts_.push_back(std::string(&all[size_t(r) * sizeof(host_name)]));
  std::vector<std::string> distinct;
  for (int r = 0; r < world_.size(); ++r) {
    if (std::find(distinct.begin(), distinct.end(), hosts_[size_t(r)]) == distinct.end())
      distinct.push_back(hosts_[size_t(r)]);
    if (r < world_.rank() && hosts_[size_t(r)] == hosts_[size_t(world_.rank())]) first_on_host_ = false;
  }
  distinct_hosts_ = int(distinct.size());
  const int64_t grad_accum = state.job.train.grad_accum;
  state.progress.line("data parallel: " + std::to_string(world_.size()) + " ranks (" + world_.backend() + ") on " +
                      std::to_string(distinct_hosts_) + (distinct_hosts_ == 1 ? " host" : " hosts") + ", " +
                      std::to_string(grad_accum / world_.size()) + " of the step's " + std::to_string(grad_accum) +
                      " micro-batches per rank; gradients " +
                      (compressor_ ? std::string("compressed: ") + name_of(spec_.compression) : "summed exactly") +
                      "; rank 0 writes " + state.out_dir);
  meter_->sample();
  last_energy_j_ = meter_->own_energy_j();
  last_wall_s_ = meter_->wall_s();
  last_flops_[0] = meter_->flops_forward(), last_flops_[1] = meter_->flops_backward(), last_flops_[2] = meter_->flops_eval();
}

// Each rank's energy since the last gather: a RAPL reading covers its whole host, so only the first
// rank on a host counts it; an estimate (idle + load x utilization) counts the host's idle power
// once, so the others count only their load.
void DataParallel::gather_cost() const {
  meter_->sample();
  const double energy = meter_->own_energy_j(), wall = meter_->wall_s();
  const double flops[3] = {meter_->flops_forward(), meter_->flops_backward(), meter_->flops_eval()};
  double mine[4] = {0, 0, 0, 0};
  if (world_.rank() != 0) {
    double joules = energy - last_energy_j_;
    if (meter_->own_energy_source() == "measured") joules = first_on_host_ ? joules : 0.0;
    else if (!first_on_host_) joules = std::max(0.0, joules - meter_->priced().instance.idle_w * (wall - last_wall_s_));
    mine[0] = joules;
    for (int i = 0; i < 3; ++i) mine[1 + i] = flops[i] - last_flops_[i];
  }
  dist::allreduce_sum(world_, mine, 4);
  if (world_.rank() == 0) meter_->add_other_processes(mine[0], mine[1], mine[2], mine[3]);
  last_energy_j_ = energy, last_wall_s_ = wall;
  for (int i = 0; i < 3; ++i) last_flops_[i] = flops[i];
}

// The summary's bill for the world: one instance per host, and the traffic between hosts.
void DataParallel::bill_world(TrainState& state) const {
  const dist::Traffic& t = world_.traffic();
  const std::vector<double> sent = dist::allgather_values(world_, double(t.bytes_sent));
  double total = 0;
  for (double v : sent) total += v;
  cost::CostSummary& c = state.summary->cost;
  const double per_gb = meter_->priced().instance.network_usd_per_gb;
  const double network_usd = distinct_hosts_ > 1 ? total / 1e9 * per_gb : 0.0;
  if (distinct_hosts_ > 1) c.usd.value *= distinct_hosts_;
  c.usd.value += network_usd;
  // The FLOPs are the world's (gather_cost); the peak was one process's on its threads.
  if (c.mfu) c.mfu = *c.mfu / double(world_.size());
  state.summary->techniques[name()] = {
      {"world_size", world_.size()},
      {"backend", world_.backend()},
      {"hosts", hosts_},
      {"instances_billed", distinct_hosts_},
      {"compression", name_of(spec_.compression)},
      {"bytes_sent_rank0", t.bytes_sent},
      {"bytes_sent_total", total},
      {"bytes_sent_per_step", state.step > 0 ? double(t.bytes_sent) / double(state.step) : 0.0},
      {"network_usd", network_usd},
      {"network_usd_per_gb", per_gb},
      {"comm_wait_s_rank0", t.wait_seconds},
      {"comm_share_rank0", c.wall_s > 0 ? t.wait_seconds / c.wall_s : 0.0},
      {"buckets", exact_ ? exact_->buckets() : 0},
  };
}

void DataParallel::save_state(TechniqueState& out) const {
  gather_cost();  // before the loop saves the meters into the checkpoint
  if (compressor_) compressor_->save_state(out, world_);
}

void DataParallel::load_state(const TechniqueState& in) {
  if (compressor_) compressor_->load_state(in, world_);
}

void WorldStop::on(Event, TrainState& state) {
  const int N = world_.size();
  std::vector<uint8_t> asked(static_cast<size_t>(N));
  const uint8_t mine = state.stop ? 1 : 0;
  world_.allgather(&mine, 1, asked.data());
  int from = -1;
  for (int r = 0; r < N && from < 0; ++r)
    if (asked[size_t(r)]) from = r;
  if (from < 0) return;
  std::string text;
  if (world_.rank() == from) {
    const StopRequest& s = *state.stop;
    text = nlohmann::json{{"status", s.status},       {"reason", s.reason},     {"exit_code", s.exit_code},
                          {"checkpoint", s.checkpoint}, {"message", s.message}}.dump();
  }
  const nlohmann::json j = nlohmann::json::parse(dist::broadcast_text(world_, text, from));
  StopRequest agreed;
  agreed.status = j.at("status");
  agreed.reason = j.at("reason");
  agreed.exit_code = j.at("exit_code");
  agreed.checkpoint = j.at("checkpoint");
  agreed.message = j.at("message");
  state.stop = agreed;
}

}  // namespace frugal::train
