// Integer operators of the engine (src/engine/*.cpp), one per file. Not public API. Activations are
// uint8 codes q with a zero point z and a scale s (value (q - z) s), per tensor, or per channel for
// the PTF-quantized residual stream (s_c = s_0 2^alpha_c, one z).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "qvit/qkernels.h"
#include "qvit/quant.h"

namespace qvit::engine {

// A requantization multiplier: real r ~= mult * 2^-shift, mult in [2^30, 2^31) (or 0),
// shift in [0, 62]. requant(x) = floor((x * mult + 2^(shift-1)) / 2^shift): round half up.
struct Mult {
  int32_t mult = 0;
  int32_t shift = 0;
};
Mult mult_from_real(double r);  // throws "[engine]" for r < 0, non-finite or r >= 2^31
// x m is formed in 128 bits: x can reach 2^40 (an int32 accumulator shifted by the 8 bias bits).
inline int64_t apply_mult(int64_t x, Mult m) {
  __extension__ using int128 = __int128;
  const int128 p = static_cast<int128>(x) * m.mult;
  if (m.shift == 0) return static_cast<int64_t>(p);
  return static_cast<int64_t>((p + (int128{1} << (m.shift - 1))) >> m.shift);
}
// A row of requantizations y[n] = clamp(apply_mult(acc[n] 2^fb + bias[n], mult[n]) + zero, lo, hi),
// precomputed so that no 128-bit product is needed (exact, same integers as apply_mult):
//   with t = shift - fb >= 0 and c = floor((bias m + 2^(shift-1)) / 2^fb),
//   floor((acc 2^fb m + bias m + 2^(shift-1)) / 2^shift) = floor((acc m + c) / 2^t)
// (floor((2^fb A + B) / 2^s) = floor((A + floor(B / 2^fb)) / 2^(s - fb)) for integers, s >= fb).
// |acc| < 2^31 and m < 2^31 give |acc m| < 2^62 and |c| < 2^55, so acc m + c fits int64. The AVX2
// path (requant_avx2.cpp) works on 64-bit lanes: vpmuldq, add c, flip the sign bit (+2^63, making
// the value non-negative in uint64), logical shift by t, subtract 2^(63-t), clamp in 64 bits.
struct Requant {
  int64_t N = 0;                  // channels (1 = one multiplier for any row length)
  std::vector<int64_t> m, c;      // per channel
  std::vector<int32_t> t;
  struct alignas(32) Group {      // 8 channels, split into even/odd lanes for the AVX2 kernel
    int64_t me[4], mo[4], ce[4], co[4], te[4], to[4], oe[4], oo[4];
  };
  std::vector<Group> groups;      // ceil(N / 8) (one for N = 1: broadcast)
  // mult: N entries (or 1); bias: N entries or nullptr (0); fb: the bias fraction bits (shift >= fb
  // is required, else "[engine]" error).
  void init(const std::vector<Mult>& mult, const int32_t* bias, int fb);
  // An affine requantization y = round_half_up(acc m 2^-shift + beta[n]) (beta: the real bias in
  // output steps, N entries or nullptr): t = shift, c = floor(beta 2^t + 2^(t-1)), which keeps
  // floor((acc m + c) / 2^t) exact for the given beta. `what` names the layer in errors
  // (|c| must stay below 2^61).
  void init_affine(const std::vector<Mult>& mult, const double* beta, const std::string& what);
  // y[j] for j < n, channel ch0 + j (or 0 for a broadcast multiplier); ch0 a multiple of 8.
  // Kernel path: qgemm_isa().
  void row_u8(const int32_t* acc, int64_t n, int32_t zero, int32_t lo, int32_t hi, uint8_t* y,
              int64_t ch0 = 0) const;
  void row_i32(const int32_t* acc, int64_t n, int32_t lo, int32_t hi, int32_t* y, int64_t ch0 = 0) const;  // no zero
  // A tile: rows r < `rows` of acc + r * ldacc -> y + r * ldy (same channels as row_u8).
  void rows_u8(const int32_t* acc, int64_t ldacc, int64_t rows, int64_t n, int32_t zero, int32_t lo,
               int32_t hi, uint8_t* y, int64_t ldy, int64_t ch0 = 0) const;
  void rows_i32(const int32_t* acc, int64_t ldacc, int64_t rows, int64_t n, int32_t lo, int32_t hi,
                int32_t* y, int64_t ldy, int64_t ch0 = 0) const;
  void row_u8_ref(const int32_t* acc, int64_t n, int32_t zero, int32_t lo, int32_t hi, uint8_t* y,
                  int64_t ch0 = 0) const;
  void row_i32_ref(const int32_t* acc, int64_t n, int32_t lo, int32_t hi, int32_t* y, int64_t ch0 = 0) const;
  void build_groups();  // the AVX2 / AVX-512 lane layout of m, c, t
  int64_t one(int32_t acc, int64_t ch) const {  // unclamped floor((acc m + c) / 2^t)
    const int64_t k = N == 1 ? 0 : ch;
    return (int64_t{acc} * m[k] + c[k]) >> t[k];
  }
};
// The scalar columns [j0, n) of a row (the SIMD rows' tail): to y8, or to y32 when y8 is null.
// Column j is channel ch0 + j.
inline void requant_tail(const Requant& r, const int32_t* acc, int64_t j0, int64_t n, int32_t zero,
                         int32_t lo, int32_t hi, uint8_t* y8, int32_t* y32, int64_t ch0) {
  for (int64_t j = j0; j < n; ++j) {
    const int64_t v = std::clamp<int64_t>(r.one(acc[j], ch0 + j) + zero, lo, hi);
    if (y8)
      y8[j] = static_cast<uint8_t>(v);
    else
      y32[j] = static_cast<int32_t>(v);
  }
}
void requant_row_avx2(const Requant& r, const int32_t* acc, int64_t n, int32_t zero, int32_t lo,
                      int32_t hi, uint8_t* y8, int32_t* y32, int64_t ch0 = 0);
void requant_row_avx512(const Requant& r, const int32_t* acc, int64_t n, int32_t zero, int32_t lo,
                        int32_t hi, uint8_t* y8, int32_t* y32, int64_t ch0 = 0);  // requant_avx512.cpp
// Tiles: 8 channels at a time (multipliers kept in registers) over all rows; y8 or y32 with row
// stride ldy. Same integers as the rows above.
void requant_rows_avx2(const Requant& r, const int32_t* acc, int64_t ldacc, int64_t rows, int64_t n,
                       int32_t zero, int32_t lo, int32_t hi, uint8_t* y8, int32_t* y32, int64_t ldy,
                       int64_t ch0);
void requant_rows_avx512(const Requant& r, const int32_t* acc, int64_t ldacc, int64_t rows, int64_t n,
                         int32_t zero, int32_t lo, int32_t hi, uint8_t* y8, int32_t* y32, int64_t ldy,
                         int64_t ch0);

// Codes are clamped to [0, qmax] of their quantizer (255 for uint8, 63 for uint6, ...).
inline uint8_t clamp_q(int64_t v, int32_t qmax) {
  return static_cast<uint8_t>(v < 0 ? 0 : (v > qmax ? qmax : v));
}

// Float -> uint8 code clamp(round(x / s + z), 0, 255), the simulation's quantizer (round half to
// even in float32, bit-exact with fake_quant). Used for the input image and the GELU output.
void quantize_u8(const float* x, uint8_t* q, int64_t n, float s, float z, int32_t qmax = 255);

// ---- Linear (int_linear.cpp) ------------------------------------------------------------------
// y = x W^T + b with x uint8 (zero a_zero), W int8 [N, K] symmetric per output channel and the
// float bias b. acc[m, n] = sum_k (x[m,k] - a_zero) w[n,k] exactly in int32. The real output is
// the simulation's y = fma(s_a s_w[n], acc, b[n]) (double; s_a s_w[n] is exact in double).
struct IntLinear {
  int64_t N = 0, K = 0;
  const int8_t* w = nullptr;      // [N, K], row-major (the file's bytes or an unpacked copy)
  QWeight packed;                 // for qgemm_u8s8s32
  std::vector<double> deq;        // s_a s_w[n], exact
  std::vector<double> bias;       // b[n]
  // uint8 output: y = clamp(round_half_up(acc mult[n] + b[n] / s_out) + out_zero), mult ~= s_a
  // s_w[n] / s_out as stored in the file; bias in output steps: out_beta[n] = b[n] / s_out.
  std::vector<Mult> mult;
  std::vector<double> out_beta;
  Requant rq, rq_lut;             // mult / lut_mult with the bias folded in (built by init_sums / init_lut)
  void init_sums(const std::string& what);  // packs the weights; builds rq when mult is set
  void init_lut(const std::string& what);   // builds rq_lut from lut_mult and lut_beta
  // The float output (fc1 before GELU, the head): the simulation's value, bit for bit.
  float real(int32_t acc, int64_t n) const {
    return static_cast<float>(std::fma(deq[n], static_cast<double>(acc), bias[n]));
  }
  // acc [M, N] (row stride N), parallel over rows.
  void accumulate(const uint8_t* x, int64_t M, int32_t a_zero, int32_t* acc) const;
  void forward_u8(const uint8_t* x, int64_t M, int32_t a_zero, uint8_t* y, int32_t out_zero,
                  int32_t out_max, int32_t* acc) const;
  void forward_f32(const uint8_t* x, int64_t M, int32_t a_zero, float* y, int32_t* acc) const;
  // GELU output codes through `lut` (fc1); lut_mult[n] ~= deq[n] / lut.s_f, lut_beta = b[n] / s_f.
  std::vector<Mult> lut_mult;
  std::vector<double> lut_beta;
  void forward_lut(const uint8_t* x, int64_t M, int32_t a_zero, uint8_t* y, const struct GeluLut& lut,
                   int32_t* acc) const;
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
  int32_t out_zero = 0, out_max = 255;
  void init(const QuantParams& in, const float* gamma, const float* beta, const QuantParams& out);
  // rows of PTF codes x [rows, C] -> uint8 codes y on the output quantizer. Parallel.
  void forward(const uint8_t* x, uint8_t* y, int64_t rows) const;
  void forward_rows(const uint8_t* x, uint8_t* y, int64_t r0, int64_t r1) const;  // rows r0..r1, serial
};

void ln_dequant_avx2(const uint8_t* x, int64_t C, float z, const float* s, float* xf);
void ln_requant_avx2(const float* yf, int64_t C, float s_out, int32_t zero, int32_t qmax, uint8_t* y);

// ---- Residual add with requantization (residual.cpp) -----------------------------------------
// y[r,c] = clamp(round(((a - za) sa_c + (b - zb) sb_c) / so_c) + zo) with per-channel integer
// multipliers ma_c ~ sa_c / so_c 2^k, mb_c ~ sb_c / so_c 2^k and one shift k.
struct IntAdd {
  int64_t C = 0;
  int32_t za = 0, zb = 0, zo = 0, qmax = 255;
  int32_t k = 0;
  std::vector<int32_t> ma, mb;
  // scale vectors have 1 or C entries.
  void init(int64_t C, const std::vector<float>& sa, int32_t za, const std::vector<float>& sb,
            int32_t zb, const std::vector<float>& so, int32_t zo, int32_t qmax);
  // b rows: b + r * ldb (ldb = 0 broadcasts one row). Parallel over rows; each row by
  // int_add_row_avx2 (int_add_row_avx512 with the AVX-512 int8 path) or the scalar one() by
  // kernel_path().
  void forward(const uint8_t* a, const uint8_t* b, int64_t ldb_rows_mod, uint8_t* y,
               int64_t rows) const;
  void forward_rows(const uint8_t* a, const uint8_t* b, int64_t ldb_rows_mod, uint8_t* y, int64_t r0,
                    int64_t r1) const;  // rows r0..r1, serial
  uint8_t one(uint8_t a, uint8_t b, int64_t c) const {
    const int64_t v = int64_t(a - za) * ma[c] + int64_t(b - zb) * mb[c];
    return clamp_q(((v + (k > 0 ? int64_t{1} << (k - 1) : 0)) >> k) + zo, qmax);
  }
};
void int_add_row_avx2(const IntAdd& p, const uint8_t* a, const uint8_t* b, uint8_t* y);
void int_add_row_avx512(const IntAdd& p, const uint8_t* a, const uint8_t* b, uint8_t* y);  // residual_avx512.cpp

// ---- int16 GEMM of the attention (int_gemm16.cpp, int_gemm16_avx2.cpp) ----------------------
// C[i ldc + n] = sum_k A[i lda + k] B(k, n) in int32, for i < M, n < N, k < K; K even (callers pad
// A's rows and B with zeros). B is packed in pairs of k: Bp[(k / 2) (2 Np) + 2 n + k % 2],
// Np = N rounded up to 16 (zero columns). vpmaddwd adds two int16 x int16 products into int32:
// exact when |A| |B| 2 < 2^31 and the whole sum fits int32, which the callers bound
// (logits: |q - z|, |k - z| <= 255, K = Dh; A.V: A <= 2^14, |v - z| <= 255, sum A < 2.25 2^15).
int64_t gemm16_np(int64_t N);  // N rounded up to 16
// B(k, n) = B[k ldb + n] (or B[n ldb + k] when trans) -> Bp with K rows (odd K: a zero row added).
void gemm16_pack(const int16_t* B, int64_t ldb, bool trans, int64_t K, int64_t N, int16_t* Bp);
void gemm16_ref(const int16_t* A, int64_t lda, int64_t M, int64_t K, const int16_t* Bp, int64_t N,
                int32_t* C, int64_t ldc);
void gemm16_avx2(const int16_t* A, int64_t lda, int64_t M, int64_t K, const int16_t* Bp, int64_t N,
                 int32_t* C, int64_t ldc);
void gemm16_vnni(const int16_t* A, int64_t lda, int64_t M, int64_t K, const int16_t* Bp, int64_t N,
                 int32_t* C, int64_t ldc);  // AVX-512 VNNI (vpdpwssd)
// Single-threaded; the path follows the int8 GEMM's: qgemm_isa() (QVIT_KERNELS, QVIT_QGEMM).
void gemm16(const int16_t* A, int64_t lda, int64_t M, int64_t K, const int16_t* Bp, int64_t N,
            int32_t* C, int64_t ldc);

// ---- Attention (int_attention.cpp) ---------------------------------------------------------------
// LIS constants for a logits scale S (I-BERT integer exp on t = code - max code in [-255, 0]).
struct IntLis {
  // e_ij depends only on (max code of the row, code): e of row max m is slices[slice_of[m]][c].
  // The simulation computes t = x / S - max x / S in float32 on x = (c - z) S, which is not always
  // an integer (x / S can miss c - z by an ulp); the tables reproduce those values exactly. Slice
  // 0 holds exact-integer t = c - m (shared), other slices only the row maxima where some t is
  // not an integer.
  std::vector<std::vector<int64_t>> e;  // per slice: 256 values indexed by code (c <= m used)
  std::vector<std::vector<float>> e_f;  // the same as floats (exact)
  std::vector<int32_t> base_off;        // slice 0 is indexed by 255 - m + c
  std::vector<int32_t> slice_of;        // per row max m: 0 = slice 0 with offset
  void init(float S, float zero, int64_t max_cols);
  // Codes 0..15, 16 = zero, for one row of logit codes (qgemm_isa(): AVX-512, AVX2 or scalar).
  void row(const uint8_t* logit_codes, uint8_t* codes, int64_t cols) const;
  void row_ref(const uint8_t* logit_codes, uint8_t* codes, int64_t cols) const;
  // The row's tables: e and e_f indexed by code, for the row maximum mx.
  const int64_t* e_row(uint8_t mx) const { return slice_of[mx] ? e[slice_of[mx]].data() : e[0].data() + (255 - mx); }
  const float* ef_row(uint8_t mx) const { return slice_of[mx] ? e_f[slice_of[mx]].data() : e_f[0].data() + (255 - mx); }
};

// The scalar lookup of columns [j0, n) (GeluLut::lookup's reference and the AVX2 tail); returns
// nf plus the number of -1 entries appended to fix.
inline int64_t gelu_lookup_scalar(const int16_t* table, int32_t u_lo, const int32_t* u, int64_t j0, int64_t n,
                                  uint8_t* y, int32_t* fix, int64_t nf) {
  for (int64_t j = j0; j < n; ++j) {
    const int16_t c = table[u[j] - u_lo];
    if (c >= 0)
      y[j] = static_cast<uint8_t>(c);
    else
      fix[nf++] = static_cast<int32_t>(j);
  }
  return nf;
}
int64_t gelu_lookup_avx2(const int16_t* table, int32_t u_lo, const int32_t* u, int64_t n, uint8_t* y,
                         int32_t* fix);
int64_t gelu_lookup_avx512(const int16_t* table, int32_t u_lo, const int32_t* u, int64_t n, uint8_t* y,
                           int32_t* fix);
bool lis_pow2_avx2(const uint8_t* codes, int64_t n, int16_t* a);
void lis_row_avx2(const IntLis& lis, const uint8_t* logit_codes, uint8_t* codes, int64_t cols);
void lis_row_avx512(const IntLis& lis, const uint8_t* logit_codes, uint8_t* codes, int64_t cols);

struct IntAttention {
  int64_t H = 0, Dh = 0;
  int32_t qkv_zero = 0;       // q, k, v share the qkv quantizer
  Mult logit_mult;            // s_qkv^2 / sqrt(Dh) / S_logits
  int32_t logit_zero = 0, logit_max = 255;
  IntLis lis;
  Mult ctx_mult;              // s_qkv 2^-15 / s_ctx
  int32_t ctx_zero = 0, ctx_max = 255;
  Requant logit_rq, ctx_rq;   // built by init_requant() from logit_mult / ctx_mult
  void init_requant() {
    logit_rq.init({logit_mult}, nullptr, 0);
    ctx_rq.init({ctx_mult}, nullptr, 0);
  }
  // int16 workspace: K^T and V of every (image, head), packed for gemm16. The caller zeroes it once
  // (padding is never written).
  int64_t workspace(int64_t B, int64_t N) const;
  // qkv [B*N, 3D] codes -> logits codes [B*H*N, N] (kept for inspection) -> LIS codes -> context
  // codes ctx [B*N, D]. Two parallel regions: packing over rows, then (b, h, query rows).
  // With `between`, the logits are all computed first, then between() runs (it may change the
  // logit codes: the stage-by-stage tests), then LIS and A.V (one more region).
  void forward(const uint8_t* qkv, uint8_t* logit_codes, uint8_t* ctx, int64_t B, int64_t N,
               int16_t* ws, const std::function<void()>& between = {}) const;
  // The same in pieces, serial, for a range of token rows [r0, r1) of the B*N: pack their K and
  // V into ws; attend their queries (every head; needs all rows packed) into logits and ctx.
  void pack_rows(const uint8_t* qkv, int64_t B, int64_t N, int64_t r0, int64_t r1, int16_t* ws) const;
  void attend_rows(const uint8_t* qkv, uint8_t* logit_codes, uint8_t* ctx, int64_t B, int64_t N,
                   int64_t r0, int64_t r1, const int16_t* ws) const;
  // Query rows [i0, i1) (at most 32) of (image, head) bh.
  void block(const uint8_t* qkv, uint8_t* logit_codes, uint8_t* ctx, int64_t B, int64_t N,
             const int16_t* ws, int64_t bh, int64_t i0, int64_t i1, bool do_logits, bool do_context) const;
};

}  // namespace qvit::engine

namespace qvit::engine {

// ---- GELU through a table (int_gelu.cpp) --------------------------------------------------------
// FQ-ViT has no quantizer between fc1 and GELU; the engine requantizes fc1's accumulator to a fine
// grid u = round(acc s_a s_w[n] / s_f) (dyadic, per channel) with s_f = s_gelu / 2^j, and looks the
// GELU output code up in a table over u in [u_lo, u_hi] (at most 2^16 entries; beyond the range
// the code is constant: GELU(x < -8) rounds to the zero point, above u_hi the code is 255).
// table[u - u_lo] = clamp(round(gelu(u s_f) / s_gelu + z_gelu)) with the reference GELU.
// Cells whose code is not constant over [u - 1/2, u + 1/2] s_f (about 1 in 64) are marked -1 and
// computed exactly from the float input with the reference GELU (deterministic, path-independent).
struct GeluLut {
  float s_f = 0, s_gelu = 0, z_gelu = 0, qmax = 255;
  int32_t u_lo = 0, u_hi = 0;
  std::vector<int16_t> table;     // u_hi - u_lo + 1 entries and one padding entry (-1)
  void init(float s_gelu, float z_gelu, int32_t qmax);
  // y[j] = table[u[j] - u_lo] for u in [u_lo, u_hi]; returns how many entries were -1 (their
  // positions in fix[], y undefined there). AVX-512 / AVX2 gathers or scalar by qgemm_isa().
  int64_t lookup(const int32_t* u, int64_t n, uint8_t* y, int32_t* fix) const;
  uint8_t exact(float x) const;  // the code of gelu(x)
};

}  // namespace qvit::engine
