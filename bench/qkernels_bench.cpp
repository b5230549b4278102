// int8 GEMM (qgemm_u8s8s32) at DeiT-Tiny/Small Linear shapes, next to our FP32 LinearF32 on the
// same shape and a measured int8 peak, in the same run.
//
// The peak is a register-only loop of the instructions the kernel is built from (vpmaddwd +
// vpaddd into 12 independent accumulators, no memory traffic), per thread, all threads at
// once: what the exact int16 scheme can reach on this CPU at most. GOP/s counts 2 ops per
// multiply-add (so int8 and FP32 rates are comparable). Ratios printed at the end are medians
// of paired runs (qgemm and LinearF32 timed back to back, order alternating).
//
//   qkernels_bench --benchmark_filter=qgemm    (QVIT_KERNELS=ref times the scalar reference)
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "qvit/kernels.h"
#include "qvit/parallel.h"
#include "qvit/qkernels.h"
#include "qvit/tensor.h"

namespace {

struct Shape {
  const char* name;
  int64_t N, K;
};
const Shape kShapes[] = {{"deit_tiny.qkv", 576, 192},   {"deit_tiny.fc1", 768, 192},
                         {"deit_tiny.fc2", 192, 768},   {"deit_small.qkv", 1152, 384},
                         {"deit_small.proj", 384, 384}, {"deit_small.fc1", 1536, 384},
                         {"deit_small.fc2", 384, 1536}};

std::map<std::string, std::vector<double>> g_ratios;  // int8 speed / fp32 speed per pair
std::map<int, double> g_peak;                          // threads -> GOP/s

__attribute__((target("avx2"))) double peak_gops(int threads) {
  const int64_t iters = 20'000'000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    int sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
      const __m256i b = _mm256_set1_epi16(3);
      // 12 independent chains (madd of the accumulator itself: no common subexpression)
      __m256i c0 = _mm256_set1_epi32(omp_get_thread_num() + 1), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0,
              c8 = c0, c9 = c0, c10 = c0, c11 = c0;
      for (int64_t i = 0; i < iters; ++i) {
        c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(c0, b));
        c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(c1, b));
        c2 = _mm256_add_epi32(c2, _mm256_madd_epi16(c2, b));
        c3 = _mm256_add_epi32(c3, _mm256_madd_epi16(c3, b));
        c4 = _mm256_add_epi32(c4, _mm256_madd_epi16(c4, b));
        c5 = _mm256_add_epi32(c5, _mm256_madd_epi16(c5, b));
        c6 = _mm256_add_epi32(c6, _mm256_madd_epi16(c6, b));
        c7 = _mm256_add_epi32(c7, _mm256_madd_epi16(c7, b));
        c8 = _mm256_add_epi32(c8, _mm256_madd_epi16(c8, b));
        c9 = _mm256_add_epi32(c9, _mm256_madd_epi16(c9, b));
        c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(c10, b));
        c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(c11, b));
      }
      __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                                   _mm256_add_epi32(_mm256_add_epi32(c4, c5), _mm256_add_epi32(c6, c7)));
      s = _mm256_add_epi32(s, _mm256_add_epi32(_mm256_add_epi32(c8, c9), _mm256_add_epi32(c10, c11)));
      sink += _mm256_extract_epi32(s, 0);
    }
    benchmark::DoNotOptimize(sink);
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(iters) * 12 * 16 * 2 * threads / sec / 1e9);  // 16 MACs per vpmaddwd
  }
  return best;
}

void BM_peak(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  double g = 0;
  for (auto _ : state) g = peak_gops(threads);
  g_peak[threads] = g;
  state.counters["GOP/s"] = g;
}
BENCHMARK(BM_peak)->Arg(1)->Arg(2)->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_qgemm_pair(benchmark::State& state) {
  const Shape& s = kShapes[state.range(0)];
  const int64_t M = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  qvit::set_num_threads(threads);
  std::mt19937 rng(1);
  std::vector<uint8_t> a(static_cast<size_t>(M * s.K));
  std::vector<int8_t> w(static_cast<size_t>(s.N * s.K));
  for (auto& v : a) v = static_cast<uint8_t>(rng());
  for (auto& v : w) v = static_cast<int8_t>(rng());
  const qvit::QWeight qw = qvit::QWeight::pack(w.data(), s.N, s.K);
  std::vector<int32_t> acc(static_cast<size_t>(M * s.N));
  qvit::Tensor wf({s.N, s.K}), bf({s.N}), xf({M, s.K}), yf({M, s.N});
  for (int64_t i = 0; i < wf.numel(); ++i) wf.f32()[i] = w[i] / 128.0f;
  for (int64_t i = 0; i < bf.numel(); ++i) bf.f32()[i] = 0.0f;
  for (int64_t i = 0; i < xf.numel(); ++i) xf.f32()[i] = a[i] / 255.0f;
  qvit::LinearF32 lin(wf, bf);
  std::vector<double> ratios, int_s;
  int order = 0;
  for (auto _ : state) {
    double ti = 0, tf = 0;
    for (int j = 0; j < 2; ++j) {
      const bool int_first = ((order + j) % 2) == 0;
      const auto t0 = std::chrono::steady_clock::now();
      if (int_first) qvit::qgemm_u8s8s32(a.data(), M, s.K, 128, qw, acc.data(), s.N);
      else lin.forward(xf.f32(), yf.f32(), M);
      const auto t1 = std::chrono::steady_clock::now();
      (int_first ? ti : tf) = std::chrono::duration<double>(t1 - t0).count();
    }
    ++order;
    ratios.push_back(tf / ti);
    int_s.push_back(ti);
    benchmark::DoNotOptimize(acc.data());
  }
  std::sort(ratios.begin(), ratios.end());
  std::sort(int_s.begin(), int_s.end());
  const double gops = 2.0 * M * s.N * s.K / int_s[int_s.size() / 2] / 1e9;
  const std::string key = std::string(s.name) + " M=" + std::to_string(M) + " t" + std::to_string(threads);
  g_ratios[key] = {gops, ratios[ratios.size() / 2]};
  state.counters["int8_GOP/s"] = gops;
  state.counters["int8/fp32"] = ratios[ratios.size() / 2];
  state.SetLabel(key + " " + qvit::qgemm_isa_name(qvit::qgemm_isa()));
}

void shapes(benchmark::internal::Benchmark* b) {
  for (int i = 0; i < static_cast<int>(std::size(kShapes)); ++i)
    for (int64_t M : {197, 6304})
      for (int t : {1, 2}) b->Args({i, M, t});
}
BENCHMARK(BM_qgemm_pair)->Apply(shapes)->MinTime(0.3)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  if (!g_ratios.empty()) {
    std::printf("\n| shape | int8 GOP/s (median) | %% of int16-madd peak | int8 / FP32 LinearF32 speed (median of pairs) |\n|---|---|---|---|\n");
    for (const auto& [k, v] : g_ratios) {
      const int t = k.back() - '0';
      const double peak = g_peak.count(t) ? g_peak[t] : 0;
      std::printf("| %s | %.0f | %.0f %% | %.2f |\n", k.c_str(), v[0], peak > 0 ? 100 * v[0] / peak : 0.0, v[1]);
    }
    for (const auto& [t, g] : g_peak) std::printf("peak (vpmaddwd+vpaddd, %d thread(s)): %.0f GOP/s\n", t, g);
  }
  benchmark::Shutdown();
  return 0;
}
