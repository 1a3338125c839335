// The techniques that choose which data a run trains on, as the job switches them on, in one place
// (issue 21): [seq_warmup], [curriculum], [selective_backprop], [importance_sampling]; one file each
// in this folder. Adding one: its file, its line in make_sampling_techniques, its job keys in job.cc
// and the README's job-file reference. Also the small per-row helpers they share.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "frugal/data/loader.h"
#include "frugal/train/data_setup.h"
#include "frugal/train/job.h"
#include "frugal/train/technique.h"

namespace frugal::train {

// Made once the data is prepared and before anything is written, so their input errors (a score file
// for another data set) refuse the job.
std::vector<std::unique_ptr<Technique>> make_sampling_techniques(const JobSpec& job, const PreparedData& data);

// Each row's cross-entropy (natural log) of classification logits (B, C) against targets i64 (B),
// computed in double from the values (no autograd, any float dtype): what selective backprop ranks
// and importance sampling / the self-scored curriculum record. Label smoothing is not applied.
std::vector<double> per_row_cross_entropy(const Tensor& logits, const Tensor& targets);

// The batch made of `rows` of `batch` (in that order): inputs, targets and sample_indices copied.
data::Batch take_rows(const data::Batch& batch, const std::vector<int64_t>& rows);

}  // namespace frugal::train
