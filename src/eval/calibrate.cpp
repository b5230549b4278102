// Calibration driver (FQ-ViT protocol) and the index helpers for calibration/evaluation splits.
#include <algorithm>

#include "qvit/error.h"
#include "qvit/eval.h"

namespace qvit {

std::vector<size_t> calibration_indices(const Dataset& ds, const CalibOptions& opt) {
  if (opt.batch <= 0 || opt.iters <= 0)
    fail("calibrate", "calibration batch ({}) and iterations ({}) must be positive", opt.batch,
         opt.iters);
  const size_t want = static_cast<size_t>(opt.batch) * opt.iters;
  if (ds.samples.size() < want)
    fail("calibrate", "{}: has {} images, but calibration asks for {} ({} batches of {})", ds.root,
         ds.samples.size(), want, opt.iters, opt.batch);
  return sample_indices(ds.samples.size(), want, opt.seed);
}

std::vector<size_t> complement_indices(const Dataset& ds, const std::vector<size_t>& exclude) {
  std::vector<char> used(ds.samples.size(), 0);
  for (size_t i : exclude)
    if (i < used.size()) used[i] = 1;
  std::vector<size_t> out;
  for (size_t i = 0; i < used.size(); ++i)
    if (!used[i]) out.push_back(i);
  return out;
}

double top1_agreement(const EvalResult& a, const EvalResult& b) {
  if (a.per_image.size() != b.per_image.size() || a.per_image.empty()) return 0.0;
  size_t same = 0;
  for (size_t i = 0; i < a.per_image.size(); ++i) same += a.per_image[i].top5[0] == b.per_image[i].top5[0];
  return 100.0 * same / a.per_image.size();
}

void calibrate(Model& model, QuantSession& session, const Dataset& ds,
               const std::vector<size_t>& indices, const PreprocessConfig& pre,
               const CalibOptions& opt) {
  model.set_quant(&session);
  session.set_mode(QuantMode::calibrate);
  BatchLoader loader(ds, indices, pre, opt.batch, opt.workers);
  Batch batch;
  size_t done = 0, k = 0;
  while (loader.next(batch)) {
    session.set_last_batch(++k == loader.num_batches());
    model.forward(batch.images);
    done += batch.labels.size();
    if (opt.on_progress) opt.on_progress(done, loader.num_samples());
  }
  session.set_last_batch(false);
  session.finalize();
  session.set_mode(QuantMode::simulate);
  model.sync_quant();  // registers the weight parameters in the session
}

}  // namespace qvit
