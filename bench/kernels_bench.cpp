// Kernel benchmarks at real ViT/DeiT/Swin shapes, each next to a peer measured in the same run.
//
// LinearF32 is compared with oneDNN's own best call on the same problem: one matmul primitive
// over all M rows with weights pre-reordered to the layout it picks (format_tag::any), bias
// fused, oneDNN's own threading. The two are measured as pairs: each iteration times one
// LinearF32 call and one oneDNN call back to back (order alternating), and the reported ratio
// is the median of the per-pair ratios — robust on a shared machine whose load comes in bursts.
// Single-threaded pairs are timed with the thread's CPU clock (time spent descheduled does not
// count), 2-thread pairs with the wall clock. Also shown, as separate benchmarks: dnnl_sgemm
// over the whole problem (no bias) and a naive float loop (batch 1, 1 thread). A table with
// GFLOP/s and the ratios is printed at the end.
//
// Suggested run:
//   kernels_bench --benchmark_filter=linear --benchmark_repetitions=3
// ONEDNN_MAX_CPU_ISA=AVX2 makes oneDNN (inside LinearF32 too) behave as on an AVX2-only CPU.
// QVIT_BENCH_FULL=1 adds the batch-32 ViT-Large shapes (minutes).
#include <benchmark/benchmark.h>
#include <dnnl.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/kernels_internal.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"
#include "qvit/tensor.h"

namespace {

using qvit::KernelPath;
using qvit::Tensor;

std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

Tensor random_tensor(qvit::Shape shape, uint32_t seed) {
  Tensor t(std::move(shape));
  auto v = random_vec(static_cast<size_t>(t.numel()), seed);
  std::copy(v.begin(), v.end(), t.f32());
  return t;
}

// ---- Linear ----------------------------------------------------------------------------------

struct LinearShape {
  const char* layer;
  int64_t tokens;  // rows per image
  int64_t K, N;
};

// K->N of every Linear in the models, with the rows per image they see.
const LinearShape kLinearShapes[] = {
    {"deit_tiny.qkv", 197, 192, 576},      {"deit_tiny.proj", 197, 192, 192},
    {"deit_tiny.fc1", 197, 192, 768},      {"deit_tiny.fc2", 197, 768, 192},
    {"deit_small.qkv", 197, 384, 1152},    {"deit_small.proj", 197, 384, 384},
    {"deit_small.fc1", 197, 384, 1536},    {"deit_small.fc2", 197, 1536, 384},
    {"deit_base.qkv", 197, 768, 2304},     {"deit_base.proj", 197, 768, 768},
    {"deit_base.fc1", 197, 768, 3072},     {"deit_base.fc2", 197, 3072, 768},
    {"vit_large.qkv", 197, 1024, 3072},    {"vit_large.proj", 197, 1024, 1024},
    {"vit_large.fc1", 197, 1024, 4096},    {"vit_large.fc2", 197, 4096, 1024},
    {"head.tiny", 1, 192, 1000},           {"head.small", 1, 384, 1000},
    {"head.base", 1, 768, 1000},           {"patch_embed.tiny", 196, 768, 192},
    {"patch_embed.base", 196, 768, 768},   {"swin.patch_embed", 3136, 48, 96},
    {"swin_t.s1.qkv", 3136, 96, 288},      {"swin_t.s1.fc2", 3136, 384, 96},
    {"swin_t.s2.fc1", 784, 192, 768},      {"swin_t.s3.qkv", 196, 384, 1152},
    {"swin_t.s4.fc1", 49, 768, 3072},
};

enum class LinearImpl { sgemm, naive };
const char* impl_name(LinearImpl i) { return i == LinearImpl::sgemm ? "sgemm" : "naive"; }

// oneDNN's own best call: one matmul primitive, weights in its preferred layout, its threads.
struct OnednnMatmul {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{eng};
  dnnl::matmul prim;
  dnnl::memory src, wei, bias, dst;
  OnednnMatmul(int64_t M, int64_t K, int64_t N, float* w, float* b, float* x, float* y) {
    using dnnl::memory;
    const auto f32 = memory::data_type::f32;
    memory::desc src_md({M, K}, f32, memory::dims{K, 1});
    memory::desc wei_any({K, N}, f32, memory::format_tag::any);
    memory::desc bias_md({1, N}, f32, memory::dims{N, 1});
    memory::desc dst_md({M, N}, f32, memory::dims{N, 1});
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, wei_any, bias_md, dst_md), eng);
    prim = dnnl::matmul(pd);
    memory w_plain(memory::desc({K, N}, f32, memory::dims{1, K}), eng, w);
    wei = memory(pd.weights_desc(), eng);
    dnnl::reorder(w_plain, wei).execute(stream, w_plain, wei);
    stream.wait();
    src = memory(src_md, eng, x);
    bias = memory(bias_md, eng, b);
    dst = memory(dst_md, eng, y);
  }
  void run() {
    prim.execute(stream, {{DNNL_ARG_SRC, src},
                          {DNNL_ARG_WEIGHTS, wei},
                          {DNNL_ARG_BIAS, bias},
                          {DNNL_ARG_DST, dst}});
    stream.wait();
  }
};

void naive_linear(const float* x, const float* w, const float* b, float* y, int64_t M, int64_t N,
                  int64_t K) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      float acc = b[n];
      for (int64_t k = 0; k < K; ++k) acc += x[m * K + k] * w[n * K + k];
      y[m * N + n] = acc;
    }
}

// Seconds on the clock the comparison uses: the thread's CPU time when single-threaded, else
// wall time.
double now_seconds(int threads) {
  if (threads == 1) {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? NAN : v[v.size() / 2];
}

// One iteration = one LinearF32 call and one oneDNN call, back to back.
void bm_linear_pair(benchmark::State& state, LinearShape s, int64_t batch, int threads) {
  qvit::set_num_threads(threads);
  qvit::set_kernel_path(KernelPath::avx2);
  const int64_t M = s.tokens * batch, K = s.K, N = s.N;
  Tensor w = random_tensor({N, K}, 1), b = random_tensor({N}, 2);
  auto x = random_vec(static_cast<size_t>(M * K), 3);
  std::vector<float> y(static_cast<size_t>(M * N)), y_ref(y.size());
  qvit::LinearF32 lin(w, b);
  OnednnMatmul mm(M, K, N, w.f32(), b.f32(), x.data(), y_ref.data());
  lin.forward(x.data(), y.data(), M);  // warm-up: creates the primitives for this M
  mm.run();
  std::vector<double> t_qvit, t_onednn, ratio;
  t_qvit.reserve(state.max_iterations);
  t_onednn.reserve(state.max_iterations);
  ratio.reserve(state.max_iterations);
  bool qvit_first = true;
  for (auto _ : state) {
    double tq, to;
    if (qvit_first) {
      const double t0 = now_seconds(threads);
      lin.forward(x.data(), y.data(), M);
      const double t1 = now_seconds(threads);
      mm.run();
      tq = t1 - t0, to = now_seconds(threads) - t1;
    } else {
      const double t0 = now_seconds(threads);
      mm.run();
      const double t1 = now_seconds(threads);
      lin.forward(x.data(), y.data(), M);
      to = t1 - t0, tq = now_seconds(threads) - t1;
    }
    qvit_first = !qvit_first;
    t_qvit.push_back(tq);
    t_onednn.push_back(to);
    ratio.push_back(to / tq);
  }
  benchmark::DoNotOptimize(y.data());
  const double gflop = 2e-9 * double(M) * double(N) * double(K);
  state.counters["qvit_GFLOPs"] = gflop / median(t_qvit);
  state.counters["onednn_GFLOPs"] = gflop / median(t_onednn);
  state.counters["ratio"] = median(ratio);
}

void bm_linear(benchmark::State& state, LinearShape s, int64_t batch, int threads,
               LinearImpl impl) {
  qvit::set_num_threads(threads);
  const int64_t M = s.tokens * batch, K = s.K, N = s.N;
  Tensor w = random_tensor({N, K}, 1), b = random_tensor({N}, 2);
  auto x = random_vec(static_cast<size_t>(M * K), 3);
  std::vector<float> y(static_cast<size_t>(M * N));
  if (impl == LinearImpl::sgemm) {
    for (auto _ : state) {
      dnnl_sgemm('N', 'T', M, N, K, 1.0f, x.data(), K, w.f32(), K, 0.0f, y.data(), N);
    }
  } else {
    for (auto _ : state) naive_linear(x.data(), w.f32(), b.f32(), y.data(), M, N, K);
  }
  benchmark::DoNotOptimize(y.data());
  state.counters["GFLOP/s"] = benchmark::Counter(2e-9 * double(M) * double(N) * double(K),
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

// ---- element-wise kernels and attention --------------------------------------------------------

void bm_gelu(benchmark::State& state, int64_t n, const char* variant) {
  qvit::set_num_threads(1);
  auto x = random_vec(static_cast<size_t>(n), 4, -5.0f, 5.0f);
  std::vector<float> y(x.size());
  const std::string v = variant;
  if (v != "erff_loop") qvit::set_kernel_path(v == "ref" ? KernelPath::ref : KernelPath::avx2);
  for (auto _ : state) {
    if (v == "erff_loop") {
      for (int64_t i = 0; i < n; ++i) y[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678f));
    } else {
      qvit::gelu_f32(x.data(), y.data(), n);
    }
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["Melem/s"] =
      benchmark::Counter(1e-6 * double(n), benchmark::Counter::kIsIterationInvariantRate);
  qvit::set_kernel_path(KernelPath::avx2);
}

void bm_layernorm(benchmark::State& state, int64_t rows, int64_t C, KernelPath path) {
  qvit::set_num_threads(1);
  qvit::set_kernel_path(path);
  auto x = random_vec(static_cast<size_t>(rows * C), 5, -3.0f, 3.0f);
  auto g = random_vec(static_cast<size_t>(C), 6), b = random_vec(static_cast<size_t>(C), 7);
  std::vector<float> y(x.size());
  for (auto _ : state) {
    qvit::layernorm_f32(x.data(), g.data(), b.data(), y.data(), rows, C, 1e-6f);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["Melem/s"] =
      benchmark::Counter(1e-6 * double(rows * C), benchmark::Counter::kIsIterationInvariantRate);
  qvit::set_kernel_path(KernelPath::avx2);
}

void bm_softmax(benchmark::State& state, int64_t rows, int64_t cols, KernelPath path) {
  qvit::set_num_threads(1);
  qvit::set_kernel_path(path);
  const auto x0 = random_vec(static_cast<size_t>(rows * cols), 8, -8.0f, 8.0f);
  auto x = x0;
  for (auto _ : state) {
    // Softmax is in place; re-running on its own output is fine for timing (values in [0,1]).
    qvit::softmax_f32(x.data(), rows, cols);
    benchmark::DoNotOptimize(x.data());
  }
  state.counters["Melem/s"] = benchmark::Counter(1e-6 * double(rows * cols),
                                                 benchmark::Counter::kIsIterationInvariantRate);
  qvit::set_kernel_path(KernelPath::avx2);
}

void bm_attention(benchmark::State& state, int64_t B, int64_t N, int64_t heads, int64_t head_dim,
                  bool swin, int threads, KernelPath path) {
  qvit::set_num_threads(threads);
  qvit::set_kernel_path(path);
  const int64_t C = heads * head_dim;
  auto qkv = random_vec(static_cast<size_t>(B * N * 3 * C), 9, -2.0f, 2.0f);
  std::vector<float> out(static_cast<size_t>(B * N * C));
  std::vector<float> bias, mask;
  if (swin) {
    bias = random_vec(static_cast<size_t>(heads * N * N), 10);
    mask.assign(static_cast<size_t>(4 * N * N), 0.0f);
  }
  const float scale = 1.0f / std::sqrt(float(head_dim));
  for (auto _ : state) {
    qvit::attention_f32(qkv.data(), out.data(), B, N, heads, head_dim, scale,
                        swin ? bias.data() : nullptr, swin ? mask.data() : nullptr, swin ? 4 : 0);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(4e-9 * double(B * heads) * N * N * head_dim,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  qvit::set_kernel_path(KernelPath::avx2);
}

// Attention-sized single-threaded GEMMs: the AVX2 tile kernel vs dnnl_sgemm (1 thread).
void bm_gemm(benchmark::State& state, int64_t M, int64_t N, int64_t K, bool trans_b, bool own) {
  qvit::set_num_threads(1);
  auto A = random_vec(static_cast<size_t>(M * K), 11), B = random_vec(static_cast<size_t>(N * K), 12);
  std::vector<float> C(static_cast<size_t>(M * N));
  const int64_t ldb = trans_b ? K : N;
  for (auto _ : state) {
    if (own) {
      qvit::kernels_detail::gemm_f32_avx2(false, trans_b, M, N, K, 1.0f, A.data(), K, B.data(),
                                          ldb, 0.0f, C.data(), N);
    } else {
      dnnl_sgemm('N', trans_b ? 'T' : 'N', M, N, K, 1.0f, A.data(), K, B.data(), ldb, 0.0f,
                 C.data(), N);
    }
    benchmark::DoNotOptimize(C.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2e-9 * double(M * N * K),
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

// ---- registration and the summary table ------------------------------------------------------

struct LinearKey {
  std::string layer;
  int64_t batch;
  int threads;
  bool operator<(const LinearKey& o) const {
    return std::tie(threads, batch, layer) < std::tie(o.threads, o.batch, o.layer);
  }
};
std::map<std::string, LinearKey> g_linear_names;                  // benchmark name -> key
std::map<LinearKey, std::map<std::string, double>> g_linear_gflops;  // key -> impl -> GFLOP/s

class TableReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      // Keep medians when repeating, plain runs otherwise.
      if (r.repetitions > 1 && r.aggregate_name != "median") continue;
      const std::string name = r.run_name.function_name;
      auto it = g_linear_names.find(name);
      if (it == g_linear_names.end()) continue;
      auto& dst = g_linear_gflops[it->second];
      if (r.counters.count("ratio")) {
        dst["qvit"] = r.counters.at("qvit_GFLOPs");
        dst["onednn"] = r.counters.at("onednn_GFLOPs");
        dst["ratio"] = r.counters.at("ratio");
      } else if (r.counters.count("GFLOP/s")) {
        dst[name.substr(name.rfind('/') + 1)] = r.counters.at("GFLOP/s");
      }
    }
  }
  void Finalize() override {
    if (g_linear_gflops.empty()) return;
    std::printf(
        "\nLinearF32 vs oneDNN's best call (GFLOP/s, medians; ratio = median of paired "
        "qvit/onednn throughput ratios)\n");
    std::printf("%-18s %6s %11s %3s %8s %8s %6s %8s %8s\n", "layer", "M", "K->N", "thr", "qvit",
                "onednn", "ratio", "sgemm", "naive");
    for (const auto& [key, by_impl] : g_linear_gflops) {
      auto get = [&](const char* k) {
        auto it = by_impl.find(k);
        return it == by_impl.end() ? NAN : it->second;
      };
      const LinearShape* s = nullptr;
      for (const auto& ls : kLinearShapes)
        if (key.layer == ls.layer) s = &ls;
      char kn[32];
      std::snprintf(kn, sizeof kn, "%lld->%lld", (long long)s->K, (long long)s->N);
      std::printf("%-18s %6lld %11s %3d %8.1f %8.1f %6.2f %8.1f %8.1f\n", key.layer.c_str(),
                  (long long)(s->tokens * key.batch), kn, key.threads, get("qvit"), get("onednn"),
                  get("ratio"), get("sgemm"), get("naive"));
    }
  }
};

void register_all() {
  const bool full = std::getenv("QVIT_BENCH_FULL") != nullptr;
  for (const LinearShape& s : kLinearShapes) {
    for (const int64_t batch : {1, 32}) {
      const double flops = 2.0 * s.tokens * batch * s.K * s.N;
      if (!full && flops > 20e9) continue;  // ViT-Large batch 32: only with QVIT_BENCH_FULL
      for (const int threads : {1, 2}) {
        const std::string base = std::string("linear/") + s.layer + "/b" + std::to_string(batch) +
                                 "/t" + std::to_string(threads) + "/";
        // About 0.3 s of LinearF32 per repetition at ~100 GFLOP/s.
        const int64_t iters = std::clamp<int64_t>(int64_t(3e10 / flops), 10, 5000);
        g_linear_names[base + "pair"] = {s.layer, batch, threads};
        benchmark::RegisterBenchmark((base + "pair").c_str(), bm_linear_pair, s, batch, threads)
            ->Iterations(iters)
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
        for (const LinearImpl impl : {LinearImpl::sgemm, LinearImpl::naive}) {
          if (impl == LinearImpl::naive && (batch != 1 || threads != 1 || flops > 2e8)) continue;
          const std::string name = base + impl_name(impl);
          g_linear_names[name] = {s.layer, batch, threads};
          auto* b = benchmark::RegisterBenchmark(name.c_str(), bm_linear, s, batch, threads, impl);
          b->Unit(benchmark::kMicrosecond);
          if (threads > 1) b->UseRealTime();
        }
      }
    }
  }
  // DeiT-Tiny per image: 197 x 768 GELUs per block.
  for (const char* v : {"avx2", "ref", "erff_loop"}) {
    benchmark::RegisterBenchmark((std::string("gelu/197x768/") + v).c_str(), bm_gelu, 197 * 768, v);
  }
  for (const auto& [rows, C] : {std::pair<int64_t, int64_t>{197, 192}, {197, 768}, {3136, 96}}) {
    for (const KernelPath p : {KernelPath::avx2, KernelPath::ref}) {
      const std::string tag = std::to_string(rows) + "x" + std::to_string(C) + "/" +
                              qvit::kernel_path_name(p);
      benchmark::RegisterBenchmark(("layernorm/" + tag).c_str(), bm_layernorm, rows, C, p);
    }
  }
  for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{3 * 197, 197}, {64 * 3 * 49, 49}}) {
    for (const KernelPath p : {KernelPath::avx2, KernelPath::ref}) {
      const std::string tag = std::to_string(rows) + "x" + std::to_string(cols) + "/" +
                              qvit::kernel_path_name(p);
      benchmark::RegisterBenchmark(("softmax/" + tag).c_str(), bm_softmax, rows, cols, p);
    }
  }
  struct GemmShape {
    const char* name;
    int64_t M, N, K;
    bool trans_b;
  };
  for (const GemmShape& g : {GemmShape{"qk_vit_66x197x64", 66, 197, 64, true},
                             GemmShape{"pv_vit_66x64x197", 66, 64, 197, false},
                             GemmShape{"qk_swin_49x49x32", 49, 49, 32, true},
                             GemmShape{"pv_swin_49x32x49", 49, 32, 49, false},
                             GemmShape{"square_256", 256, 256, 256, false},
                             GemmShape{"square_512", 512, 512, 512, false}}) {
    for (const bool own : {true, false}) {
      benchmark::RegisterBenchmark(
          (std::string("gemm/") + g.name + (own ? "/avx2_tiles" : "/sgemm")).c_str(), bm_gemm,
          g.M, g.N, g.K, g.trans_b, own);
    }
  }
  struct Att {
    const char* name;
    int64_t B, N, heads, head_dim;
    bool swin;
  };
  for (const Att& a : {Att{"deit_tiny_b1", 1, 197, 3, 64, false},
                       Att{"deit_small_b8", 8, 197, 6, 64, false},
                       Att{"swin_t_s1_b1", 64, 49, 3, 32, true}}) {
    for (const int threads : {1, 2}) {
      for (const KernelPath p : {KernelPath::avx2, KernelPath::ref}) {
        if (p == KernelPath::ref && threads != 1) continue;
        const std::string name = std::string("attention/") + a.name + "/t" +
                                 std::to_string(threads) + "/" + qvit::kernel_path_name(p);
        auto* b = benchmark::RegisterBenchmark(name.c_str(), bm_attention, a.B, a.N, a.heads,
                                               a.head_dim, a.swin, threads, p);
        b->Unit(benchmark::kMicrosecond);
        if (threads > 1) b->UseRealTime();
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  TableReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
