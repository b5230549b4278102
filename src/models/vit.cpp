// ViT / DeiT (timm VisionTransformer, global_pool='token'): patch embedding, class token,
// learned position embedding, pre-norm blocks (fused qkv attention, GELU MLP), final LayerNorm and
// the classifier on the class token. Covers deit_{tiny,small,base}_patch16_224 and
// vit_{base,large}_patch16_224.
//
// Quantization points follow FQ-ViT's vit_quant.py (see docs/quantization.md for the list):
// every Linear's weight, the input image (DeiT), patch embedding output, class-token concat,
// position embedding, each LayerNorm input (PTF) and output, qkv, attention logits, softmax,
// attention context, proj, GELU output, fc2, the final norm and the logits. Without an active
// session the forward is the plain FP32 path with fused attention. While simulating, the products
// of quantized operands (the Linears, logits, A.V, residual adds) are computed exactly from the
// codes and rounded once by the next quantizer (models/sim_exact.h); GELU is the scalar reference.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "models/family.h"
#include "models/qlinear.h"
#include "models/sim_exact.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"
#include "qvit/quant.h"

namespace qvit {

std::vector<WeightSpec> vit_weight_specs(const ModelConfig& c) {
  const int64_t D = c.dim, P = c.patch, tokens = (c.img_size / P) * (c.img_size / P) + 1;
  const int64_t hidden = int64_t(c.mlp_ratio) * D;
  std::vector<WeightSpec> s = {
      {"patch_embed.proj.weight", {D, c.in_chans, P, P}},
      {"patch_embed.proj.bias", {D}},
      {"cls_token", {1, 1, D}},
      {"pos_embed", {1, tokens, D}},
  };
  for (int i = 0; i < c.depth; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    s.push_back({b + "norm1.weight", {D}});
    s.push_back({b + "norm1.bias", {D}});
    s.push_back({b + "attn.qkv.weight", {3 * D, D}});
    s.push_back({b + "attn.qkv.bias", {3 * D}});
    s.push_back({b + "attn.proj.weight", {D, D}});
    s.push_back({b + "attn.proj.bias", {D}});
    s.push_back({b + "norm2.weight", {D}});
    s.push_back({b + "norm2.bias", {D}});
    s.push_back({b + "mlp.fc1.weight", {hidden, D}});
    s.push_back({b + "mlp.fc1.bias", {hidden}});
    s.push_back({b + "mlp.fc2.weight", {D, hidden}});
    s.push_back({b + "mlp.fc2.bias", {D}});
  }
  s.push_back({"norm.weight", {D}});
  s.push_back({"norm.bias", {D}});
  s.push_back({"head.weight", {c.num_classes, D}});
  s.push_back({"head.bias", {c.num_classes}});
  return s;
}

namespace {

struct LayerNormW {
  std::string name;  // "blocks.0.norm1": points name.in (input) and name.out (output)
  Tensor gamma, beta;
};

class VitModel final : public Model {
 public:
  VitModel(const ModelConfig& cfg, const WeightFile& wf) : Model(cfg) {
    const WeightMap& w = wf.tensors;
    auto get = [&](const std::string& n) { return w.at(n); };
    auto linear = [&](const std::string& n) {
      return QLinear{n, get(n + ".weight"), get(n + ".bias"), {}, {}, {}};
    };
    auto norm = [&](const std::string& n) {
      return LayerNormW{n, get(n + ".weight"), get(n + ".bias")};
    };
    const int64_t D = cfg.dim;
    patch_embed_ = QLinear{"patch_embed.proj",
                           get("patch_embed.proj.weight")
                               .reshaped({D, int64_t(cfg.in_chans) * cfg.patch * cfg.patch}),
                           get("patch_embed.proj.bias"),
                           {}, {}, {}};
    cls_token_ = get("cls_token");
    pos_embed_ = get("pos_embed");
    for (int i = 0; i < cfg.depth; ++i) {
      const std::string b = "blocks." + std::to_string(i) + ".";
      blocks_.push_back({norm(b + "norm1"), linear(b + "attn.qkv"), linear(b + "attn.proj"),
                         norm(b + "norm2"), linear(b + "mlp.fc1"), linear(b + "mlp.fc2")});
    }
    norm_ = norm("norm");
    head_ = linear("head");
  }

  Tensor forward(const Tensor& images) override {
    const ModelConfig& c = cfg_;
    if (images.ndim() != 4 || images.dim(1) != c.in_chans || images.dim(2) != c.img_size ||
        images.dim(3) != c.img_size)
      fail("vit", "{}: input has shape {}, expected [B,{},{},{}]", c.name,
           shape_str(images.shape()), c.in_chans, c.img_size, c.img_size);
    sync_quant();
    const int64_t B = images.dim(0), D = c.dim, P = c.patch;
    const int64_t grid = c.img_size / P, np = grid * grid, N = np + 1;
    const int64_t hidden = int64_t(c.mlp_ratio) * D, H = c.heads, Dh = D / H;
    const bool quant = quant_active();
    ensure_workspace(B, quant);
    float* x = x_.f32();
    float* h = h_.f32();

    // Patch embedding: a stride-P conv = non-overlapping patches times the flattened kernel.
    im2patch_f32(images.f32(), patches_.f32(), B, c.in_chans, c.img_size, c.img_size, P);
    const bool exact = simulating();
    if (quant && quantizes_input())  // per tensor, so the patch layout does not matter
      qpoint("embed.input", QPointRole::activation, patches_.f32(), B * np, patches_.dim(1));
    if (exact && quant_->has("embed.input"))
      linear_exact(patch_embed_, patches_.f32(), "embed.input", B * np, h, "embed.patch");
    else {
      patch_embed_.op.forward(patches_.f32(), h, B * np);
      qpoint("embed.patch", QPointRole::activation, h, B * np, D);
    }
    const float* cls = cls_token_.f32();
    const float* pos = pos_embed_.f32();
    if (quant) {
      // FQ-ViT quantizes the concatenated tokens and the position embedding separately.
      parallel_for(B * N, 64, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t b = r / N, t = r % N;
          std::memcpy(x + r * D, t == 0 ? cls : h + (b * np + t - 1) * D, D * sizeof(float));
        }
      });
      qpoint("embed.tokens", QPointRole::activation, x, B * N, D);
      std::memcpy(pos_q_.f32(), pos, N * D * sizeof(float));
      qpoint("embed.pos", QPointRole::activation, pos_q_.f32(), N, D);
      pos = pos_q_.f32();
      if (exact)
        add_exact(x, "embed.tokens", pos, "embed.pos", N, B * N);
      else
        for (int64_t b = 0; b < B; ++b) add_f32(x + b * N * D, pos, x + b * N * D, N * D);
    } else {
      parallel_for(B * N, 64, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t b = r / N, t = r % N;
          const float* src = t == 0 ? cls : h + (b * np + t - 1) * D;
          float* dst = x + r * D;
          for (int64_t d = 0; d < D; ++d) dst[d] = src[d] + pos[t * D + d];
        }
      });
    }

    const float scale = 1.0f / std::sqrt(static_cast<float>(Dh));
    for (size_t i = 0; i < blocks_.size(); ++i) {
      const Block& blk = blocks_[i];
      const std::string b = "blocks." + std::to_string(i) + ".";
      layer_norm(blk.norm1, x, h, B * N);
      if (exact) {
        linear_exact(blk.qkv, h, b + "norm1.out", B * N, qkv_.f32(), b + "attn.qkv");
      } else {
        blk.qkv.op.forward(h, qkv_.f32(), B * N);
        qpoint(b + "attn.qkv", QPointRole::activation, qkv_.f32(), B * N, 3 * D);
      }
      if (quant) {
        float* s = scores_.f32();
        const int64_t rows = B * H * N;
        const QuantParams* qp = exact ? &quant_->params(b + "attn.qkv") : nullptr;
        if (exact) {
          sim::codes_of(qkv_.f32(), B * N, 3 * D, *qp, codes_.data());
          sim::logits(codes_.data(), *qp, B, N, H, Dh, scale, work_.data(), exact_.data());
          point_exact(b + "attn.logits", QPointRole::logits, s, rows, N);
        } else {
          attention_scores_f32(qkv_.f32(), s, B, N, H, Dh, scale);
          qpoint(b + "attn.logits", QPointRole::logits, s, rows, N);
        }
        if (simulating() && quant_->config().lis)
          lis_softmax(s, s, nullptr, rows, N, quant_->params(b + "attn.logits").scale[0]);
        else
          softmax_f32(s, rows, N);
        qpoint(b + "attn.softmax", QPointRole::softmax, s, rows, N);
        if (exact) {
          sim::context(s, codes_.data(), *qp, B, N, H, Dh, exact_.data());
          point_exact(b + "attn.context", QPointRole::activation, attn_.f32(), B * N, D);
        } else {
          attention_context_f32(s, qkv_.f32(), attn_.f32(), B, N, H, Dh);
          qpoint(b + "attn.context", QPointRole::activation, attn_.f32(), B * N, D);
        }
      } else {
        attention_f32(qkv_.f32(), attn_.f32(), B, N, H, Dh, scale, nullptr, nullptr, 0);
      }
      linear_residual(blk.proj, attn_.f32(), b + "attn.context", b + "attn.proj", b + "norm1.in", x, h,
                      B * N, exact);
      layer_norm(blk.norm2, x, h, B * N);
      if (exact) {
        linear_exact(blk.fc1, h, b + "norm2.out", B * N, mlp_.f32(), "");
        gelu_f32_ref(mlp_.f32(), mlp_.f32(), B * N * hidden);  // the engine's GELU table is built with it
      } else {
        blk.fc1.op.forward(h, mlp_.f32(), B * N);
        gelu_f32(mlp_.f32(), mlp_.f32(), B * N * hidden);
      }
      qpoint(b + "mlp.gelu", QPointRole::activation, mlp_.f32(), B * N, hidden);
      linear_residual(blk.fc2, mlp_.f32(), b + "mlp.gelu", b + "mlp.fc2", b + "norm2.in", x, h, B * N,
                      exact);
      tap("blocks." + std::to_string(i), x, {B, N, D});
    }

    // Final norm and head on the class token. FP32: only the class tokens are normalised
    // (LayerNorm is per token). Quantized: all tokens, so that the norm's quantization points see
    // what FQ-ViT's see.
    if (quant) {
      layer_norm(norm_, x, h, B * N);
      for (int64_t b = 1; b < B; ++b) std::memcpy(h + b * D, h + b * N * D, D * sizeof(float));
    } else {
      for (int64_t b = 0; b < B; ++b) std::memcpy(h + b * D, x + b * N * D, D * sizeof(float));
      layernorm_f32(h, norm_.gamma.f32(), norm_.beta.f32(), h, B, D, c.ln_eps);
    }
    Tensor logits({B, c.num_classes});
    if (exact)
      linear_exact(head_, h, "norm.out", B, logits.f32(), "");  // float(y), like the engine's
    else
      head_.op.forward(h, logits.f32(), B);
    qpoint("head.out", QPointRole::activation, logits.f32(), B, c.num_classes);
    return logits;
  }

 private:
  struct Block {
    LayerNormW norm1;
    QLinear qkv, proj;
    LayerNormW norm2;
    QLinear fc1, fc2;
  };

  // LayerNorm with its quantization points: NAME.in (PTF when enabled) on the input, NAME.out
  // on the output. While simulating with PTF, FQ-ViT's integer LayerNorm replaces the float one.
  void layer_norm(const LayerNormW& ln, float* in, float* out, int64_t rows) {
    const int64_t D = cfg_.dim;
    if (pending_exact_) {  // `in` is a residual sum whose exact value is in exact_
      pending_exact_ = false;
      point_exact(ln.name + ".in", QPointRole::ln_input, in, rows, D);
    } else {
      qpoint(ln.name + ".in", QPointRole::ln_input, in, rows, D);
    }
    if (simulating() && quant_->config().ptf) {
      int_layernorm_ptf(in, out, rows, D, quant_->params(ln.name + ".in"), ln.gamma.f32(),
                        ln.beta.f32(), quant_->params(ln.name + ".out").scale[0]);
    } else {
      layernorm_f32(in, ln.gamma.f32(), ln.beta.f32(), out, rows, D, cfg_.ln_eps);
    }
    qpoint(ln.name + ".out", QPointRole::activation, out, rows, D);
  }

  void prepare_weights() override {
    patch_embed_.prepare(quant_, true);
    for (Block& b : blocks_)
      for (QLinear* l : {&b.qkv, &b.proj, &b.fc1, &b.fc2}) l->prepare(quant_, true);
    head_.prepare(quant_, true);
  }

  // x += l(in) with l's output point out_pt (the projection and fc2 with their residual adds);
  // in_pt: the point `in` was quantized at; res_pt: the point x was last quantized at. The FP32 path
  // uses neither point.
  void linear_residual(const QLinear& l, const float* in, const std::string& in_pt, const std::string& out_pt,
                       const std::string& res_pt, float* x, float* h, int64_t rows, bool exact) {
    if (exact) {
      linear_exact(l, in, in_pt, rows, h, out_pt);
      add_exact(x, res_pt, h, out_pt, 0, rows);
    } else {
      l.op.forward(in, h, rows);
      qpoint(out_pt, QPointRole::activation, h, rows, cfg_.dim);
      add_f32(x, h, x, rows * cfg_.dim);
    }
  }

  // ---- Exact simulation (simulate mode; models/sim_exact.h) ----
  // exact_ -> float copy in x (what the hooks see as the input), then the point quantizes exact_.
  void point_exact(const std::string& name, QPointRole role, float* x, int64_t rows, int64_t C) {
    const double* y = exact_.data();
    parallel_for(rows * C, 16384, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) x[i] = static_cast<float>(y[i]);
    });
    quant_->point(name, role, x, rows, C, y);
  }
  // y = l(x) from the codes of x on point `in`; then the point `out`, or float(y) when out is "".
  void linear_exact(const QLinear& l, const float* x, const std::string& in, int64_t M, float* y,
                    const std::string& out) {
    const QuantParams& p = quant_->params(in);
    const int64_t N = l.codes.n(), K = l.codes.k();
    sim::codes_of(x, M, K, p, codes_.data());
    sim::linear(codes_.data(), M, p, l, acc_.data(), exact_.data());
    if (!out.empty()) {
      point_exact(out, QPointRole::activation, y, M, N);
    } else {
      const double* e = exact_.data();
      parallel_for(M * N, 16384, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) y[i] = static_cast<float>(e[i]);
      });
    }
  }
  // x = x + h from their codes on points pa and pb (pb's rows repeat every b_rows when > 0); the
  // exact sum stays in exact_ for the next LayerNorm's input point.
  void add_exact(float* x, const std::string& pa, const float* h, const std::string& pb, int64_t b_rows,
                 int64_t rows) {
    const int64_t D = cfg_.dim, hr = b_rows > 0 ? b_rows : rows;
    const QuantParams& qa = quant_->params(pa);
    const QuantParams& qb = quant_->params(pb);
    uint8_t* ca = codes_.data();
    uint8_t* cb = codes_.data() + rows * D;
    sim::codes_of(x, rows, D, qa, ca);
    sim::codes_of(h, hr, D, qb, cb);
    sim::add(ca, qa, cb, qb, b_rows, rows, D, exact_.data());
    const double* e = exact_.data();
    parallel_for(rows * D, 16384, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) x[i] = static_cast<float>(e[i]);
    });
    pending_exact_ = true;
  }

  void ensure_workspace(int64_t B, bool quant) {
    const ModelConfig& c = cfg_;
    const int64_t D = c.dim, P = c.patch, np = (c.img_size / P) * (c.img_size / P), N = np + 1;
    if (B > ws_batch_) {
      patches_ = Tensor({B * np, int64_t(c.in_chans) * P * P});
      x_ = Tensor({B * N, D});
      h_ = Tensor({B * N, D});
      qkv_ = Tensor({B * N, 3 * D});
      attn_ = Tensor({B * N, D});
      mlp_ = Tensor({B * N, int64_t(c.mlp_ratio) * D});
      scores_ = Tensor();
      ws_batch_ = B;
    }
    if (quant && scores_.numel() < B * c.heads * N * N) {
      scores_ = Tensor({ws_batch_ * c.heads * N, N});
      pos_q_ = Tensor({N, D});
    }
    if (quant && simulating()) {
      const int64_t hidden = int64_t(c.mlp_ratio) * D, rows = ws_batch_ * N;
      const int64_t att = ws_batch_ * c.heads * N * N, wide = std::max(3 * D, hidden);
      const size_t patch_k = static_cast<size_t>(ws_batch_ * np * c.in_chans * P * P);
      const size_t need_codes = std::max<size_t>(static_cast<size_t>(rows * wide), patch_k);
      if (codes_.size() < need_codes) codes_.resize(need_codes);
      if (acc_.size() < static_cast<size_t>(rows * wide)) acc_.resize(static_cast<size_t>(rows * wide));
      const size_t ne = static_cast<size_t>(std::max(rows * wide, att));
      if (exact_.size() < ne) exact_.resize(ne);
      const size_t nw = static_cast<size_t>(rows * 3 * D + att);
      if (work_.size() < nw) work_.resize(nw);
    }
  }

  QLinear patch_embed_, head_;
  Tensor cls_token_, pos_embed_;
  LayerNormW norm_;
  std::vector<Block> blocks_;
  int64_t ws_batch_ = 0;
  Tensor patches_, x_, h_, qkv_, attn_, mlp_, scores_, pos_q_;
  // Exact simulation workspace: codes, int32 accumulators, exact values, integer-valued q/k.
  std::vector<uint8_t> codes_;
  std::vector<int32_t> acc_;
  std::vector<double> exact_;
  std::vector<float> work_;
  bool pending_exact_ = false;
};

}  // namespace

std::unique_ptr<Model> create_vit(const ModelConfig& cfg, const WeightFile& weights) {
  return std::make_unique<VitModel>(cfg, weights);
}

}  // namespace qvit
