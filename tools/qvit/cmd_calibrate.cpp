// qvit calibrate: FQ-ViT calibration, writing every quantization point's parameters to JSON.
#include <chrono>
#include <cstdio>
#include <map>

#include "commands.h"
#include "quant_options.h"
#include "qvit/error.h"
#include "qvit/io.h"
#include "qvit/parallel.h"

namespace qvit::cli {

namespace {
struct CalibrateArgs {
  std::string model, weights, out, json;
  int threads = 0, workers = 2;
  QuantArgs q;
};

int run_calibrate(const CalibrateArgs& a) {
  set_num_threads(a.threads);
  if (a.q.calib_data.empty()) fail("cli", "calibrate needs --calib-data");
  const QuantConfig qc = a.q.config();  // validate flags before loading anything
  auto model = load_model(a.model, a.weights);
  const ModelConfig& cfg = model->config();
  Dataset calib = open_dataset(a.q.calib_data, a.q.calib_labels, cfg.num_classes);
  std::fprintf(stderr, "qvit calibrate: %s, %s, %d x %d images from %s, %d threads\n",
               cfg.name.c_str(), qc.label().c_str(), a.q.calib_iter, a.q.calib_batch,
               a.q.calib_data.c_str(), num_threads());
  const auto t0 = std::chrono::steady_clock::now();
  auto session = calibrate_from_args(*model, a.q, cfg.preprocess(), a.workers, calib, nullptr);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  session->save(a.out);
  if (!a.json.empty()) {
    std::map<std::string, int> roles;
    const nlohmann::json params = session->to_json();
    for (const auto& p : params.at("points")) roles[p.value("role", "?")]++;
    const nlohmann::json j = {{"model", cfg.name}, {"config", qc.to_json()},
                              {"label", qc.label()}, {"calib_images", a.q.calib_iter * a.q.calib_batch},
                              {"seed", a.q.seed}, {"points", session->size()}, {"points_by_role", roles},
                              {"seconds", s}, {"threads", num_threads()}, {"output", a.out}};
    write_file_atomic(a.json, j.dump(1) + "\n");
  }
  std::printf("calibrated %zu quantization points of %s (%s) in %.1f s; wrote %s\n",
              session->size(), cfg.name.c_str(), qc.label().c_str(), s, a.out.c_str());
  return 0;
}
}  // namespace

Command add_calibrate_command(CLI::App& app) {
  auto args = std::make_shared<CalibrateArgs>();
  CLI::App* sub = app.add_subcommand("calibrate", "Calibrate quantization parameters (FQ-ViT)");
  sub->add_option("--model", args->model, "Model name")->required();
  sub->add_option("--weights", args->weights, "Weights file or random:SEED")->required();
  sub->add_option("-o,--output", args->out, "Parameter file to write (JSON)")->required();
  sub->add_option("--json", args->json, "Also write a summary (points, roles, time) as JSON");
  sub->add_option("--threads", args->threads, "Compute threads (0 = all cores)")
      ->capture_default_str()->check(CLI::Range(0, 1024));
  sub->add_option("--workers", args->workers, "Image decoding threads")
      ->capture_default_str()->check(CLI::Range(1, 8));
  args->q.add_to(sub, /*with_switch=*/false);
  return {sub, [args] { return run_calibrate(*args); }};
}

}  // namespace qvit::cli
