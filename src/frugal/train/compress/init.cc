// [init] (see init.h): resolve `from`, rename the file's tensors by prefix, check every model tensor
// that is not skipped against the file, then load them all at once.
#include "frugal/train/compress/init.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "frugal/base/error.h"
#include "frugal/base/glob.h"
#include "frugal/data/readers.h"
#include "frugal/io/safetensors.h"
#include "frugal/track/run_store.h"

namespace frugal::train {

namespace fs = std::filesystem;

namespace {

// "a, b, c" of at most `limit` names, then "and N more".
std::string some_names(const std::vector<std::string>& names, size_t limit = 10) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < limit; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > limit) out += " and " + std::to_string(names.size() - limit) + " more";
  return out;
}

// Does map prefix `prefix` apply to `name`? At a dot: "features" applies to "features.0.weight", not
// to "features2.weight"; a prefix that ends with a dot applies wherever the name starts with it.
bool prefix_applies(const std::string& prefix, const std::string& name) {
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  return name.size() == prefix.size() || prefix.back() == '.' || name[prefix.size()] == '.';
}

std::string with_shape(const Tensor& t) { return shape_str(t.shape()); }

// The GPT's tensors whose rows are indexed by token id (nn/zoo.h): the token embedding, and the
// head's weight when it is not tied to it (the head has no bias).
bool indexed_by_vocab(const nn::Module& model, const std::string& name) {
  return model.type_name() == "Gpt" && (name == "wte.weight" || name == "head.weight");
}

// The job's vocabulary against the file's: for each of the job's characters, its row in the file
// (-1 when the file has no such character), and the counts for the summary.
struct VocabRows {
  std::vector<int64_t> rows;  // (job vocab size)
  int64_t file_size = 0;
  bool same = false;  // the very same characters: rows is the identity
  InitVocab counts;
};

std::optional<VocabRows> vocab_rows(const io::SafetensorsFile& file, const data::CharVocab* job_vocab,
                                    const std::string& what) {
  auto saved = file.metadata.find("frugal.vocab");
  if (!job_vocab || saved == file.metadata.end()) return std::nullopt;
  data::CharVocab file_vocab;
  try {
    file_vocab = data::CharVocab::from_string(saved->second);
  } catch (const InputError& e) {
    throw InputError(what + ": metadata frugal.vocab: " + e.what());
  }
  VocabRows out;
  out.file_size = file_vocab.size();
  out.same = file_vocab.chars() == job_vocab->chars();
  const std::string& file_chars = file_vocab.chars();
  for (char c : job_vocab->chars()) {
    const size_t at = file_chars.find(c);
    out.rows.push_back(at == std::string::npos ? -1 : int64_t(at));
    (at == std::string::npos ? out.counts.added : out.counts.shared) += 1;
  }
  out.counts.dropped = file_vocab.size() - out.counts.shared;
  return out;
}

// `fresh` (the model's tensor, (job vocab, ...)) with the rows of the characters the file also has
// copied from `in_file` ((file vocab, ...)); the other rows keep their fresh initialization.
Tensor remap_rows(const Tensor& fresh, const Tensor& in_file, const std::vector<int64_t>& rows) {
  Tensor out = fresh.clone();
  for (size_t i = 0; i < rows.size(); ++i)
    if (rows[i] >= 0) out.select_view(0, int64_t(i)).copy_from(in_file.select_view(0, rows[i]));
  return out;
}

}  // namespace

InitSource resolve_init_source(const std::string& from, const std::string& store_path, const std::string& where) {
  const std::string what = where + ": [init] from = \"" + from + "\"";
  std::error_code error;
  if (fs::is_regular_file(from, error)) return {from, std::nullopt};
  if (fs::is_directory(from, error)) {
    const fs::path model = fs::path(from) / "model.safetensors";
    if (fs::is_regular_file(model, error)) return {model.string(), std::nullopt};
    throw InputError(what + ": the directory holds no model.safetensors (a run that has not completed?)");
  }
  if (!fs::is_regular_file(store_path, error))
    throw InputError(what + ": no such file, and no run store at " + store_path + " to look it up as a run id");
  track::RunStore store(store_path);
  std::optional<track::RunRecord> run;
  try {
    run = store.find_run(from);
  } catch (const InputError& e) {
    throw InputError(what + ": " + e.what());
  }
  if (!run) throw InputError(what + ": no such file, and no run of " + store_path + " has this id or id prefix");
  const fs::path model = fs::path(run->out_dir) / "model.safetensors";
  if (!fs::is_regular_file(model, error))
    throw InputError(what + ": run " + run->run_id + " (" + run->status + ") has no model file " + model.string() +
                     (run->status == "completed" ? "" : "; only a completed run has one"));
  return {model.string(), run->run_id};
}

InitReport load_init_weights(const InitSpec& spec, nn::Module& model, const std::string& store_path,
                             const std::string& where, const data::CharVocab* vocab) {
  const InitSource source = resolve_init_source(spec.from, store_path, where);
  io::SafetensorsFile file = io::read_safetensors(source.path);
  io::check_finite_weights(file, where + ": [init] from " + source.path);
  const std::string what = where + ": [init] from " + source.path;
  const std::optional<VocabRows> remap = vocab_rows(file, vocab, what);

  // The file's tensors under the model's names: the longest map prefix that applies renames each.
  std::map<std::string, std::pair<std::string, const Tensor*>> renamed;  // model name -> (file name, tensor)
  std::vector<bool> map_used(spec.map.size(), false);
  for (const auto& [name, tensor] : file.tensors) {
    size_t best = spec.map.size();
    for (size_t m = 0; m < spec.map.size(); ++m)
      if (prefix_applies(spec.map[m].first, name) &&
          (best == spec.map.size() || spec.map[m].first.size() > spec.map[best].first.size()))
        best = m;
    std::string target = name;
    if (best < spec.map.size()) {
      map_used[best] = true;
      target = spec.map[best].second + name.substr(spec.map[best].first.size());
    }
    auto [it, inserted] = renamed.emplace(target, std::make_pair(name, &tensor));
    if (!inserted)
      throw InputError(what + ": tensors '" + it->second.first + "' and '" + name + "' both become '" + target +
                       "' after [init] map");
  }
  for (size_t m = 0; m < spec.map.size(); ++m)
    if (!map_used[m])
      throw InputError(what + ": [init] map prefix \"" + spec.map[m].first + "\" matches no tensor of the file (" +
                       std::to_string(file.tensors.size()) + " tensors, e.g. " +
                       some_names([&] {
                         std::vector<std::string> names;
                         for (const auto& [name, t] : file.tensors) names.push_back(name);
                         return names;
                       }(), 5) + ")");

  // Every model tensor: skipped, or found with its shape.
  const nn::NamedTensors own = model.state_dict();
  std::vector<bool> skip_used(spec.skip.size(), false);
  InitReport report;
  report.summary.from = source.path;
  report.summary.run_id = source.run_id;
  nn::NamedTensors load;
  std::vector<std::string> problems;
  std::set<std::string> suggested;  // skip patterns that would cover the problems
  std::set<std::string> model_names;
  for (const auto& [name, tensor] : own) {
    model_names.insert(name);
    bool skipped = false;
    for (size_t s = 0; s < spec.skip.size(); ++s)
      if (glob_match(spec.skip[s], name)) skipped = skip_used[s] = true;
    if (skipped) {
      report.summary.skipped.push_back(name);
      continue;
    }
    auto it = renamed.find(name);
    const std::string file_name =
        it != renamed.end() && it->second.first != name ? " (file '" + it->second.first + "')" : "";
    const Tensor* given = it == renamed.end() ? nullptr : it->second.second;
    // Rows follow the characters when the vocabularies differ: the file has one row per character
    // of its own vocabulary, the model one per character of the job's.
    const bool by_vocab = remap && !remap->same && indexed_by_vocab(model, name);
    Shape expected = tensor.shape();
    if (by_vocab && tensor.rank() >= 1) expected[0] = remap->file_size;
    if (!given) {
      problems.push_back("'" + name + "' " + with_shape(tensor) + " is not in the file");
    } else if (given->shape() != expected) {
      problems.push_back("'" + name + "'" + file_name + " is " + with_shape(*given) + " in the file, " +
                         with_shape(tensor) + " in the model" +
                         (by_vocab ? " (" + shape_str(expected) + " expected: rows indexed by the file's " +
                                         std::to_string(remap->file_size) + " characters)"
                                   : ""));
    } else if (dtype_is_float(given->dtype()) != dtype_is_float(tensor.dtype())) {
      problems.push_back("'" + name + "'" + file_name + " is " + std::string(dtype_name(given->dtype())) +
                         " in the file, " + std::string(dtype_name(tensor.dtype())) + " in the model");
    } else {
      load.emplace_back(name, by_vocab ? remap_rows(tensor, *given, remap->rows) : *given);
      continue;
    }
    const size_t dot = name.rfind('.');
    suggested.insert(dot == std::string::npos ? name : name.substr(0, dot) + ".*");
  }
  for (size_t s = 0; s < spec.skip.size(); ++s)
    if (!skip_used[s])
      throw InputError(what + ": [init] skip pattern \"" + spec.skip[s] + "\" matches no tensor of the model (" +
                       some_names(std::vector<std::string>(model_names.begin(), model_names.end()), 5) + ")");
  if (!problems.empty()) {
    std::string message = what + ": " + std::to_string(problems.size()) + " of the model's " +
                          std::to_string(own.size()) + " tensors cannot be loaded: ";
    for (size_t i = 0; i < problems.size(); ++i) message += (i ? "; " : "") + problems[i];
    message += ". To keep their fresh initialization instead (e.g. a new head), add [init] skip = [\"" +
               [&] {
                 std::string patterns;
                 for (const std::string& p : suggested) patterns += (patterns.empty() ? "" : "\", \"") + p;
                 return patterns;
               }() +
               "\"]; to rename the file's tensors, [init] map";
    throw InputError(message);
  }
  for (const auto& [name, entry] : renamed)
    if (!model_names.count(name)) report.unused.push_back(entry.first);
  try {
    model.load_state_dict(load, /*strict=*/false);
  } catch (const InputError& e) {
    throw InputError(what + ": " + e.what());
  }
  report.summary.loaded = int64_t(load.size());
  report.summary.unused = int64_t(report.unused.size());
  if (remap) report.summary.vocab = remap->counts;
  return report;
}

void InitFromWeights::on(Event event, TrainState& state) {
  if (event == Event::run_end) {
    if (report_) state.summary->init = report_->summary;
    return;
  }
  if (!loaded_here_ || !report_) return;
  const InitSummary& s = report_->summary;
  state.progress.line("init: " + std::to_string(s.loaded) + " tensors from " + s.from +
                      (s.run_id ? " (run " + *s.run_id + ")" : "") +
                      (s.skipped.empty() ? "" : "; kept fresh: " + some_names(s.skipped)) +
                      (s.vocab ? "; " + s.vocab->describe() : ""));
  if (!report_->unused.empty())
    state.progress.line("init: " + std::to_string(report_->unused.size()) + " tensors of " + s.from +
                        " not used (the model has none of that name): " + some_names(report_->unused));
}

void InitFromWeights::save_state(TechniqueState& out) const {
  if (!report_) return;
  const InitSummary& s = report_->summary;
  out.put_text("from", s.from);
  out.put_text("run_id", s.run_id.value_or(""));
  out.put("loaded", s.loaded);
  out.put("unused", s.unused);
  std::string skipped;  // tensor names hold no commas
  for (const std::string& name : s.skipped) skipped += (skipped.empty() ? "" : ",") + name;
  out.put_text("skipped", skipped);
  if (s.vocab) {
    out.put("vocab_shared", s.vocab->shared);
    out.put("vocab_new", s.vocab->added);
    out.put("vocab_dropped", s.vocab->dropped);
  }
}

void InitFromWeights::load_state(const TechniqueState& in) {
  if (in.empty()) return;  // nothing was saved: the summary will have no init object
  InitReport report;
  InitSummary& s = report.summary;
  s.from = in.text("from");
  if (!in.text("run_id").empty()) s.run_id = in.text("run_id");
  s.loaded = in.integer("loaded");
  s.unused = in.integer("unused");
  const std::string& skipped = in.text("skipped");
  for (size_t begin = 0; begin < skipped.size();) {
    size_t end = std::min(skipped.find(',', begin), skipped.size());
    s.skipped.push_back(skipped.substr(begin, end - begin));
    begin = end + 1;
  }
  if (in.has("vocab_shared"))
    s.vocab = InitVocab{in.integer("vocab_shared"), in.integer("vocab_new"), in.integer("vocab_dropped")};
  report_ = std::move(report);
}

}  // namespace frugal::train
