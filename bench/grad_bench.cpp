// Time of output_gradients (FP32 forward keeping activations + backward to every block/layer
// output) for DeiT-Tiny/Small on synthetic weights, next to the plain FP32 forward of the same
// batch in the same run. APQ-ViT/PTQ4ViT calibration computes it once for 32 images.
//   grad_bench --benchmark_filter=deit_tiny
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "qvit/grad.h"
#include "qvit/model.h"
#include "qvit/parallel.h"

namespace {

std::vector<std::string> all_outputs(const qvit::ModelConfig& c) {
  std::vector<std::string> n = {"head"};
  for (int i = 0; i < c.depth; ++i) {
    const std::string b = "blocks." + std::to_string(i);
    for (const char* s : {"", ".attn.qkv", ".attn.matmul1", ".attn.matmul2", ".attn.proj", ".mlp.fc1", ".mlp.fc2"}) n.push_back(b + s);
  }
  return n;
}

void BM_grad(benchmark::State& state, const char* model, bool backward) {
  qvit::set_num_threads(static_cast<int>(state.range(1)));
  const qvit::ModelConfig& c = qvit::model_config(model);
  const int64_t B = state.range(0);
  const qvit::WeightFile wf = qvit::synthetic_weights(c, 0);
  const qvit::Tensor x = qvit::synthetic_input({B, 3, c.img_size, c.img_size}, 1);
  std::unique_ptr<qvit::Model> m = backward ? nullptr : qvit::create_model(c, wf);
  const auto names = all_outputs(c);
  for (auto _ : state) {
    if (backward) benchmark::DoNotOptimize(qvit::output_gradients(c, wf.tensors, x, names));
    else benchmark::DoNotOptimize(m->forward(x));
  }
}
BENCHMARK_CAPTURE(BM_grad, deit_tiny_fwd_bwd, "deit_tiny", true)->Args({32, 2})->Unit(benchmark::kSecond)->Iterations(2);
BENCHMARK_CAPTURE(BM_grad, deit_tiny_fwd_only, "deit_tiny", false)->Args({32, 2})->Unit(benchmark::kSecond)->Iterations(2);

}  // namespace

BENCHMARK_MAIN();
