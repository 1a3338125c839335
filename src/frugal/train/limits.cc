// Thread count and model memory checked against the machine (see limits.h).
#include "frugal/train/limits.h"

#include <algorithm>
#include <numeric>

#include "frugal/base/error.h"
#include "frugal/base/machine.h"
#include "frugal/base/parallel.h"

namespace frugal::train {

int capped_threads(const JobSpec& job, std::string* warning) {
  if (warning) warning->clear();
  const int requested = job.run.threads, cores = available_cores();
  if (requested <= cores || job.run.threads_force) return requested;
  // Threads beyond the cores take turns on them: every parallel region waits for the slowest, and
  // a step gets many times slower (16 threads on 2 cores: 9x).
  if (warning)
    *warning = job.path + ": [run] threads = " + std::to_string(requested) + " is more than the " + std::to_string(cores) +
               " cores available to this process; using " + std::to_string(cores) +
               " (set run.threads_force = true to use " + std::to_string(requested) + " anyway)";
  return cores;
}

void apply_threads(const JobSpec& job, FILE* log) {
  std::string warning;
  const int threads = capped_threads(job, &warning);
  if (!warning.empty()) {
    std::fflush(stdout);
    std::fprintf(log, "frugal: warning: %s\n", warning.c_str());
  }
  set_num_threads(threads);
}

namespace {

// Outputs an MLP keeps for backward per sample: each Linear's output and its activation's.
int64_t mlp_activation_bytes(const nn::MlpConfig& config, int64_t batch) {
  const int64_t hidden = std::accumulate(config.hidden.begin(), config.hidden.end(), int64_t(0));
  return batch * (config.inputs + 2 * hidden + config.outputs) * int64_t(sizeof(float));
}

}  // namespace

ModelMemory estimate_model_memory(const JobSpec& job, const ModelPlan& plan, bool training) {
  ModelMemory m;
  if (const auto* mlp = std::get_if<nn::MlpConfig>(&plan.config)) m.parameters = nn::count_parameters(*mlp);
  else if (const auto* cnn = std::get_if<nn::CnnConfig>(&plan.config)) m.parameters = nn::count_parameters(*cnn);
  else if (const auto* gpt = std::get_if<nn::GptConfig>(&plan.config)) m.parameters = nn::count_parameters(*gpt);
  else return m;
  const int64_t f32 = int64_t(sizeof(float));
  m.weight_bytes = m.parameters * f32;
  if (!training) return m;
  // A [lora] run trains small adapters only: the base weights get no gradient and no state.
  const int64_t trainable = job.lora.enabled ? 0 : m.parameters;
  m.gradient_bytes = trainable * f32;
  const int64_t moments = job.optim.kind == OptimKind::adamw ? 2 : job.optim.momentum > 0 ? 1 : 0;
  m.optimizer_bytes = moments * trainable * f32;
  if (const auto* mlp = std::get_if<nn::MlpConfig>(&plan.config))
    m.activation_bytes = mlp_activation_bytes(*mlp, job.train.batch_size);
  else m.activation_bytes = plan.estimated_activation_bytes;
  return m;
}

void check_model_memory(const JobSpec& job, const ModelPlan& plan, bool training) {
  const ModelMemory need = estimate_model_memory(job, plan, training);
  const MachineMemory machine = machine_memory();
  if (need.total() == 0 || machine.available <= 0 || need.total() <= machine.available) return;
  std::string what = "parameters";
  if (need.gradient_bytes > 0)
    what += need.optimizer_bytes == 0 ? " and gradients"
            : job.optim.kind == OptimKind::adamw ? ", gradients and Adam state" : ", gradients and momentum";
  std::string message = job.path + ": [model] needs ~" + bytes_text(need.total() - need.activation_bytes) + " for " +
                        what + " (" + std::to_string(need.parameters) + " parameters, f32)";
  if (need.activation_bytes > 0)
    message += " and ~" + bytes_text(need.activation_bytes) + " for the activations of a batch of " +
               std::to_string(job.train.batch_size);
  message += "; this machine has " + bytes_text(machine.available) + " available (of " + bytes_text(machine.total) +
             (machine.cgroup_limited ? ", its cgroup's limit" : "") + "): make the model smaller";
  if (need.activation_bytes > 0) message += " or the batch";
  throw InputError(message);
}

}  // namespace frugal::train
