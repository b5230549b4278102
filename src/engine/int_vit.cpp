// The integer ViT/DeiT: loads a converted .qvit file and runs FQ-ViT's quantized forward with the
// integer operators of src/engine (order and points as in src/models/vit.cpp):
//   image -> embed.input (float -> uint8, the one float input step) -> int8 patch GEMM ->
//   embed.patch -> tokens (class token constant; patch codes through a 256-entry table onto the
//   embed.tokens quantizer) -> + position codes, requantized to the first PTF LayerNorm input ->
//   blocks: integer LN -> qkv -> logits -> LIS -> A.V shifts -> context -> proj -> residual add
//   (PTF) -> integer LN -> fc1 (float output) -> GELU (float) -> mlp.gelu -> fc2 -> residual add
//   -> final integer LN on the class tokens -> head (float output) -> head.out codes, returned
//   dequantized like the simulation's logits.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/engine_ops.h"
#include "qvit/engine.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"
#include "quant/observer_impl.h"

namespace qvit {

namespace {

using engine::IntAdd;
using engine::IntAttention;
using engine::IntLayerNorm;
using engine::IntLinear;

class IntVit final : public IntModel {
 public:
  IntVit(const ModelConfig& cfg, const QvitFile& f)
      : IntModel(cfg), file_(f), qs_(QuantSession::from_json(f.meta().at("qparams"), cfg.name, f.path())) {
    const int64_t D = cfg.dim, P = cfg.patch, hidden = int64_t(cfg.mlp_ratio) * D;
    np_ = (cfg.img_size / P) * (cfg.img_size / P);
    N_ = np_ + 1;
    H_ = cfg.heads;
    const QuantParams& in = qs_.params("embed.input");
    s_in_ = in.scale.at(0);
    in_max_ = in.bits.qmax();
    z_in_ = in.zero_point.at(0);
    patch_ = linear("patch_embed.proj", D, int64_t(cfg.in_chans) * P * P, "embed.input", "embed.patch");
    // Patch codes onto the tokens' quantizer (the simulation dequantizes, then quantizes).
    const QuantParams& pp = qs_.params("embed.patch");
    const QuantParams& tp = qs_.params("embed.tokens");
    for (int q = 0; q < 256; ++q)
      tok_lut_[q] = static_cast<uint8_t>(quant_detail::quant_code(
          (static_cast<float>(q) - pp.zero_point[0]) * pp.scale[0], tp.scale[0], tp.zero_point[0], 0.0f, float(tp.bits.qmax())));
    patch_zero_ = zero(pp);
    patch_max_ = pp.bits.qmax();
    cls_q_ = static_cast<const uint8_t*>(sec("cls_token.q", DType::u8, {D}));
    pos_q_ = static_cast<const uint8_t*>(sec("pos_embed.q", DType::u8, {N_, D}));
    const QuantParams& pos = qs_.params("embed.pos");
    const QuantParams& n10 = qs_.params("blocks.0.norm1.in");
    add_embed_.init(D, tp.scale, zero(tp), pos.scale, zero(pos), n10.scale, zero(n10), n10.bits.qmax());
    for (int i = 0; i < cfg.depth; ++i) {
      const std::string b = "blocks." + std::to_string(i) + ".";
      Block k;
      k.norm1 = norm(b + "norm1");
      k.norm2 = norm(b + "norm2");
      k.qkv = linear(b + "attn.qkv", 3 * D, D, b + "norm1.out", b + "attn.qkv");
      k.proj = linear(b + "attn.proj", D, D, b + "attn.context", b + "attn.proj");
      k.fc1 = linear(b + "mlp.fc1", hidden, D, b + "norm2.out", "");
      const QuantParams& gp = qs_.params(b + "mlp.gelu");
      k.gelu.init(gp.scale[0], gp.zero_point[0], gp.bits.qmax());
      for (int64_t n = 0; n < hidden; ++n) {
        k.fc1.lut_mult.push_back(engine::mult_from_real(k.fc1.deq[n] / k.gelu.s_f));
        k.fc1.lut_beta.push_back(k.fc1.bias[n] / k.gelu.s_f);
      }
      k.fc1.init_lut(file_.path() + ": " + b + "mlp.fc1");
      k.fc2 = linear(b + "mlp.fc2", D, hidden, b + "mlp.gelu", b + "mlp.fc2");
      const QuantParams& qkv = qs_.params(b + "attn.qkv");
      const QuantParams& lg = qs_.params(b + "attn.logits");
      const QuantParams& cx = qs_.params(b + "attn.context");
      k.attn.H = H_;
      k.attn.Dh = D / H_;
      k.attn.qkv_zero = zero(qkv);
      const double scale = 1.0f / std::sqrt(static_cast<float>(D / H_));
      k.attn.logit_mult = engine::mult_from_real(double(qkv.scale[0]) * qkv.scale[0] * scale / lg.scale[0]);
      k.attn.logit_zero = zero(lg);
      k.attn.logit_max = lg.bits.qmax();
      k.attn.ctx_max = cx.bits.qmax();
      k.attn.lis.init(lg.scale[0], lg.zero_point[0], N_);
      k.attn.ctx_mult = engine::mult_from_real(std::ldexp(double(qkv.scale[0]), -15) / cx.scale[0]);
      k.attn.ctx_zero = zero(cx);
      k.attn.init_requant();
      const QuantParams& n1 = qs_.params(b + "norm1.in");
      const QuantParams& n2 = qs_.params(b + "norm2.in");
      const std::string next = i + 1 < cfg.depth ? "blocks." + std::to_string(i + 1) + ".norm1.in" : "norm.in";
      const QuantParams& nx = qs_.params(next);
      const QuantParams& pj = qs_.params(b + "attn.proj");
      const QuantParams& f2 = qs_.params(b + "mlp.fc2");
      k.add1.init(D, n1.scale, zero(n1), pj.scale, zero(pj), n2.scale, zero(n2), n2.bits.qmax());
      k.add2.init(D, n2.scale, zero(n2), f2.scale, zero(f2), nx.scale, zero(nx), nx.bits.qmax());
      k.next = next;
      k.qkv_max = qkv.bits.qmax();
      k.proj_zero = zero(pj);
      k.proj_max = pj.bits.qmax();
      k.gelu_zero = zero(gp);
      k.fc2_zero = zero(f2);
      k.fc2_max = f2.bits.qmax();
      blocks_.push_back(std::move(k));
    }
    norm_ = norm("norm");
    head_ = linear("head", cfg.num_classes, D, "norm.out", "");
  }

  void set_stage_hook(StageHook h) override { hook_ = std::move(h); }
  const QuantConfig& quant_config() const override { return qs_.config(); }

  Tensor forward(const Tensor& images) override {
    const ModelConfig& c = cfg_;
    if (images.ndim() != 4 || images.dim(1) != c.in_chans || images.dim(2) != c.img_size ||
        images.dim(3) != c.img_size)
      fail("engine", "{}: input has shape {}, expected [B,{},{},{}]", c.name, shape_str(images.shape()),
           c.in_chans, c.img_size, c.img_size);
    const int64_t B = images.dim(0), D = c.dim, N = N_, rows = B * N;
    const int64_t K0 = patch_.K;
    ensure(B);
    im2patch_f32(images.f32(), patches_.data(), B, c.in_chans, c.img_size, c.img_size, c.patch);
    if (!hook_) {
      blocks_by_rows(B);  // the embedding and the blocks, rows owned by threads
    } else {
      // Patch embedding on the quantized image.
      engine::quantize_u8(patches_.data(), pcodes_.data(), B * np_ * K0, s_in_, z_in_, in_max_);
      patch_.forward_u8(pcodes_.data(), B * np_, static_cast<int32_t>(z_in_), h_.data(), patch_zero_,
                        patch_max_, acc_.data());
      stage("embed.patch", h_.data(), B * np_, D);
      parallel_for(rows, 64, [&](int64_t r0, int64_t r1) { tokens_rows(h_.data(), r0, r1); });
      stage("embed.tokens", tok_.data(), rows, D);
      add_embed_.forward(tok_.data(), pos_q_, N, x_.data(), rows);
      stage("blocks.0.norm1.in", x_.data(), rows, D);
      blocks_by_stage(B);
    }

    // Final LayerNorm (per token: only the class tokens matter) and the classifier.
    const int64_t ln_rows = hook_ ? rows : B;
    if (!hook_)
      for (int64_t b = 0; b < B; ++b) std::memcpy(g_.data() + b * D, x_.data() + b * N * D, D);
    norm_.forward(hook_ ? x_.data() : g_.data(), h_.data(), ln_rows);
    stage("norm.out", h_.data(), ln_rows, D);
    if (hook_)
      for (int64_t b = 1; b < B; ++b) std::memmove(h_.data() + b * D, h_.data() + b * N * D, D);
    Tensor logits({B, c.num_classes});
    head_.forward_f32(h_.data(), B, norm_.out_zero, logits.f32(), acc_.data());
    const QuantParams& hp = qs_.params("head.out");
    std::vector<uint8_t> hq(static_cast<size_t>(B * c.num_classes));
    engine::quantize_u8(logits.f32(), hq.data(), B * c.num_classes, hp.scale[0], hp.zero_point[0],
                        hp.bits.qmax());
    stage("head.out", hq.data(), B, c.num_classes);
    for (int64_t i = 0; i < B * c.num_classes; ++i)
      logits.f32()[i] = (static_cast<float>(hq[i]) - hp.zero_point[0]) * hp.scale[0];
    return logits;
  }

 private:
  // Token rows [r0, r1): the class token's codes, or the patch codes (rows of `patch_codes`, one
  // per patch) through the 256-entry table onto the tokens' quantizer.
  void tokens_rows(const uint8_t* patch_codes, int64_t r0, int64_t r1) {
    const int64_t D = cfg_.dim, N = N_;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / N, t = r % N;
      uint8_t* dst = tok_.data() + r * D;
      if (t == 0) {
        std::memcpy(dst, cls_q_, D);
      } else {
        const uint8_t* src = patch_codes + (b * np_ + t - 1) * D;
        for (int64_t d = 0; d < D; ++d) dst[d] = tok_lut_[src[d]];
      }
    }
  }

  // The blocks in one parallel region: every thread owns a contiguous range of token rows and
  // takes them through the whole block; only attention needs the other rows (their packed K and
  // V), hence one barrier per block. The packed K/V buffers alternate between blocks, so block
  // i + 1 can pack while another thread still attends in block i. All arithmetic is integer and
  // row-local, so the rows' partition does not change any result (and equals blocks_by_stage).
  void blocks_by_rows(int64_t B) {
    const ModelConfig& c = cfg_;
    const int64_t D = c.dim, N = N_, rows = B * N, hidden = int64_t(c.mlp_ratio) * D;
    const int64_t W = std::max(hidden, 3 * D);  // acc_ columns reserved per row
    const int64_t wsz = blocks_[0].attn.workspace(B, N);
    int16_t* ws[2] = {att16_.data(), att16_.data() + wsz};
    const int threads = std::max<int>(1, static_cast<int>(std::min<int64_t>(num_threads(), rows)));
#pragma omp parallel num_threads(threads)
    {
      const int64_t T = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t r0 = rows * t / T, r1 = rows * (t + 1) / T, n = r1 - r0;
      int32_t* acc = acc_.data() + r0 * W;
      // Embedding of the rows: their patches (quantized image -> int8 patch GEMM, output in g_,
      // which nothing reads or writes again before block 0's barrier), tokens, + position.
      const auto patch_of = [&](int64_t r) { return (r / N) * np_ + r % N - 1; };  // r % N >= 1
      int64_t f = r0, l = r1 - 1;
      if (f < r1 && f % N == 0) ++f;
      if (l >= f && l % N == 0) --l;
      if (f <= l) {
        const int64_t p0 = patch_of(f), p1 = patch_of(l) + 1, K0 = patch_.K;
        engine::quantize_u8(patches_.data() + p0 * K0, pcodes_.data() + p0 * K0, (p1 - p0) * K0, s_in_, z_in_, in_max_);
        patch_.forward_u8(pcodes_.data() + p0 * K0, p1 - p0, static_cast<int32_t>(z_in_), g_.data() + p0 * D,
                          patch_zero_, patch_max_, acc);
      }
      tokens_rows(g_.data(), r0, r1);
      add_embed_.forward_rows(tok_.data(), pos_q_, N, x_.data(), r0, r1);
      for (size_t i = 0; i < blocks_.size(); ++i) {
        const Block& k = blocks_[i];
        int16_t* w = ws[i % 2];
        if (i == 0) k.norm1.forward_rows(x_.data(), h_.data(), r0, r1);
        k.qkv.forward_u8(h_.data() + r0 * D, n, k.norm1.out_zero, qkv_.data() + r0 * 3 * D, k.attn.qkv_zero,
                         k.qkv_max, acc);
        k.attn.pack_rows(qkv_.data(), B, N, r0, r1, w);
#pragma omp barrier
        k.attn.attend_rows(qkv_.data(), lc_.data(), h_.data(), B, N, r0, r1, w);
        // proj's output goes to tok_ (free after the embedding): g_ rows have fc1's stride.
        k.proj.forward_u8(h_.data() + r0 * D, n, k.attn.ctx_zero, tok_.data() + r0 * D, k.proj_zero, k.proj_max, acc);
        k.add1.forward_rows(x_.data(), tok_.data(), 0, x_.data(), r0, r1);
        k.norm2.forward_rows(x_.data(), h_.data(), r0, r1);
        k.fc1.forward_lut(h_.data() + r0 * D, n, k.norm2.out_zero, g_.data() + r0 * hidden, k.gelu, acc);
        k.fc2.forward_u8(g_.data() + r0 * hidden, n, k.gelu_zero, h_.data() + r0 * D, k.fc2_zero, k.fc2_max, acc);
        k.add2.forward_rows(x_.data(), h_.data(), 0, x_.data(), r0, r1);
        if (i + 1 < blocks_.size()) blocks_[i + 1].norm1.forward_rows(x_.data(), h_.data(), r0, r1);
      }
    }
  }

  // The blocks one operator (one or two parallel regions) at a time, with every stage reported to
  // the hook, which may replace the codes before the next stage reads them (the tests).
  void blocks_by_stage(int64_t B) {
    const ModelConfig& c = cfg_;
    const int64_t D = c.dim, N = N_, rows = B * N;
    for (size_t i = 0; i < blocks_.size(); ++i) {
      const Block& k = blocks_[i];
      const std::string b = "blocks." + std::to_string(i) + ".";
      k.norm1.forward(x_.data(), h_.data(), rows);
      stage(b + "norm1.out", h_.data(), rows, D);
      k.qkv.forward_u8(h_.data(), rows, k.norm1.out_zero, qkv_.data(), k.attn.qkv_zero,
                       qs_.params(b + "attn.qkv").bits.qmax(), acc_.data());
      stage(b + "attn.qkv", qkv_.data(), rows, 3 * D);
      k.attn.forward(qkv_.data(), lc_.data(), h_.data(), B, N, att16_.data(),
                     [&] { stage(b + "attn.logits", lc_.data(), B * H_ * N, N); });
      stage(b + "attn.context", h_.data(), rows, D);
      const QuantParams& pp = qs_.params(b + "attn.proj");
      k.proj.forward_u8(h_.data(), rows, k.attn.ctx_zero, g_.data(), zero(pp), pp.bits.qmax(), acc_.data());
      stage(b + "attn.proj", g_.data(), rows, D);
      k.add1.forward(x_.data(), g_.data(), 0, x_.data(), rows);
      stage(b + "norm2.in", x_.data(), rows, D);
      k.norm2.forward(x_.data(), h_.data(), rows);
      stage(b + "norm2.out", h_.data(), rows, D);
      k.fc1.forward_lut(h_.data(), rows, k.norm2.out_zero, g_.data(), k.gelu, acc_.data());
      const QuantParams& gp = qs_.params(b + "mlp.gelu");
      stage(b + "mlp.gelu", g_.data(), rows, int64_t(c.mlp_ratio) * D);
      const QuantParams& f2 = qs_.params(b + "mlp.fc2");
      k.fc2.forward_u8(g_.data(), rows, zero(gp), h_.data(), zero(f2), f2.bits.qmax(), acc_.data());
      stage(b + "mlp.fc2", h_.data(), rows, D);
      k.add2.forward(x_.data(), h_.data(), 0, x_.data(), rows);
      stage(k.next, x_.data(), rows, D);
    }
  }

  struct Block {
    IntLayerNorm norm1, norm2;
    IntLinear qkv, proj, fc1, fc2;
    IntAttention attn;
    engine::GeluLut gelu;
    IntAdd add1, add2;
    std::string next;  // the quantizer after add2
    int32_t qkv_max = 255, proj_zero = 0, proj_max = 255, gelu_zero = 0, fc2_zero = 0, fc2_max = 255;
  };

  static int32_t zero(const QuantParams& p) { return static_cast<int32_t>(p.zero_point.at(0)); }

  const void* sec(const std::string& name, DType dt, const Shape& shape) {
    const QvitSection& s = file_.section(name);
    if (s.dtype != dt || s.shape != shape || s.bits != 8 * int(dtype_size(dt)))
      fail("engine", "{}: tensor '{}' is {} {}, expected {} {}", file_.path(), name, dtype_name(s.dtype),
           shape_str(s.shape), dtype_name(dt), shape_str(shape));
    return s.data;
  }

  // A Linear with input quantizer `in` and output quantizer `out` ("" for a float output).
  IntLinear linear(const std::string& name, int64_t N, int64_t K, const std::string& in, const std::string& out) {
    IntLinear l;
    l.N = N;
    l.K = K;
    const QvitSection& ws = file_.section(name + ".weight");
    if (ws.dtype != DType::i8 || ws.shape != Shape{N, K})
      fail("engine", "{}: tensor '{}.weight' is {} {}, expected i8 [{},{}]", file_.path(), name,
           dtype_name(ws.dtype), shape_str(ws.shape), N, K);
    if (ws.bits == 4) {
      owned_.push_back(file_.tensor(name + ".weight"));
      l.w = owned_.back().data<int8_t>();
    } else {
      l.w = static_cast<const int8_t*>(ws.data);
    }
    const auto* sw = static_cast<const float*>(sec(name + ".weight_scale", DType::f32, {N}));
    const auto* b = static_cast<const float*>(sec(name + ".bias", DType::f32, {N}));
    const double sa = qs_.params(in).scale.at(0);
    for (int64_t n = 0; n < N; ++n) {
      if (!(sw[n] > 0) || !std::isfinite(sw[n]) || !std::isfinite(b[n]))
        fail("engine", "{}: '{}' channel {}: bad weight scale or bias", file_.path(), name, n);
      l.deq.push_back(sa * double(sw[n]));  // exact: a product of two floats
      l.bias.push_back(b[n]);
    }
    if (!out.empty()) {
      const auto* m = static_cast<const int32_t*>(sec(name + ".mult", DType::i32, {N}));
      const auto* s = static_cast<const int32_t*>(sec(name + ".shift", DType::i32, {N}));
      const double so = qs_.params(out).scale.at(0);
      for (int64_t n = 0; n < N; ++n) {
        if (m[n] < 0 || s[n] < 0 || s[n] > 62)
          fail("engine", "{}: '{}.shift' channel {}: bad multiplier", file_.path(), name, n);
        l.mult.push_back({m[n], s[n]});
        l.out_beta.push_back(double(b[n]) / so);
      }
    }
    l.init_sums(file_.path() + ": " + name);
    return l;
  }

  IntLayerNorm norm(const std::string& name) {
    IntLayerNorm n;
    n.C = cfg_.dim;
    const auto* g = static_cast<const float*>(sec(name + ".weight", DType::f32, {n.C}));
    const auto* b = static_cast<const float*>(sec(name + ".bias", DType::f32, {n.C}));
    n.init(qs_.params(name + ".in"), g, b, qs_.params(name + ".out"));
    return n;
  }

  void stage(const std::string& name, uint8_t* codes, int64_t rows, int64_t C) {
    if (!hook_) return;
    const QuantParams& p = qs_.params(name);
    hook_(StageView{name, codes, rows, C, p.scale.data(), static_cast<int64_t>(p.scale.size()), zero(p),
                   p.bits.qmax()});
  }

  void ensure(int64_t B) {
    if (B <= ws_batch_) return;
    const int64_t D = cfg_.dim, rows = B * N_, hidden = int64_t(cfg_.mlp_ratio) * D;
    patches_.assign(static_cast<size_t>(B * np_ * patch_.K), 0.0f);
    pcodes_.assign(patches_.size(), 0);
    acc_.assign(static_cast<size_t>(std::max(rows * std::max(hidden, 3 * D), B * int64_t(cfg_.num_classes))), 0);
    tok_.assign(static_cast<size_t>(rows * D), 0);
    x_.assign(tok_.size(), 0);
    h_.assign(tok_.size(), 0);
    qkv_.assign(static_cast<size_t>(rows * 3 * D), 0);
    lc_.assign(static_cast<size_t>(B * H_ * N_ * N_), 0);
    g_.assign(static_cast<size_t>(rows * hidden), 0);
    // Two K/V workspaces (blocks_by_rows alternates); zeroed once, padding is never written.
    att16_.assign(static_cast<size_t>(blocks_.empty() ? 0 : 2 * blocks_[0].attn.workspace(B, N_)), 0);
    ws_batch_ = B;
  }

  void prepare_weights() override {}

  QvitFile file_;
  QuantSession qs_;
  int64_t np_ = 0, N_ = 0, H_ = 0;
  float s_in_ = 0, z_in_ = 0;
  int32_t in_max_ = 255;
  IntLinear patch_, head_;
  uint8_t tok_lut_[256] = {};
  int32_t patch_zero_ = 0, patch_max_ = 255;
  const uint8_t* cls_q_ = nullptr;
  const uint8_t* pos_q_ = nullptr;
  IntAdd add_embed_;
  std::vector<Block> blocks_;
  IntLayerNorm norm_;
  std::vector<Tensor> owned_;  // unpacked int4 weights
  StageHook hook_;
  int64_t ws_batch_ = 0;
  std::vector<float> patches_;
  std::vector<uint8_t> pcodes_, tok_, x_, h_, qkv_, lc_, g_;
  std::vector<int32_t> acc_;
  std::vector<int16_t> att16_;
};

}  // namespace

std::unique_ptr<IntModel> load_int_model(const QvitFile& f) {
  const nlohmann::json& m = f.meta();
  if (m.value("format", "") != kIntModelFormat)
    fail("engine", "{}: not an integer model file (format '{}', expected '{}')", f.path(),
         m.value("format", ""), kIntModelFormat);
  const int v = m.value("version", 0);
  if (v > kIntModelVersion)
    fail("engine", "{}: integer model version {} is newer than this qvit ({})", f.path(), v, kIntModelVersion);
  if (v == 1)
    fail("engine", "{}: integer model version 1 (its biases are int32 at 2^-8 of the accumulator step) is no "
         "longer read; convert the model again with `qvit convert`", f.path());
  if (v < 1) fail("engine", "{}: bad integer model version {}", f.path(), v);
  try {
    const ModelConfig& cfg = model_config(m.at("model").get<std::string>());
    if (cfg.family != "vit") fail("engine", "integer engine supports vit/deit ({}: not yet)", cfg.family);
    const nlohmann::json& mc = m.at("model_config");
    if (mc.at("dim") != cfg.dim || mc.at("depth") != cfg.depth || mc.at("heads") != cfg.heads ||
        mc.at("num_classes") != cfg.num_classes || mc.at("patch") != cfg.patch ||
        mc.at("img_size") != cfg.img_size)
      fail("engine", "{}: model_config does not match the model '{}'", f.path(), cfg.name);
    return std::make_unique<IntVit>(cfg, f);
  } catch (const nlohmann::json::exception& e) {
    fail("engine", "{}: bad metadata: {}", f.path(), e.what());
  }
}

std::unique_ptr<IntModel> load_int_model(const std::string& path) {
  return load_int_model(QvitFile::open(path));
}

}  // namespace qvit
