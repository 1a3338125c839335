// The compress techniques a job switches on (make_compress_techniques, compress.h).
#include "frugal/train/compress/compress.h"

#include "frugal/train/compress/freeze.h"
#include "frugal/train/compress/init.h"
#include "frugal/train/compress/prune.h"
#include "frugal/train/compress/qat.h"

namespace frugal::train {

std::vector<std::unique_ptr<Technique>> make_compress_techniques(const JobSpec& job, nn::Module& model, bool fresh_run,
                                                                 const data::CharVocab* vocab) {
  std::vector<std::unique_ptr<Technique>> out;
  if (!job.init.from.empty()) {
    std::optional<InitReport> loaded;
    if (fresh_run) loaded = load_init_weights(job.init, model, job.run.store, job.path, vocab);
    out.push_back(std::make_unique<InitFromWeights>(std::move(loaded)));
  }
  if (!job.freeze.params.empty()) out.push_back(std::make_unique<Freezing>(job.freeze, model, job.path));
  // After [init]: the masks are chosen on the weights the run starts from.
  if (job.prune.enabled) out.push_back(std::make_unique<Pruning>(job, model));
  if (job.quantize.aware)
    out.push_back(std::make_unique<QuantizationAware>(job.quantize, model, vocab != nullptr, job.path));
  return out;
}

}  // namespace frugal::train
