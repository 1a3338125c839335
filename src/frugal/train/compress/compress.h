// The techniques that start from or shrink a model, as the job switches them on, in one place:
// [init] (weights loaded into a fresh run's model), [freeze] (no gradient for some parameters,
// gradual unfreezing), [prune] (masks on a schedule; a structured-pruned model compacted) and
// [quantize] aware = true (quantization-aware training, qat.h). One file each in this folder;
// adding one: its file, its line in make_compress_techniques, its job keys in job.cc and the
// README's job-file reference.
#pragma once

#include <memory>
#include <vector>

#include "frugal/data/readers.h"
#include "frugal/nn/module.h"
#include "frugal/train/job.h"
#include "frugal/train/technique.h"

namespace frugal::train {

// Made once the model is built and before the optimizer is: these techniques need the model (its
// tensor names to check patterns against, its weights to load or wrap), and their input errors must
// come before anything is written. fresh_run: no checkpoint to go on from, so [init] loads its file
// into `model` here (a resumed run's weights come from the checkpoint). vocab: the job's (text
// data), nullptr otherwise.
std::vector<std::unique_ptr<Technique>> make_compress_techniques(const JobSpec& job, nn::Module& model, bool fresh_run,
                                                                 const data::CharVocab* vocab);

}  // namespace frugal::train
