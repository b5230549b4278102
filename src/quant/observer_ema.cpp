// EMA observer (FQ-ViT ema.py): the first batch's min/max initialise the running values, each
// later batch moves them by m <- m + sigma * (m_batch - m) (float32, sigma = 0.01 by default).
// Layer-wise mode collapses the batch's per-channel min/max to scalars before the update; FQ-ViT
// updates the vector and collapses afterwards, which gives the same float because each step of
// the update is monotone in m_batch.
#include "qvit/quant.h"
#include "quant/observer_impl.h"

namespace qvit::quant_detail {

namespace {

class EmaObserver final : public ObserverBase {
 public:
  explicit EmaObserver(const ObserverOptions& opt) : ObserverBase(ObserverKind::ema, opt) {}

  void observe(const float* x, int64_t rows, int64_t C, bool last) override {
    check_batch(x, rows, C);
    if (opt_.per_channel) {
      column_ranges(x, rows, C, batch_min_, batch_max_, label());
    } else {
      const Range r = tensor_range(x, rows * C, label());
      batch_min_.assign(1, r.min);
      batch_max_.assign(1, r.max);
    }
    commit_batch(C, last);
    if (min_.empty()) {
      min_ = batch_min_;
      max_ = batch_max_;
      return;
    }
    for (size_t c = 0; c < min_.size(); ++c) {
      max_[c] = ema_update(max_[c], batch_max_[c], opt_.ema_sigma);
      min_[c] = ema_update(min_[c], batch_min_[c], opt_.ema_sigma);
    }
  }

  QuantParams params() const override {
    require_params_ready(false);
    return uniform_params(min_, max_, opt_.bits, opt_.bits.is_signed);
  }

 private:
  std::vector<float> min_, max_;
  std::vector<float> batch_min_, batch_max_;
};

}  // namespace

std::unique_ptr<Observer> make_ema_observer(const ObserverOptions& opt) {
  return std::make_unique<EmaObserver>(opt);
}

}  // namespace qvit::quant_detail
