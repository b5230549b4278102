// PTF observer: FQ-ViT's Power-of-Two Factor (ptf.py) for the quantizers that feed a
// LayerNorm. Statistics: running min/max over all batches (FQ-ViT keeps them per channel but
// only ever uses their global extremes, so qvit keeps those). On the batch marked last:
//   s8   = max((max - min) / (qmax - qmin), eps)       the "8x" scale, float32
//   s_a  = s8 / 2^(K - a), a = 0..K (K = 3)            by repeated halving, exact
//   zero = clamp(qmin - round(min / s8), qmin, qmax)   from s8, shared by every channel
//   alpha_c = argmin_a mean over channel c's values of that batch of (x - x^_a)^2, ties to
//             the smallest a; scale_c = s_0 * 2^alpha_c.
// Squared errors are summed per channel in double, over rows in order.
#include <algorithm>
#include <cmath>

#include "qvit/parallel.h"
#include "qvit/quant.h"
#include "quant/observer_impl.h"

namespace qvit::quant_detail {

namespace {

constexpr int64_t kChannelBlock = 16;

class PtfObserver final : public ObserverBase {
 public:
  explicit PtfObserver(const ObserverOptions& opt) : ObserverBase(ObserverKind::ptf, opt) {}

  void observe(const float* x, int64_t rows, int64_t C, bool last) override {
    check_batch(x, rows, C);
    const Range r = tensor_range(x, rows * C, label());
    if (batches_ == 0) {
      min_ = r.min;
      max_ = r.max;
    } else {
      min_ = std::min(min_, r.min);
      max_ = std::max(max_, r.max);
    }
    if (last) search(x, rows, C);
    commit_batch(C, last);
  }

  QuantParams params() const override {
    require_params_ready(true);
    return params_;
  }

 private:
  void search(const float* x, int64_t rows, int64_t C) {
    const int K = opt_.ptf_k;
    float s8 = 0, zero = 0;
    asymmetric_params(min_, max_, opt_.bits, &s8, &zero);
    std::vector<float> cand(static_cast<size_t>(K + 1));
    cand[K] = s8;
    for (int a = K - 1; a >= 0; --a) cand[a] = cand[a + 1] / 2;
    const float qmin = static_cast<float>(opt_.bits.qmin());
    const float qmax = static_cast<float>(opt_.bits.qmax());

    params_ = QuantParams{};
    params_.kind = QuantKind::ptf;
    params_.bits = opt_.bits;
    params_.zero_point = {zero};
    params_.scale.resize(static_cast<size_t>(C));
    params_.alpha.resize(static_cast<size_t>(C));
    params_.observed_min = min_;
    params_.observed_max = max_;
    // Channels in blocks; each block walks all rows, so each channel's sums run in row order.
    parallel_for(C, kChannelBlock, [&](int64_t c0, int64_t c1) {
      const int64_t width = c1 - c0;
      std::vector<double> sse(static_cast<size_t>((K + 1) * width), 0.0);
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * C + c0;
        for (int a = 0; a <= K; ++a) {
          double* acc = sse.data() + a * width;
          const float s = cand[a];
#pragma omp simd
          for (int64_t j = 0; j < width; ++j) {
            const double d = static_cast<double>(xr[j]) -
                             static_cast<double>(fake_quant_one(xr[j], s, zero, qmin, qmax));
            acc[j] += d * d;
          }
        }
      }
      for (int64_t j = 0; j < width; ++j) {
        int best = 0;
        for (int a = 1; a <= K; ++a) {
          if (sse[a * width + j] < sse[best * width + j]) best = a;
        }
        params_.alpha[c0 + j] = best;
        params_.scale[c0 + j] = cand[best];
      }
    });
  }

  float min_ = 0, max_ = 0;
  QuantParams params_;
};

}  // namespace

std::unique_ptr<Observer> make_ptf_observer(const ObserverOptions& opt) {
  return std::make_unique<PtfObserver>(opt);
}

}  // namespace qvit::quant_detail
