// Penultimate embeddings (see embedding.h): the model's children run in order, the last one (a
// Sequential) without its final Linear, which then maps the embedding to the logits.
#include "frugal/train/sampling/embedding.h"

#include "frugal/base/error.h"
#include "frugal/nn/layers.h"
#include "frugal/nn/sequential.h"
#include "frugal/nn/zoo.h"

namespace frugal::train {

EmbeddedLogits embed_and_classify(nn::Module& model, const Tensor& inputs) {
  const auto& children = model.named_children();
  auto* last = children.empty() ? nullptr : dynamic_cast<nn::Sequential*>(children.back().second.get());
  nn::Linear* head = last && last->size() > 0 ? dynamic_cast<nn::Linear*>(&(*last)[last->size() - 1]) : nullptr;
  if (!head)
    throw InputError("per-sample embeddings need a model whose last layer is a Linear inside a Sequential (the mlp "
                     "and cnn models); this model is a " + model.type_name());
  Tensor x = inputs;
  // The Cnn runs its conv blocks channels-last: its forward_features does it the same way.
  if (auto* cnn = dynamic_cast<nn::Cnn*>(&model)) {
    x = cnn->forward_features(x);
  } else {
    for (size_t i = 0; i + 1 < children.size(); ++i) x = children[i].second->forward(x);
  }
  std::vector<nn::Module*> layers;
  for (int64_t i = 0; i + 1 < last->size(); ++i) layers.push_back(&(*last)[i]);
  Tensor embedding = layers.empty() ? x : nn::forward_chain(layers, x);
  return {embedding, head->forward(embedding)};
}

}  // namespace frugal::train
