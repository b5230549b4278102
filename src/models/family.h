// Private interface between the registry and the model families (one file per family).
#pragma once

#include <memory>
#include <vector>

#include "qvit/model.h"

namespace qvit {

struct ModelFamily {
  const char* name;
  std::vector<WeightSpec> (*specs)(const ModelConfig&);
  // Renames/drops keys of other known checkpoint layouts so that they match specs(); may be null.
  void (*normalize)(const ModelConfig&, WeightFile&);
  std::unique_ptr<Model> (*create)(const ModelConfig&, const WeightFile&);
};

std::vector<WeightSpec> vit_weight_specs(const ModelConfig& cfg);
std::unique_ptr<Model> create_vit(const ModelConfig& cfg, const WeightFile& weights);

std::vector<WeightSpec> swin_weight_specs(const ModelConfig& cfg);
void swin_normalize_weights(const ModelConfig& cfg, WeightFile& weights);
std::unique_ptr<Model> create_swin(const ModelConfig& cfg, const WeightFile& weights);

const ModelFamily& model_family(const std::string& name);

}  // namespace qvit
