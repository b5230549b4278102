// PTQ4ViT-style simulated ViT/DeiT: the staged block (src/apq/qsim.h) and the quantized model
// (create_model). Float ops use the FP32 kernels of src/kernels; quantizers are those of
// apq_quant.h / apq_mpq.h applied elementwise in fixed chunks (thread-count independent), through
// the span kernels of fq_span.h (scalar reference or its bit-identical AVX2 twin).
#include "apq/qsim.h"
#include "apq/fq_span.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"

namespace qvit::apq::detail {

const char* const kStageNames[kStages] = {"attn.qkv", "attn.matmul1", "attn.matmul2",
                                          "attn.proj", "mlp.fc1", "mlp.fc2"};

Dims vit_dims(const ModelConfig& cfg, int64_t batch) {
  if (cfg.family != "vit")
    fail("apq", "{} (family {}) is not supported by the PTQ4ViT/APQ-ViT framework yet; ViT/DeiT only",
         cfg.name, cfg.family);
  Dims d;
  d.B = batch;
  d.D = cfg.dim;
  d.H = cfg.heads;
  d.Dh = d.D / d.H;
  d.np = int64_t(cfg.img_size / cfg.patch) * (cfg.img_size / cfg.patch);
  d.T = d.np + 1;
  d.hidden = int64_t(cfg.mlp_ratio) * d.D;
  d.classes = cfg.num_classes;
  d.patch_k = int64_t(cfg.in_chans) * cfg.patch * cfg.patch;
  d.scale = 1.0f / std::sqrt(static_cast<float>(d.Dh));
  d.eps = cfg.ln_eps;
  return d;
}

const Tensor& weight(const WeightMap& w, const std::string& name) {
  auto it = w.find(name);
  if (it == w.end()) fail("apq", "missing tensor '{}'", name);
  return it->second;
}

BlockWeights block_weights(const WeightMap& w, int block) {
  const std::string b = "blocks." + std::to_string(block) + ".";
  auto f = [&](const char* n) { return weight(w, b + n).f32(); };
  return {f("norm1.weight"), f("norm1.bias"), f("norm2.weight"), f("norm2.bias"),
          f("attn.qkv.weight"), f("attn.qkv.bias"), f("attn.proj.weight"), f("attn.proj.bias"),
          f("mlp.fc1.weight"), f("mlp.fc1.bias"), f("mlp.fc2.weight"), f("mlp.fc2.bias")};
}

void BlockState::allocate(const Dims& d) {
  const int64_t R = d.R();
  if (ln1.numel() == R * d.D) return;
  ln1 = Tensor({R, d.D});
  qkv = Tensor({R, 3 * d.D});
  scores = Tensor({d.B, d.H, d.T, d.T});
  probs = Tensor({d.B, d.H, d.T, d.T});
  ctx = Tensor({R, d.D});
  proj = Tensor({R, d.D});
  x_mid = Tensor({R, d.D});
  ln2 = Tensor({R, d.D});
  h = Tensor({R, d.hidden});
  g = Tensor({R, d.hidden});
  fc2 = Tensor({R, d.D});
  x_out = Tensor({R, d.D});
}

void BlockState::copy_from(const BlockState& o) {
  x_in = o.x_in;
  Tensor* dst[] = {&ln1, &qkv, &scores, &probs, &ctx, &proj, &x_mid, &ln2, &h, &g, &fc2, &x_out};
  const Tensor* src[] = {&o.ln1, &o.qkv, &o.scores, &o.probs, &o.ctx, &o.proj, &o.x_mid, &o.ln2, &o.h, &o.g, &o.fc2, &o.x_out};
  for (size_t i = 0; i < std::size(dst); ++i) {
    if (dst[i]->numel() != src[i]->numel()) *dst[i] = Tensor(src[i]->shape());
    std::memcpy(dst[i]->f32(), src[i]->f32(), src[i]->nbytes());
  }
}

void Scratch::allocate(const Dims& d) {
  const int64_t R = d.R();
  if (xq.numel() >= R * d.hidden) return;
  xq = Tensor({R * std::max(d.hidden, d.D)});
  wq = Tensor({std::max({3 * d.D * d.D, d.hidden * d.D, d.classes * d.D, d.D * d.patch_k})});
  qkvq = Tensor({R, 3 * d.D});
  pq = Tensor({d.B, d.H, d.T, d.T});
}

namespace {

constexpr int64_t kChunk = 1 << 15;  // elements per work item of the elementwise quantizers

// f(i0, i1) on fixed chunks of [0, n), in parallel (thread-count independent).
template <class F>
void chunked(int64_t n, F&& f) {
  parallel_for((n + kChunk - 1) / kChunk, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) f(c * kChunk, std::min(n, (c + 1) * kChunk));
  });
}

bool avx2() { return kernel_path() == KernelPath::avx2; }

}  // namespace

// ---- span quantizers: the scalar references of fq_span.h ----
void fq_sym_span_ref(const float* x, float* out, int64_t n, float d, int bits) {
  for (int64_t i = 0; i < n; ++i) out[i] = quant_sym(x[i], d, bits);
}

void fq_gelu_span_ref(const float* x, float* out, int64_t n, float pos_interval, int bits) {
  for (int64_t i = 0; i < n; ++i) out[i] = quant_twin_gelu(x[i], bits, pos_interval);
}

void fq_upos_span_ref(const float* x, float* out, int64_t n, float step, int levels) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = std::clamp(round_half_even(x[i] / step), 0.0f, static_cast<float>(levels)) * step;
}

void fq_twin_softmax_span_ref(const float* x, float* out, int64_t n, int bits, int split_exp, TwinSoftmaxMode mode) {
  for (int64_t i = 0; i < n; ++i) out[i] = quant_twin_softmax(x[i], bits, split_exp, mode);
}

void fq_mpq_log2_span_ref(const float* x, float* out, int64_t n, int bits) {
  const MpqParams p{MpqKind::log2, 0.0f};
  for (int64_t i = 0; i < n; ++i) out[i] = mpq_quant(x[i], bits, p);
}

void bias_rows_ref(float* y, const float* b, int64_t rows, int64_t N) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < N; ++j) y[r * N + j] += b[j];
}

const std::vector<float>& mpq_log2_thresholds(int bits) {
  static const auto tables = [] {
    std::vector<std::vector<float>> t(9);
    for (int k = 2; k <= 8; ++k) {
      const MpqParams p{MpqKind::log2, 0.0f};
      const int top = std::min((1 << k) - 1, 149);
      for (int c = 0; c <= top; ++c) {
        // smallest positive float bit pattern u with mpq_quant(u) >= 2^-c (true at u = 1.0f)
        const float want = std::ldexp(1.0f, -c);
        uint32_t lo = 0, hi = 0x3f800000u;  // mpq_quant(lo) < want <= mpq_quant(hi)
        while (hi - lo > 1) {
          const uint32_t mid = lo + (hi - lo) / 2;
          (mpq_quant(std::bit_cast<float>(mid), k, p) >= want ? hi : lo) = mid;
        }
        t[k].push_back(std::bit_cast<float>(hi));
      }
    }
    return t;
  }();
  check_bits(bits, "abits");
  return tables[bits];
}

namespace {

void sym_span(const float* x, float* out, int64_t n, float d, int bits) {
  avx2() ? fq_sym_span_avx2(x, out, n, d, bits) : fq_sym_span_ref(x, out, n, d, bits);
}

}  // namespace

void fq_sym(const float* x, float* out, int64_t n, float interval, int bits) {
  if (!(interval > 0.0f)) fail("apq", "quantizer interval must be > 0, got {}", interval);
  chunked(n, [&](int64_t i0, int64_t i1) { sym_span(x + i0, out + i0, i1 - i0, interval, bits); });
}

void fq_gelu(const float* x, float* out, int64_t n, float pos_interval, int bits) {
  if (!(pos_interval > 0.0f)) fail("apq", "post-GELU interval must be > 0, got {}", pos_interval);
  const bool v = avx2();
  chunked(n, [&](int64_t i0, int64_t i1) {
    v ? fq_gelu_span_avx2(x + i0, out + i0, i1 - i0, pos_interval, bits)
      : fq_gelu_span_ref(x + i0, out + i0, i1 - i0, pos_interval, bits);
  });
}

void fq_softmax(const ApqConfig& c, const LayerParams& p, const float* x, float* out, int64_t n) {
  const bool v = avx2();
  switch (c.softmax) {
    case SoftmaxQuant::uniform:
      fq_sym(x, out, n, p.a, c.abits);
      return;
    case SoftmaxQuant::twin:
      chunked(n, [&](int64_t i0, int64_t i1) {
        v ? fq_twin_softmax_span_avx2(x + i0, out + i0, i1 - i0, c.abits, p.split_exp, c.twin_mode)
          : fq_twin_softmax_span_ref(x + i0, out + i0, i1 - i0, c.abits, p.split_exp, c.twin_mode);
      });
      return;
    case SoftmaxQuant::mpq:
      if (p.mpq.kind == MpqKind::uniform) {  // = mpq_quant's uniform branch
        const int levels = (1 << c.abits) - 1;
        chunked(n, [&](int64_t i0, int64_t i1) {
          v ? fq_upos_span_avx2(x + i0, out + i0, i1 - i0, p.mpq.step, levels)
            : fq_upos_span_ref(x + i0, out + i0, i1 - i0, p.mpq.step, levels);
        });
        return;
      }
      if (v && mpq_log2_thresholds(c.abits).size() <= kMpqLog2MaxVectorSteps) {
        const std::vector<float>& t = mpq_log2_thresholds(c.abits);
        chunked(n, [&](int64_t i0, int64_t i1) { fq_mpq_log2_span_avx2(x + i0, out + i0, i1 - i0, t); });
      } else {
        chunked(n, [&](int64_t i0, int64_t i1) { fq_mpq_log2_span_ref(x + i0, out + i0, i1 - i0, c.abits); });
      }
      return;
  }
}

void fq_weight(const float* w, float* out, int64_t rows, int64_t cols, const std::vector<float>& iv, int bits) {
  const int64_t groups = static_cast<int64_t>(iv.size());
  if (groups == 0 || rows % groups != 0) fail("apq", "weight with {} rows cannot take {} intervals", rows, groups);
  const int64_t per = rows / groups;
  parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) sym_span(w + r * cols, out + r * cols, cols, iv[static_cast<size_t>(r / per)], bits);
  });
}

void fq_linear_input(const ApqConfig& c, bool gelu_input, const LayerParams& p, const float* x,
                     float* out, int64_t n) {
  if (gelu_input && c.gelu == GeluQuant::twin) fq_gelu(x, out, n, p.a, c.abits);
  else fq_sym(x, out, n, p.a, c.abits);
}

void linear_nt(const float* x, const float* w, const float* b, float* y, int64_t M, int64_t N, int64_t K) {
  constexpr int64_t kRows = 64;
  parallel_for((M + kRows - 1) / kRows, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t r0 = c * kRows, m = std::min(M, r0 + kRows) - r0;
      gemm_f32(false, true, m, N, K, 1.0f, x + r0 * K, K, w, K, 0.0f, y + r0 * N, N);
      if (b) avx2() ? bias_rows_avx2(y + r0 * N, b, m, N) : bias_rows_ref(y + r0 * N, b, m, N);
    }
  });
}

void quant_qkv_part(const float* qkv, float* qkvq, const Dims& d, int part, float interval, int bits) {
  if (!(interval > 0.0f)) fail("apq", "matmul operand interval must be > 0, got {}", interval);
  const int64_t R = d.R(), D = d.D;
  parallel_for(R, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t at = r * 3 * D + part * D;
      sym_span(qkv + at, qkvq + at, D, interval, bits);
    }
  });
}

namespace {

// A Linear stage: out = Q(x) Q(W)^T + b, or float without params.
void linear_stage(const ApqConfig& c, const LayerParams* p, bool gelu_input, const float* x,
                  const float* w, const float* b, float* y, int64_t M, int64_t N, int64_t K, Scratch& sc) {
  if (!p) return linear_nt(x, w, b, y, M, N, K);
  fq_linear_input(c, gelu_input, *p, x, sc.xq.f32(), M * K);
  fq_weight(w, sc.wq.f32(), N, K, p->w, c.wbits);
  linear_nt(sc.xq.f32(), sc.wq.f32(), b, y, M, N, K);
}

}  // namespace

void stage_post(const Dims& d, const BlockWeights& bw, BlockState& s, int k) {
  const int64_t R = d.R();
  switch (k) {
    case kMatmul1:
      std::memcpy(s.probs.f32(), s.scores.f32(), s.scores.nbytes());
      softmax_f32(s.probs.f32(), d.B * d.H * d.T, d.T);
      break;
    case kProj:
      add_f32(s.x_in, s.proj.f32(), s.x_mid.f32(), R * d.D);
      layernorm_f32(s.x_mid.f32(), bw.ln2_g, bw.ln2_b, s.ln2.f32(), R, d.D, d.eps);
      break;
    case kFc1:
      gelu_f32(s.h.f32(), s.g.f32(), R * d.hidden);
      break;
    case kFc2:
      add_f32(s.x_mid.f32(), s.fc2.f32(), s.x_out.f32(), R * d.D);
      break;
    default:
      break;
  }
}

void run_stages(const ApqConfig& c, const Dims& d, const BlockWeights& bw, const BlockQuant& q,
                BlockState& s, Scratch& sc, int from, int last) {
  const int64_t R = d.R(), D = d.D;
  if (from == kQkv) layernorm_f32(s.x_in, bw.ln1_g, bw.ln1_b, s.ln1.f32(), R, D, d.eps);
  for (int k = from; k <= last; ++k) {
    const LayerParams* p = q.p[k];
    switch (k) {
      case kQkv:
        linear_stage(c, p, false, s.ln1.f32(), bw.qkv_w, bw.qkv_b, s.qkv.f32(), R, 3 * D, D, sc);
        break;
      case kMatmul1: {
        const float* src = s.qkv.f32();
        if (p) {
          std::memcpy(sc.qkvq.f32(), src, s.qkv.nbytes());
          quant_qkv_part(src, sc.qkvq.f32(), d, 0, p->a, c.abits);
          quant_qkv_part(src, sc.qkvq.f32(), d, 1, p->b, c.abits);
          src = sc.qkvq.f32();
        }
        attention_scores_f32(src, s.scores.f32(), d.B, d.T, d.H, d.Dh, d.scale);
        break;
      }
      case kMatmul2: {
        const float* pr = s.probs.f32();
        const float* src = s.qkv.f32();
        if (p) {
          fq_softmax(c, *p, pr, sc.pq.f32(), s.probs.numel());
          pr = sc.pq.f32();
          std::memcpy(sc.qkvq.f32(), src, s.qkv.nbytes());
          quant_qkv_part(src, sc.qkvq.f32(), d, 2, p->b, c.abits);
          src = sc.qkvq.f32();
        }
        attention_context_f32(pr, src, s.ctx.f32(), d.B, d.T, d.H, d.Dh);
        break;
      }
      case kProj:
        linear_stage(c, p, false, s.ctx.f32(), bw.proj_w, bw.proj_b, s.proj.f32(), R, D, D, sc);
        break;
      case kFc1:
        linear_stage(c, p, false, s.ln2.f32(), bw.fc1_w, bw.fc1_b, s.h.f32(), R, d.hidden, D, sc);
        break;
      case kFc2:
        linear_stage(c, p, true, s.g.f32(), bw.fc2_w, bw.fc2_b, s.fc2.f32(), R, D, d.hidden, sc);
        break;
    }
    stage_post(d, bw, s, k);
  }
}

void embed(const Dims& d, const WeightMap& w, const float* patch_out, float* x) {
  const float* cls = weight(w, "cls_token").f32();
  const float* pos = weight(w, "pos_embed").f32();
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t t = 0; t < d.T; ++t) {
      const float* src = t == 0 ? cls : patch_out + (b * d.np + t - 1) * d.D;
      float* dst = x + (b * d.T + t) * d.D;
      for (int64_t c = 0; c < d.D; ++c) dst[c] = src[c] + pos[t * d.D + c];
    }
}

void final_norm_cls(const Dims& d, const WeightMap& w, const float* x, float* out) {
  Tensor cls({d.B, d.D});
  for (int64_t b = 0; b < d.B; ++b) std::memcpy(cls.f32() + b * d.D, x + b * d.T * d.D, d.D * sizeof(float));
  layernorm_f32(cls.f32(), weight(w, "norm.weight").f32(), weight(w, "norm.bias").f32(), out, d.B, d.D, d.eps);
}

}  // namespace qvit::apq::detail

namespace qvit::apq {

namespace {

using namespace detail;

class ApqVit : public Model {
 public:
  ApqVit(const ModelConfig& cfg, const WeightMap& w, const ApqParams& p)
      : Model(cfg), w_(w), p_(p) {
    p_.check(cfg, "parameters");
    // Weights quantized once.
    auto qw = [&](const std::string& layer, const std::string& tensor) {
      const Tensor& src = weight(w_, tensor);
      Tensor out(src.shape());
      const int64_t rows = src.dim(0), cols = src.numel() / rows;
      fq_weight(src.f32(), out.f32(), rows, cols, p_.layers.at(layer).w, p_.config.wbits);
      w_[tensor] = std::move(out);
    };
    qw("patch_embed.proj", "patch_embed.proj.weight");
    qw("head", "head.weight");
    // Block weights are fake-quantized by run_stages on every forward (as during calibration).
  }

  Tensor forward(const Tensor& images) override {
    const ApqConfig& c = p_.config;
    const Dims d = vit_dims(cfg_, images.dim(0));
    Tensor patches({d.B * d.np, d.patch_k}), emb({d.B * d.np, d.D}), x({d.R(), d.D});
    im2patch_f32(images.f32(), patches.f32(), d.B, cfg_.in_chans, cfg_.img_size, cfg_.img_size, cfg_.patch);
    linear_nt(patches.f32(), weight(w_, "patch_embed.proj.weight").f32(), weight(w_, "patch_embed.proj.bias").f32(),
              emb.f32(), d.B * d.np, d.D, d.patch_k);
    embed(d, w_, emb.f32(), x.f32());
    state_.allocate(d);
    scratch_.allocate(d);
    for (int i = 0; i < cfg_.depth; ++i) {
      const std::string b = "blocks." + std::to_string(i) + ".";
      BlockQuant q;
      for (int k = 0; k < kStages; ++k) q.p[k] = &p_.layers.at(b + kStageNames[k]);
      state_.x_in = x.f32();
      run_stages(c, d, block_weights(w_, i), q, state_, scratch_, kQkv);
      std::memcpy(x.f32(), state_.x_out.f32(), x.nbytes());
    }
    Tensor cls({d.B, d.D}), logits({d.B, d.classes});
    final_norm_cls(d, w_, x.f32(), cls.f32());
    const LayerParams& hp = p_.layers.at("head");
    fq_sym(cls.f32(), cls.f32(), cls.numel(), hp.a, c.abits);
    linear_nt(cls.f32(), weight(w_, "head.weight").f32(), weight(w_, "head.bias").f32(), logits.f32(), d.B,
              d.classes, d.D);
    return logits;
  }

 protected:
  void prepare_weights() override {}

 private:
  WeightMap w_;
  ApqParams p_;
  BlockState state_;
  Scratch scratch_;
};

}  // namespace

std::unique_ptr<Model> create_model(const ModelConfig& mcfg, const WeightMap& weights, const ApqParams& params) {
  return std::make_unique<ApqVit>(mcfg, weights, params);
}

}  // namespace qvit::apq
