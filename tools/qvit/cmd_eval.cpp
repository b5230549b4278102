// qvit eval: top-1/top-5 of a model on an image dataset.
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "commands.h"
#include "progress.h"
#include "quant_options.h"
#include "qvit/apq.h"
#include "qvit/dataset.h"
#include "qvit/engine.h"
#include "qvit/error.h"
#include "qvit/eval.h"
#include "qvit/io.h"
#include "qvit/model.h"
#include "qvit/parallel.h"

namespace qvit::cli {

std::string default_data_dir() {
  const char* env = std::getenv("QVIT_DATA");
  return env && *env ? env : "../shared/data";
}

namespace {

struct EvalArgs {
  std::string model, weights, data, labels, json, engine = "float", qmodel, apq_params;
  bool allow_missing = false;
  size_t limit = 0;
  int batch = 32, threads = 0, workers = 2;
  float crop_pct = 0;
  std::vector<float> mean, std;
  std::string interpolation;
  QuantArgs q;
  bool holdout = false;
};

void apply_preprocess_overrides(const EvalArgs& a, PreprocessConfig& pre, int img_size) {
  if (a.crop_pct != 0) {
    if (!(a.crop_pct > 0 && a.crop_pct <= 1))
      fail("cli", "--crop-pct must be in (0, 1], got {}", a.crop_pct);
    pre.resize_short = static_cast<int>(img_size / a.crop_pct);
  }
  auto take3 = [](const std::vector<float>& v, const char* flag, std::array<float, 3>& out) {
    if (v.empty()) return;
    if (v.size() != 3) fail("cli", "{} takes 3 values, got {}", flag, v.size());
    for (int i = 0; i < 3; ++i) out[i] = v[i];
  };
  take3(a.mean, "--mean", pre.mean);
  take3(a.std, "--std", pre.std);
  for (float s : pre.std)
    if (!(s > 0)) fail("cli", "--std values must be positive");
  if (a.interpolation == "bilinear") pre.interpolation = Interpolation::bilinear;
  else if (a.interpolation == "bicubic") pre.interpolation = Interpolation::bicubic;
  else if (!a.interpolation.empty())
    fail("cli", "--interpolation must be bicubic or bilinear, got '{}'", a.interpolation);
}

int run_eval(const EvalArgs& a) {
  set_num_threads(a.threads);
  std::unique_ptr<Model> model;
  std::string label = "fp32";
  nlohmann::json quant_json = nullptr;
  if (a.engine == "int") {
    if (a.qmodel.empty()) fail("cli", "--engine int needs --qmodel FILE (from qvit convert)");
    if (!a.q.qparams.empty() || a.q.quant) fail("cli", "--engine int takes its parameters from --qmodel");
    auto im = load_int_model(a.qmodel);
    if (!a.model.empty() && model_config(a.model).name != im->config().name)
      fail("cli", "--model {} but {} holds {}", a.model, a.qmodel, im->config().name);
    label = "int " + im->quant_config().label();
    quant_json = im->quant_config().to_json();
    quant_json["engine"] = "int";
    model = std::move(im);
  } else if (a.engine != "float") {
    fail("cli", "--engine must be float or int, got '{}'", a.engine);
  } else {
    if (a.model.empty() || a.weights.empty()) fail("cli", "--model and --weights are required");
    if (!a.qmodel.empty()) fail("cli", "--qmodel needs --engine int");
    if (!a.apq_params.empty()) {
      if (!a.q.qparams.empty() || a.q.quant) fail("cli", "--apq-params cannot be combined with --quant/--qparams");
      const ModelConfig& mc = model_config(a.model);
      const apq::ApqParams p = apq::ApqParams::load(a.apq_params);
      p.check(mc, a.apq_params);
      model = apq::create_model(mc, load_checked_weights(mc, a.weights).tensors, p);
      label = p.config.label();
      quant_json = p.config.to_json();
    } else {
      model = load_model(a.model, a.weights);
    }
  }
  const ModelConfig& cfg = model->config();
  const std::string weights = a.engine == "int" ? a.qmodel : a.weights;
  PreprocessConfig pre = cfg.preprocess();
  apply_preprocess_overrides(a, pre, cfg.img_size);
  Dataset ds = open_dataset(a.data, a.labels, cfg.num_classes, a.allow_missing);

  std::vector<size_t> order(ds.samples.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;

  // Quantization: parameters from a file, or calibrated now.
  std::unique_ptr<QuantSession> session;
  if (!a.q.qparams.empty()) {
    session = std::make_unique<QuantSession>(QuantSession::load(a.q.qparams, cfg.name));
    model->set_quant(session.get());
    label = session->config().label();
  } else if (a.q.quant) {
    if (a.q.calib_data.empty()) fail("cli", "--quant needs --calib-data (or --qparams FILE)");
    std::vector<size_t> used;
    const bool same = a.q.calib_data == a.data && a.q.calib_labels == a.labels;
    Dataset calib_ds = same ? ds : open_dataset(a.q.calib_data, a.q.calib_labels, cfg.num_classes);
    session = calibrate_from_args(*model, a.q, pre, a.workers, calib_ds, &used);
    label = session->config().label();
    if (a.holdout) {
      if (!same) fail("cli", "--holdout needs --calib-data to be the same folder as --data");
      order = complement_indices(ds, used);
      if (order.empty()) fail("cli", "--holdout: every image of {} was used for calibration", a.data);
    }
  } else if (a.holdout) {
    fail("cli", "--holdout only makes sense with --quant");
  }
  if (a.limit > 0 && a.limit < order.size()) order.resize(a.limit);

  std::fprintf(stderr, "qvit eval: %s (%s), %zu images from %s, batch %d, %d threads\n",
               cfg.name.c_str(), weights.c_str(), order.size(), a.data.c_str(), a.batch,
               num_threads());
  Progress progress("eval", "img");
  EvalOptions opt;
  opt.batch = a.batch;
  opt.workers = a.workers;
  opt.on_progress = [&](size_t done, size_t total) { progress.update(done, total); };
  EvalResult r = evaluate(*model, ds, order, pre, opt);
  progress.finish();

  std::printf("| model | weights | quantization | images | top-1 (%%) | top-5 (%%) | images/s |\n");
  std::printf("|---|---|---|---:|---:|---:|---:|\n");
  std::printf("| %s | %s | %s | %zu | %.2f | %.2f | %.1f |\n", cfg.name.c_str(),
              weights.c_str(), label.c_str(), r.images, r.top1_pct(), r.top5_pct(),
              r.images_per_second());
  if (r.labelled < r.images)
    std::printf("(%zu of %zu images have labels; accuracy is over those)\n", r.labelled, r.images);

  if (!a.json.empty()) {
    nlohmann::json j = eval_json(r, ds);
    j["model"] = cfg.name;
    j["weights"] = weights;
    j["data"] = a.data;
    j["batch"] = a.batch;
    j["threads"] = num_threads();
    j["quantization"] = session ? session->config().to_json() : quant_json;
    write_file_atomic(a.json, j.dump(1) + "\n");
    std::fprintf(stderr, "wrote %s\n", a.json.c_str());
  }
  return 0;
}

}  // namespace

Command add_eval_command(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* sub = app.add_subcommand("eval", "Evaluate top-1/top-5 accuracy on an image dataset");
  sub->add_option("--model", args->model,
                  "Model name (e.g. deit_tiny, vit_base, swin_tiny); required unless --engine int");
  sub->add_option("--weights", args->weights,
                  "Weights: .safetensors or .pth (timm names), or random:SEED; required unless "
                  "--engine int");
  sub->add_option("--engine", args->engine, "float (FP32 or the simulation) or int (a .qvit file)")
      ->capture_default_str();
  sub->add_option("--apq-params", args->apq_params,
                  "Evaluate the PTQ4ViT/APQ-ViT simulation with these parameters (qvit apq-calibrate)");
  sub->add_option("--qmodel", args->qmodel, "With --engine int: the converted model (qvit convert)");
  sub->add_option("--data", args->data,
                  "Image folder: ROOT/<class>/<image> (ImageFolder), or flat with --labels")
      ->required();
  sub->add_option("--labels", args->labels, "Label file of 'FILE LABEL' lines for a flat folder");
  sub->add_flag("--allow-missing", args->allow_missing,
                "With --labels: evaluate the images present even if the list names more");
  sub->add_option("--limit", args->limit, "Evaluate only the first N images (0 = all)");
  sub->add_option("--batch", args->batch, "Batch size")->capture_default_str()->check(CLI::Range(1, 4096));
  sub->add_option("--threads", args->threads, "Compute threads (0 = all cores)")
      ->capture_default_str()->check(CLI::Range(0, 1024));
  sub->add_option("--workers", args->workers, "Image decoding threads")
      ->capture_default_str()->check(CLI::Range(1, 8));
  sub->add_option("--json", args->json, "Write totals and per-image top-5 to this JSON file");
  sub->add_option("--crop-pct", args->crop_pct,
                  "Resize the short side to floor(224 / crop_pct) (default: the model's)");
  sub->add_option("--mean", args->mean, "Normalisation mean, 3 values (default: the model's)")
      ->delimiter(',');
  sub->add_option("--std", args->std, "Normalisation std, 3 values (default: the model's)")
      ->delimiter(',');
  sub->add_option("--interpolation", args->interpolation, "bicubic (default) or bilinear");
  args->q.add_to(sub, /*with_switch=*/true);
  sub->add_option("--qparams", args->q.qparams,
                  "Evaluate with these quantization parameters (from qvit calibrate)");
  sub->add_flag("--holdout", args->holdout,
                "With --quant and --calib-data = --data: evaluate on the images not used for "
                "calibration");
  return {sub, [args] { return run_eval(*args); }};
}

}  // namespace qvit::cli
