// Evaluation loop and its JSON form.
#include "qvit/eval.h"

#include <algorithm>
#include <chrono>

namespace qvit {

std::array<int, 5> top5_indices(const float* logits, int num_classes) {
  std::array<int, 5> best;
  best.fill(-1);
  for (int c = 0; c < num_classes; ++c) {
    // Insert c if it beats the current 5th; strict > keeps the lower index first on ties.
    int pos = 5;
    while (pos > 0 && (best[pos - 1] < 0 || logits[c] > logits[best[pos - 1]])) --pos;
    if (pos >= 5) continue;
    for (int j = 4; j > pos; --j) best[j] = best[j - 1];
    best[pos] = c;
  }
  return best;
}

EvalResult evaluate(Model& model, const Dataset& ds, const std::vector<size_t>& order,
                    const PreprocessConfig& pre, const EvalOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  BatchLoader loader(ds, order, pre, opt.batch, opt.workers);
  EvalResult r;
  const int nc = model.config().num_classes;
  Batch batch;
  while (loader.next(batch)) {
    Tensor logits = model.forward(batch.images);
    for (size_t i = 0; i < batch.labels.size(); ++i) {
      const float* l = logits.f32() + i * nc;
      ImageResult ir;
      ir.index = batch.index[i];
      ir.label = batch.labels[i];
      ir.top5 = top5_indices(l, nc);
      for (int k = 0; k < 5; ++k) ir.top5_logits[k] = ir.top5[k] >= 0 ? l[ir.top5[k]] : 0.0f;
      if (ir.label >= 0) {
        ++r.labelled;
        if (ir.top5[0] == ir.label) ++r.top1;
        if (std::find(ir.top5.begin(), ir.top5.end(), ir.label) != ir.top5.end()) ++r.top5;
      }
      r.per_image.push_back(ir);
    }
    r.images += batch.labels.size();
    if (opt.on_progress) opt.on_progress(r.images, loader.num_samples());
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

nlohmann::json eval_json(const EvalResult& r, const Dataset& ds) {
  nlohmann::json j;
  j["images"] = r.images;
  j["labelled"] = r.labelled;
  j["top1_correct"] = r.top1;
  j["top5_correct"] = r.top5;
  j["top1"] = r.top1_pct();
  j["top5"] = r.top5_pct();
  j["seconds"] = r.seconds;
  j["images_per_second"] = r.images_per_second();
  nlohmann::json per = nlohmann::json::array();
  for (const ImageResult& ir : r.per_image) {
    per.push_back({{"path", ds.samples[ir.index].path},
                   {"label", ir.label},
                   {"top5", ir.top5},
                   {"logits", ir.top5_logits}});
  }
  j["per_image"] = std::move(per);
  return j;
}

}  // namespace qvit
