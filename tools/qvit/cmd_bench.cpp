// qvit bench: times the model forward pass (no image decoding) and prints median latency and
// throughput. Used by bench/compare_pytorch.py for side-by-side tables. With --qparams (the FQ-ViT
// simulation) or --engine int --pair-float (the integer model), the quantized model is timed
// alternately with the FP32 model in the same process, and the median of the paired per-run
// ratios is printed (the machine is shared: only paired ratios mean much).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#include "commands.h"
#include "qvit/engine.h"
#include "qvit/error.h"
#include "qvit/io.h"
#include "qvit/model.h"
#include "qvit/parallel.h"

namespace qvit::cli {

namespace {

struct BenchArgs {
  std::string model, weights = "random:0", json, qparams, engine = "float", qmodel;
  int batch = 1, threads = 0, iters = 20, warmup = 3;
  bool pair_float = false;
  double min_seconds = 0;
};

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// FP32 vs a quantized model (the simulation or the integer engine), alternating runs on the same
// input. `quant` labels the quantized side.
int run_bench_paired(const BenchArgs& a, Model& fp, Model& q, const std::string& kind, const std::string& quant) {
  const ModelConfig& cfg = fp.config();
  Tensor x = synthetic_input({a.batch, cfg.in_chans, cfg.img_size, cfg.img_size}, 1);
  for (int i = 0; i < a.warmup; ++i) {
    fp.forward(x);
    q.forward(x);
  }
  std::vector<double> fp_ms, q_ms, ratio;
  const auto start = std::chrono::steady_clock::now();
  auto time_one = [&](Model& m) {
    const auto t0 = std::chrono::steady_clock::now();
    m.forward(x);
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  for (int i = 0;; ++i) {
    // Alternate which model runs first, so neither always follows the other's cache footprint.
    if (i % 2 == 0) {
      fp_ms.push_back(time_one(fp));
      q_ms.push_back(time_one(q));
    } else {
      q_ms.push_back(time_one(q));
      fp_ms.push_back(time_one(fp));
    }
    ratio.push_back(fp_ms.back() / q_ms.back());  // quantized images/s over FP32 images/s
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (i + 1 >= a.iters && total >= a.min_seconds) break;
  }
  const double fp_med = median_of(fp_ms), q_med = median_of(q_ms), r = median_of(ratio);
  std::printf("%s batch %d threads %d: fp32 median %.2f ms/batch (%.1f images/s); %s %s "
              "median %.2f ms/batch (%.1f images/s); paired speed ratio %s/fp32 %.3f over %zu pairs\n",
              cfg.name.c_str(), a.batch, num_threads(), fp_med, a.batch * 1000.0 / fp_med, kind.c_str(),
              quant.c_str(), q_med, a.batch * 1000.0 / q_med, kind.c_str(), r, ratio.size());
  if (!a.json.empty()) {
    nlohmann::json j = {{"model", cfg.name},       {"batch", a.batch},
                        {"threads", num_threads()}, {"quant", quant},
                        {"engine", kind},           {"fp32_median_ms", fp_med},
                        {kind + "_median_ms", q_med}, {"paired_ratio", r},
                        {"fp32_runs_ms", fp_ms},    {kind + "_runs_ms", q_ms}};
    write_file_atomic(a.json, j.dump(1) + "\n");
  }
  return 0;
}

// FP32 vs simulated quantization.
int run_bench_sim(const BenchArgs& a) {
  auto fp = load_model(a.model, a.weights);
  auto sim = load_model(a.model, a.weights);
  auto session = std::make_unique<QuantSession>(QuantSession::load(a.qparams, fp->config().name));
  sim->set_quant(session.get());
  return run_bench_paired(a, *fp, *sim, "sim", session->config().label());
}

int run_bench(const BenchArgs& a) {
  set_num_threads(a.threads);
  if (!a.qparams.empty()) return run_bench_sim(a);
  std::unique_ptr<Model> model;
  if (a.engine == "int") {
    if (a.qmodel.empty()) fail("cli", "--engine int needs --qmodel FILE");
    model = load_int_model(a.qmodel);
    if (!a.model.empty() && model_config(a.model).name != model->config().name)
      fail("cli", "--model {} but {} holds {}", a.model, a.qmodel, model->config().name);
    if (a.pair_float) {
      auto fp = load_model(model->config().name, a.weights);
      return run_bench_paired(a, *fp, *model, "int", static_cast<IntModel&>(*model).quant_config().label());
    }
  } else if (a.pair_float) {
    fail("cli", "--pair-float needs --engine int");
  } else if (a.engine == "float") {
    if (a.model.empty()) fail("cli", "--model is required");
    model = load_model(a.model, a.weights);
  } else {
    fail("cli", "--engine must be float or int, got '{}'", a.engine);
  }
  const ModelConfig& cfg = model->config();
  Tensor x = synthetic_input({a.batch, cfg.in_chans, cfg.img_size, cfg.img_size}, 1);
  for (int i = 0; i < a.warmup; ++i) model->forward(x);
  std::vector<double> ms;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0;; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    model->forward(x);
    const auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    const double total = std::chrono::duration<double>(t1 - start).count();
    if (i + 1 >= a.iters && total >= a.min_seconds) break;
  }
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  const double ips = a.batch * 1000.0 / median;
  std::printf("%s batch %d threads %d: median %.2f ms/batch (%.2f ms/image), %.1f images/s, "
              "min %.2f max %.2f over %zu runs\n",
              cfg.name.c_str(), a.batch, num_threads(), median, median / a.batch, ips, sorted.front(),
              sorted.back(), sorted.size());
  if (!a.json.empty()) {
    nlohmann::json j = {{"model", cfg.name},        {"batch", a.batch},
                        {"engine", a.engine},
                        {"threads", num_threads()}, {"median_ms", median},
                        {"images_per_second", ips}, {"runs_ms", ms}};
    write_file_atomic(a.json, j.dump(1) + "\n");
  }
  return 0;
}

}  // namespace

Command add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* sub = app.add_subcommand("bench", "Time the forward pass (median of repeated runs)");
  sub->add_option("--model", args->model, "Model name (optional with --engine int)");
  sub->add_option("--engine", args->engine, "float or int (an integer model, --qmodel)")
      ->capture_default_str();
  sub->add_option("--qmodel", args->qmodel, "With --engine int: the .qvit file (qvit convert)");
  sub->add_option("--weights", args->weights, "Weights file or random:SEED")->capture_default_str();
  sub->add_option("--batch", args->batch, "Batch size")->capture_default_str()->check(CLI::Range(1, 4096));
  sub->add_option("--threads", args->threads, "Compute threads (0 = all cores)")
      ->capture_default_str()->check(CLI::Range(0, 1024));
  sub->add_option("--iters", args->iters, "Timed runs (at least)")->capture_default_str()->check(CLI::Range(1, 100000));
  sub->add_option("--warmup", args->warmup, "Untimed runs first")->capture_default_str()->check(CLI::Range(0, 1000));
  sub->add_option("--min-seconds", args->min_seconds, "Keep running at least this long")
      ->capture_default_str();
  sub->add_option("--json", args->json, "Write the timings to this JSON file");
  sub->add_option("--qparams", args->qparams,
                  "Also time the FQ-ViT simulation with these parameters, alternating with FP32");
  sub->add_flag("--pair-float", args->pair_float,
                 "With --engine int: also time the FP32 model (--weights) alternately and print the "
                 "paired speed ratio");
  return {sub, [args] { return run_bench(*args); }};
}

}  // namespace qvit::cli
