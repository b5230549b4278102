// Integer operators of the engine (src/engine/*.cpp), one per file. Not public API. Activations are
// uint8 codes q with a zero point z and a scale s (value (q - z) s), per tensor, or per channel for
// the PTF-quantized residual stream (s_c = s_0 2^alpha_c, one z).
#pragma once

#include <cstdint>
#include <vector>

#include "qvit/quant.h"

namespace qvit::engine {

// A requantization multiplier: real r ~= mult * 2^-shift, mult in [2^30, 2^31) (or 0),
// shift in [0, 62]. requant(x) = floor((x * mult + 2^(shift-1)) / 2^shift): round half up.
struct Mult {
  int32_t mult = 0;
  int32_t shift = 0;
};
Mult mult_from_real(double r);  // throws "[engine]" for r < 0, non-finite or r >= 2^31
inline int64_t apply_mult(int64_t x, Mult m) {
  if (m.shift == 0) return x * m.mult;
  return (x * m.mult + (int64_t{1} << (m.shift - 1))) >> m.shift;
}
inline uint8_t clamp_u8(int64_t v) { return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v)); }

// Float -> uint8 code clamp(round(x / s + z), 0, 255), the simulation's quantizer (round half to
// even in float32, bit-exact with fake_quant). Used for the input image and the GELU output.
void quantize_u8(const float* x, uint8_t* q, int64_t n, float s, float z);

// ---- Linear (int_linear.cpp) ------------------------------------------------------------------
// y = x W^T + b with x uint8 (zero a_zero), W int8 [N, K] symmetric per output channel, int32 bias
// at scale s_a s_w[n]. acc[m, n] = sum_k (x[m,k] - a_zero) w[n,k] + bias_q[n] exactly in int32.
struct IntLinear {
  int64_t N = 0, K = 0;
  const int8_t* w = nullptr;      // [N, K], row-major (the file's bytes or an unpacked copy)
  const int32_t* bias_q = nullptr;
  std::vector<int32_t> row_sums;  // sum_k w[n,k]
  // uint8 output: y = clamp(requant(acc, mult[n]) + out_zero); mult = s_a s_w[n] / s_out.
  std::vector<Mult> mult;
  // float output: y = acc * deq[n] (deq = s_a s_w[n]); for the steps that stay float.
  std::vector<float> deq;
  void init_sums();
  // acc [M, N] (row stride N), parallel over rows.
  void accumulate(const uint8_t* x, int64_t M, int32_t a_zero, int32_t* acc) const;
  void forward_u8(const uint8_t* x, int64_t M, int32_t a_zero, uint8_t* y, int32_t out_zero,
                  int32_t* acc) const;
  void forward_f32(const uint8_t* x, int64_t M, int32_t a_zero, float* y, int32_t* acc) const;
};

// ---- Integer LayerNorm on PTF codes (int_ln_codes.cpp) ---------------------------------------
struct IntLayerNorm {
  int64_t C = 0;
  int32_t in_zero = 0;
  std::vector<float> s_in;        // per-channel PTF scales
  std::vector<float> shift_f;     // 2^(alpha_c - alpha_min) as float (the simulation's shift)
  std::vector<int32_t> shift;     // the same as integers
  std::vector<float> gamma, beta;
  float s_min = 0, s_out = 0;
  int32_t out_zero = 0;
  void init(const QuantParams& in, const float* gamma, const float* beta, const QuantParams& out);
  // rows of PTF codes x [rows, C] -> uint8 codes y on the output quantizer. Parallel.
  void forward(const uint8_t* x, uint8_t* y, int64_t rows) const;
};

// ---- Residual add with requantization (residual.cpp) -----------------------------------------
// y[r,c] = clamp(round(((a - za) sa_c + (b - zb) sb_c) / so_c) + zo) with per-channel integer
// multipliers ma_c ~ sa_c / so_c 2^k, mb_c ~ sb_c / so_c 2^k and one shift k.
struct IntAdd {
  int64_t C = 0;
  int32_t za = 0, zb = 0, zo = 0;
  int32_t k = 0;
  std::vector<int32_t> ma, mb;
  // scale vectors have 1 or C entries.
  void init(int64_t C, const std::vector<float>& sa, int32_t za, const std::vector<float>& sb,
            int32_t zb, const std::vector<float>& so, int32_t zo);
  // b rows: b + r * ldb (ldb = 0 broadcasts one row). Parallel over rows.
  void forward(const uint8_t* a, const uint8_t* b, int64_t ldb_rows_mod, uint8_t* y,
               int64_t rows) const;
};

// ---- Attention (int_attention.cpp) ---------------------------------------------------------------
// LIS constants for a logits scale S (I-BERT integer exp on t = code - max code in [-255, 0]).
struct IntLis {
  std::vector<int64_t> e;  // e[d] for t = -d, d in [0, 255]: exact integer exp values
  std::vector<float> e_f;  // the same as floats (exact)
  void init(float S, int64_t max_cols);
  // Codes 0..15, 16 = zero, for one row of logit codes.
  void row(const uint8_t* logit_codes, uint8_t* codes, int64_t cols) const;
};

struct IntAttention {
  int64_t H = 0, Dh = 0;
  int32_t qkv_zero = 0;       // q, k, v share the qkv quantizer
  Mult logit_mult;            // s_qkv^2 / sqrt(Dh) / S_logits
  int32_t logit_zero = 0;
  IntLis lis;
  Mult ctx_mult;              // s_qkv 2^-15 / s_ctx
  int32_t ctx_zero = 0;
  // qkv [B*N, 3D] codes -> logits codes [B*H*N, N] (parallel over (b, h)).
  void logits(const uint8_t* qkv, uint8_t* logit_codes, int64_t B, int64_t N) const;
  // logits codes -> LIS codes -> context codes ctx [B*N, D] (parallel over (b, h)).
  void context(const uint8_t* qkv, const uint8_t* logit_codes, uint8_t* ctx, int64_t B,
               int64_t N) const;
};

}  // namespace qvit::engine
