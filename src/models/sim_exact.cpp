// Exact arithmetic of the FQ-ViT simulation (see sim_exact.h).
#include "models/sim_exact.h"

#include <cmath>
#include <vector>

#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"
#include "qvit/qkernels.h"
#include "quant/observer_impl.h"

namespace qvit::sim {

namespace {

float at(const std::vector<float>& v, int64_t c) { return v.size() == 1 ? v[0] : v[c]; }

}  // namespace

void codes_of(const float* x, int64_t rows, int64_t C, const QuantParams& p, uint8_t* q) {
  const float qmin = static_cast<float>(p.bits.qmin()), qmax = static_cast<float>(p.bits.qmax());
  if (qmin < 0 || qmax > 255) fail("quant", "exact simulation: codes of {} do not fit uint8", p.bits.name());
  parallel_for(rows, std::max<int64_t>(1, 16384 / C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = 0; c < C; ++c)
        q[r * C + c] = static_cast<uint8_t>(
            quant_detail::quant_code(x[r * C + c], at(p.scale, c), at(p.zero_point, c), qmin, qmax));
  });
}

void linear(const uint8_t* a, int64_t M, const QuantParams& in, const QLinear& l, int32_t* acc, double* y) {
  const int64_t N = l.codes.n(), K = l.codes.k();
  if (in.scale.size() != 1 || in.zero_point.size() != 1)
    fail("quant", "exact simulation: the input of '{}' is not quantized per tensor", l.name);
  qgemm_u8s8s32(a, M, K, static_cast<int32_t>(in.zero_point[0]), l.codes, acc, N);
  const double sa = in.scale[0];
  const float* b = l.bias.numel() ? l.bias.f32() : nullptr;
  parallel_for(M, std::max<int64_t>(1, 16384 / N), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m)
      for (int64_t n = 0; n < N; ++n)
        y[m * N + n] = std::fma(sa * double(l.code_scale[n]), double(acc[m * N + n]), b ? double(b[n]) : 0.0);
  });
}

void logits(const uint8_t* qkv, const QuantParams& qp, int64_t B, int64_t N, int64_t H, int64_t Dh, float scale,
            float* work, double* y) {
  if (Dh > 256) fail("quant", "exact simulation: head dimension {} > 256", Dh);
  const int64_t n = B * N * 3 * H * Dh;
  const float z = qp.zero_point.at(0);
  parallel_for(n, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) work[i] = static_cast<float>(qkv[i]) - z;  // exact integers
  });
  float* acc = work + n;  // B H N N
  attention_scores_f32(work, acc, B, N, H, Dh, 1.0f);
  const double f = double(qp.scale.at(0)) * double(qp.scale.at(0)) * double(scale);
  parallel_for(B * H * N, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0 * N; i < r1 * N; ++i) y[i] = f * double(acc[i]);
  });
}

void context(const float* p, const uint8_t* qkv, const QuantParams& qp, int64_t B, int64_t N, int64_t H,
             int64_t Dh, double* y) {
  const int64_t D = H * Dh, ld = 3 * D;
  const double z = qp.zero_point.at(0), s = qp.scale.at(0);
  parallel_for(B * H, 1, [&](int64_t g0, int64_t g1) {
    std::vector<double> v(static_cast<size_t>(N * Dh)), acc(static_cast<size_t>(Dh));
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t b = g / H, h = g % H;
      for (int64_t j = 0; j < N; ++j)
        for (int64_t d = 0; d < Dh; ++d) v[j * Dh + d] = double(qkv[(b * N + j) * ld + 2 * D + h * Dh + d]) - z;
      for (int64_t i = 0; i < N; ++i) {
        const float* pr = p + ((b * H + h) * N + i) * N;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < N; ++j) {
          const double pj = pr[j];
          if (pj == 0.0) continue;
          for (int64_t d = 0; d < Dh; ++d) acc[d] += pj * v[j * Dh + d];
        }
        double* out = y + (b * N + i) * D + h * Dh;
        for (int64_t d = 0; d < Dh; ++d) out[d] = s * acc[d];
      }
    }
  });
}

void add(const uint8_t* a, const QuantParams& pa, const uint8_t* b, const QuantParams& pb, int64_t b_rows,
         int64_t rows, int64_t C, double* y) {
  parallel_for(rows, std::max<int64_t>(1, 16384 / C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* br = b + (b_rows > 0 ? r % b_rows : r) * C;
      for (int64_t c = 0; c < C; ++c)
        y[r * C + c] = (double(a[r * C + c]) - at(pa.zero_point, c)) * double(at(pa.scale, c)) +
                       (double(br[c]) - at(pb.zero_point, c)) * double(at(pb.scale, c));
    }
  });
}

}  // namespace qvit::sim
