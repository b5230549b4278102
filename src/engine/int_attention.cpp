// Integer attention of the FQ-ViT configuration (LIS), per (image, head):
//   logits: acc_ij = sum_d (q_id - z)(k_jd - z) exactly (int32); logit code
//           l_ij = clamp(requant(acc_ij, s_qkv^2 / sqrt(Dh) / S) + z_l)      (S: logits scale)
//   LIS:    t_ij = l_ij - max_j l_ij in [-255, 0]; e_ij = E[max][l_ij], tables of I-BERT's
//           integer exp built with the simulation's arithmetic (lis.cpp, including its float
//           rounding of x / S, see IntLis); sum_i = exact int64
//           sum; v = round(float(sum_i) / e_ij) and the 4-bit code as in lis.cpp (this division
//           is the one float operation per probability, as in FQ-ViT; codes are bit-identical to
//           the simulation's for the same logit codes); code 16 = probability 0.
//   A.V:    acc_id = sum_j (v_jd - z) 2^(15 - code_ij) (code 16 skipped): V shifted by the codes,
//           exact in int32 (sum_j 2^-code_ij < 2.25, so |acc| < 255 * 2.25 * 2^15);
//           context code = clamp(requant(acc, s_qkv 2^-15 / s_ctx) + z_ctx).
#include <algorithm>
#include <cstring>
#include <cmath>
#include <functional>
#include <utility>
#include <vector>

#include "engine/engine_ops.h"
#include "quant/observer_impl.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"

namespace qvit::engine {

namespace {

// The simulation's integer exp of one float t (lis.cpp), as an integral float.
struct LisFloat {
  float x0, b_int, c_int, t_min;
  float e(float t) const {
    t = t < t_min ? t_min : t;
    const float q = static_cast<float>(static_cast<int>(t / x0));
    const float rem = t - x0 * q;
    float poly = rem + b_int;
    poly = rem * poly;
    poly = poly + c_int;
    return std::max(std::floor(poly * std::ldexp(1.0f, 30 - static_cast<int>(q))), 0.0f);
  }
};

}  // namespace

void IntLis::init(float S, float zero, int64_t max_cols) {
  if (!(S > 0.0f) || !std::isfinite(S)) fail("engine", "LIS: logits scale must be > 0, got {}", S);
  const float inv_s = 1.0f / S;
  const float inv_s2 = 1.0f / (S * S);
  LisFloat k;
  k.x0 = std::floor(static_cast<float>(-0.6931) * inv_s);
  k.b_int = std::floor(static_cast<float>(0.96963238 / 0.35815147) * inv_s);
  k.c_int = std::floor(static_cast<float>(1.0 / 0.35815147) * inv_s2);
  k.t_min = 30.0f * k.x0;
  const double limit = std::ldexp(1.0, 62) / static_cast<double>(std::max<int64_t>(max_cols, 1));
  auto check = [&](float v) {
    if (!(v < limit))
      fail("engine", "LIS: integer exp value {} too large for {} columns (logits scale {})", v,
           max_cols, S);
    return v;
  };
  // Slice 0: exact integer t = -d, stored at index 255 - d.
  e.assign(1, std::vector<int64_t>(256));
  e_f.assign(1, std::vector<float>(256));
  for (int d = 0; d < 256; ++d) {
    const float v = check(k.e(-static_cast<float>(d)));
    e_f[0][255 - d] = v;
    e[0][255 - d] = static_cast<int64_t>(v);
  }
  // x / S of every code, as the simulation computes it.
  float r[256];
  for (int c = 0; c < 256; ++c) r[c] = ((static_cast<float>(c) - zero) * S) / S;
  slice_of.assign(256, 0);
  for (int m = 0; m < 256; ++m) {
    std::vector<float> vf(256, 0.0f);
    bool differs = false;
    for (int c = 0; c <= m; ++c) {
      vf[c] = check(k.e(r[c] - r[m]));
      differs |= vf[c] != e_f[0][255 - m + c];
    }
    if (!differs) continue;
    slice_of[m] = static_cast<int32_t>(e.size());
    std::vector<int64_t> vi(256, 0);
    for (int c = 0; c <= m; ++c) vi[c] = static_cast<int64_t>(vf[c]);
    e.push_back(std::move(vi));
    e_f.push_back(std::move(vf));
  }
}

void IntLis::row_ref(const uint8_t* l, uint8_t* codes, int64_t cols) const {
  uint8_t mx = 0;
  for (int64_t j = 0; j < cols; ++j) mx = std::max(mx, l[j]);
  const int64_t* ei = e_row(mx);
  const float* ef = ef_row(mx);
  int64_t sum = 0;
  for (int64_t j = 0; j < cols; ++j) sum += ei[l[j]];
  if (sum == 0) {
    std::fill(codes, codes + cols, kLisZeroCode);
    return;
  }
  const float sum_f = static_cast<float>(sum);
  for (int64_t j = 0; j < cols; ++j)
    codes[j] = quant_detail::lis_code(std::nearbyint(sum_f / ef[l[j]]));
}

void IntLis::row(const uint8_t* l, uint8_t* codes, int64_t cols) const {
  switch (qgemm_isa()) {  // the requantization's path (requant.cpp)
    case QgemmIsa::avx512vnni:
      lis_row_avx512(*this, l, codes, cols);
      break;
    case QgemmIsa::avx2:
      lis_row_avx2(*this, l, codes, cols);
      break;
    default:
      row_ref(l, codes, cols);
  }
}

namespace {
constexpr int64_t kRowBlock = 32;  // query rows per task
// 2^(15 - code) as gemm16's int16 operand; code 0 (2^15, not an int16) is added separately, code
// 16 (probability 0) is 0.
constexpr int16_t kPow2[17] = {0,  16384, 8192, 4096, 2048, 1024, 512, 256, 128,
                               64, 32,    16,   8,    4,    2,    1,   0};
}  // namespace

// K^T (for the logits) and V (for A.V) of each (image, head) are packed for gemm16 (pack_rows);
// then each block of query rows of one (b, h) goes through logits -> LIS -> A.V -> context codes
// (block), so the logit rows never leave the task's cache. forward() runs both as two parallel
// regions; the engine's row-partitioned forward calls them on its own rows.
int64_t IntAttention::workspace(int64_t B, int64_t N) const {
  const int64_t K2 = (Dh + 1) / 2 * 2, N2 = (N + 1) / 2 * 2;
  return B * H * (K2 * gemm16_np(N) + N2 * gemm16_np(Dh));
}

void IntAttention::pack_rows(const uint8_t* qkv, int64_t B, int64_t N, int64_t r0, int64_t r1,
                             int16_t* ws) const {
  const int64_t D = H * Dh, ld = 3 * D;
  const int64_t K2 = (Dh + 1) / 2 * 2, Np = gemm16_np(N), kper = K2 * Np;
  const int64_t N2 = (N + 1) / 2 * 2, Dp = gemm16_np(Dh), vper = N2 * Dp;
  int16_t* kws = ws;                 // B*H packed K^T: [K2/2][Np][2]
  int16_t* vws = ws + B * H * kper;  // B*H packed V:   [N2/2][Dp][2]
  // K: each (k_2p, k_2p+1) pair of row j is one 32-bit store at pair row p, column j. V: rows j
  // (even) and j + 1 of one pair are interleaved, one 32-bit store per d (a lone row at the range's
  // ends, or the last of an odd N, is stored with its partner slot left as it is: 0 or the other
  // thread's value).
  const auto pair32 = [](int32_t lo, int32_t hi) {
    return static_cast<uint32_t>(static_cast<uint16_t>(lo)) | (static_cast<uint32_t>(static_cast<uint16_t>(hi)) << 16);
  };
  for (int64_t r = r0; r < r1;) {
    const int64_t b = r / N, j = r % N;
    const bool two = j % 2 == 0 && j + 1 < N && r + 1 < r1;  // rows j and j + 1 of one V pair
    for (int64_t h = 0; h < H; ++h) {
      const int64_t bh = b * H + h;
      for (int64_t jj = j; jj < j + (two ? 2 : 1); ++jj) {
        const uint8_t* kj = qkv + (b * N + jj) * ld + D + h * Dh;
        int16_t* kp = kws + bh * kper + 2 * jj;
        int64_t d = 0;
        for (; d + 1 < Dh; d += 2) {
          const uint32_t v = pair32(kj[d] - qkv_zero, kj[d + 1] - qkv_zero);
          std::memcpy(kp + d * Np, &v, 4);  // pair row d / 2: offset (d / 2) 2 Np
        }
        if (d < Dh) kp[d * Np] = static_cast<int16_t>(kj[d] - qkv_zero);  // odd Dh: the padding stays 0
      }
      const uint8_t* v0 = qkv + (b * N + j) * ld + 2 * D + h * Dh;
      int16_t* vp = vws + bh * vper + (j / 2) * 2 * Dp + j % 2;
      if (two) {
        const uint8_t* v1 = v0 + ld;
        for (int64_t d = 0; d < Dh; ++d) {
          const uint32_t v = pair32(v0[d] - qkv_zero, v1[d] - qkv_zero);
          std::memcpy(vp + 2 * d, &v, 4);
        }
      } else {
        for (int64_t d = 0; d < Dh; ++d) vp[2 * d] = static_cast<int16_t>(v0[d] - qkv_zero);
      }
    }
    r += two ? 2 : 1;
  }
}

void IntAttention::block(const uint8_t* qkv, uint8_t* lc, uint8_t* ctx, int64_t B, int64_t N,
                         const int16_t* ws, int64_t bh, int64_t i0, int64_t i1, bool do_logits,
                         bool do_context) const {
  const int64_t D = H * Dh, ld = 3 * D;
  const int64_t K2 = (Dh + 1) / 2 * 2, Np = gemm16_np(N), kper = K2 * Np;
  const int64_t N2 = (N + 1) / 2 * 2, Dp = gemm16_np(Dh), vper = N2 * Dp;
  const int16_t* kws = ws + bh * kper;
  const int16_t* vws = ws + B * H * kper + bh * vper;
  const bool avx2 = kernel_path() == KernelPath::avx2;
  thread_local std::vector<int16_t> q, a;
  thread_local std::vector<int32_t> s, acc;
  thread_local std::vector<uint8_t> codes;
  thread_local std::vector<std::pair<int64_t, int64_t>> ones;  // (row, j) with code 0: 2^15 > int16
  const int64_t b = bh / H, h = bh % H;
  uint8_t* out = lc + bh * N * N;
  if (do_logits) {  // logits of the block's query rows
    q.resize(static_cast<size_t>(kRowBlock * K2));
    s.resize(static_cast<size_t>(kRowBlock * Np));
    for (int64_t i = i0; i < i1; ++i) {
      const uint8_t* qi = qkv + (b * N + i) * ld + h * Dh;
      int16_t* qr = q.data() + (i - i0) * K2;
      for (int64_t d = 0; d < Dh; ++d) qr[d] = static_cast<int16_t>(qi[d] - qkv_zero);
      if (Dh < K2) qr[Dh] = 0;  // odd Dh: the pair's padding
    }
    gemm16(q.data(), K2, i1 - i0, K2, kws, N, s.data(), Np);
    logit_rq.rows_u8(s.data(), Np, i1 - i0, N, logit_zero, 0, logit_max, out + i0 * N, N);
  }
  if (!do_context) return;
  // LIS codes -> powers of two -> A.V.
  a.resize(static_cast<size_t>(kRowBlock * N2));
  acc.resize(static_cast<size_t>(kRowBlock * Dp));
  codes.resize(static_cast<size_t>(N));
  ones.clear();
  for (int64_t i = i0; i < i1; ++i) {
    lis.row(out + i * N, codes.data(), N);
    int16_t* ai = a.data() + (i - i0) * N2;
    if (N < N2) ai[N] = 0;  // odd N: the pair's padding
    bool zero = false;
    if (avx2) {
      zero = lis_pow2_avx2(codes.data(), N, ai);
    } else {
      for (int64_t j = 0; j < N; ++j) ai[j] = kPow2[codes[j]];
      zero = true;
    }
    if (zero)
      for (int64_t j = 0; j < N; ++j)
        if (codes[j] == 0) ones.emplace_back(i - i0, j);
  }
  gemm16(a.data(), N2, i1 - i0, N2, vws, Dh, acc.data(), Dp);
  for (const auto& [r, j] : ones)  // probability 1: v_j 2^15, read back from the packed V
    for (int64_t d = 0; d < Dh; ++d) acc[r * Dp + d] += int32_t{vws[(j / 2) * 2 * Dp + 2 * d + j % 2]} * 32768;
  ctx_rq.rows_u8(acc.data(), Dp, i1 - i0, Dh, ctx_zero, 0, ctx_max, ctx + (b * N + i0) * D + h * Dh, D);
}

void IntAttention::attend_rows(const uint8_t* qkv, uint8_t* lc, uint8_t* ctx, int64_t B, int64_t N,
                               int64_t r0, int64_t r1, const int16_t* ws) const {
  for (int64_t b = r0 / N; b < B && b * N < r1; ++b) {
    const int64_t q0 = std::max(r0, b * N) - b * N, q1 = std::min(r1, (b + 1) * N) - b * N;
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i0 = q0; i0 < q1; i0 += kRowBlock)
        block(qkv, lc, ctx, B, N, ws, b * H + h, i0, std::min(q1, i0 + kRowBlock), true, true);
  }
}

void IntAttention::forward(const uint8_t* qkv, uint8_t* lc, uint8_t* ctx, int64_t B, int64_t N,
                           int16_t* ws, const std::function<void()>& between) const {
  const int64_t blocks = (N + kRowBlock - 1) / kRowBlock;
  parallel_for(B * N, 16, [&](int64_t r0, int64_t r1) { pack_rows(qkv, B, N, r0, r1, ws); });
  const auto run = [&](bool do_logits, bool do_context) {
    parallel_for(B * H * blocks, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t i0 = (p % blocks) * kRowBlock;
        block(qkv, lc, ctx, B, N, ws, p / blocks, i0, std::min(N, i0 + kRowBlock), do_logits, do_context);
      }
    });
  };
  if (between) {
    run(true, false);
    between();
    run(false, true);
  } else {
    run(true, true);
  }
}

}  // namespace qvit::engine
