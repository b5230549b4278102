// Quantizers, observers and FQ-ViT's special operators, as quantize -> dequantize ("fake
// quantization") in float, the way FQ-ViT measures accuracy. The arithmetic of every quantizer is
// documented where it is defined (src/quant/*.cpp) and summarised in docs/quantization.md.
//
// Conventions (FQ-ViT's official code, `megvii-research/FQ-ViT`):
// - Rounding is round-half-to-even (torch.round), computed in float32 in the same order as the
//   reference code so results are bit-exact with tools/quant_reference.py. Where PyTorch's result
//   depends on an unspecified float summation order (MSE scores, LayerNorm and softmax row sums)
//   qvit sums exactly or in double instead; docs/quantization.md lists these places.
// - A tensor is viewed as [rows, C]; "per channel" means per column C (the last axis) for
//   activations and per output row for weights [N, K].
// - Errors throw qvit::Error "[quant] ..." (impossible bit types, bad shapes, non-finite
//   calibration data, params() before any batch).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qvit {

// An integer code range: bits in [2, 16]; signed -> [-2^(b-1), 2^(b-1)-1], else [0, 2^b - 1].
struct BitType {
  int bits = 8;
  bool is_signed = false;
  int32_t qmin() const { return is_signed ? -(1 << (bits - 1)) : 0; }
  int32_t qmax() const { return is_signed ? (1 << (bits - 1)) - 1 : (1 << bits) - 1; }
  std::string name() const;  // "int8", "uint4", ...
  bool operator==(const BitType&) const = default;
};
// "int8", "uint8", "uint4", ...; throws "[quant] impossible bit type 'uint1' ..." otherwise.
BitType parse_bit_type(const std::string& s);
BitType make_bit_type(int bits, bool is_signed);  // validates bits in [2, 16]

enum class QuantKind : uint8_t {
  none,     // pass-through
  uniform,  // affine: q = clamp(round(x / s + z)), x^ = (q - z) s
  ptf,      // FQ-ViT Power-of-Two Factor: uniform per channel with s_c = s_base * 2^alpha_c, one z
  log2,     // log2 codes of probabilities (FQ-ViT Log2Quantizer / LIS)
};

// Parameters of one quantization point. scale/zero_point have 1 entry (per tensor) or C.
struct QuantParams {
  QuantKind kind = QuantKind::none;
  BitType bits;
  std::vector<float> scale;
  std::vector<float> zero_point;  // float, integral values (FQ-ViT keeps them as float tensors)
  std::vector<int32_t> alpha;     // PTF only: per-channel power-of-two exponent, 0..K
  float observed_min = 0, observed_max = 0;  // for reports
  bool per_channel() const { return scale.size() > 1; }
};

// Fake-quantizes x [rows, C] in place with p (uniform or ptf; none is a no-op).
void fake_quant(float* x, int64_t rows, int64_t C, const QuantParams& p);
// The same quantizer on double inputs: x = (q - z) s with q = clamp(round_half_even(y / s + z))
// computed in double (uniform or ptf; none copies y). The exact simulation (models/sim_exact.h).
void fake_quant_exact(const double* y, float* x, int64_t rows, int64_t C, const QuantParams& p);

// Uniform parameters from a range (FQ-ViT's MinMax formula; min/max have 1 or C entries):
//   symmetric:  scale = max(-min, max) / ((qmax - qmin) / 2), zero point 0
//   asymmetric: scale = (max - min) / (qmax - qmin), zero = clamp(qmin - round(min / scale))
// scale is clamped below by float32 epsilon. Used by the observers and the weight quantizer.
QuantParams uniform_params(const std::vector<float>& min, const std::vector<float>& max,
                           BitType bits, bool symmetric);

// Per-output-channel weight parameters for w [N, K] (FQ-ViT: MinMax over each row, symmetric
// for a signed type: scale = absmax / 127.5 for int8, zero point 0; asymmetric for unsigned).
QuantParams weight_params_per_channel(const float* w, int64_t N, int64_t K, BitType bits);
// Fake-quantizes a weight [N, K] in place with per-row params.
void fake_quant_weight(float* w, int64_t N, int64_t K, const QuantParams& p);
// The integer codes of that quantizer, q[n, k] = clamp(round(w / s_n)), for signed (symmetric)
// params of int2..int8 (else "[quant]" error): the integer model's weights and the exact
// simulation's. `who` names the weight in errors.
void weight_codes(const float* w, int64_t N, int64_t K, const QuantParams& p, int8_t* q, const std::string& who);

enum class ObserverKind : uint8_t { minmax, ema, percentile, omse, ptf };
ObserverKind parse_observer_kind(const std::string& s);  // "minmax" | "ema" | "percentile" | "omse" | "ptf"
const char* observer_kind_name(ObserverKind k);

// Collects statistics over calibration batches and turns them into parameters. MinMax, EMA and
// Percentile are symmetric for a signed bit type and asymmetric (zero point) for an unsigned
// one, like FQ-ViT; OMSE and PTF are always asymmetric. `per_channel` keeps per-column ranges
// (MinMax/EMA/OMSE collapse to per-tensor otherwise, as FQ-ViT's layer-wise mode does);
// Percentile is per-tensor only and PTF per-channel by construction.
class Observer {
 public:
  virtual ~Observer() = default;
  // One calibration batch x [rows, C]. `last` marks the final batch: OMSE and PTF run their
  // searches on this batch only (FQ-ViT's last_calibrate); no batch may follow it. Throws on a
  // C different from the first batch's and on NaN/Inf values.
  virtual void observe(const float* x, int64_t rows, int64_t C, bool last) = 0;
  // Parameters from what was observed. Throws before the first batch, and for OMSE/PTF before
  // the batch marked `last`.
  virtual QuantParams params() const = 0;
  virtual ObserverKind kind() const = 0;
};

struct ObserverOptions {
  BitType bits = {8, false};
  bool per_channel = false;
  float ema_sigma = 0.01f;            // EMA / Percentile running update
  double percentile = 0.99999;        // Percentile: upper quantile; lower = 1 - percentile
  int omse_steps = 90;                // OMSE shrink grid c_i = 1 - 0.01 i, i < steps
  int ptf_k = 3;                      // PTF: alpha in 0..K
  std::string name;                   // quantization point, for error messages
};
std::unique_ptr<Observer> make_observer(ObserverKind kind, const ObserverOptions& opt);

// Log2 quantizer of probabilities p in [0, 1] (FQ-ViT Log2Quantizer, log-domain rounding):
// code = clamp(round(-log2 p), 0, 2^bits - 1); codes >= 2^bits dequantize to 0; value 2^-code.
void fake_quant_log2(float* p, int64_t n, int bits);

// LIS code meaning "probability 0" (codes >= 16 in FQ-ViT). A packed 4-bit format folds it into
// code 15 (docs/quantization.md, LIS, "Codes and storage").
constexpr uint8_t kLisZeroCode = 16;

// FQ-ViT Log-Int-Softmax. `logits` [rows, cols] are dequantized attention logits whose integer
// grid has scale S (x / S is integral, except where a float mask was added after quantization).
// Row-wise I-BERT integer exp, then 4-bit log2 codes with linear-domain rounding (boundary at
// 1.5 * 2^k) and the ">= 16 -> 0" rule. Writes probabilities 2^-code (or 0) to `probs` and, when
// `codes` is not null, codes 0..15 with 16 meaning "zero".
void lis_softmax(const float* logits, float* probs, uint8_t* codes, int64_t rows, int64_t cols,
                 float S);

// FQ-ViT integer LayerNorm on a PTF-quantized input (QIntLayerNorm, "int" mode). x [rows, C]
// holds the dequantized PTF values ((q - z) s_c); `in` are their PTF params; s_out is the scale
// of the quantizer that follows the LayerNorm. Per token: mean/std from integer codes shifted to
// the smallest channel scale, per-channel dyadic multiplier sign(A) M / 2^N with 8-bit M.
// Writes y = round((sign(A) M x_q + B) / 2^N) * s_out. A token whose codes are all equal
// (sigma = 0, NaN in FQ-ViT) gets y = round(beta / s_out) * s_out, the LayerNorm's limit.
void int_layernorm_ptf(const float* x, float* y, int64_t rows, int64_t C, const QuantParams& in,
                       const float* gamma, const float* beta, float s_out);

}  // namespace qvit
