// Knowledge distillation (see distill.h): the teacher checked and loaded before the run writes
// anything, its logits at after_loss (or from the cache), the loss replaced, the cache built,
// validated and reused.
#include "frugal/train/compress/distill.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "frugal/autograd/ops.h"
#include "frugal/autograd/precision.h"
#include "frugal/base/error.h"
#include "frugal/base/format.h"
#include "frugal/base/parallel.h"
#include "frugal/base/timer.h"
#include "frugal/io/safetensors.h"
#include "frugal/track/run_store.h"
#include "frugal/train/job_paths.h"
#include "frugal/train/model_setup.h"

namespace frugal::train {

namespace fs = std::filesystem;

namespace {

// Bumped when the cache file's layout or meaning changes, so older files are rebuilt.
constexpr const char* kCacheFormat = "1";
constexpr int64_t kCacheBuildBatch = 1000;  // samples per teacher forward while building the cache

// A 64-bit hash of bytes, a word at a time (the training inputs are ~190 MB for Fashion-MNIST):
// FNV-1a's multiply over 8-byte words, then a final avalanche. Not cryptographic: it tells
// whether a file is the one a cache was made from, not whether someone forged it.
class Hasher {
 public:
  void bytes(const void* data, size_t size) {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
      uint64_t word;
      std::memcpy(&word, p + i, 8);
      h_ = (h_ ^ word) * 1099511628211ull;
    }
    for (; i < size; ++i) h_ = (h_ ^ p[i]) * 1099511628211ull;
    h_ = (h_ ^ size) * 1099511628211ull;
  }
  void text(const std::string& s) { bytes(s.data(), s.size()); }
  void tensor(const Tensor& t) {
    Tensor packed = t.contiguous();
    text(std::string(dtype_name(packed.dtype())));
    text(shape_str(packed.shape()));
    bytes(packed.raw_data(), packed.nbytes());
  }
  std::string hex() const {
    uint64_t x = h_;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    char buffer[17];
    std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(x));
    return buffer;
  }

 private:
  uint64_t h_ = 1469598103934665603ull;
};

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot read");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void warn(const std::string& text) {
  std::fflush(stdout);
  std::fprintf(stderr, "frugal: warning: %s\n", text.c_str());
}

// The [data] keys of a resolved job that decide what the samples are (prefetch only changes timing,
// max_bytes only whether a file is read).
std::map<std::string, std::string> data_keys(const JobSpec& job) {
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : job_keys(job.resolved_toml, job.path))
    if (key.rfind("data.", 0) == 0 && key != "data.prefetch" && key != "data.max_bytes") {
      auto path = job.paths.find(key);  // as resolved: the same text in two jobs' folders names two files
      out[key] = path == job.paths.end() ? value : path->second;
    }
  return out;
}

// The teacher's weights file, and when there is none, why (the logit cache may stand in for it).
struct WeightsFile {
  std::string path;     // the file, or the file it would be
  std::string missing;  // "" when the file is there
};

// `weights` itself when it is a file, <it>/model.safetensors when a run directory, or the model of
// the run of that id (or unique prefix) in this job's run store. A name that is none of these is
// taken for the file it would be (a run directory's model unless it ends in .safetensors).
WeightsFile resolve_weights(const JobSpec& job) {
  const std::string& weights = job.distill->weights;
  std::error_code error;
  if (fs::is_regular_file(weights, error)) return {weights, ""};
  if (fs::is_directory(weights, error)) {
    const std::string model = (fs::path(weights) / "model.safetensors").string();
    if (fs::is_regular_file(model, error)) return {model, ""};
    return {model, "a directory without model.safetensors (expected a safetensors file or a run directory)"};
  }
  const std::string where = job.path + ": [distill] weights = \"" + weights + "\"";
  if (fs::exists(weights, error)) throw InputError(where + ": not a regular file");
  const std::string as_file =
      weights.ends_with(".safetensors") ? weights
                                                                : (fs::path(weights) / "model.safetensors").string();
  if (!fs::is_regular_file(job.run.store, error))
    return {as_file, "no such file, and no run store at " + job.run.store + " to look it up as a run id"};
  std::optional<track::RunRecord> run;
  try {
    track::RunStore store(job.run.store);
    run = store.find_run(weights);
  } catch (const InputError& e) {
    throw InputError(where + ": " + e.what());
  }
  if (!run) return {as_file, "no such file, and no run with that id in " + job.run.store};
  const std::string model = (fs::path(run->out_dir) / "model.safetensors").string();
  if (fs::is_regular_file(model, error)) return {model, ""};
  return {model, "run " + run->run_id + " (" + run->status + ") has no model file " + model};
}

// The key of a teacher: its weights' hash, its job's [model] keys and the precision it runs in.
std::string teacher_key_of(const std::string& weights_hash, const std::string& model_keys, Precision precision) {
  Hasher key;
  key.text(weights_hash);
  key.text(model_keys);
  key.text(std::string(precision_name(precision)));
  return key.hex();
}

// Characters in `a` that `b` lacks, printable ("'x', '\n'"), at most a few.
std::string missing_chars(const std::string& a, const std::string& b) {
  std::string out;
  int shown = 0;
  for (unsigned char c : a) {
    if (b.find(char(c)) != std::string::npos) continue;
    if (shown++ == 6) return out + ", ...";
    char buffer[16];
    if (c >= 32 && c < 127) std::snprintf(buffer, sizeof buffer, "'%c'", c);
    else std::snprintf(buffer, sizeof buffer, "byte %d", int(c));
    out += (out.empty() ? "" : ", ") + std::string(buffer);
  }
  return out;
}

// InputError unless the teacher's data gives the same kind of samples as the student's: same input
// shape, normalization and classes for a classifier, the same vocabulary for text.
void check_same_samples(const JobSpec& job, const PreparedData& data, const JobSpec& teacher_job,
                        const PreparedData& teacher_data) {
  const std::string where = job.path + ": [distill] teacher " + teacher_job.path;
  auto what = [](const PreparedData& d) {
    return d.is_text ? "text (a vocabulary of " + std::to_string(d.vocab.size()) + " characters)"
                     : std::to_string(d.classes) + " classes";
  };
  if (teacher_data.is_text != data.is_text)
    throw InputError(where + ": the teacher is trained on " + what(teacher_data) + " but this job on " + what(data));
  if (data.is_text) {
    if (teacher_data.vocab.chars() != data.vocab.chars()) {
      std::string differs;
      if (std::string only = missing_chars(teacher_data.vocab.chars(), data.vocab.chars()); !only.empty())
        differs += "; only the teacher's has " + only;
      if (std::string only = missing_chars(data.vocab.chars(), teacher_data.vocab.chars()); !only.empty())
        differs += "; only this job's has " + only;
      throw InputError(where + ": the teacher's vocabulary (" + std::to_string(teacher_data.vocab.size()) +
                       " characters) differs from this job's (" + std::to_string(data.vocab.size()) +
                       " characters)" + differs + "; a teacher must predict the same characters");
    }
    return;
  }
  if (teacher_data.sample_shape != data.sample_shape)
    throw InputError(where + ": the teacher's samples have shape " + shape_str(teacher_data.sample_shape) +
                     ", this job's " + shape_str(data.sample_shape));
  if (teacher_data.classes != data.classes)
    throw InputError(where + ": the teacher's data has " + std::to_string(teacher_data.classes) +
                     " classes, this job's " + std::to_string(data.classes) + "; a teacher must predict the same classes");
  if (teacher_job.data.normalize != job.data.normalize)
    throw InputError(where + ": the teacher's [data] normalize = \"" + teacher_job.data.normalize +
                     "\", this job's \"" + job.data.normalize +
                     "\": the teacher would see inputs scaled unlike those it was trained on");
}

// Rows `indices` (i64 (B)) of `table` (f32 (N, C)) -> f32 (B, C).
Tensor gather_rows(const Tensor& table, const Tensor& indices) {
  const int64_t n = table.size(0), c = table.size(1), b = indices.size(0);
  Tensor out = Tensor::empty({b, c}, DType::f32);  // (B, C)
  const float* from = table.data<float>();
  float* to = out.data<float>();
  const Tensor idx = indices.contiguous();
  const int64_t* rows = idx.data<int64_t>();
  for (int64_t i = 0; i < b; ++i) {
    FRUGAL_CHECK(rows[i] >= 0 && rows[i] < n, "distill: sample index " + std::to_string(rows[i]) +
                                                  " outside the cache's " + std::to_string(n) + " rows");
    std::memcpy(to + i * c, from + rows[i] * c, size_t(c) * sizeof(float));
  }
  return out;
}

// The logits' checksum stored in the cache's metadata.
std::string checksum(const Tensor& logits) {
  Hasher h;
  h.tensor(logits);
  return h.hex();
}

}  // namespace

Tensor distillation_loss(const Tensor& student_logits, const Tensor& teacher_logits, double temperature) {
  FRUGAL_CHECK(student_logits.rank() == 2 && teacher_logits.shape() == student_logits.shape(),
               "distillation_loss: student " + shape_str(student_logits.shape()) + " and teacher " +
                   shape_str(teacher_logits.shape()) + " logits must both be (N, C)");
  FRUGAL_CHECK(temperature > 0, "distillation_loss: temperature must be > 0");
  const int64_t rows = student_logits.size(0);
  const double inverse_t = 1.0 / temperature, t2 = temperature * temperature;
  Tensor target;  // (N, C): softmax(teacher / T), a constant
  {
    autograd::NoGradGuard no_grad;
    target = softmax(mul_scalar(teacher_logits, inverse_t), -1).to(student_logits.dtype());
  }
  // KL(p || q) = sum p log p - sum p log q; the first sum is the teacher's (negative) entropy, a
  // constant, summed here in double with 0 log 0 = 0 (PyTorch's xlogy), so a zero probability
  // never makes 0 x -inf.
  double p_log_p = 0;
  {
    const Tensor p = target.to(DType::f64).contiguous();
    const double* values = p.data<double>();
    for (int64_t i = 0; i < p.numel(); ++i)
      if (values[i] > 0) p_log_p += values[i] * std::log(values[i]);
  }
  Tensor log_q = log_softmax(mul_scalar(student_logits, inverse_t), -1);  // (N, C)
  Tensor cross = sum(mul(target, log_q));                                  // sum p log q
  return add_scalar(mul_scalar(cross, -t2 / double(rows)), p_log_p * t2 / double(rows));
}

Tensor distillation_objective(const Tensor& student_logits, const Tensor& teacher_logits, const Tensor& hard_loss,
                              double alpha, double temperature) {
  Tensor soft = distillation_loss(student_logits, teacher_logits, temperature);
  if (alpha == 1.0) return soft;
  return add(mul_scalar(soft, alpha), mul_scalar(hard_loss, 1.0 - alpha));
}

std::string distill_cache_dir(const JobSpec& job) {
  return (fs::path(job.run.store).parent_path() / "cache").string();
}

Distillation::Distillation(const JobSpec& job, const PreparedData& data) : spec_(*job.distill), data_(data) {
  FRUGAL_CHECK(job.distill.has_value(), "Distillation needs a [distill] section");
  const std::string where = job.path + ": [distill] teacher = \"" + spec_.teacher + "\"";
  std::error_code error;
  require_job_file(job, spec_.teacher);
  if (!fs::is_regular_file(spec_.teacher, error)) throw InputError(where + ": not a regular file; expected a job file");
  JobSpec teacher_job;
  try {
    teacher_job = load_job(spec_.teacher);
  } catch (const InputError& e) {
    throw InputError(where + ": " + e.what());
  }
  teacher_job_path_ = spec_.teacher;
  if (teacher_job.model.kind == ModelKind::custom)
    throw InputError(where + ": the teacher's [model] kind = \"custom\" is given by code; a teacher must be an mlp, "
                             "cnn or gpt job");

  // The same [data] gives the same samples: the student's prepared data stands for the teacher's.
  // Otherwise the teacher's data is prepared and compared.
  std::optional<PreparedData> teacher_data;
  if (data_keys(teacher_job) != data_keys(job)) {
    try {
      teacher_data = prepare_data(teacher_job, distill_cache_dir(job));
    } catch (const InputError& e) {
      throw InputError(where + ": " + e.what());
    }
    check_same_samples(job, data, teacher_job, *teacher_data);
  }
  if (data.is_text && teacher_job.model.gpt.context < job.model.gpt.context)
    throw InputError(where + ": the teacher's context " + std::to_string(teacher_job.model.gpt.context) +
                     " is shorter than this job's " + std::to_string(job.model.gpt.context) +
                     ": it cannot read the student's windows");

  const WeightsFile weights = resolve_weights(job);
  weights_path_ = weights.path;
  const std::string where_weights = job.path + ": [distill] weights = \"" + spec_.weights + "\"";
  if (!weights.missing.empty() && !spec_.cache) throw InputError(where_weights + ": " + weights.missing);
  ModelPlan plan = plan_model(teacher_job, teacher_data ? *teacher_data : data);
  // The teacher never runs backward: nothing to recompute.
  if (auto* cnn = std::get_if<nn::CnnConfig>(&plan.config)) cnn->recompute_blocks.clear();
  if (auto* gpt = std::get_if<nn::GptConfig>(&plan.config)) gpt->recompute_blocks.clear();
  teacher_flops_per_sample_ = plan.flops_per_sample;
  teacher_ = build_model(plan, teacher_job.run.seed);
  teacher_params_ = teacher_->num_parameters();
  for (const auto& [name, value] : job_keys(teacher_job.resolved_toml, teacher_job.path))
    if (name.rfind("model.", 0) == 0) model_keys_ += name + "=" + value + "\n";
  if (weights.missing.empty()) {
    Hasher weights_hash;
    weights_hash.text(file_bytes(weights_path_));
    weights_hash_ = weights_hash.hex();
    teacher_key_ = teacher_key_of(weights_hash_, model_keys_, job.precision.mode);
    io::SafetensorsFile teacher_weights = io::read_safetensors(weights_path_);
    io::check_finite_weights(teacher_weights, job.path + ": [distill] weights " + weights_path_);
    try {
      teacher_->load_state_dict(teacher_weights.tensors, /*strict=*/true);
    } catch (const InputError& e) {
      throw InputError(job.path + ": [distill] weights " + weights_path_ + " do not fit the teacher's [model] in " +
                       teacher_job.path + ": " + e.what());
    }
    teacher_->eval();
  } else {
    teacher_.reset();  // only the cache can stand in for it (below)
  }
  if (!spec_.cache) return;

  // One file per (teacher weights file, teacher [model], precision, training inputs, threads): the
  // logits are bit-exact for these. The weights' hash is in the file, checked when it is read, so
  // new weights under the same name make it stale (rebuilt), and the file is found without them.
  Hasher data_key;
  data_key.tensor(data.train.inputs);
  data_key_ = data_key.hex();
  Hasher cache_key;
  cache_key.text(std::string("frugal distill cache ") + kCacheFormat);
  cache_key.text(fs::absolute(weights_path_).lexically_normal().string());
  cache_key.text(model_keys_);
  cache_key.text(std::string(precision_name(job.precision.mode)));
  cache_key.text(data_key_);
  cache_key.text(std::to_string(num_threads()));
  cache_path_ = (fs::path(distill_cache_dir(job)) / ("distill-" + cache_key.hex() + ".safetensors")).string();
  cache_existed_ = fs::exists(cache_path_, error);
  if (cache_existed_) cache_problem_ = read_cache(job.precision.mode);
  if (!weights.missing.empty() && !cache_.defined())
    throw InputError(where_weights + ": " + weights.missing + "; and no valid logit cache stands in for it (" +
                     cache_path_ + (cache_existed_ ? ": " + cache_problem_ : std::string(": none")) + ")");
}

// Reads the cache file into cache_ when it is valid for this teacher and data: "" then, otherwise
// what is wrong with it. Without the weights file, the cache's own weights hash stands for it (its
// key must still match the teacher's [model] and the precision).
std::string Distillation::read_cache(Precision precision) {
  const int64_t n = data_.train.size(), classes = data_.classes;
  try {
    io::SafetensorsFile file = io::read_safetensors(cache_path_);
    auto meta = [&](const char* key) {
      auto it = file.metadata.find(key);
      return it == file.metadata.end() ? std::string() : it->second;
    };
    auto it = file.tensors.find("logits");
    if (it == file.tensors.end() || file.tensors.size() != 1) return "expected one tensor named 'logits'";
    const Tensor& logits = it->second;
    if (logits.dtype() != DType::f32 || logits.shape() != Shape{n, classes})
      return "logits are " + std::string(dtype_name(logits.dtype())) + " " + shape_str(logits.shape()) +
             ", expected f32 " + shape_str({n, classes});
    if (meta("frugal.distill.format") != kCacheFormat)
      return "format '" + meta("frugal.distill.format") + "', expected '" + kCacheFormat + "'";
    if (meta("frugal.distill.data_key") != data_key_)
      return "made from other training inputs (key " + meta("frugal.distill.data_key") + ", expected " + data_key_ + ")";
    const std::string weights_hash = meta("frugal.distill.weights_hash");
    if (!weights_hash_.empty() && weights_hash != weights_hash_)
      return "made from other teacher weights (hash " + weights_hash + "; " + weights_path_ + " is now " +
             weights_hash_ + ")";
    const std::string key = teacher_key_of(weights_hash, model_keys_, precision);
    if (meta("frugal.distill.teacher_key") != key)
      return "made for another teacher [model] or precision (key " + meta("frugal.distill.teacher_key") +
             ", expected " + key + ")";
    if (meta("frugal.distill.checksum") != checksum(logits)) return "the logits do not match their checksum (damaged)";
    cache_ = logits.contiguous();
    weights_hash_ = weights_hash;
    teacher_key_ = key;
    return "";
  } catch (const InputError& e) {
    return e.what();
  }
}

Distillation::~Distillation() = default;

EventSet Distillation::events() const {
  return event_set({Event::run_start, Event::after_loss, Event::run_end});
}

void Distillation::on(Event event, TrainState& state) {
  switch (event) {
    case Event::run_start:
      state.progress.line("distill: teacher " + teacher_job_path_ + " (" + std::to_string(teacher_params_) +
                          " parameters) from " + weights_path_ + ", alpha " + number_text(spec_.alpha) +
                          ", temperature " + number_text(spec_.temperature) + (spec_.cache ? ", cached logits" : ""));
      if (spec_.cache) prepare_cache(state);
      break;
    case Event::after_loss: {
      const Tensor& logits = state.logits;  // (B, C) or (B, T, V)
      const int64_t classes = logits.size(-1);
      Tensor student = data_.is_text ? reshape(logits, {-1, classes}) : logits;
      Tensor teacher = teacher_logits(state);
      if (data_.is_text) teacher = reshape(teacher, {-1, classes});
      if (teacher.shape() != student.shape())
        throw InputError("[distill]: the teacher's logits " + shape_str(teacher.shape()) + " do not match the student's " +
                         shape_str(student.shape()));
      state.loss = distillation_objective(student, teacher, state.loss, spec_.alpha, spec_.temperature);
      break;
    }
    case Event::run_end: {
      DistillSummary s;
      s.teacher = teacher_job_path_;
      s.weights = weights_path_;
      s.teacher_params = teacher_params_;
      s.alpha = spec_.alpha;
      s.temperature = spec_.temperature;
      s.teacher_forward_s = teacher_forward_s_;
      s.teacher_forward_batches = teacher_forward_batches_;
      s.cache = spec_.cache;
      if (spec_.cache) {
        s.cache_path = cache_path_;
        s.cache_status = cache_status_;
        std::error_code error;
        const uintmax_t bytes = fs::file_size(cache_path_, error);
        s.cache_bytes = error ? 0 : int64_t(bytes);
        s.cache_build_s = cache_build_s_;
        if (teacher_flops_per_sample_)
          s.cache_build_flops = cache_status_ == "reused" ? 0.0
                                                          : double(*teacher_flops_per_sample_) * double(data_.train.size());
      }
      state.summary->distill = s;
      break;
    }
    default:
      break;
  }
}

// The teacher's logits of the micro-batch: from the cache by sample index, or a forward pass
// without gradients, timed (it runs inside the loop's forward phase).
Tensor Distillation::teacher_logits(TrainState& state) {
  if (spec_.cache) {
    if (!state.batch.sample_indices.defined())
      throw InternalError("[distill] cache: the micro-batch has no sample indices (a technique replaced it?)");
    return gather_rows(cache_, state.batch.sample_indices);
  }
  Timer timer;
  autograd::NoGradGuard no_grad;
  Tensor logits = (*teacher_)(state.batch.inputs);
  teacher_forward_s_ += timer.seconds();
  ++teacher_forward_batches_;
  return logits;
}

// Uses the cache read by the constructor, or (absent, damaged, stale) computes it, in the
// evaluation phase, and writes it atomically.
void Distillation::prepare_cache(TrainState& state) {
  const int64_t n = data_.train.size(), classes = data_.classes;
  if (cache_.defined()) {
    if (cache_status_.empty()) cache_status_ = "reused";  // a resumed run keeps what its first process did
    state.progress.line("distill: cache " + cache_path_ + " reused (" + std::to_string(n) + " x " +
                        std::to_string(classes) + " logits); the teacher does not run" +
                        (teacher_ ? "" : " (its weights file " + weights_path_ + " is gone)"));
    return;
  }
  if (cache_existed_) warn(cache_path_ + ": " + cache_problem_ + "; rebuilding the distillation cache");

  auto in_phase = state.meter.phase(cost::Phase::evaluation);  // inference over a data set, as evaluation
  Timer timer;
  Tensor logits = Tensor::empty({n, classes}, DType::f32);  // (N, C)
  {
    autograd::NoGradGuard no_grad;
    float* out = logits.data<float>();
    for (int64_t begin = 0; begin < n; begin += kCacheBuildBatch) {
      const int64_t end = std::min(n, begin + kCacheBuildBatch);
      Tensor batch = (*teacher_)(data_.train.inputs.slice_view(0, begin, end)).to(DType::f32).contiguous();
      FRUGAL_CHECK(batch.shape() == (Shape{end - begin, classes}),
                   "distill: the teacher's logits " + shape_str(batch.shape()) + " for " + std::to_string(end - begin) +
                       " samples of " + std::to_string(classes) + " classes");
      std::memcpy(out + begin * classes, batch.data<float>(), size_t((end - begin) * classes) * sizeof(float));
    }
  }
  Storage::release_cache();  // the build's batch sizes are not the training step's
  fs::create_directories(fs::path(cache_path_).parent_path());
  io::write_safetensors(cache_path_, {{"logits", logits}},
                        {{"frugal.distill.format", kCacheFormat},
                         {"frugal.distill.teacher_key", teacher_key_},
                         {"frugal.distill.weights_hash", weights_hash_},
                         {"frugal.distill.data_key", data_key_},
                         {"frugal.distill.samples", std::to_string(n)},
                         {"frugal.distill.classes", std::to_string(classes)},
                         {"frugal.distill.checksum", checksum(logits)},
                         {"frugal.distill.teacher", teacher_job_path_},
                         {"frugal.distill.weights", weights_path_}});
  cache_ = logits;
  const double seconds = timer.seconds();
  cache_build_s_ += seconds;
  char seconds_text[32];
  std::snprintf(seconds_text, sizeof seconds_text, "%.2f", seconds);
  cache_status_ = cache_existed_ ? "rebuilt" : (cache_status_.empty() ? "built" : cache_status_);
  state.progress.line("distill: cache " + cache_path_ + " built (" + std::to_string(n) + " x " +
                      std::to_string(classes) + " f32 logits, " + std::to_string(n * classes * 4) + " bytes) in " +
                      seconds_text + " s");
}

void Distillation::save_state(TechniqueState& out) const {
  out.put_text("teacher_key", teacher_key_);
  out.put("teacher_forward_s", teacher_forward_s_);
  out.put("teacher_forward_batches", teacher_forward_batches_);
  out.put("cache_build_s", cache_build_s_);
  out.put_text("cache_status", cache_status_);
}

void Distillation::load_state(const TechniqueState& in) {
  if (in.empty()) in.fail("missing (the checkpoint was written without [distill])");
  if (in.text("teacher_key") != teacher_key_)
    in.fail("the teacher changed since the checkpoint (its weights file, its job's [model] or the precision): "
            "the run would go on against another teacher");
  teacher_forward_s_ = in.real("teacher_forward_s");
  teacher_forward_batches_ = in.integer("teacher_forward_batches");
  cache_build_s_ = in.real("cache_build_s");
  cache_status_ = in.text("cache_status");
}

}  // namespace frugal::train
