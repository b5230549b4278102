// int8 GEMM (see include/qvit/qkernels.h for the arithmetic and the saturation-free scheme):
// weight packing, the scalar reference, and the blocked, threaded driver around the AVX2
// micro-kernel (src/qkernels/qgemm_avx2.cpp).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "qkernels/qgemm_internal.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"
#include "qvit/qkernels.h"

namespace qvit {

using qkernels_detail::kMicroRows;
using qkernels_detail::kPanelCols;

namespace {

constexpr int64_t kMaxK = 65793;  // K * 255 * 128 < 2^31

void check_args(const char* fn, int64_t M, int64_t lda, int32_t a_zero, int64_t N, int64_t K,
                int64_t ldacc) {
  if (M < 0 || N <= 0 || K <= 0 || lda < K || ldacc < N) {
    fail("qkernels", "{}: bad shape M={} N={} K={} lda={} ldacc={}", fn, M, N, K, lda, ldacc);
  }
  if (K > kMaxK) fail("qkernels", "{}: K = {} exceeds {} (int32 accumulator range)", fn, K, kMaxK);
  if (a_zero < 0 || a_zero > 255) fail("qkernels", "{}: activation zero point {} not in [0, 255]", fn, a_zero);
}

std::atomic<int> g_isa_override{-1};

QgemmIsa default_simd_isa() {
  static const QgemmIsa isa = [] {
    const char* env = std::getenv("QVIT_QGEMM");
    const std::string_view v = env ? env : "";
    if (v == "avx2") return QgemmIsa::avx2;
    if (v == "vnni") {
      if (!cpu_has_avx512vnni()) fail("qkernels", "QVIT_QGEMM=vnni but this CPU lacks AVX-512 VNNI");
      return QgemmIsa::avx512vnni;
    }
    if (!v.empty()) fail("qkernels", "QVIT_QGEMM='{}' is not one of: avx2, vnni", v);
    return cpu_has_avx512vnni() ? QgemmIsa::avx512vnni : QgemmIsa::avx2;
  }();
  return isa;
}

}  // namespace

bool cpu_has_avx512vnni() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

QgemmIsa qgemm_isa() {
  const int o = g_isa_override.load(std::memory_order_acquire);
  if (o >= 0) return static_cast<QgemmIsa>(o);
  return kernel_path() == KernelPath::ref ? QgemmIsa::ref : default_simd_isa();
}

void set_qgemm_isa(QgemmIsa isa) {
  if (isa == QgemmIsa::avx512vnni && !cpu_has_avx512vnni()) {
    fail("qkernels", "the avx512vnni int8 GEMM was requested but this CPU lacks AVX-512 VNNI");
  }
  if (isa == QgemmIsa::avx2 && !__builtin_cpu_supports("avx2")) {
    fail("qkernels", "the avx2 int8 GEMM was requested but this CPU lacks AVX2");
  }
  g_isa_override.store(static_cast<int>(isa), std::memory_order_release);
}

void reset_qgemm_isa() { g_isa_override.store(-1, std::memory_order_release); }

const char* qgemm_isa_name(QgemmIsa isa) {
  switch (isa) {
    case QgemmIsa::ref: return "ref";
    case QgemmIsa::avx2: return "avx2";
    case QgemmIsa::avx512vnni: return "avx512vnni";
  }
  return "?";
}

QWeight QWeight::pack(const int8_t* w, int64_t N, int64_t K) {
  if (N <= 0 || K <= 0) fail("qkernels", "QWeight::pack: bad shape N={} K={}", N, K);
  if (K > kMaxK) fail("qkernels", "QWeight::pack: K = {} exceeds {}", K, kMaxK);
  QWeight q;
  q.N_ = N;
  q.K_ = K;
  q.raw_.assign(w, w + N * K);
  q.row_sums_.resize(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) {
    int32_t s = 0;
    for (int64_t k = 0; k < K; ++k) s += w[n * K + k];
    q.row_sums_[n] = s;
  }
  const int64_t panels = (N + kPanelCols - 1) / kPanelCols, kp = q.k_pairs();
  q.panels_.assign(static_cast<size_t>(panels * kp * kPanelCols * 2), 0);
  for (int64_t n = 0; n < N; ++n) {
    int16_t* base = q.panels_.data() + (n / kPanelCols) * kp * kPanelCols * 2 + (n % kPanelCols) * 2;
    for (int64_t k = 0; k < K; ++k) base[(k / 2) * kPanelCols * 2 + (k % 2)] = w[n * K + k];
  }
  if (cpu_has_avx512vnni()) {
    using qkernels_detail::kVnniCols;
    const int64_t vp = (N + kVnniCols - 1) / kVnniCols, kq = q.k_quads();
    q.vnni_.assign(static_cast<size_t>(vp * kq * kVnniCols * 4), 0);
    for (int64_t n = 0; n < N; ++n) {
      int8_t* base = q.vnni_.data() + (n / kVnniCols) * kq * kVnniCols * 4 + (n % kVnniCols) * 4;
      for (int64_t k = 0; k < K; ++k) base[(k / 4) * kVnniCols * 4 + (k % 4)] = w[n * K + k];
    }
  }
  return q;
}

void qgemm_u8s8s32_ref(const uint8_t* a, int64_t M, int64_t lda, int32_t a_zero, const int8_t* w,
                       int64_t N, int64_t K, int32_t* acc, int64_t ldacc) {
  check_args("qgemm_u8s8s32_ref", M, lda, a_zero, N, K, ldacc);
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      int64_t s = 0;
      for (int64_t k = 0; k < K; ++k) {
        s += static_cast<int64_t>(static_cast<int32_t>(a[m * lda + k]) - a_zero) * w[n * K + k];
      }
      acc[m * ldacc + n] = static_cast<int32_t>(s);  // |s| <= K * 255 * 128 < 2^31
    }
  }
}

namespace {

// The AVX-512 VNNI driver: rows copied to a buffer padded to a multiple of 4 k (zeros), tasks of
// 64 rows x 64 channels over the 8 x 32 micro-kernel, then acc -= z_a * rowsum(w) per channel.
void qgemm_vnni(const uint8_t* a, int64_t M, int64_t lda, int32_t a_zero, const QWeight& w,
                int32_t* acc, int64_t ldacc, const QgemmEpilogue* epi) {
  using qkernels_detail::kVnniCols;
  using qkernels_detail::kVnniRows;
  const int64_t N = w.n(), K = w.k(), kq = w.k_quads(), lda4 = kq * 4;
  if (w.vnni_panels() == nullptr || kq == 0) fail("qkernels", "qgemm: weights were packed without VNNI panels");
  const uint8_t* ap = a;
  int64_t ld = lda;
  thread_local std::vector<uint8_t> pad_buf;
  if (K % 4 != 0) {
    if (pad_buf.size() < static_cast<size_t>(M * lda4)) pad_buf.resize(static_cast<size_t>(M * lda4));
    uint8_t* dst = pad_buf.data();
    parallel_for(M, 256, [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; ++m) {
        std::memcpy(dst + m * lda4, a + m * lda, static_cast<size_t>(K));
        std::memset(dst + m * lda4 + K, 0, static_cast<size_t>(lda4 - K));
      }
    });
    ap = dst;
    ld = lda4;
  }
  // Small M (a batch-1 ViT: 197 rows): one task per column block over all rows, so every weight
  // panel is read from memory once and the rows (<= 256 x K bytes) stay in each core's L2.
  const int64_t kRowBlock = M <= 256 ? M : 64;
  const int64_t kColBlock = (M <= 256 && N < 8 * 64) ? 32 : 64;
  const int64_t row_blocks = (M + kRowBlock - 1) / kRowBlock;
  const int64_t col_blocks = (N + kColBlock - 1) / kColBlock;
  // Accumulators start at -z * sum_k w[n, k] (the zero point folded; padded to whole panels).
  const int32_t* sums = w.row_sums();
  thread_local std::vector<int32_t> init_buf;
  const int64_t Npad = (N + kVnniCols - 1) / kVnniCols * kVnniCols;
  init_buf.assign(static_cast<size_t>(Npad), 0);
  for (int64_t n = 0; n < N; ++n) init_buf[n] = static_cast<int32_t>(-int64_t{a_zero} * sums[n]);
  const int32_t* init = init_buf.data();
  const auto tasks = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t rb = t / col_blocks, cb = t % col_blocks;
      const int64_t m0 = rb * kRowBlock, rows = std::min(kRowBlock, M - m0);
      const int64_t n0 = cb * kColBlock, n1 = std::min(N, n0 + kColBlock);
      for (int64_t n = n0; n < n1; n += kVnniCols) {
        const int8_t* panel = w.vnni_panels() + (n / kVnniCols) * kq * kVnniCols * 4;
        const int cols = static_cast<int>(std::min<int64_t>(kVnniCols, N - n));
        for (int64_t r = 0; r < rows; r += kVnniRows) {
          const int nr = static_cast<int>(std::min<int64_t>(kVnniRows, rows - r));
          qkernels_detail::qgemm_micro_avx512(ap + (m0 + r) * ld, ld, nr, panel, kq,
                                              acc + (m0 + r) * ldacc + n, ldacc, cols, init + n);
        }
      }
      if (epi) (*epi)(m0, m0 + rows, n0, n1);
    }
  };
  // A tiny product (the classifier of one image: 0.4 M multiply-adds, ~1 us) costs less than
  // waking the other threads: run it on the calling thread.
  if (M * N * K < (int64_t{1} << 20))
    tasks(0, row_blocks * col_blocks);
  else
    parallel_for(row_blocks * col_blocks, 1, tasks);
}

}  // namespace

namespace {

void qgemm_dispatch(const uint8_t* a, int64_t M, int64_t lda, int32_t a_zero, const QWeight& w,
                    int32_t* acc, int64_t ldacc, const QgemmEpilogue* epi) {
  const int64_t N = w.n(), K = w.k();
  check_args("qgemm_u8s8s32", M, lda, a_zero, N, K, ldacc);
  if (M == 0) return;
  const QgemmIsa isa = qgemm_isa();
  if (isa == QgemmIsa::avx512vnni) {
    qgemm_vnni(a, M, lda, a_zero, w, acc, ldacc, epi);
    return;
  }
  if (isa == QgemmIsa::ref) {
    parallel_for(M, 16, [&](int64_t m0, int64_t m1) {
      qgemm_u8s8s32_ref(a + m0 * lda, m1 - m0, lda, a_zero, w.raw(), N, K, acc + m0 * ldacc, ldacc);
      if (epi) (*epi)(m0, m1, 0, N);
    });
    return;
  }
  // 1. Widen the activations to int16 once (zero point subtracted, rows even-padded) into a
  //    buffer owned by the calling thread and reused across calls.
  // 2. Tasks of 48 rows x 64 output channels (all rows x 32 or 64 channels when M <= 256;
  //    boundaries depend on the shape only) run the
  //    6 x 16 micro-kernel over their panels.
  // Small M: column tasks over all rows, as on the VNNI path (each weight panel read once).
  const int64_t kRowBlock = M <= 256 ? M : 48;
  const int64_t kColBlock = (M <= 256 && N < 8 * 64) ? 32 : 64;
  const int64_t kp = w.k_pairs(), lda16 = kp * 2;
  thread_local std::vector<int16_t> a16_buf;
  if (a16_buf.size() < static_cast<size_t>(M * lda16)) a16_buf.resize(static_cast<size_t>(M * lda16));
  int16_t* a16 = a16_buf.data();
  parallel_for(M, 64, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      qkernels_detail::widen_u8_avx2(a + m * lda, K, a_zero, a16 + m * lda16);
      if (K % 2) a16[m * lda16 + K] = 0;
    }
  });
  const int64_t row_blocks = (M + kRowBlock - 1) / kRowBlock;
  const int64_t col_blocks = (N + kColBlock - 1) / kColBlock;
  parallel_for(row_blocks * col_blocks, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t rb = t / col_blocks, cb = t % col_blocks;
      const int64_t m0 = rb * kRowBlock, rows = std::min(kRowBlock, M - m0);
      const int64_t n0 = cb * kColBlock, n1 = std::min(N, n0 + kColBlock);
      for (int64_t n = n0; n < n1; n += kPanelCols) {
        const int16_t* panel = w.panels() + (n / kPanelCols) * kp * kPanelCols * 2;
        const int cols = static_cast<int>(std::min<int64_t>(kPanelCols, N - n));
        for (int64_t r = 0; r < rows; r += kMicroRows) {
          const int nr = static_cast<int>(std::min<int64_t>(kMicroRows, rows - r));
          qkernels_detail::qgemm_micro_avx2(a16 + (m0 + r) * lda16, lda16, nr, panel, kp,
                                            acc + (m0 + r) * ldacc + n, ldacc, cols);
        }
      }
      if (epi) (*epi)(m0, m0 + rows, n0, n1);
    }
  });
}

}  // namespace

void qgemm_u8s8s32(const uint8_t* a, int64_t M, int64_t lda, int32_t a_zero, const QWeight& w,
                   int32_t* acc, int64_t ldacc) {
  qgemm_dispatch(a, M, lda, a_zero, w, acc, ldacc, nullptr);
}

void qgemm_u8s8s32(const uint8_t* a, int64_t M, int64_t lda, int32_t a_zero, const QWeight& w,
                   int32_t* acc, int64_t ldacc, const QgemmEpilogue& epilogue) {
  qgemm_dispatch(a, M, lda, a_zero, w, acc, ldacc, epilogue ? &epilogue : nullptr);
}

}  // namespace qvit
