// Conversion of a float ViT/DeiT + FQ-ViT parameters (QuantSession) to the integer model file.
// Tensors written (per Linear X with input quantizer s_a and output quantizer s_out):
//   X.weight       int8 [N, K]   round(w / s_w[n]) clamped (FQ-ViT's symmetric per-row weights;
//                                 packed int4 when the weight bits are <= 4)
//   X.weight_scale f32 [N]       s_w
//   X.bias         f32 [N]       b, the float bias (version 2; version 1 stored it as int32 at
//                                 2^-8 of the accumulator step, which moved ~1 in 10^5 codes)
//   X.mult, X.shift int32 [N]    dyadic s_a s_w[n] / s_out (uint8 outputs; the loader folds
//                                 b / s_out into the rounding constant)
//   (the two float outputs, fc1 before GELU and the head, use s_a s_w[n] in double, computed on
//   load from the input quantizer and X.weight_scale)
//   cls_token.q uint8 [D], pos_embed.q uint8 [N, D]: the constant tokens on their quantizers;
//   LayerNorm weight/bias f32 (FQ-ViT does not quantize them).
// Metadata: format, version, model name and config, the quantization config and the full
// parameter set (the activation quantizers are read from it when loading).
#include <cmath>
#include <cstdlib>

#include "engine/engine_ops.h"
#include "qvit/engine.h"
#include "qvit/error.h"
#include "quant/observer_impl.h"

namespace qvit {

namespace {

using engine::mult_from_real;

struct Converter {
  const ModelConfig& cfg;
  const WeightFile& wf;
  const QuantSession& qs;
  const std::string& label;
  QvitWriter out;

  const Tensor& weight(const std::string& n) const {
    auto it = wf.tensors.find(n);
    if (it == wf.tensors.end()) fail("engine", "weights have no tensor '{}'", n);
    return it->second;
  }

  const QuantParams& act(const std::string& n, QuantKind kind, int64_t C = 1) const {
    if (!qs.has(n)) fail("engine", "{}: no parameters for point '{}' (qparams of another model or configuration?)", label, n);
    const QuantParams& p = qs.params(n);
    if (p.kind != kind)
      fail("engine", "{}: point '{}' is not {}-quantized", label, n, kind == QuantKind::ptf ? "PTF" : "uniformly");
    if (p.bits.is_signed || p.bits.bits > 8)
      fail("engine", "{}: point '{}' uses {}; the integer engine runs uint2..uint8 activations",
           label, n, p.bits.name());
    if (p.zero_point.size() != 1 || (p.scale.size() != 1 && static_cast<int64_t>(p.scale.size()) != C))
      fail("engine", "{}: point '{}' has {} scales, expected 1{}", label, n, p.scale.size(),
           C > 1 ? " or " + std::to_string(C) : "");
    return p;
  }

  // A Linear: `in` is the input point (per-tensor scale), `out` the output point or "" (float).
  void linear(const std::string& name, const Tensor& w_in, const std::string& in, const std::string& out_pt) {
    const Tensor w = w_in.reshaped({w_in.dim(0), w_in.numel() / w_in.dim(0)});
    const Tensor& bias = weight(name + ".bias");
    const int64_t N = w.dim(0), K = w.dim(1);
    const BitType bits = qs.config().weight_bits;
    const QuantParams own = weight_params_per_channel(w.f32(), N, K, bits);
    const std::string wn = name + ".weight";
    if (qs.has(wn)) {
      const QuantParams& p = qs.params(wn);
      if (p.scale.size() != static_cast<size_t>(N))
        fail("engine", "{}: weight '{}' has {} channel scales, the weights {} rows (qparams of another model?)",
             label, wn, p.scale.size(), N);
      for (int64_t n = 0; n < N; ++n)
        if (p.scale[n] != own.scale[n] || p.zero_point[n] != own.zero_point[n])
          fail("engine", "{}: weight '{}' channel {}: scale {} in the qparams, {} from the weights "
               "(the parameters were calibrated with other weights)", label, wn, n, p.scale[n], own.scale[n]);
    }
    if (!bits.is_signed || bits.bits > 8)
      fail("engine", "{}: weights use {}; the integer engine needs int2..int8", label, bits.name());
    const float sa = act(in, QuantKind::uniform).scale[0];
    Tensor q({N, K}, DType::i8), ws({N}, DType::f32);
    weight_codes(w.f32(), N, K, own, q.data<int8_t>(), wn);
    for (int64_t n = 0; n < N; ++n) {
      ws.f32()[n] = own.scale[n];
      if (!std::isfinite(bias.f32()[n]))
        fail("engine", "{}: bias of '{}' channel {} is not finite", label, name, n);
    }
    out.add(wn, q, bits.bits <= 4 ? 4 : 0);
    out.add(name + ".weight_scale", ws);
    out.add(name + ".bias", bias.reshaped({N}).clone());
    if (!out_pt.empty()) {
      const float so = act(out_pt, QuantKind::uniform).scale[0];
      Tensor m({N}, DType::i32), sh({N}, DType::i32);
      for (int64_t n = 0; n < N; ++n) {
        const engine::Mult d = mult_from_real(double(sa) * ws.f32()[n] / double(so));
        m.data<int32_t>()[n] = d.mult;
        sh.data<int32_t>()[n] = d.shift;
      }
      out.add(name + ".mult", m);
      out.add(name + ".shift", sh);
    }
  }

  Tensor quantize_const(const Tensor& t, const QuantParams& p) {
    Tensor q({t.numel()}, DType::u8);
    for (int64_t i = 0; i < t.numel(); ++i)
      q.data<uint8_t>()[i] = static_cast<uint8_t>(
          quant_detail::quant_code(t.f32()[i], p.scale[0], p.zero_point[0], 0.0f, float(p.bits.qmax())));
    return q;
  }

  void run() {
    const int64_t D = cfg.dim;
    const std::string np = std::to_string(cfg.depth);
    if (!qs.has("embed.input"))
      fail("engine", "{}: no 'embed.input' point: the integer engine needs a quantized input image "
           "(DeiT's FQ-ViT setting; calibrate with the input quantized)", label);
    linear("patch_embed.proj", weight("patch_embed.proj.weight"), "embed.input", "embed.patch");
    act("embed.tokens", QuantKind::uniform);
    act("embed.pos", QuantKind::uniform);
    out.add("cls_token.q", quantize_const(weight("cls_token"), qs.params("embed.tokens")));
    const Tensor& pos = weight("pos_embed");
    out.add("pos_embed.q", quantize_const(pos, qs.params("embed.pos")).reshaped({pos.dim(1), D}));
    for (int i = 0; i < cfg.depth; ++i) {
      const std::string b = "blocks." + std::to_string(i) + ".";
      for (const char* ln : {"norm1", "norm2"}) {
        act(b + ln + ".in", QuantKind::ptf, D);
        act(b + ln + ".out", QuantKind::uniform);
        out.add(b + ln + ".weight", weight(b + ln + ".weight"));
        out.add(b + ln + ".bias", weight(b + ln + ".bias"));
      }
      act(b + "attn.logits", QuantKind::uniform);
      act(b + "attn.context", QuantKind::uniform);
      linear(b + "attn.qkv", weight(b + "attn.qkv.weight"), b + "norm1.out", b + "attn.qkv");
      linear(b + "attn.proj", weight(b + "attn.proj.weight"), b + "attn.context", b + "attn.proj");
      linear(b + "mlp.fc1", weight(b + "mlp.fc1.weight"), b + "norm2.out", "");
      linear(b + "mlp.fc2", weight(b + "mlp.fc2.weight"), b + "mlp.gelu", b + "mlp.fc2");
    }
    act("norm.in", QuantKind::ptf, D);
    act("norm.out", QuantKind::uniform);
    act("head.out", QuantKind::uniform);
    out.add("norm.weight", weight("norm.weight"));
    out.add("norm.bias", weight("norm.bias"));
    linear("head", weight("head.weight"), "norm.out", "");
  }
};

// The qparams JSON without the weight points (their scales are the `*.weight_scale` tensors).
nlohmann::json activation_params(const QuantSession& qs) {
  nlohmann::json j = qs.to_json();
  nlohmann::json pts = nlohmann::json::array();
  for (auto& p : j.at("points"))
    if (p.value("role", "") != "weight") pts.push_back(std::move(p));
  j["points"] = std::move(pts);
  return j;
}

}  // namespace

QvitWriter convert_to_int(const ModelConfig& cfg, const WeightFile& weights,
                          const QuantSession& qparams, const ConvertSource& src) {
  if (cfg.family != "vit") fail("engine", "integer engine supports vit/deit ({}: not yet)", cfg.family);
  const std::string& label = src.qparams.empty() ? std::string("qparams") : src.qparams;
  if (qparams.model() != cfg.name)
    fail("engine", "{}: parameters are for model '{}', not '{}'", label, qparams.model(), cfg.name);
  const QuantConfig& qc = qparams.config();
  if (!qc.ptf || !qc.lis)
    fail("engine", "{}: the integer engine runs FQ-ViT's configuration with PTF and LIS "
         "(these parameters have ptf={} lis={})", label, qc.ptf, qc.lis);
  Converter c{cfg, weights, qparams, label, {}};
  c.run();
  nlohmann::json meta = {
      {"format", kIntModelFormat},
      {"version", kIntModelVersion},
      {"model", cfg.name},
      {"model_config",
       {{"dim", cfg.dim}, {"depth", cfg.depth}, {"heads", cfg.heads}, {"patch", cfg.patch},
        {"img_size", cfg.img_size}, {"in_chans", cfg.in_chans}, {"num_classes", cfg.num_classes},
        {"mlp_ratio", cfg.mlp_ratio}}},
      {"quant_config", qc.to_json()},
      {"quant_label", qc.label()},
      {"qparams", activation_params(qparams)},
      {"source", {{"weights", src.weights}, {"qparams", src.qparams}}}};
  c.out.set_meta(std::move(meta));
  return std::move(c.out);
}

void convert_files(const std::string& model, const std::string& weights, const std::string& qparams,
                   const std::string& out_path) {
  const ModelConfig& cfg = model_config(model);
  const WeightFile wf = load_checked_weights(cfg, weights);
  const QuantSession qs = QuantSession::load(qparams, cfg.name);
  convert_to_int(cfg, wf, qs, {weights, qparams}).save(out_path);
}

}  // namespace qvit
