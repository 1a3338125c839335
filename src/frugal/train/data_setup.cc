#include "frugal/train/data_setup.h"

#include "frugal/data/dedup.h"

#include <algorithm>
#include <set>

#include "frugal/base/error.h"
#include "frugal/data/file_bytes.h"
#include "frugal/data/packed.h"
#include "frugal/train/job_paths.h"

namespace frugal::train {

namespace {

// One classification file as read, with where each sample came from, so a label error names the
// file and its row before any shuffle (CSV: the file's line; IDX and NPY: the 1-based sample number).
struct FileSplit {
  data::Dataset set;
  std::string file;                // the labels' file
  std::vector<int64_t> lines;      // csv: the line of each sample; else empty
  std::vector<std::string> names;  // labels = "names": this file's sorted names (targets index them)
  std::string row(size_t i) const {
    return file + (lines.empty() ? ": row " + std::to_string(i + 1) : ": line " + std::to_string(lines[i]));
  }
};

FileSplit read_split(const JobSpec& job, const std::string& inputs, const std::string& targets) {
  const DataSpec& d = job.data;
  require_job_file(job, inputs);
  if (d.kind == DataKind::csv) {
    data::CsvOptions options;
    options.label_column = d.label_column;
    options.label_index = d.label_index;
    options.header = d.header == "yes" ? data::CsvOptions::Header::yes
                     : d.header == "no" ? data::CsvOptions::Header::no
                                        : data::CsvOptions::Header::detect;
    options.label_names = d.labels == "names";
    options.skip_lines = d.skip_lines;
    options.comment = d.comment;
    data::CsvTable table = data::read_csv(inputs, options);
    return {{table.features, table.labels}, inputs, table.lines, table.label_names};
  }
  // npy
  require_job_file(job, targets);
  Tensor x = data::read_npy(inputs).to(DType::f32).contiguous();
  Tensor y = data::read_npy(targets);
  if (dtype_is_float(y.dtype())) throw InputError(targets + ": expected integer class labels, got floats");
  y = y.to(DType::i64).contiguous();
  if (y.rank() != 1 || x.rank() < 1 || x.size(0) != y.size(0))
    throw InputError(inputs + " and " + targets + ": " + shape_str(x.shape()) + " inputs with " +
                     shape_str(y.shape()) + " targets; expected one target per input row");
  return {{x, y}, targets, {}, {}};
}

// labels = "names": one mapping over all splits (sorted, so no split's row order can permute it);
// each split's targets are renumbered into it.
std::vector<std::string> merge_names(std::vector<FileSplit*> splits) {
  std::set<std::string> all;
  for (FileSplit* split : splits) all.insert(split->names.begin(), split->names.end());
  std::vector<std::string> names(all.begin(), all.end());
  for (FileSplit* split : splits) {
    if (!split->set.targets.defined()) continue;
    std::vector<int64_t> to_global;
    for (const std::string& name : split->names)
      to_global.push_back(std::lower_bound(names.begin(), names.end(), name) - names.begin());
    int64_t* targets = split->set.targets.data<int64_t>();
    for (int64_t i = 0; i < split->set.size(); ++i) targets[i] = to_global[size_t(targets[i])];
  }
  return names;
}

// labels = "integer": K = class_count, else the largest training label + 1, refused when it is more
// than kMaxInferredClasses or than the training samples (one stray large label, not a class scheme).
constexpr int64_t kMaxInferredClasses = 100000;

int64_t integer_classes(const FileSplit& train, const DataSpec& d, const std::string& job_path) {
  if (d.class_count > 0) return d.class_count;
  std::vector<int64_t> labels = train.set.targets.to_vector<int64_t>();
  size_t at = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0)
      throw InputError(train.row(i) + ": label " + std::to_string(labels[i]) + " is not a class index (0, 1, 2, ...)");
    if (labels[i] > labels[at]) at = i;
  }
  const int64_t classes = labels[at] + 1, samples = int64_t(labels.size());
  if (classes > kMaxInferredClasses || classes > samples)
    throw InputError(train.row(at) + ": label " + std::to_string(labels[at]) + " would make " +
                     std::to_string(classes) + " classes (labels are class indices 0..K-1) from " +
                     std::to_string(samples) + " training samples; if that is meant, set [data] class_count in " +
                     job_path);
  return classes;
}

void check_labels(const FileSplit& split, int64_t classes, const std::string& scheme) {
  if (!split.set.targets.defined()) return;
  std::vector<int64_t> labels = split.set.targets.to_vector<int64_t>();
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] >= classes)
      throw InputError(split.row(i) + ": label " + std::to_string(labels[i]) + " is outside the classes 0.." +
                       std::to_string(classes - 1) + " (" + scheme + ")");
}

// [data] classes, train_limit, per_class (job.h): kept together, applied by prepare_data below.
std::string join_ints(const std::vector<int64_t>& values) {
  std::string out;
  for (int64_t v : values) out += (out.empty() ? "" : ", ") + std::to_string(v);
  return out;
}

// Keeps the listed classes in every split, renumbered 0..k-1 in the listed order.
void select_classes(PreparedData& out, const DataSpec& d, const std::string& job_path) {
  std::vector<int64_t> counts = data::class_counts(out.train);
  for (int64_t c : d.classes)
    if (size_t(c) >= counts.size() || counts[size_t(c)] == 0)
      throw InputError(job_path + ": [data] classes lists class " + std::to_string(c) +
                       ", which does not occur in the training data (its labels are 0.." +
                       std::to_string(int64_t(counts.size()) - 1) + ")");
  for (data::Dataset* set : {&out.train, &out.val, &out.test})
    if (set->inputs.defined()) *set = data::select_classes(*set, d.classes);
}

// Keeps train_limit / per_class training samples chosen by the run's seed; "N of M" for the log.
std::string limit_training(PreparedData& out, const DataSpec& d, const JobSpec& job) {
  const int64_t available = out.train.size();
  std::vector<int64_t> counts = data::class_counts(out.train);
  if (d.per_class > 0)
    for (size_t c = 0; c < counts.size(); ++c)
      if (counts[c] > 0 && counts[c] < d.per_class)  // a label the data never uses is no class to fill
        throw InputError(job.path + ": [data] per_class = " + std::to_string(d.per_class) + " but class " +
                         std::to_string(c) + " has only " + std::to_string(counts[c]) +
                         " training samples after the validation/test splits");
  int64_t reachable = available;
  if (d.per_class > 0) {
    reachable = 0;
    for (int64_t count : counts) reachable += std::min(count, d.per_class);
  }
  if (d.train_limit > reachable)
    throw InputError(job.path + ": [data] train_limit = " + std::to_string(d.train_limit) + " but only " +
                     std::to_string(reachable) + " training samples are left after the validation/test splits" +
                     (d.per_class > 0 ? " and per_class" : ""));
  out.train = data::limit_samples(out.train, d.train_limit, d.per_class, job.run.seed);
  std::string how = d.per_class > 0 ? "per_class " + std::to_string(d.per_class) : "";
  if (d.train_limit > 0) how += (how.empty() ? "" : ", ") + std::string("train_limit ") + std::to_string(d.train_limit);
  return std::to_string(out.train.size()) + " of " + std::to_string(available) + " train (" + how + ")";
}

}  // namespace

PreparedData prepare_splits(const JobSpec& job) {
  // Every split read whole and its labels checked against the scheme before any split or shuffle.
  const DataSpec& d = job.data;
  data::set_max_file_bytes(d.max_bytes);
  PreparedData out;
  FileSplit train, val, test;
  if (d.kind == DataKind::idx) {  // pixels stay u8 through the splits below: a quarter of the peak memory
    for (const std::string* file : {&d.train_images, &d.train_labels, &d.test_images, &d.test_labels})
      require_job_file(job, *file);
    train = {data::read_idx_dataset(d.train_images, d.train_labels, /*scale=*/false), d.train_labels, {}, {}};
    if (!d.test_images.empty())
      test = {data::read_idx_dataset(d.test_images, d.test_labels, /*scale=*/false), d.test_labels, {}, {}};
  } else {
    train = read_split(job, d.train, d.train_targets);
    if (!d.val.empty()) val = read_split(job, d.val, d.val_targets);
    if (!d.test.empty()) test = read_split(job, d.test, d.test_targets);
  }
  if (train.set.size() == 0) throw InputError(job.path + ": [data] the training split is empty");
  int64_t classes = 0;
  std::string scheme;
  if (d.labels == "names") {
    out.label_names = merge_names({&train, &val, &test});
    classes = int64_t(out.label_names.size());
    scheme = "labels = \"names\"";
  } else {
    classes = integer_classes(train, d, job.path);
    scheme = d.class_count > 0 ? "[data] class_count = " + std::to_string(d.class_count)
                               : "the training labels' largest + 1";
  }
  for (const FileSplit* split : {&train, &val, &test}) check_labels(*split, classes, scheme);
  out.train = std::move(train.set);
  out.val = std::move(val.set);
  out.test = std::move(test.set);
  if (!d.classes.empty()) {
    select_classes(out, d, job.path);
    classes = int64_t(d.classes.size());
  }
  if (d.kind != DataKind::idx && d.val.empty() && d.test.empty() && d.val_fraction == 0 && d.test_fraction == 0)
    out.warnings.push_back(job.path + ": [data] gives no validation or test split (no val or test file, val_fraction "
                           "and test_fraction 0): the run has no validation metric, so early stopping and keeping "
                           "the best checkpoint are impossible and the model is never tested; set [data] "
                           "val_fraction = 0.1 and test_fraction = 0.1, or give val and test files");
  if (!out.test.inputs.defined() && d.test_fraction > 0)
    std::tie(out.train, out.test) = data::split_fraction(out.train, d.test_fraction, job.run.seed);
  if (!out.val.inputs.defined() && d.val_fraction > 0)
    std::tie(out.train, out.val) = data::split_fraction(out.train, d.val_fraction, job.run.seed + 1);
  std::string train_count = std::to_string(out.train.size()) + " train";
  if (d.train_limit > 0 || d.per_class > 0) train_count = limit_training(out, d, job);

  out.classes = classes;
  out.sample_shape = Shape(out.train.inputs.shape().begin() + 1, out.train.inputs.shape().end());
  out.describe = train_count;
  return out;
}

// ---- packed data (kind = "packed"): the training split streams from the shards; val and test, small,
// are read into memory. Normalization uses the statistics stored at pack time. ----
PreparedData prepare_packed(const JobSpec& job) {
  const DataSpec& d = job.data;
  require_job_file(job, d.path);
  const data::PackIndex index = data::read_pack_index(d.path);
  data::PackedSourceOptions options;
  options.normalize = d.normalize == "none" ? data::PackNormalize::none
                      : d.normalize == "per-feature" ? data::PackNormalize::per_feature
                                                     : data::PackNormalize::scalar;
  options.shuffle_buffer = d.shuffle_buffer;
  PreparedData out;
  out.train_packed = std::make_shared<data::PackedSource>(d.path, index, "train", options);
  if (index.split("val")) out.val = data::read_packed_split(d.path, index, "val", options.normalize);
  if (index.split("test")) out.test = data::read_packed_split(d.path, index, "test", options.normalize);
  out.pack_fingerprint = index.fingerprint;
  out.classes = index.classes;
  out.sample_shape = index.sample_shape;
  out.label_names = index.label_names;
  int64_t shards = 0, blocks = 0;
  for (const data::PackShard& shard : index.split("train")->shards) ++shards, blocks += int64_t(shard.blocks.size());
  out.describe = std::to_string(out.train_packed->size()) + " train (packed: " + std::to_string(shards) + " shards, " +
                 std::to_string(blocks) + " blocks of " + std::to_string(index.block_samples) + ", shuffle buffer " +
                 std::to_string(d.shuffle_buffer) + ", " + std::to_string(d.workers) + " loader threads) / " +
                 std::to_string(out.val.size()) + " val / " + std::to_string(out.test.size()) + " test samples of " +
                 shape_str(out.sample_shape) + ", " + std::to_string(out.classes) + " classes";
  if (!out.val.inputs.defined() && !out.test.inputs.defined())
    out.warnings.push_back(d.path + ": the pack has no val or test split, so the run has no validation metric; pack "
                                    "from a job with val_fraction / test_fraction or test files");
  return out;
}

PreparedData prepare_data(const JobSpec& job, const std::string& cache_dir) {
  const DataSpec& d = job.data;
  data::set_max_file_bytes(d.max_bytes);  // every reader below refuses a file past it
  PreparedData out;
  if (d.kind == DataKind::text) {
    out.is_text = true;
    for (const std::string* file : {&d.train, &d.val, &d.test})
      if (d.source == "file" || file != &d.train) require_job_file(job, *file);
    std::string path = d.source == "file" ? d.train : bible_text_path(d.source, cache_dir);
    std::string text = data::read_text(path);
    // Explicit val/test files, or contiguous tail fractions of the training text.
    std::string train_text = text, val_text, test_text;
    if (!d.val.empty()) val_text = data::read_text(d.val);
    if (!d.test.empty()) test_text = data::read_text(d.test);
    size_t n = text.size();
    size_t test_len = d.test.empty() ? size_t(double(n) * d.test_fraction) : 0;
    size_t val_len = d.val.empty() ? size_t(double(n) * (d.val_fraction > 0 ? d.val_fraction : 0.1)) : 0;
    if (val_len + test_len >= n) throw InputError(path + ": too short to split");
    train_text = text.substr(0, n - val_len - test_len);
    if (d.val.empty()) val_text = text.substr(n - val_len - test_len, val_len);
    if (d.test.empty() && test_len) test_text = text.substr(n - test_len);
    std::string dedup_line;
    if (!d.dedup.empty()) {  // the training split only: val and test stay as they are, so runs compare
      data::DedupOptions options;
      options.near = d.dedup == "near";
      options.paragraphs = d.dedup_unit == "paragraph";
      options.threshold = d.dedup_threshold;
      options.shingle = d.dedup_shingle;
      data::DedupReport r;
      train_text = data::deduplicate_text(train_text, options, r);
      out.dedup = nlohmann::json{{"mode", r.mode}, {"unit", r.unit}, {"units", r.units}, {"removed", r.removed},
                                 {"bytes", r.bytes}, {"bytes_removed", r.bytes_removed}};
      if (options.near) (*out.dedup)["threshold"] = r.threshold, (*out.dedup)["bands"] = r.bands, (*out.dedup)["rows"] = r.rows;
      dedup_line = "; dedup " + r.mode + " removed " + std::to_string(r.removed) + " of " + std::to_string(r.units) + " " +
                   r.unit + "s (" + std::to_string(r.bytes_removed) + " of " + std::to_string(r.bytes) + " bytes)";
    }
    out.vocab = data::CharVocab(train_text);
    out.train_tokens = out.vocab.encode(train_text);
    out.val_tokens = out.vocab.encode(val_text);
    if (!test_text.empty()) out.test_tokens = out.vocab.encode(test_text);
    int64_t context = job.model.gpt.context;
    if (out.train_tokens.numel() <= context + 1)
      throw InputError(path + ": " + std::to_string(out.train_tokens.numel()) +
                       " training characters; need more than context + 1 = " + std::to_string(context + 1));
    if (out.val_tokens.numel() <= 1) throw InputError(path + ": the validation split is empty");
    out.describe = std::to_string(out.train_tokens.numel()) + " train / " + std::to_string(out.val_tokens.numel()) +
                   " val characters, vocabulary " + std::to_string(out.vocab.size()) + dedup_line;
    return out;
  }

  if (d.kind == DataKind::packed) return prepare_packed(job);
  out = prepare_splits(job);
  const std::string train_count = out.describe;
  const int64_t classes = out.classes;
  for (data::Dataset* set : {&out.train, &out.val, &out.test})
    if (set->inputs.defined() && set->inputs.dtype() == DType::u8) set->inputs = data::unit_float(set->inputs);
  if (classes < 2) throw InputError(job.path + ": the training labels hold fewer than 2 classes");
  const Shape sample = out.sample_shape;
  for (data::Dataset* set : {&out.val, &out.test}) {
    if (!set->inputs.defined()) continue;
    Shape other(set->inputs.shape().begin() + 1, set->inputs.shape().end());
    if (other != sample)
      throw InputError(job.path + ": evaluation samples have shape " + shape_str(other) + " but training samples " +
                       shape_str(sample));
  }
  if (d.normalize != "none") {
    data::Normalizer norm = data::Normalizer::fit(out.train.inputs, d.normalize == "per-feature");
    for (data::Dataset* set : {&out.train, &out.val, &out.test})
      if (set->inputs.defined()) {
        set->inputs = set->inputs.contiguous();
        norm.apply(set->inputs);
      }
  }
  out.describe = train_count + " / " + std::to_string(out.val.size()) + " val / " + std::to_string(out.test.size()) +
                 " test samples of " + shape_str(sample) + ", " + std::to_string(out.classes) + " classes";
  if (!d.classes.empty()) out.describe += " (labels " + join_ints(d.classes) + " as 0.." + std::to_string(out.classes - 1) + ")";
  return out;
}

}  // namespace frugal::train
