// Internals shared by the quantizers and observers of src/quant (not public API): the per-value
// uniform quantizer, batch range scans, the observer base class, the constructors of each
// observer, and the search/selection helpers that tests compare against naive references.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qvit/quant.h"

namespace qvit::quant_detail {

// torch.finfo(torch.float32).eps: FQ-ViT's lower clamp of every scale.
constexpr float kScaleEps = 1.1920928955078125e-07f;

// Round half to even for |v| < 2^22 under the default rounding mode: adding 1.5 * 2^23 leaves
// no fraction bits, so the addition itself rounds. Same result as std::nearbyint, but
// vectorisable on baseline x86-64 (nearbyint is a libm call without SSE4.1).
inline float round_half_even_small(float v) {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  return (v + kMagic) - kMagic;
}

// The integer code clamp(round(x / s + z), qmin, qmax) in float32, FQ-ViT's order. The input
// is first clamped to [qmin - 1, qmax + 1], which cannot change the result and keeps |v| small
// for round_half_even_small. NaN stays NaN (as in PyTorch).
inline float quant_code(float x, float s, float z, float qmin, float qmax) {
  float v = x / s + z;
  v = v < qmin - 1.0f ? qmin - 1.0f : v;
  v = v > qmax + 1.0f ? qmax + 1.0f : v;
  v = round_half_even_small(v);
  v = v < qmin ? qmin : v;
  return v > qmax ? qmax : v;
}

// Quantize then dequantize one value: (code - z) * s.
inline float fake_quant_one(float x, float s, float z, float qmin, float qmax) {
  return (quant_code(x, s, z, qmin, qmax) - z) * s;
}

// Asymmetric parameters of one range: scale = max((max - min) / (qmax - qmin), eps),
// zero = clamp(qmin - round(min / scale), qmin, qmax); all float32.
void asymmetric_params(float min, float max, BitType bits, float* scale, float* zero_point);

struct Range {
  float min = 0, max = 0;
};

// Global min/max of x[0, n). Throws "[quant] <who>: ... non-finite ..." on NaN/Inf.
Range tensor_range(const float* x, int64_t n, const std::string& who);
// Per-column min/max of x [rows, C] into mn/mx (resized to C). Throws on NaN/Inf.
void column_ranges(const float* x, int64_t rows, int64_t C, std::vector<float>& mn,
                   std::vector<float>& mx, const std::string& who);

// FQ-ViT's running average m + sigma * (b - m), float32.
inline float ema_update(float m, float b, float sigma) { return m + sigma * (b - m); }

// State and checks common to all observers: the channel count of the first batch, batch count,
// the `last` flag and the label used in messages ("observer 'blocks.0.qact1' (minmax)").
class ObserverBase : public Observer {
 public:
  ObserverKind kind() const override { return kind_; }

 protected:
  ObserverBase(ObserverKind kind, const ObserverOptions& opt);
  // Validates one batch (shape, same C as before, nothing after the last batch).
  void check_batch(const float* x, int64_t rows, int64_t C) const;
  // Counts a batch once it was processed, so a batch that threw (NaN) leaves no trace.
  void commit_batch(int64_t C, bool last);
  // Throws unless a batch was observed (and, if `need_last`, the last one).
  void require_params_ready(bool need_last) const;
  const std::string& label() const { return label_; }

  ObserverOptions opt_;
  int64_t C_ = 0;
  int64_t batches_ = 0;
  bool seen_last_ = false;

 private:
  ObserverKind kind_;
  std::string label_;
};

std::unique_ptr<Observer> make_minmax_observer(const ObserverOptions& opt);
std::unique_ptr<Observer> make_ema_observer(const ObserverOptions& opt);
std::unique_ptr<Observer> make_percentile_observer(const ObserverOptions& opt);
std::unique_ptr<Observer> make_omse_observer(const ObserverOptions& opt);
std::unique_ptr<Observer> make_ptf_observer(const ObserverOptions& opt);

// ---- Percentile: values at ascending ranks of x[0, n) ----
// Reference: copy, then std::nth_element per rank.
void select_ranks_naive(const float* x, int64_t n, const std::vector<int64_t>& ranks,
                        std::vector<float>& out);
// Fast path for ranks near both ends: per-chunk bounded top/bottom-k buffers, then selection
// among the survivors. Same values as the reference; throws on NaN/Inf.
void select_ranks(const float* x, int64_t n, const std::vector<int64_t>& ranks,
                  std::vector<float>& out, const std::string& who);
// FQ-ViT's quantile of the flattened tensor (torch.quantile for n <= 2^24, float32 rank and
// lerp with FMA; NumPy's double rank and lerp above). Returns {quantile(1 - p), quantile(p)}.
Range percentile_range(const float* x, int64_t n, double p, const std::string& who);

// ---- OMSE: sums of squared errors of candidate quantizers ----
// A candidate's scale and zero point have 1 entry (per tensor) or C (per channel). The error of
// one value is (double(x) - double(fake_quant(x)))^2; sums are in double in a fixed order.
struct UniformCandidate {
  std::vector<float> scale, zero_point;
};
// Reference: one pass over x [rows, C] per candidate.
std::vector<double> sse_naive(const float* x, int64_t rows, int64_t C,
                              const std::vector<UniformCandidate>& cands, BitType bits);
// Per-tensor candidates only. Values are bucketed by value once; a bin whose smallest and
// largest value get the same code contributes through its moments, other bins value by value.
// Equal to the reference up to double rounding.
std::vector<double> sse_binned(const float* x, int64_t n,
                               const std::vector<UniformCandidate>& cands, BitType bits);

// ---- LIS ----
// The code of v = round(sum / e): floor(log2 v), plus 1 from 1.5 * 2^k on; kLisZeroCode for
// v >= 49152 (code >= 16), inf and NaN.
uint8_t lis_code(float v);

}  // namespace qvit::quant_detail
