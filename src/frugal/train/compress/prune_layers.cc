// The prunable layers of the zoo's models, their scores, the choice of units removed and the masks
// (see prune_layers.h).
#include "frugal/train/compress/prune_layers.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "frugal/base/error.h"
#include "frugal/base/glob.h"
#include "frugal/nn/layers.h"

namespace frugal::train {

const char* prune_structure_name(PruneStructure structure) {
  switch (structure) {
    case PruneStructure::weights: return "weights";
    case PruneStructure::neurons: return "neurons";
    case PruneStructure::channels: return "channels";
    case PruneStructure::heads: return "heads";
    case PruneStructure::mlp: return "mlp";
  }
  return "?";
}

namespace {

bool starts_with(const std::string& text, const std::string& head) { return text.rfind(head, 0) == 0; }

// Elements of one row along axis 0.
int64_t row_size(const Tensor& t) { return t.shape().empty() || t.size(0) == 0 ? 1 : t.numel() / t.size(0); }

struct Found {
  std::vector<std::pair<std::string, const nn::Linear*>> linears;
  std::vector<std::pair<std::string, const nn::Conv2d*>> convs;
  std::vector<std::pair<std::string, const nn::BatchNorm*>> norms;
};

Found find_modules(const nn::Module& model) {
  Found f;
  for (const auto& [name, m] : model.named_modules()) {
    if (auto* l = dynamic_cast<const nn::Linear*>(m)) f.linears.emplace_back(name, l);
    if (auto* c = dynamic_cast<const nn::Conv2d*>(m)) f.convs.emplace_back(name, c);
    if (auto* n = dynamic_cast<const nn::BatchNorm*>(m)) f.norms.emplace_back(name, n);
  }
  return f;
}

PruneSlice slice(const std::string& name, const Tensor& t, bool scored, std::vector<int64_t> offsets = {0},
                 int64_t rows = 1, bool masked = true) {
  return {name, t, std::move(offsets), rows, masked, scored};
}

// A Linear's output units, read by `next` (a Linear, columns of `columns_per_unit`).
PruneLayer linear_units(const std::string& name, const nn::Linear& l, const std::string& next_name,
                        const nn::Linear& next, PruneStructure structure, int64_t index) {
  PruneLayer p;
  p.name = name + ".weight";
  p.structure = structure;
  p.units = l.out_features();
  p.index = index;
  p.owned.push_back(slice(name + ".weight", l.weight(), true));
  if (l.bias().defined()) p.owned.push_back(slice(name + ".bias", l.bias(), false));
  p.consumers.push_back(slice(next_name + ".weight", next.weight(), false));
  if (next.bias().defined()) p.fold_bias = next_name + ".bias";
  return p;
}

double activation_at_zero(const std::string& activation) { return activation == "sigmoid" ? 0.5 : 0.0; }

void add_structured(const nn::Module& model, const ModelSpec& spec_model, PruneStructure structure,
                    const std::string& where, std::vector<PruneLayer>& out) {
  const Found f = find_modules(model);
  const std::string kind = spec_model.kind == ModelKind::mlp   ? "mlp"
                           : spec_model.kind == ModelKind::cnn ? "cnn"
                           : spec_model.kind == ModelKind::gpt ? "gpt"
                                                               : "custom";
  auto refuse = [&](const std::string& what) {
    throw InputError(where + ": [prune] structure = \"" + prune_structure_name(structure) + "\": a " + kind +
                     " model has no " + what);
  };
  if (structure == PruneStructure::neurons) {
    if (spec_model.kind != ModelKind::mlp && spec_model.kind != ModelKind::cnn)
      refuse("hidden neurons to prune (neurons: the MLP's, or the CNN classifier's hidden units)");
    std::vector<std::pair<std::string, const nn::Linear*>> chain;
    for (const auto& l : f.linears)
      if (spec_model.kind == ModelKind::mlp || starts_with(l.first, "classifier.")) chain.push_back(l);
    if (chain.size() < 2) refuse("hidden layer ([model] hidden is empty)");
    const double at_zero = spec_model.kind == ModelKind::mlp ? activation_at_zero(spec_model.mlp.activation) : 0.0;
    for (size_t i = 0; i + 1 < chain.size(); ++i) {
      out.push_back(linear_units(chain[i].first, *chain[i].second, chain[i + 1].first, *chain[i + 1].second, structure,
                                 int64_t(i)));
      out.back().activation_at_zero = at_zero;
    }
  } else if (structure == PruneStructure::channels) {
    if (spec_model.kind != ModelKind::cnn) refuse("convolution channels");
    const std::string first_linear = f.linears.empty() ? "" : f.linears.front().first;
    for (size_t b = 0; b < f.convs.size(); ++b) {
      const auto& [name, conv] = f.convs[b];
      PruneLayer p;
      p.name = name + ".weight";
      p.structure = structure;
      p.units = conv->weight().size(0);
      p.index = int64_t(b);
      p.owned.push_back(slice(name + ".weight", conv->weight(), true));
      if (conv->bias().defined()) p.owned.push_back(slice(name + ".bias", conv->bias(), false));
      // The BatchNorm after the conv (features.<i+1>): a removed channel's weight and bias go to 0,
      // so its output is 0 in training and in eval whatever its running statistics.
      const std::string prefix = name.substr(0, name.rfind('.') + 1);
      const int64_t at = std::stoll(name.substr(prefix.size()));
      for (const auto& [norm_name, norm] : f.norms)
        if (norm_name == prefix + std::to_string(at + 1)) {
          p.owned.push_back(slice(norm_name + ".weight", norm->weight(), false));
          p.owned.push_back(slice(norm_name + ".bias", norm->bias(), false));
          p.owned.push_back(slice(norm_name + ".running_mean", norm->running_mean(), false, {0}, 1, false));
          p.owned.push_back(slice(norm_name + ".running_var", norm->running_var(), false, {0}, 1, false));
        }
      if (b + 1 < f.convs.size()) {
        p.consumers.push_back(slice(f.convs[b + 1].first + ".weight", f.convs[b + 1].second->weight(), false));
      } else {
        // The classifier's first Linear reads each channel's H x W pooled values in a row.
        const nn::Linear& next = *f.linears.front().second;
        const int64_t per_channel = next.in_features() / p.units;
        p.consumers.push_back(slice(first_linear + ".weight", next.weight(), false, {0}, per_channel));
      }
      out.push_back(std::move(p));
    }
  } else if (structure == PruneStructure::heads || structure == PruneStructure::mlp) {
    if (spec_model.kind != ModelKind::gpt)
      refuse(structure == PruneStructure::heads ? "attention heads" : "transformer MLP (mlp: a GPT's MLP width)");
    const int64_t head_width = spec_model.gpt.width / spec_model.gpt.heads;
    int64_t block = 0;
    for (const auto& [name, l] : f.linears) {
      const bool qkv = name.size() > 9 && name.compare(name.size() - 9, 9, ".attn.qkv") == 0;
      const bool fc = name.size() > 7 && name.compare(name.size() - 7, 7, ".mlp.fc") == 0;
      const std::string block_prefix = name.substr(0, name.find(qkv ? ".attn.qkv" : ".mlp.fc"));
      if (qkv && structure == PruneStructure::heads) {
        const int64_t inner = l->out_features() / 3;
        PruneLayer p;
        p.name = name + ".weight";
        p.structure = structure;
        p.units = inner / head_width;
        p.index = block++;
        const std::vector<int64_t> offsets = {0, inner, 2 * inner};
        p.owned.push_back(slice(name + ".weight", l->weight(), true, offsets, head_width));
        if (l->bias().defined()) p.owned.push_back(slice(name + ".bias", l->bias(), false, offsets, head_width));
        p.consumers.push_back(slice(block_prefix + ".attn.proj.weight", Tensor(), false, {0}, head_width));
        out.push_back(std::move(p));
      } else if (fc && structure == PruneStructure::mlp) {
        PruneLayer p;
        p.name = name + ".weight";
        p.structure = structure;
        p.units = l->out_features();
        p.index = block++;
        p.owned.push_back(slice(name + ".weight", l->weight(), true));
        if (l->bias().defined()) p.owned.push_back(slice(name + ".bias", l->bias(), false));
        p.consumers.push_back(slice(block_prefix + ".mlp.proj.weight", Tensor(), false));
        out.push_back(std::move(p));
      }
    }
  }
}

// The output layer's weight: a GPT's untied head ("" when tied: wte is an Embedding), else the last Linear.
std::string output_weight(const nn::Module& model, const ModelSpec& spec_model) {
  const Found f = find_modules(model);
  if (f.linears.empty()) return "";
  if (spec_model.kind == ModelKind::gpt) return spec_model.gpt.tied_embeddings ? "" : "head.weight";
  return f.linears.back().first + ".weight";
}

void add_unstructured(const nn::Module& model, const ModelSpec& spec_model, std::vector<PruneLayer>& out) {
  std::vector<std::pair<std::string, Tensor>> weights;
  for (const auto& [name, m] : model.named_modules()) {
    if (auto* l = dynamic_cast<const nn::Linear*>(m)) weights.emplace_back(name + ".weight", l->weight());
    if (auto* c = dynamic_cast<const nn::Conv2d*>(m)) weights.emplace_back(name + ".weight", c->weight());
  }
  // The output layer (the logits) stays dense by default; embeddings are not Linear.
  if (const std::string output = output_weight(model, spec_model); !output.empty()) {
    weights.erase(std::remove_if(weights.begin(), weights.end(), [&](const auto& w) { return w.first == output; }),
                  weights.end());
  }
  for (const auto& [name, t] : weights) {
    PruneLayer p;
    p.name = name;
    p.units = t.numel();
    p.owned.push_back(slice(name, t, true));
    out.push_back(std::move(p));
  }
}

}  // namespace

std::vector<PruneLayer> find_prune_layers(const nn::Module& model, const ModelSpec& spec_model, const PruneSpec& spec,
                                          const std::string& where) {
  std::vector<PruneLayer> candidates;
  for (PruneStructure s : spec.structures) {
    if (s == PruneStructure::weights) {
      add_unstructured(model, spec_model, candidates);
      // With `layers` given, the output layer may be named too.
      const std::string output = output_weight(model, spec_model);
      if (!spec.layers.empty() && !output.empty()) {
        const Found f = find_modules(model);
        for (const auto& [name, linear] : f.linears) {
          if (name + ".weight" != output) continue;
          PruneLayer p;
          p.name = output;
          p.units = linear->weight().numel();
          p.owned.push_back(slice(p.name, linear->weight(), true));
          bool named = false;
          for (const std::string& pattern : spec.layers) named = named || glob_match(pattern, p.name);
          if (named) candidates.push_back(std::move(p));
        }
      }
    } else {
      add_structured(model, spec_model, s, where, candidates);
    }
  }
  std::string names;
  for (size_t i = 0; i < candidates.size() && i < 8; ++i) names += (i ? ", " : "") + candidates[i].name;
  if (candidates.size() > 8) names += ", ...";
  for (const auto& [key, patterns] : {std::pair{"layers", &spec.layers}, std::pair{"exclude", &spec.exclude}})
    for (const std::string& pattern : *patterns) {
      bool matched = false;
      for (const PruneLayer& p : candidates) matched = matched || glob_match(pattern, p.name);
      if (!matched)
        throw InputError(where + ": [prune] " + key + " pattern \"" + pattern + "\" matches no prunable layer (" +
                         names + ")");
    }
  std::vector<PruneLayer> out;
  for (PruneLayer& p : candidates) {
    bool chosen = spec.layers.empty();
    for (const std::string& pattern : spec.layers) chosen = chosen || glob_match(pattern, p.name);
    for (const std::string& pattern : spec.exclude) chosen = chosen && !glob_match(pattern, p.name);
    if (chosen) out.push_back(std::move(p));
  }
  if (out.empty()) throw InputError(where + ": [prune] chooses no layer to prune (exclude leaves none of " + names + ")");
  return out;
}

PruneMasks full_masks(const std::vector<PruneLayer>& layers) {
  PruneMasks masks;
  for (const PruneLayer& p : layers) masks.emplace_back(size_t(p.units), uint8_t(1));
  return masks;
}

int64_t kept_count(const std::vector<uint8_t>& mask) { return std::count(mask.begin(), mask.end(), uint8_t(1)); }

std::vector<std::vector<double>> magnitude_scores(const std::vector<PruneLayer>& layers) {
  std::vector<std::vector<double>> scores;
  for (const PruneLayer& p : layers) {
    std::vector<double> s(size_t(p.units), 0.0);
    if (p.structure == PruneStructure::weights) {
      const float* w = p.owned[0].tensor.data<float>();
      for (int64_t i = 0; i < p.units; ++i) s[size_t(i)] = std::fabs(double(w[i]));
    } else {
      for (const PruneSlice& m : p.owned) {
        if (!m.scored) continue;
        const float* w = m.tensor.data<float>();
        const int64_t row = row_size(m.tensor);
        for (int64_t u = 0; u < p.units; ++u)
          for (int64_t offset : m.offsets)
            for (int64_t i = (offset + u * m.rows) * row, e = i + m.rows * row; i < e; ++i)
              s[size_t(u)] += double(w[i]) * double(w[i]);
      }
      for (double& v : s) v = std::sqrt(v);
    }
    scores.push_back(std::move(s));
  }
  return scores;
}

void accumulate_taylor(const std::vector<PruneLayer>& layers, std::vector<std::vector<double>>& scores) {
  for (size_t l = 0; l < layers.size(); ++l) {
    const PruneLayer& p = layers[l];
    std::vector<double>& s = scores[l];
    if (p.structure == PruneStructure::weights) {
      const Tensor& t = p.owned[0].tensor;
      const Tensor g = t.grad();
      if (!g.defined()) continue;
      const float *w = t.data<float>(), *gd = g.contiguous().data<float>();
      for (int64_t i = 0; i < p.units; ++i) s[size_t(i)] += std::fabs(double(w[i]) * double(gd[i]));
      continue;
    }
    std::vector<double> sum(size_t(p.units), 0.0);
    for (const PruneSlice& m : p.owned) {
      if (!m.masked) continue;
      const Tensor g = m.tensor.grad();
      if (!g.defined()) continue;
      const Tensor gc = g.contiguous();
      const float *w = m.tensor.data<float>(), *gd = gc.data<float>();
      const int64_t row = row_size(m.tensor);
      for (int64_t u = 0; u < p.units; ++u)
        for (int64_t offset : m.offsets)
          for (int64_t i = (offset + u * m.rows) * row, e = i + m.rows * row; i < e; ++i)
            sum[size_t(u)] += double(w[i]) * double(gd[i]);
    }
    for (int64_t u = 0; u < p.units; ++u) s[size_t(u)] += std::fabs(sum[size_t(u)]);
  }
}

void choose_pruned(const std::vector<PruneLayer>& layers, const std::vector<std::vector<double>>& scores,
                   double sparsity, bool global, PruneMasks& masks) {
  // (score, layer, unit); removed units rank first (score -1), so masks only grow.
  using Candidate = std::tuple<double, size_t, int64_t>;
  auto prune_ranked = [&](std::vector<Candidate>& ranked, int64_t target, bool structured) {
    std::sort(ranked.begin(), ranked.end());
    std::vector<int64_t> kept(layers.size(), 0);
    for (size_t l = 0; l < layers.size(); ++l) kept[l] = kept_count(masks[l]);
    int64_t removed = 0;
    for (const auto& [score, l, u] : ranked) {
      if (removed >= target) break;
      if (!masks[l][size_t(u)]) {
        ++removed;
        continue;
      }
      if (structured && kept[l] <= 1) continue;  // a layer keeps at least one unit
      masks[l][size_t(u)] = 0;
      --kept[l];
      ++removed;
    }
  };
  auto ranked_of = [&](size_t l, std::vector<Candidate>& ranked) {
    const PruneLayer& p = layers[l];
    double scale = 1.0;
    if (global && p.structure != PruneStructure::weights) {
      double sum = 0;
      int64_t n = 0;
      for (int64_t u = 0; u < p.units; ++u)
        if (masks[l][size_t(u)]) sum += scores[l][size_t(u)] * scores[l][size_t(u)], ++n;
      const double rms = n ? std::sqrt(sum / double(n)) : 0.0;
      scale = rms > 0 ? 1.0 / rms : 1.0;
    }
    for (int64_t u = 0; u < p.units; ++u)
      ranked.emplace_back(masks[l][size_t(u)] ? scores[l][size_t(u)] * scale : -1.0, l, u);
  };
  const double eps = 1e-9;  // 0.3 x 10 units is 3, not 2.9999
  if (!global) {
    for (size_t l = 0; l < layers.size(); ++l) {
      std::vector<Candidate> ranked;
      ranked_of(l, ranked);
      prune_ranked(ranked, int64_t(std::floor(sparsity * double(layers[l].units) + eps)),
                   layers[l].structure != PruneStructure::weights);
    }
    return;
  }
  // Global: one ranking per structure (heads and MLP units are not compared with each other).
  for (PruneStructure s : {PruneStructure::weights, PruneStructure::neurons, PruneStructure::channels,
                           PruneStructure::heads, PruneStructure::mlp}) {
    std::vector<Candidate> ranked;
    int64_t units = 0;
    for (size_t l = 0; l < layers.size(); ++l)
      if (layers[l].structure == s) ranked_of(l, ranked), units += layers[l].units;
    if (units) prune_ranked(ranked, int64_t(std::floor(sparsity * double(units) + eps)), s != PruneStructure::weights);
  }
}

void apply_masks(const std::vector<PruneLayer>& layers, const PruneMasks& masks) {
  for (size_t l = 0; l < layers.size(); ++l) {
    const PruneLayer& p = layers[l];
    const std::vector<uint8_t>& mask = masks[l];
    if (p.structure == PruneStructure::weights) {
      float* w = p.owned[0].tensor.data<float>();
      for (int64_t i = 0; i < p.units; ++i)
        if (!mask[size_t(i)]) w[i] = 0.0f;
      continue;
    }
    for (const PruneSlice& m : p.owned) {
      if (!m.masked) continue;
      float* w = m.tensor.data<float>();
      const int64_t row = row_size(m.tensor);
      for (int64_t u = 0; u < p.units; ++u)
        if (!mask[size_t(u)])
          for (int64_t offset : m.offsets) std::fill(w + (offset + u * m.rows) * row, w + (offset + u * m.rows + m.rows) * row, 0.0f);
    }
  }
}

}  // namespace frugal::train
