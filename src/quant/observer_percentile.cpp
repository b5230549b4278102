// Percentile observer (FQ-ViT percentile.py), per-tensor only. Per batch, the p and 1 - p
// quantiles (p = 0.99999) of the whole flattened tensor become the batch max and min; across
// batches they are averaged like the EMA observer (first batch initialises, sigma = 0.01).
//
// Quantile arithmetic, as FQ-ViT gets it (linear interpolation between order statistics):
//   n <= 2^24 (torch.quantile): q32 = float(q); rank = q32 * float(n - 1) in float32;
//     below = trunc(rank), above = ceil(rank), w = rank - below (float32);
//     value = |w| < 0.5 ? fma(w, v_above - v_below, v_below)
//                       : fma(-(v_above - v_below), 1 - w, v_above)   (PyTorch's lerp, FMA)
//   n > 2^24 (torch refuses; FQ-ViT falls back to numpy.percentile): q = (100 q) / 100 and
//     rank = (n - 1) q in double; below = floor(rank), above = below + 1 (both n - 1 at the
//     end); g = rank - below; d = float32(v_above - v_below);
//     value = float(g < 0.5 ? v_below + g d : v_above - d (1 - g)), evaluated in double.
// The order statistics come from select_ranks: exact values, O(n), no full copy for the
// usual extreme quantiles.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <limits>

#include "qvit/error.h"
#include "qvit/parallel.h"
#include "qvit/quant.h"
#include "quant/observer_impl.h"

namespace qvit::quant_detail {

namespace {

constexpr int64_t kTorchQuantileMaxNumel = int64_t{1} << 24;
constexpr int64_t kSelectChunk = int64_t{1} << 20;
constexpr int64_t kSkipBlock = 16;

// Keeps a superset of the k largest values pushed, in amortised O(1) per value: values go to a
// buffer of up to 2k; when it is full, the k largest are kept and the threshold rises.
class TopK {
 public:
  explicit TopK(int64_t k) : k_(static_cast<size_t>(k)) { buf_.reserve(2 * k_); }
  // Only values above the threshold can change the top k.
  bool wants(float v) const { return v > threshold_; }
  void push(float v) {
    buf_.push_back(v);
    if (buf_.size() == k_ && threshold_ == -std::numeric_limits<float>::infinity()) {
      threshold_ = *std::min_element(buf_.begin(), buf_.end());
    } else if (buf_.size() == 2 * k_) {
      std::nth_element(buf_.begin(), buf_.begin() + (k_ - 1), buf_.end(), std::greater<>());
      buf_.resize(k_);
      threshold_ = buf_[k_ - 1];
    }
  }
  const std::vector<float>& values() const { return buf_; }

 private:
  size_t k_;
  std::vector<float> buf_;
  float threshold_ = -std::numeric_limits<float>::infinity();
};

// The d-th largest (0-based) of v; reorders v.
float nth_largest(std::vector<float>& v, int64_t d) {
  std::nth_element(v.begin(), v.begin() + d, v.end(), std::greater<>());
  return v[static_cast<size_t>(d)];
}

}  // namespace

void select_ranks_naive(const float* x, int64_t n, const std::vector<int64_t>& ranks,
                        std::vector<float>& out) {
  std::vector<float> copy(x, x + n);
  out.resize(ranks.size());
  for (size_t i = 0; i < ranks.size(); ++i) {
    std::nth_element(copy.begin(), copy.begin() + ranks[i], copy.end());
    out[i] = copy[static_cast<size_t>(ranks[i])];
  }
}

void select_ranks(const float* x, int64_t n, const std::vector<int64_t>& ranks,
                  std::vector<float>& out, const std::string& who) {
  if (n <= 0) fail("quant", "{}: empty tensor", who);
  int64_t need_lo = 0, need_hi = 0;  // how many smallest / largest values hold the ranks
  for (int64_t r : ranks) {
    if (r < 0 || r >= n) fail("quant", "{}: rank {} outside [0, {})", who, r, n);
    if (r < n / 2) {
      need_lo = std::max(need_lo, r + 1);
    } else {
      need_hi = std::max(need_hi, n - r);
    }
  }
  if (need_lo + need_hi > n / 8) {  // not an extreme quantile: copy and select
    tensor_range(x, n, who);        // NaN/Inf check (nth_element needs a strict weak order)
    select_ranks_naive(x, n, ranks, out);
    return;
  }
  // Each chunk keeps (a superset of) its need_hi largest and need_lo smallest values; the union
  // then holds the global ones. Smallest values are kept negated so one TopK serves both.
  const int64_t chunks = (n + kSelectChunk - 1) / kSelectChunk;
  std::vector<std::vector<float>> top(static_cast<size_t>(chunks));
  std::vector<std::vector<float>> bottom(static_cast<size_t>(chunks));
  std::vector<int> bad(static_cast<size_t>(chunks), 0);
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t i0 = c * kSelectChunk, i1 = std::min(n, i0 + kSelectChunk);
      TopK hi(std::max<int64_t>(need_hi, 1)), lo(std::max<int64_t>(need_lo, 1));
      int non_finite = 0;
      // Blocks whose max and min cannot enter either buffer are skipped after a vectorised
      // scan (almost all of them once the thresholds have settled).
      for (int64_t b0 = i0; b0 < i1; b0 += kSkipBlock) {
        const int64_t b1 = std::min(i1, b0 + kSkipBlock);
        float bmax = x[b0], bmin = x[b0];
        int nf = 0;
#pragma omp simd reduction(max : bmax) reduction(min : bmin) reduction(| : nf)
        for (int64_t i = b0; i < b1; ++i) {
          const float v = x[i];
          bmax = v > bmax ? v : bmax;
          bmin = v < bmin ? v : bmin;
          nf |= !(std::fabs(v) <= FLT_MAX);
        }
        non_finite |= nf;
        if (!hi.wants(bmax) && !lo.wants(-bmin)) continue;
        for (int64_t i = b0; i < b1; ++i) {
          const float v = x[i];
          if (hi.wants(v)) hi.push(v);
          if (lo.wants(-v)) lo.push(-v);
        }
      }
      top[c] = hi.values();
      bottom[c] = lo.values();
      bad[c] = non_finite;
    }
  });
  if (std::find(bad.begin(), bad.end(), 1) != bad.end()) {
    fail("quant", "{}: the data contains NaN or Inf (quantization needs finite values)", who);
  }
  std::vector<float> hi_all, lo_all;
  for (int64_t c = 0; c < chunks; ++c) {
    hi_all.insert(hi_all.end(), top[c].begin(), top[c].end());
    lo_all.insert(lo_all.end(), bottom[c].begin(), bottom[c].end());
  }
  out.resize(ranks.size());
  for (size_t i = 0; i < ranks.size(); ++i) {
    const int64_t r = ranks[i];
    out[i] = r < n / 2 ? -nth_largest(lo_all, r) : nth_largest(hi_all, n - 1 - r);
  }
}

Range percentile_range(const float* x, int64_t n, double p, const std::string& who) {
  const double q_of[2] = {1.0 - p, p};  // FQ-ViT: 1.0 - percentile_alpha, percentile_alpha
  std::vector<int64_t> ranks(4);
  float w32[2] = {0, 0};
  double w64[2] = {0, 0};
  const bool torch_path = n <= kTorchQuantileMaxNumel;
  for (int i = 0; i < 2; ++i) {
    if (torch_path) {
      const float rank = static_cast<float>(q_of[i]) * static_cast<float>(n - 1);
      ranks[2 * i] = static_cast<int64_t>(rank);
      ranks[2 * i + 1] = static_cast<int64_t>(std::ceil(rank));
      w32[i] = rank - static_cast<float>(ranks[2 * i]);
    } else {
      const double q = (q_of[i] * 100.0) / 100.0;  // numpy.percentile(x, 100 q)
      const double rank = static_cast<double>(n - 1) * q;
      if (rank >= static_cast<double>(n - 1)) {
        ranks[2 * i] = ranks[2 * i + 1] = n - 1;
      } else {
        ranks[2 * i] = static_cast<int64_t>(std::floor(rank));
        ranks[2 * i + 1] = ranks[2 * i] + 1;
      }
      w64[i] = rank - static_cast<double>(ranks[2 * i]);
    }
  }
  std::vector<float> v;
  select_ranks(x, n, ranks, v, who);
  float result[2];
  for (int i = 0; i < 2; ++i) {
    const float a = v[2 * i], b = v[2 * i + 1];
    const float d = b - a;
    if (torch_path) {
      const float w = w32[i];
      result[i] = std::fabs(w) < 0.5f ? std::fma(w, d, a) : std::fma(-d, 1.0f - w, b);
    } else {
      const double g = w64[i];
      const double r = g < 0.5 ? static_cast<double>(a) + g * static_cast<double>(d)
                               : static_cast<double>(b) - static_cast<double>(d) * (1.0 - g);
      result[i] = static_cast<float>(r);
    }
  }
  return Range{result[0], result[1]};
}

namespace {

class PercentileObserver final : public ObserverBase {
 public:
  explicit PercentileObserver(const ObserverOptions& opt)
      : ObserverBase(ObserverKind::percentile, opt) {
    if (opt.per_channel) {
      fail("quant", "{}: the percentile observer is per-tensor only (as in FQ-ViT)", label());
    }
  }

  void observe(const float* x, int64_t rows, int64_t C, bool last) override {
    check_batch(x, rows, C);
    const Range r = percentile_range(x, rows * C, opt_.percentile, label());
    if (batches_ == 0) {
      min_ = r.min;
      max_ = r.max;
    } else {
      max_ = ema_update(max_, r.max, opt_.ema_sigma);
      min_ = ema_update(min_, r.min, opt_.ema_sigma);
    }
    commit_batch(C, last);
  }

  QuantParams params() const override {
    require_params_ready(false);
    return uniform_params({min_}, {max_}, opt_.bits, opt_.bits.is_signed);
  }

 private:
  float min_ = 0, max_ = 0;
};

}  // namespace

std::unique_ptr<Observer> make_percentile_observer(const ObserverOptions& opt) {
  return std::make_unique<PercentileObserver>(opt);
}

}  // namespace qvit::quant_detail
