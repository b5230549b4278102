// The uniform (affine) quantizer, FQ-ViT's UniformQuantizer + MinMax parameter formula.
//
// Arithmetic (all float32, in this order, round = half to even):
//   asymmetric: scale = max((max - min) / (qmax - qmin), eps)       eps = 2^-23
//               zero  = clamp(qmin - round(min / scale), qmin, qmax)  (an integral float)
//   symmetric:  scale = max(max(-min, max) / ((qmax - qmin) / 2), eps), zero = 0
//               -> absmax / 127.5 for int8: the extremes land on about +-127.5; +absmax ends
//                  at 127 (128 is clamped), -absmax at -128 when absmax / scale >= 127.5.
//   quantize:   q  = clamp(round(x / scale + zero), qmin, qmax)
//   dequantize: x^ = (q - zero) * scale
#include <algorithm>
#include <cmath>

#include "qvit/error.h"
#include "qvit/parallel.h"
#include "qvit/quant.h"
#include "quant/observer_impl.h"

namespace qvit {

namespace quant_detail {

void asymmetric_params(float min, float max, BitType bits, float* scale, float* zero_point) {
  const float qmin = static_cast<float>(bits.qmin());
  const float qmax = static_cast<float>(bits.qmax());
  float s = (max - min) / static_cast<float>(bits.qmax() - bits.qmin());
  s = s < kScaleEps ? kScaleEps : s;
  float z = qmin - std::nearbyint(min / s);
  z = z < qmin ? qmin : z;
  *scale = s;
  *zero_point = z > qmax ? qmax : z;
}

}  // namespace quant_detail

using quant_detail::fake_quant_one;

QuantParams uniform_params(const std::vector<float>& min, const std::vector<float>& max,
                           BitType bits, bool symmetric) {
  if (min.empty() || min.size() != max.size()) {
    fail("quant", "uniform_params: min has {} entries, max {}", min.size(), max.size());
  }
  QuantParams p;
  p.kind = QuantKind::uniform;
  p.bits = bits;
  p.scale.resize(min.size());
  p.zero_point.resize(min.size());
  p.observed_min = *std::min_element(min.begin(), min.end());
  p.observed_max = *std::max_element(max.begin(), max.end());
  // (qmax - qmin) / 2 is evaluated in double by FQ-ViT and then used as a float32 divisor.
  const float half_range = static_cast<float>(static_cast<double>(bits.qmax() - bits.qmin()) / 2);
  for (size_t c = 0; c < min.size(); ++c) {
    if (symmetric) {
      const float absmax = std::max(-min[c], max[c]);
      const float s = absmax / half_range;
      p.scale[c] = s < quant_detail::kScaleEps ? quant_detail::kScaleEps : s;
      p.zero_point[c] = 0.0f;
    } else {
      quant_detail::asymmetric_params(min[c], max[c], bits, &p.scale[c], &p.zero_point[c]);
    }
  }
  return p;
}

namespace {

void check_params(const QuantParams& p, int64_t channels, const char* what) {
  const auto ok = [&](size_t n) { return n == 1 || static_cast<int64_t>(n) == channels; };
  if (!ok(p.scale.size()) || !ok(p.zero_point.size())) {
    fail("quant", "{}: {} scales and {} zero points for {} channels (need 1 or {})", what,
         p.scale.size(), p.zero_point.size(), channels, channels);
  }
}

// Rows per parallel chunk: about 16K values, never fewer than one row.
int64_t row_grain(int64_t C) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, C)); }

}  // namespace

void fake_quant(float* x, int64_t rows, int64_t C, const QuantParams& p) {
  if (rows < 0 || C <= 0) fail("quant", "fake_quant: bad shape rows={} C={}", rows, C);
  if (p.kind == QuantKind::none) return;
  if (p.kind == QuantKind::log2) {
    fake_quant_log2(x, rows * C, p.bits.bits);
    return;
  }
  check_params(p, C, "fake_quant");
  const float qmin = static_cast<float>(p.bits.qmin());
  const float qmax = static_cast<float>(p.bits.qmax());
  if (p.scale.size() == 1 && p.zero_point.size() == 1) {
    const float s = p.scale[0], z = p.zero_point[0];
    parallel_for(rows * C, 16384, [&](int64_t i0, int64_t i1) {
#pragma omp simd
      for (int64_t i = i0; i < i1; ++i) x[i] = fake_quant_one(x[i], s, z, qmin, qmax);
    });
    return;
  }
  // Per channel (uniform per-channel or PTF, whose zero point is shared): expand to C entries.
  std::vector<float> s(static_cast<size_t>(C)), z(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    s[c] = p.scale.size() == 1 ? p.scale[0] : p.scale[c];
    z[c] = p.zero_point.size() == 1 ? p.zero_point[0] : p.zero_point[c];
  }
  parallel_for(rows, row_grain(C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* xr = x + r * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) xr[c] = fake_quant_one(xr[c], s[c], z[c], qmin, qmax);
    }
  });
}

void fake_quant_exact(const double* y, float* x, int64_t rows, int64_t C, const QuantParams& p) {
  if (rows < 0 || C <= 0) fail("quant", "fake_quant_exact: bad shape rows={} C={}", rows, C);
  if (p.kind == QuantKind::none) {
    for (int64_t i = 0; i < rows * C; ++i) x[i] = static_cast<float>(y[i]);
    return;
  }
  if (p.kind == QuantKind::log2) fail("quant", "fake_quant_exact: log2 quantizer");
  check_params(p, C, "fake_quant_exact");
  const double qmin = p.bits.qmin(), qmax = p.bits.qmax();
  parallel_for(rows, row_grain(C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = 0; c < C; ++c) {
        const float s = p.scale.size() == 1 ? p.scale[0] : p.scale[c];
        const float z = p.zero_point.size() == 1 ? p.zero_point[0] : p.zero_point[c];
        double v = y[r * C + c] / double(s) + double(z);
        v = std::nearbyint(std::clamp(v, qmin - 1.0, qmax + 1.0));  // half to even
        v = std::clamp(v, qmin, qmax);
        x[r * C + c] = (static_cast<float>(v) - z) * s;  // as fake_quant_one
      }
  });
}

void weight_codes(const float* w, int64_t N, int64_t K, const QuantParams& p, int8_t* q, const std::string& who) {
  if (!p.bits.is_signed || p.bits.bits > 8)
    fail("quant", "weight '{}' uses {}, integer codes need int2..int8", who, p.bits.name());
  check_params(p, N, "weight_codes");
  const float lo = static_cast<float>(p.bits.qmin()), hi = static_cast<float>(p.bits.qmax());
  for (int64_t n = 0; n < N; ++n) {
    const float s = p.scale.size() == 1 ? p.scale[0] : p.scale[n];
    for (int64_t k = 0; k < K; ++k)
      q[n * K + k] = static_cast<int8_t>(quant_detail::quant_code(w[n * K + k], s, 0.0f, lo, hi));
  }
}

QuantParams weight_params_per_channel(const float* w, int64_t N, int64_t K, BitType bits) {
  if (N <= 0 || K <= 0) fail("quant", "weight_params_per_channel: bad shape N={} K={}", N, K);
  std::vector<float> mn(static_cast<size_t>(N)), mx(static_cast<size_t>(N));
  parallel_for(N, std::max<int64_t>(1, 65536 / K), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const quant_detail::Range range = quant_detail::tensor_range(w + r * K, K, "weight");
      mn[r] = range.min;
      mx[r] = range.max;
    }
  });
  return uniform_params(mn, mx, bits, bits.is_signed);
}

void fake_quant_weight(float* w, int64_t N, int64_t K, const QuantParams& p) {
  if (N <= 0 || K <= 0) fail("quant", "fake_quant_weight: bad shape N={} K={}", N, K);
  if (p.kind == QuantKind::none) return;
  if (p.kind != QuantKind::uniform) fail("quant", "fake_quant_weight: weights use uniform params");
  check_params(p, N, "fake_quant_weight");
  const float qmin = static_cast<float>(p.bits.qmin());
  const float qmax = static_cast<float>(p.bits.qmax());
  parallel_for(N, std::max<int64_t>(1, 16384 / K), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float s = p.scale.size() == 1 ? p.scale[0] : p.scale[r];
      const float z = p.zero_point.size() == 1 ? p.zero_point[0] : p.zero_point[r];
      float* wr = w + r * K;
#pragma omp simd
      for (int64_t k = 0; k < K; ++k) wr[k] = fake_quant_one(wr[k], s, z, qmin, qmax);
    }
  });
}

}  // namespace qvit
