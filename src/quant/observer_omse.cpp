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
#include <cmath>

#include "qvit/error.h"
#include "qvit/parallel.h"
#include "qvit/quant.h"
#include "quant/observer_impl.h"

namespace qvit::quant_detail {

namespace {

constexpr int64_t kNaiveGrain = 65536;
constexpr int64_t kMaxBins = 16384;
constexpr int64_t kValuesPerBin = 16;
constexpr int64_t kSegment = int64_t{1} << 21;  // scatter segments (fixed by n)
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
  const int64_t grain = std::max<int64_t>(1, kNaiveGrain / C);
  const int64_t chunks = (rows + grain - 1) / grain;
  std::vector<double> out(cands.size(), 0.0), partial(static_cast<size_t>(chunks));
  std::vector<float> s(static_cast<size_t>(C)), z(static_cast<size_t>(C));
  for (size_t k = 0; k < cands.size(); ++k) {
    for (int64_t c = 0; c < C; ++c) {
      s[c] = cands[k].scale.size() == 1 ? cands[k].scale[0] : cands[k].scale[c];
      z[c] = cands[k].zero_point.size() == 1 ? cands[k].zero_point[0] : cands[k].zero_point[c];
    }
    parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
      double acc = 0.0;
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = 0; c < C; ++c) acc += sq_err(x[r * C + c], s[c], z[c], qmin, qmax);
      }
      partial[static_cast<size_t>(r0 / grain)] = acc;
    });
    for (double p : partial) out[k] += p;  // fixed order
  }
  return out;
}

std::vector<double> sse_binned(const float* x, int64_t n,
                               const std::vector<UniformCandidate>& cands, BitType bits) {
  const Range range = tensor_range(x, n, "omse");
  const int64_t bins = range.max > range.min ? std::clamp(n / kValuesPerBin, int64_t{1}, kMaxBins)
                                             : 1;
  const double lo = range.min;
  const double inv_width = bins / (static_cast<double>(range.max) - lo);
  // Monotone in v, so bins are ordered by value.
  const auto bin_of = [&](float v) {
    if (bins == 1) return int64_t{0};
    return std::min(bins - 1, static_cast<int64_t>((static_cast<double>(v) - lo) * inv_width));
  };

  // Counting sort into `sorted`, stable within each segment; segments in order.
  const int64_t segments = std::min(kMaxSegments, (n + kSegment - 1) / kSegment);
  const int64_t seg_len = (n + segments - 1) / segments;
  std::vector<int64_t> count(static_cast<size_t>(segments * bins), 0);
  parallel_for(segments, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      int64_t* cnt = count.data() + s * bins;
      for (int64_t i = s * seg_len; i < std::min(n, (s + 1) * seg_len); ++i) ++cnt[bin_of(x[i])];
    }
  });
  std::vector<int64_t> bin_start(static_cast<size_t>(bins + 1), 0);
  {
    int64_t pos = 0;
    for (int64_t b = 0; b < bins; ++b) {
      bin_start[b] = pos;
      for (int64_t s = 0; s < segments; ++s) {
        const int64_t c = count[s * bins + b];
        count[s * bins + b] = pos;  // becomes the segment's write cursor for bin b
        pos += c;
      }
    }
    bin_start[bins] = pos;
  }
  std::vector<float> sorted(static_cast<size_t>(n));
  parallel_for(segments, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      int64_t* cursor = count.data() + s * bins;
      for (int64_t i = s * seg_len; i < std::min(n, (s + 1) * seg_len); ++i) {
        sorted[static_cast<size_t>(cursor[bin_of(x[i])]++)] = x[i];
      }
    }
  });

  // Moments of each non-empty bin around its smallest value.
  struct Bin {
    int64_t begin, end;
    float min, max;
    double s1, s2;  // sum of (x - min), sum of (x - min)^2
  };
  std::vector<Bin> nonempty;
  for (int64_t b = 0; b < bins; ++b) {
    if (bin_start[b + 1] > bin_start[b]) nonempty.push_back({bin_start[b], bin_start[b + 1], 0, 0, 0, 0});
  }
  parallel_for(static_cast<int64_t>(nonempty.size()), 256, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      Bin& bin = nonempty[b];
      const float* v = sorted.data() + bin.begin;
      const int64_t cnt = bin.end - bin.begin;
      bin.min = *std::min_element(v, v + cnt);
      bin.max = *std::max_element(v, v + cnt);
      double s1 = 0, s2 = 0;
      for (int64_t i = 0; i < cnt; ++i) {
        const double d = static_cast<double>(v[i]) - bin.min;
        s1 += d;
        s2 += d * d;
      }
      bin.s1 = s1;
      bin.s2 = s2;
    }
  });

  const float qmin = static_cast<float>(bits.qmin()), qmax = static_cast<float>(bits.qmax());
  std::vector<double> out(cands.size(), 0.0);
  parallel_for(static_cast<int64_t>(cands.size()), 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      const float s = cands[k].scale[0], z = cands[k].zero_point[0];
      double acc = 0.0;
      for (const Bin& bin : nonempty) {
        const float q = quant_code(bin.min, s, z, qmin, qmax);
        if (q == quant_code(bin.max, s, z, qmin, qmax)) {
          // Every value of the bin has code q (the code is monotone in x).
          const double d = static_cast<double>(bin.min) - static_cast<double>((q - z) * s);
          acc += bin.s2 + 2.0 * d * bin.s1 + static_cast<double>(bin.end - bin.begin) * d * d;
        } else {
          for (int64_t i = bin.begin; i < bin.end; ++i) acc += sq_err(sorted[i], s, z, qmin, qmax);
        }
      }
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
    begin_batch(x, rows, C, last);
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
