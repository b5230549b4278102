#include "quant_options.h"

#include "progress.h"
#include "qvit/error.h"

namespace qvit::cli {

void QuantArgs::add_to(CLI::App* app, bool with_switch) {
  if (with_switch) app->add_flag("--quant", quant, "Quantize (simulation, FQ-ViT)");
  app->add_flag("--ptf", ptf, "Power-of-Two Factor quantizers on LayerNorm inputs (FQ-ViT)");
  app->add_flag("--lis", lis, "Log-Int-Softmax: 4-bit log2 attention probabilities (FQ-ViT)");
  app->add_option("--quant-method", method, "Activation observer: minmax|ema|percentile|omse")
      ->capture_default_str();
  app->add_option("--w-bits", w_bits, "Weight bit type (symmetric per channel)")
      ->capture_default_str();
  app->add_option("--a-bits", a_bits, "Activation bit type (asymmetric per tensor)")
      ->capture_default_str();
  app->add_option("--attn-bits", attn_bits, "Softmax output bits (default 8; 4 with --lis)");
  app->add_option("--calib-data", calib_data, "Calibration image folder (ImageFolder)");
  app->add_option("--calib-labels", calib_labels, "Label file when --calib-data is flat");
  app->add_option("--calib-batch", calib_batch, "Calibration batch size")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  app->add_option("--calib-iter", calib_iter, "Calibration batches")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  app->add_option("--seed", seed, "Seed for drawing the calibration images")->capture_default_str();
  app->add_option("--input-quant", input_quant,
                  "Quantize the input image: 1/0 (default: the model's, FQ-ViT: DeiT/Swin 1, ViT 0)");
}

QuantConfig QuantArgs::config() const {
  QuantConfig c;
  c.weight_bits = parse_bit_type(w_bits);
  c.act_bits = parse_bit_type(a_bits);
  if (!c.weight_bits.is_signed)
    fail("cli", "--w-bits must be a signed type (symmetric weights), got '{}'", w_bits);
  if (c.act_bits.is_signed)
    fail("cli", "--a-bits must be an unsigned type (asymmetric activations), got '{}'", a_bits);
  c.ptf = ptf;
  c.lis = lis;
  c.attn_bits = attn_bits != 0 ? attn_bits : (lis ? 4 : 8);
  c.observer = parse_observer_kind(method);
  if (c.observer == ObserverKind::ptf)
    fail("cli", "--quant-method ptf is not an activation observer; use --ptf");
  c.quant_input = input_quant;
  return c;
}

std::unique_ptr<QuantSession> calibrate_from_args(Model& model, const QuantArgs& q,
                                                  const PreprocessConfig& pre, int workers,
                                                  const Dataset& calib_set,
                                                  std::vector<size_t>* calib_indices) {
  auto session = std::make_unique<QuantSession>(model.config().name, q.config());
  CalibOptions opt;
  opt.batch = q.calib_batch;
  opt.iters = q.calib_iter;
  opt.seed = q.seed;
  opt.workers = workers;
  std::vector<size_t> idx = calibration_indices(calib_set, opt);
  Progress progress("calibrate", "img");
  opt.on_progress = [&](size_t done, size_t total) { progress.update(done, total); };
  calibrate(model, *session, calib_set, idx, pre, opt);
  progress.finish();
  if (calib_indices) *calib_indices = std::move(idx);
  return session;
}

}  // namespace qvit::cli
