// Job keys of the data-efficiency techniques (train/sampling/) and of packed data: [data] dedup,
// path, shuffle_buffer and workers; [data_pruning], [seq_warmup], [curriculum], [selective_backprop],
// [importance_sampling]; and what they need of the rest of the job. Read by job.cc.
#include "frugal/train/job_sampling.h"

#include <algorithm>
#include <utility>

#include "frugal/base/error.h"
#include "frugal/base/format.h"

namespace frugal::train {

using job_file::Section;

namespace {

void parse_data_pruning(Section& s, DataPruningSpec& p, const DataSpec& data) {
  p.enabled = true;
  if (!s.has("scores")) s.fail_key("scores", "missing; the per-sample score file written by frugal data score");
  p.scores = s.get_string("scores", "");
  p.score = s.get_string("score", "el2n", {"el2n", "grand", "loss", "forgetting"});
  p.fraction = s.get_double("fraction", 0.6, 0.0, 1.0, /*min_open=*/true);
  p.keep = s.get_enum<DataPruningKeep>("keep", DataPruningKeep::hardest,
                                       {{"hardest", DataPruningKeep::hardest}, {"easiest", DataPruningKeep::easiest},
                                        {"balanced", DataPruningKeep::balanced}, {"random", DataPruningKeep::random}});
  if (data.kind == DataKind::text) s.fail_key("scores", "[data_pruning] is for classification data, not text");
}

// [seq_warmup], [curriculum], [selective_backprop], [importance_sampling]: each present section
// switches its technique on (train/sampling/).
void parse_seq_warmup(Section& s, SeqWarmupSpec& w, const ModelSpec& model, const std::string& path) {
  w.enabled = true;
  w.multiple = s.get_int("multiple", 8, 1, 1 << 20);
  w.start = s.get_int("start", std::max<int64_t>(w.multiple, 16), 1, 1 << 20);
  w.steps = s.get_int("steps", -1, 1, INT64_MAX / 4);
  w.fraction = s.get_double("fraction", 0.25, 0.0, 1.0, /*min_open=*/true);
  w.reshape = s.get_string("mode", "truncate", {"truncate", "reshape"}) == "reshape";
  s.check_unknown();
  if (model.kind != ModelKind::gpt)
    throw InputError(path + ": [seq_warmup] is for [model] kind = \"gpt\" (it shortens the text windows)");
  if (w.start % w.multiple != 0)
    s.fail_key("start", "expected a multiple of multiple = " + std::to_string(w.multiple) + ", got " +
                            std::to_string(w.start));
  if (w.start > model.gpt.context)
    s.fail_key("start", "expected at most [model] context = " + std::to_string(model.gpt.context) + ", got " +
                            std::to_string(w.start));
}

void parse_curriculum(Section& s, CurriculumSpec& c, const std::string& path) {
  c.enabled = true;
  c.scores = s.get_string("scores", "");
  c.score = s.get_string("score", c.scores.empty() ? "self" : "el2n");
  if (c.score.empty()) s.fail_key("score", "expected a score kind of the file (el2n, grand, loss, ...) or \"self\"");
  c.self_epochs = s.get_int("self_epochs", 1, 1, 1 << 20);
  c.pacing = s.get_enum("pacing", CurriculumPacing::linear,
                        {{"linear", CurriculumPacing::linear}, {"root", CurriculumPacing::root}, {"step", CurriculumPacing::step}});
  c.start = s.get_double("start", 0.2, -1e300, 1e300);
  if (!(c.start > 0 && c.start <= 1))
    s.fail_key("start", "expected a fraction in (0, 1] (the pool's first share of the data), got " + number_text(c.start));
  c.full_at = s.get_double("full_at", 0.5, -1e300, 1e300);
  if (!(c.full_at > 0 && c.full_at <= 1))
    s.fail_key("full_at", "expected a fraction in (0, 1] of the run's steps, got " + number_text(c.full_at));
  c.stages = s.get_int("stages", 4, 1, 1 << 20);
  c.order = s.get_enum("order", CurriculumOrder::easy,
                       {{"easy", CurriculumOrder::easy}, {"anti", CurriculumOrder::anti}, {"random", CurriculumOrder::random}});
  s.check_unknown();
  if (c.score == "self" && !c.scores.empty())
    s.fail_key("score", "\"self\" uses the model's own loss: leave scores out, or name a kind of " + c.scores);
  if (c.score != "self" && c.scores.empty())
    s.fail_key("scores", "expected a score file (frugal data score) for score = \"" + c.score + "\", or score = \"self\"");
  (void)path;
}

void parse_selective_backprop(Section& s, SelectiveBackpropSpec& b) {
  b.enabled = true;
  b.keep = s.get_double("keep", 0.5, -1e300, 1e300);
  if (!(b.keep > 0 && b.keep <= 1))
    s.fail_key("keep", "expected a fraction in (0, 1] (the share of each batch trained on), got " + number_text(b.keep));
  b.start_step = s.get_int("start_step", 0, 0, INT64_MAX / 4);
  s.check_unknown();
}

void parse_importance_sampling(Section& s, ImportanceSamplingSpec& i) {
  i.enabled = true;
  i.smoothing = s.get_double("smoothing", 0.5, 0.0, 1e9);
  i.start_epoch = s.get_int("start_epoch", 1, 1, 1 << 20);
  i.reweight = s.get_bool("reweight", false);
  s.check_unknown();
}

}  // namespace

// [data] dedup keys: text only.
void parse_data_dedup(Section& s, DataSpec& d) {
  d.dedup = s.get_string("dedup", "", {"exact", "near"});
  d.dedup_unit = s.get_string("dedup_unit", "line", {"line", "paragraph"});
  d.dedup_threshold = s.get_double("dedup_threshold", 0.8, 0.0, 1.0, /*min_open=*/true);
  d.dedup_shingle = s.get_int("dedup_shingle", 5, 1, 64);
  if (d.kind != DataKind::text)
    for (const char* key : {"dedup", "dedup_unit", "dedup_threshold", "dedup_shingle"})
      if (s.has(key)) s.fail_key(key, "applies to text data (kind = \"text\"); classification rows are not deduplicated");
  if (d.dedup != "near")
    for (const char* key : {"dedup_threshold", "dedup_shingle"})
      if (s.has(key)) s.fail_key(key, "is for dedup = \"near\"");
}

// [data] path, shuffle_buffer, workers (kind = "packed"; data/packed.h).
// The splits, class selection and limits of a pack were applied when it was written (`frugal data
// pack` reads the job that describes the raw files), so those keys are refused here, by name.
void parse_data_packed(Section& s, DataSpec& d) {
  d.path = s.get_string("path", "");
  d.shuffle_buffer = s.get_int("shuffle_buffer", 8192, 1, int64_t(1) << 30);
  d.workers = int(s.get_int("workers", 1, 1, 64));
  if (d.kind != DataKind::packed) {
    for (const char* key : {"path", "shuffle_buffer"})
      if (s.has(key)) s.fail_key(key, "applies to packed data (kind = \"packed\")");
    return;
  }
  for (const char* key : {"train_images", "train_labels", "test_images", "test_labels", "train", "val", "test",
                          "train_targets", "val_targets", "test_targets", "label_column", "label_index", "header",
                          "skip_lines", "comment", "labels", "class_count", "source", "val_fraction", "test_fraction",
                          "classes", "train_limit", "per_class", "max_bytes"})
    if (s.has(key))
      s.fail_key(key, "is applied when the pack is written: set it in the job `frugal data pack` reads, not with "
                      "kind = \"packed\" (which takes path, normalize, crop_padding, flip, prefetch, shuffle_buffer, workers)");
}

// The sections above, and what they need of the rest of the job.
void parse_data_efficiency(toml::table& root, JobSpec& job, const std::string& path,
                           const std::set<std::string>& overridden) {
  auto present = [&](const char* name) -> toml::table* { return root[name].as_table(); };
  if (toml::table* t = present("data_pruning")) {
    Section s(path, "data_pruning", t, &overridden);
    parse_data_pruning(s, job.data_pruning, job.data);
    s.check_unknown();
  }
  if (toml::table* t = present("seq_warmup")) {
    Section s(path, "seq_warmup", t, &overridden);
    parse_seq_warmup(s, job.seq_warmup, job.model, path);
  }
  if (toml::table* t = present("curriculum")) {
    Section s(path, "curriculum", t, &overridden);
    parse_curriculum(s, job.curriculum, path);
  }
  if (toml::table* t = present("selective_backprop")) {
    Section s(path, "selective_backprop", t, &overridden);
    parse_selective_backprop(s, job.selective_backprop);
  }
  if (toml::table* t = present("importance_sampling")) {
    Section s(path, "importance_sampling", t, &overridden);
    parse_importance_sampling(s, job.importance_sampling);
  }
  const bool text = job.data.kind == DataKind::text;
  for (auto [name, on] : {std::pair{"curriculum", job.curriculum.enabled},
                          std::pair{"selective_backprop", job.selective_backprop.enabled},
                          std::pair{"importance_sampling", job.importance_sampling.enabled}})
    if (on && text)
      throw InputError(path + ": [" + name + "] is for classification data (idx, csv, npy), not [data] kind = \"text\"");
  if (job.curriculum.enabled && job.importance_sampling.enabled)
    throw InputError(path + ": [curriculum] and [importance_sampling] both choose each epoch's samples: use one");
  if (job.data.kind == DataKind::packed) {  // these read the training inputs as one tensor (or fingerprint it)
    const char* in_memory = job.distill                      ? "[distill]"
                            : job.data_pruning.enabled       ? "[data_pruning]"
                            : !job.curriculum.scores.empty() ? "[curriculum] scores"
                                                             : nullptr;
    if (in_memory)
      throw InputError(path + ": " + in_memory + " needs the training split in memory; packed data streams it (use the "
                       "job that reads the raw files)");
  }
}


}  // namespace frugal::train
