// OMSE observer (FQ-ViT omse.py). Statistics: running min/max exactly like MinMax. On the batch
// marked last, a grid search on that batch only: for i = 0 .. steps-1 (90), f_i =
// float(1 - 0.01 i), candidate range [f_i min, f_i max] (float32 products), asymmetric params
// of that range, score = mean over all values of (x - x^)^2; the first strictly smaller score
// wins (FQ-ViT starts from best = 1e10; if no score is below it we keep i = 0, where FQ-ViT
// would fail). Always asymmetric, whatever the signedness of the bit type.
//
// The squared errors are summed in double (PyTorch sums float32 squares in an unspecified
// order), so a different i can be chosen only when two scores agree to ~1e-7 relative.
// Per-tensor searches use sse_binned (O(n) once + O(bins) per candidate); per-channel ones the
// direct sse_naive.
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "qvit/error.h"
#include "qvit/parallel.h"
#include "qvit/quant.h"
#include "quant/observer_impl.h"

namespace qvit::quant_detail {

namespace {

constexpr int64_t kNaiveGrain = 65536;
constexpr int64_t kMaxBins = 32768;
constexpr int64_t kValuesPerBin = 32;
constexpr int64_t kSegment = int64_t{1} << 20;  // values per pass segment (count fixed by n)
constexpr int64_t kMaxSegments = 8;
constexpr int64_t kBinnedMinValues = 32768;  // below this the direct search is as fast

// Squared error of one value under (s, z).
inline double sq_err(float x, float s, float z, float qmin, float qmax) {
  const double d = static_cast<double>(x) - static_cast<double>(fake_quant_one(x, s, z, qmin, qmax));
  return d * d;
}

}  // namespace

std::vector<double> sse_naive(const float* x, int64_t rows, int64_t C,
                              const std::vector<UniformCandidate>& cands, BitType bits) {
  const float qmin = static_cast<float>(bits.qmin()), qmax = static_cast<float>(bits.qmax());
  const int64_t K = static_cast<int64_t>(cands.size());
  // Per-channel scale and zero point of every candidate, [K, C].
  std::vector<float> s(static_cast<size_t>(K * C)), z(static_cast<size_t>(K * C));
  for (int64_t k = 0; k < K; ++k) {
    for (int64_t c = 0; c < C; ++c) {
      s[k * C + c] = cands[k].scale.size() == 1 ? cands[k].scale[0] : cands[k].scale[c];
      z[k * C + c] = cands[k].zero_point.size() == 1 ? cands[k].zero_point[0] : cands[k].zero_point[c];
    }
  }
  // Row chunks; each keeps one partial sum per candidate; partials are added in chunk order.
  const int64_t grain = std::max<int64_t>(1, kNaiveGrain / C);
  const int64_t chunks = (rows + grain - 1) / grain;
  std::vector<double> partial(static_cast<size_t>(chunks * K), 0.0);
  parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
    double* acc = partial.data() + (r0 / grain) * K;
    for (int64_t k = 0; k < K; ++k) {
      const float* sk = s.data() + k * C;
      const float* zk = z.data() + k * C;
      double a = 0.0;
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = 0; c < C; ++c) a += sq_err(x[r * C + c], sk[c], zk[c], qmin, qmax);
      }
      acc[k] = a;
    }
  });
  std::vector<double> out(static_cast<size_t>(K), 0.0);
  for (int64_t ch = 0; ch < chunks; ++ch) {
    for (int64_t k = 0; k < K; ++k) out[k] += partial[ch * K + k];
  }
  return out;
}

namespace {

// Orders finite floats as integers (-0 and +0 share a key), to search over floats.
int32_t float_key(float v) {
  const int32_t i = std::bit_cast<int32_t>(v);
  return i < 0 ? std::numeric_limits<int32_t>::min() - i : i;
}
float key_float(int32_t k) {
  return std::bit_cast<float>(k < 0 ? std::numeric_limits<int32_t>::min() - k : k);
}

// A monotone map from the values in [lo, hi] to bins, finer where values are dense: an
// equal-width coarse grid whose cell c is cut into parts_[c] equal pieces, about
// count_c * target / n of them (counts from every 16th value). first_[j] is the smallest float
// of bin j, so bin j holds exactly the floats in [first_[j], first_[j + 1]).
class ValueBins {
 public:
  ValueBins(const float* x, int64_t n, Range range, int64_t target) : lo_(range.min), hi_(range.max) {
    if (!(range.max > range.min)) {
      offset_ = {0, 1};
      parts_ = {1};
      first_ = {range.min, std::nextafter(range.max, std::numeric_limits<float>::infinity())};
      inv_coarse_ = 0;
      return;
    }
    inv_coarse_ = static_cast<double>(kCoarse) / (static_cast<double>(hi_) - lo_);
    std::vector<int64_t> count(kCoarse, 0);
    int64_t sampled = 0;
    for (int64_t i = 0; i < n; i += kSampleStride, ++sampled) ++count[coarse(x[i])];
    offset_.resize(kCoarse + 1);
    parts_.resize(kCoarse);
    for (int64_t c = 0, pos = 0; c <= kCoarse; ++c) {
      offset_[c] = pos;
      if (c == kCoarse) break;
      parts_[c] = std::max<int64_t>(1, (count[c] * target + sampled - 1) / sampled);
      pos += parts_[c];
    }
    // Smallest float of each bin, by bisection over float keys (the map is monotone).
    const int64_t bins = offset_[kCoarse];
    first_.resize(static_cast<size_t>(bins + 1));
    first_[0] = range.min;
    first_[bins] = std::nextafter(range.max, std::numeric_limits<float>::infinity());
    for (int64_t j = 1; j < bins; ++j) {
      // bin(a) < j <= bin(b); neither end is evaluated (first_[j - 1] may already be in bin j).
      int64_t a = int64_t{float_key(first_[j - 1])} - 1, b = int64_t{float_key(range.max)} + 1;
      while (b - a > 1) {
        const int64_t mid = a + (b - a) / 2;
        (bin(key_float(static_cast<int32_t>(mid))) >= j ? b : a) = mid;
      }
      first_[j] = key_float(static_cast<int32_t>(b));  // next after max if no float is in bin j
    }
  }

  int64_t size() const { return static_cast<int64_t>(first_.size()) - 1; }
  float first(int64_t j) const { return first_[j]; }
  int64_t bin(float v) const {
    const double t = (static_cast<double>(v) - lo_) * inv_coarse_;
    const int64_t c = std::min<int64_t>(kCoarse - 1, static_cast<int64_t>(t));
    const int64_t m = parts_[c];
    return offset_[c] + std::min<int64_t>(m - 1, static_cast<int64_t>((t - static_cast<double>(c)) * m));
  }

 private:
  static constexpr int64_t kCoarse = 4096;
  static constexpr int64_t kSampleStride = 16;
  int64_t coarse(float v) const {
    return std::min<int64_t>(kCoarse - 1, static_cast<int64_t>((static_cast<double>(v) - lo_) * inv_coarse_));
  }
  double lo_;
  float hi_;
  double inv_coarse_ = 0;
  std::vector<int64_t> offset_, parts_;
  std::vector<float> first_;
};

}  // namespace

std::vector<double> sse_binned(const float* x, int64_t n,
                               const std::vector<UniformCandidate>& cands, BitType bits) {
  const int64_t K = static_cast<int64_t>(cands.size());
  const float qmin = static_cast<float>(bits.qmin()), qmax = static_cast<float>(bits.qmax());
  const Range range = tensor_range(x, n, "omse");
  const ValueBins map(x, n, range, std::clamp(n / kValuesPerBin, int64_t{1}, kMaxBins));
  const int64_t bins = map.size();
  std::vector<float> scale(static_cast<size_t>(K)), zero(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) {
    scale[k] = cands[k].scale[0];
    zero[k] = cands[k].zero_point[0];
  }

  // Before looking at the data: bin j straddles a code boundary of candidate k when its
  // smallest and largest float get different codes. Those (j, k) pairs are evaluated value by
  // value; every other bin has one code per candidate and contributes through its moments.
  std::vector<int64_t> list_start(static_cast<size_t>(bins + 1), 0);
  std::vector<int32_t> lists;                          // candidates, per bin
  std::vector<std::vector<int64_t>> straddling(static_cast<size_t>(K));  // bins, per candidate
  for (int64_t j = 0; j < bins; ++j) {
    list_start[j] = static_cast<int64_t>(lists.size());
    const float a = map.first(j), b = std::nextafter(map.first(j + 1), -INFINITY);
    if (!(a <= b)) continue;  // no float maps to this bin
    for (int64_t k = 0; k < K; ++k) {
      if (quant_code(a, scale[k], zero[k], qmin, qmax) != quant_code(b, scale[k], zero[k], qmin, qmax)) {
        lists.push_back(static_cast<int32_t>(k));
        straddling[k].push_back(j);
      }
    }
  }
  list_start[bins] = static_cast<int64_t>(lists.size());

  // One pass, in segments whose partial results are merged in order: per bin count, min, max
  // and moments around the bin's smallest float; per candidate the straddling values' errors.
  struct BinStats {
    int64_t count = 0;
    float min = std::numeric_limits<float>::infinity();
    float max = -std::numeric_limits<float>::infinity();
    double s1 = 0, s2 = 0;  // sum of (x - first), sum of (x - first)^2
  };
  const int64_t segments = std::clamp(n / kSegment, int64_t{1}, kMaxSegments);
  const int64_t seg_len = (n + segments - 1) / segments;
  std::vector<std::vector<BinStats>> seg_stats(static_cast<size_t>(segments));
  std::vector<double> partial(static_cast<size_t>(segments * K), 0.0);
  parallel_for(segments, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      std::vector<BinStats>& st = seg_stats[s];
      st.resize(static_cast<size_t>(bins));
      double* acc = partial.data() + s * K;
      for (int64_t i = s * seg_len; i < std::min(n, (s + 1) * seg_len); ++i) {
        const float v = x[i];
        const int64_t j = map.bin(v);
        BinStats& b = st[j];
        ++b.count;
        b.min = v < b.min ? v : b.min;
        b.max = v > b.max ? v : b.max;
        const double d = static_cast<double>(v) - static_cast<double>(map.first(j));
        b.s1 += d;
        b.s2 += d * d;
        for (int64_t l = list_start[j]; l < list_start[j + 1]; ++l) {
          const int32_t k = lists[l];
          acc[k] += sq_err(v, scale[k], zero[k], qmin, qmax);
        }
      }
    }
  });
  std::vector<BinStats>& stats = seg_stats[0];
  for (int64_t s = 1; s < segments; ++s) {
    for (int64_t j = 0; j < bins; ++j) {
      const BinStats& o = seg_stats[s][j];
      BinStats& b = stats[j];
      b.count += o.count;
      b.min = std::min(b.min, o.min);
      b.max = std::max(b.max, o.max);
      b.s1 += o.s1;
      b.s2 += o.s2;
    }
  }

  // Per candidate: moments of the single-code bins (in bin order), then the partials.
  std::vector<double> out(static_cast<size_t>(K), 0.0);
  parallel_for(K, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      double acc = 0.0;
      size_t next = 0;  // straddling[k] is sorted
      for (int64_t j = 0; j < bins; ++j) {
        if (next < straddling[k].size() && straddling[k][next] == j) {
          ++next;
          continue;
        }
        const BinStats& b = stats[j];
        if (b.count == 0) continue;
        const float q = quant_code(b.min, scale[k], zero[k], qmin, qmax);
        // A bin of equal values is summed exactly (so an exact fit gives exactly 0); otherwise
        // the moments, whose cancellation error is ~1e-16 * count * width^2, clamped at 0.
        const double xq = static_cast<double>((q - zero[k]) * scale[k]);
        const double cnt = static_cast<double>(b.count);
        if (b.min == b.max) {
          const double d = static_cast<double>(b.min) - xq;
          acc += cnt * d * d;
        } else {
          const double d = static_cast<double>(map.first(j)) - xq;
          acc += std::max(0.0, b.s2 + 2.0 * d * b.s1 + cnt * d * d);
        }
      }
      for (int64_t s = 0; s < segments; ++s) acc += partial[s * K + k];
      out[k] = acc;
    }
  });
  return out;
}

namespace {

class OmseObserver final : public ObserverBase {
 public:
  explicit OmseObserver(const ObserverOptions& opt) : ObserverBase(ObserverKind::omse, opt) {}

  void observe(const float* x, int64_t rows, int64_t C, bool last) override {
    check_batch(x, rows, C);
    if (opt_.per_channel) {
      column_ranges(x, rows, C, batch_min_, batch_max_, label());
    } else {
      const Range r = tensor_range(x, rows * C, label());
      batch_min_.assign(1, r.min);
      batch_max_.assign(1, r.max);
    }
    if (min_.empty()) {
      min_ = batch_min_;
      max_ = batch_max_;
    } else {
      for (size_t c = 0; c < min_.size(); ++c) {
        min_[c] = std::min(min_[c], batch_min_[c]);
        max_[c] = std::max(max_[c], batch_max_[c]);
      }
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
    std::vector<UniformCandidate> cands(static_cast<size_t>(opt_.omse_steps));
    for (int i = 0; i < opt_.omse_steps; ++i) {
      const float f = static_cast<float>(1.0 - i * 0.01);  // Python double, then float32
      UniformCandidate& cand = cands[i];
      cand.scale.resize(min_.size());
      cand.zero_point.resize(min_.size());
      for (size_t c = 0; c < min_.size(); ++c) {
        asymmetric_params(min_[c] * f, max_[c] * f, opt_.bits, &cand.scale[c],
                          &cand.zero_point[c]);
      }
    }
    const int64_t n = rows * C;
    const std::vector<double> sse = opt_.per_channel || n < kBinnedMinValues
                                        ? sse_naive(x, rows, C, cands, opt_.bits)
                                        : sse_binned(x, n, cands, opt_.bits);
    size_t best_i = 0;
    double best = 1e10;
    for (size_t i = 0; i < sse.size(); ++i) {
      const double mse = sse[i] / static_cast<double>(n);
      if (mse < best) {
        best = mse;
        best_i = i;
      }
    }
    params_.kind = QuantKind::uniform;
    params_.bits = opt_.bits;
    params_.scale = cands[best_i].scale;
    params_.zero_point = cands[best_i].zero_point;
    params_.observed_min = *std::min_element(min_.begin(), min_.end());
    params_.observed_max = *std::max_element(max_.begin(), max_.end());
  }

  std::vector<float> min_, max_;
  std::vector<float> batch_min_, batch_max_;
  QuantParams params_;
};

}  // namespace

std::unique_ptr<Observer> make_omse_observer(const ObserverOptions& opt) {
  return std::make_unique<OmseObserver>(opt);
}

}  // namespace qvit::quant_detail
