// qvit report: an HTML page with the quantization error of a model (per point, per block), FQ-ViT's
// distribution figures (LayerNorm input ranges, post-softmax histogram with quantization levels)
// and accuracy tables from `qvit fqvit-table -o` JSON files. Computations: src/report/.
#include <cstdio>
#include <fstream>

#include "commands.h"
#include "progress.h"
#include "quant_options.h"
#include "qvit/error.h"
#include "qvit/io.h"
#include "qvit/parallel.h"
#include "qvit/report.h"

namespace qvit::cli {

namespace {
struct ReportArgs {
  std::string model, weights, data, labels, out, json;
  std::vector<std::string> tables;
  int threads = 0, workers = 2, probe_images = 20, eval_images = 20, batch = 10;
  QuantArgs q;
};

// `n` indices spread evenly over `from` (all of them when n >= size).
std::vector<size_t> spread(const std::vector<size_t>& from, size_t n) {
  if (n >= from.size()) return from;
  std::vector<size_t> v;
  for (size_t i = 0; i < n; ++i) v.push_back(from[i * from.size() / n]);
  return v;
}

int run_report(const ReportArgs& a) {
  set_num_threads(a.threads);
  if (a.q.calib_data.empty()) fail("cli", "report needs --calib-data (the FP probe images)");
  std::vector<nlohmann::json> tables;  // read first: a bad table fails before any work
  for (const std::string& t : a.tables) {
    nlohmann::json j;
    std::ifstream in(t, std::ios::binary);
    if (!in) fail("cli", "{}: cannot open the table file", t);
    try {
      j = nlohmann::json::parse(in);
      if (!j.at("rows").is_array()) fail("cli", "{}: 'rows' is not an array", t);
    } catch (const nlohmann::json::exception& e) {
      fail("cli", "{}: not an fqvit-table JSON file: {}", t, e.what());
    }
    tables.push_back(std::move(j));
  }
  auto model = load_model(a.model, a.weights);
  const ModelConfig& cfg = model->config();
  const PreprocessConfig pre = cfg.preprocess();
  Dataset calib = open_dataset(a.q.calib_data, a.q.calib_labels, cfg.num_classes);
  const std::string eval_dir = a.data.empty() ? a.q.calib_data : a.data;
  const std::string eval_labels = a.data.empty() ? a.q.calib_labels : a.labels;
  const bool same = eval_dir == a.q.calib_data && eval_labels == a.q.calib_labels;
  Dataset eval = same ? calib : open_dataset(eval_dir, eval_labels, cfg.num_classes);

  std::unique_ptr<QuantSession> session;
  std::vector<size_t> used;
  if (!a.q.qparams.empty()) {
    session = std::make_unique<QuantSession>(QuantSession::load(a.q.qparams, cfg.name));
  } else {
    session = calibrate_from_args(*model, a.q, pre, a.workers, calib, &used);
    model->set_quant(nullptr);
  }
  std::vector<size_t> all_calib;
  if (used.empty())
    for (size_t i = 0; i < calib.samples.size(); ++i) all_calib.push_back(i);
  const std::vector<size_t> probe = spread(used.empty() ? all_calib : used, a.probe_images);
  std::vector<size_t> eval_pool;
  if (same && !used.empty()) {
    eval_pool = complement_indices(eval, used);  // images calibration did not see
  } else {
    for (size_t i = 0; i < eval.samples.size(); ++i) eval_pool.push_back(i);
  }
  const std::vector<size_t> eval_order = spread(eval_pool, a.eval_images);
  if (probe.empty() || eval_order.empty()) fail("cli", "report: no probe or evaluation images");
  std::fprintf(stderr, "qvit report: %s, %s; probe %zu images, errors on %zu images\n",
               cfg.name.c_str(), session->config().label().c_str(), probe.size(),
               eval_order.size());

  ReportOptions opt;
  opt.batch = a.batch;
  opt.workers = a.workers;
  Progress progress("report", "img");
  opt.on_progress = [&](size_t d, size_t t) { progress.update(d, t); };
  ReportData d = collect_report(*model, *session, calib, probe, eval, eval_order, pre, opt);
  progress.finish();
  d.weights = a.weights;
  d.tables = std::move(tables);
  write_report(d, a.out);
  if (!a.json.empty()) write_file_atomic(a.json, report_json(d).dump(1) + "\n");
  std::printf("wrote %s/index.html (%zu quantization points, %zu blocks; worst point %s %.2f dB)\n",
              a.out.c_str(), d.points.size(), d.blocks.size(),
              d.points.empty() ? "-" : d.points[0].name.c_str(),
              d.points.empty() ? 0.0 : d.points[0].err.sqnr_db());
  return 0;
}
}  // namespace

Command add_report_command(CLI::App& app) {
  auto args = std::make_shared<ReportArgs>();
  CLI::App* sub = app.add_subcommand(
      "report", "HTML report: quantization error per point and block, FQ-ViT figures, tables");
  sub->add_option("--model", args->model, "Model name")->required();
  sub->add_option("--weights", args->weights, "Weights file or random:SEED")->required();
  sub->add_option("-o,--output", args->out,
                  "Report folder (index.html, report.json with every number, *.svg)")
      ->required();
  sub->add_option("--data", args->data, "Evaluation image folder (default: --calib-data, "
                                        "images not used for calibration)");
  sub->add_option("--json", args->json, "Also write report.json's numbers to this file");
  sub->add_option("--labels", args->labels, "Label file when --data is flat");
  sub->add_option("--qparams", args->q.qparams, "Load calibrated parameters instead of calibrating");
  sub->add_option("--table", args->tables,
                  "Accuracy table JSON from `qvit fqvit-table -o` (repeatable)");
  sub->add_option("--probe-images", args->probe_images,
                  "FP images for LayerNorm ranges and the softmax histogram")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  sub->add_option("--eval-images", args->eval_images, "Images for the error statistics")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  sub->add_option("--batch", args->batch, "Batch size")->capture_default_str()->check(CLI::Range(1, 1024));
  sub->add_option("--threads", args->threads, "Compute threads (0 = all cores)")
      ->capture_default_str()->check(CLI::Range(0, 1024));
  sub->add_option("--workers", args->workers, "Image decoding threads")
      ->capture_default_str()->check(CLI::Range(1, 8));
  args->q.add_to(sub, /*with_switch=*/false);
  return {sub, [args] { return run_report(*args); }};
}

}  // namespace qvit::cli
