// MinMax observer (FQ-ViT minmax.py): running min and max over all calibration batches, per
// channel or, in layer-wise mode, collapsed to one min/max (which equals the global min/max).
// Parameters: uniform_params(min, max), symmetric for a signed bit type.
#include <algorithm>

#include "qvit/quant.h"
#include "quant/observer_impl.h"

namespace qvit::quant_detail {

namespace {

class MinMaxObserver final : public ObserverBase {
 public:
  explicit MinMaxObserver(const ObserverOptions& opt) : ObserverBase(ObserverKind::minmax, opt) {}

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
      min_[c] = std::min(min_[c], batch_min_[c]);
      max_[c] = std::max(max_[c], batch_max_[c]);
    }
  }

  QuantParams params() const override {
    require_params_ready(false);
    return uniform_params(min_, max_, opt_.bits, opt_.bits.is_signed);
  }

 private:
  std::vector<float> min_, max_;              // 1 or C entries
  std::vector<float> batch_min_, batch_max_;  // scratch, reused across batches
};

}  // namespace

std::unique_ptr<Observer> make_minmax_observer(const ObserverOptions& opt) {
  return std::make_unique<MinMaxObserver>(opt);
}

}  // namespace qvit::quant_detail
