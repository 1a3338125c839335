// Compaction of a structured-pruned model into a smaller dense one (see prune_compact.h).
#include "frugal/train/compress/prune_compact.h"

#include <filesystem>
#include <map>
#include <optional>
#include <sstream>

#include <toml++/toml.h>

#include "frugal/base/error.h"

namespace frugal::train {

namespace {

std::vector<int64_t> expand(const std::vector<int64_t>& kept, const PruneSlice& s) {
  std::vector<int64_t> out;
  for (int64_t offset : s.offsets)
    for (int64_t u : kept)
      for (int64_t r = 0; r < s.rows; ++r) out.push_back(offset + u * s.rows + r);
  return out;
}

// t viewed as (d0, d1, inner): the rows in `rows` (all when unset), then the columns in `cols`.
Tensor gather(const Tensor& source, const std::optional<std::vector<int64_t>>& rows,
              const std::optional<std::vector<int64_t>>& cols) {
  const Tensor t = source.contiguous();
  FRUGAL_CHECK(t.dtype() == DType::f32, "compact_model: f32 tensors only");
  const int64_t d0 = t.size(0), d1 = t.rank() >= 2 ? t.size(1) : 1, inner = t.numel() / (d0 * d1);
  std::vector<int64_t> r = rows ? *rows : std::vector<int64_t>(), c = cols ? *cols : std::vector<int64_t>();
  if (!rows) for (int64_t i = 0; i < d0; ++i) r.push_back(i);
  if (!cols) for (int64_t j = 0; j < d1; ++j) c.push_back(j);
  Shape shape = t.shape();
  shape[0] = int64_t(r.size());
  if (t.rank() >= 2) shape[1] = int64_t(c.size());
  Tensor out = Tensor::empty(shape, DType::f32);
  const float* in = t.data<float>();
  float* o = out.data<float>();
  for (int64_t i : r)
    for (int64_t j : c) {
      std::copy(in + (i * d1 + j) * inner, in + (i * d1 + j + 1) * inner, o);
      o += inner;
    }
  return out;
}

}  // namespace

CompactModel compact_model(const nn::NamedTensors& state, const ModelSpec& model, const std::vector<PruneLayer>& layers,
                           const PruneMasks& masks) {
  std::map<std::string, Tensor> values;
  for (const auto& [name, t] : state) values[name] = t;
  std::map<std::string, std::vector<int64_t>> rows, cols;
  std::map<std::string, Tensor> folded;  // biases changed by folding f(0) x the removed columns
  CompactModel out;
  out.model = model;
  if (model.kind == ModelKind::gpt) {
    nn::GptConfig& g = out.model.gpt;
    if (g.block_heads.empty()) g.block_heads.assign(size_t(g.layers), g.heads);
    if (g.mlp_widths.empty()) g.mlp_widths.assign(size_t(g.layers), 4 * g.width);
  }
  for (size_t l = 0; l < layers.size(); ++l) {
    const PruneLayer& p = layers[l];
    if (p.structure == PruneStructure::weights) continue;
    std::vector<int64_t> kept, removed;
    for (int64_t u = 0; u < p.units; ++u) (masks[l][size_t(u)] ? kept : removed).push_back(u);
    for (const PruneSlice& s : p.owned) rows[s.name] = expand(kept, s);
    for (const PruneSlice& s : p.consumers) cols[s.name] = expand(kept, s);
    if (p.activation_at_zero != 0 && !removed.empty() && !p.fold_bias.empty()) {
      // The next Linear (out, units) still received f(0) from each removed unit.
      const Tensor next = values.at(p.consumers[0].name).contiguous();
      Tensor bias = values.at(p.fold_bias).clone();
      const int64_t outputs = next.size(0), units = next.size(1);
      const float* w = next.data<float>();
      float* b = bias.data<float>();
      for (int64_t o = 0; o < outputs; ++o) {
        double sum = b[o];
        for (int64_t u : removed) sum += p.activation_at_zero * double(w[o * units + u]);
        b[o] = float(sum);
      }
      folded[p.fold_bias] = bias;
    }
    const int64_t width = int64_t(kept.size());
    switch (p.structure) {
      case PruneStructure::neurons:
        (model.kind == ModelKind::mlp ? out.model.mlp.hidden : out.model.cnn.hidden)[size_t(p.index)] = width;
        break;
      case PruneStructure::channels: out.model.cnn.channels[size_t(p.index)] = width; break;
      case PruneStructure::heads: out.model.gpt.block_heads[size_t(p.index)] = width; break;
      case PruneStructure::mlp: out.model.gpt.mlp_widths[size_t(p.index)] = width; break;
      case PruneStructure::weights: break;
    }
  }
  for (const auto& [name, t] : state) {
    const Tensor source = folded.count(name) ? folded.at(name) : t;
    auto r = rows.find(name);
    auto c = cols.find(name);
    if (r == rows.end() && c == cols.end()) {
      out.tensors.emplace_back(name, source.clone());
      continue;
    }
    out.tensors.emplace_back(name, gather(source, r == rows.end() ? std::nullopt : std::optional(r->second),
                                          c == cols.end() ? std::nullopt : std::optional(c->second)));
  }
  return out;
}

namespace {

toml::array int_array(const std::vector<int64_t>& values) {
  toml::array a;
  for (int64_t v : values) a.push_back(v);
  return a;
}

}  // namespace

std::string compact_job_toml(const JobSpec& job, const ModelSpec& model) {
  toml::table root = toml::parse(job.resolved_toml);
  if (toml::table* m = root["model"].as_table()) {
    if (model.kind == ModelKind::mlp) m->insert_or_assign("hidden", int_array(model.mlp.hidden));
    if (model.kind == ModelKind::cnn) {
      m->insert_or_assign("channels", int_array(model.cnn.channels));
      m->insert_or_assign("hidden", int_array(model.cnn.hidden));
    }
    if (model.kind == ModelKind::gpt) {
      m->insert_or_assign("block_heads", int_array(model.gpt.block_heads));
      m->insert_or_assign("mlp_widths", int_array(model.gpt.mlp_widths));
    }
  }
  root.erase("prune");
  root.erase("init");
  for (const auto& [key, path] : job.paths) {
    const size_t dot = key.find('.');
    if (dot == std::string::npos || path.empty()) continue;
    toml::table* section = root[key.substr(0, dot)].as_table();
    if (!section || !section->contains(key.substr(dot + 1))) continue;
    if (!(*section)[key.substr(dot + 1)].is_string()) continue;
    std::error_code error;
    if (!std::filesystem::exists(path, error)) continue;  // a run id, not a file
    section->insert_or_assign(key.substr(dot + 1), std::filesystem::absolute(path).lexically_normal().string());
  }
  std::ostringstream text;
  text << "# The pruned model: the job's [model] with the widths compaction kept (frugal eval this file\n"
          "# --weights model.safetensors, or train it further with [init] from = that file).\n"
       << root << "\n";
  return text.str();
}

}  // namespace frugal::train
