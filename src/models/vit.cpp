// ViT / DeiT (timm VisionTransformer, global_pool='token'): patch embedding, class token,
// learned position embedding, pre-norm blocks (fused qkv attention, GELU MLP), final LayerNorm and
// the classifier on the class token. Covers deit_{tiny,small,base}_patch16_224 and
// vit_{base,large}_patch16_224.
//
// Quantization points follow FQ-ViT's vit_quant.py (see docs/quantization.md for the list):
// every Linear's weight, the input image (DeiT), patch embedding output, class-token concat,
// position embedding, each LayerNorm input (PTF) and output, qkv, attention logits, softmax,
// attention context, proj, GELU output, fc2, the final norm and the logits. Without an active
// session the forward is the plain FP32 path with fused attention.
#include <cmath>
#include <cstring>

#include "models/family.h"
#include "models/qlinear.h"
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
      return QLinear{n, get(n + ".weight"), get(n + ".bias"), {}};
    };
    auto norm = [&](const std::string& n) {
      return LayerNormW{n, get(n + ".weight"), get(n + ".bias")};
    };
    const int64_t D = cfg.dim;
    patch_embed_ = QLinear{"patch_embed.proj",
                           get("patch_embed.proj.weight")
                               .reshaped({D, int64_t(cfg.in_chans) * cfg.patch * cfg.patch}),
                           get("patch_embed.proj.bias"),
                           {}};
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
    if (quant && quantizes_input())  // per tensor, so the patch layout does not matter
      qpoint("embed.input", QPointRole::activation, patches_.f32(), B * np, patches_.dim(1));
    patch_embed_.op.forward(patches_.f32(), h, B * np);
    qpoint("embed.patch", QPointRole::activation, h, B * np, D);
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
      blk.qkv.op.forward(h, qkv_.f32(), B * N);
      if (quant) {
        qpoint(b + "attn.qkv", QPointRole::activation, qkv_.f32(), B * N, 3 * D);
        float* s = scores_.f32();
        const int64_t rows = B * H * N;
        attention_scores_f32(qkv_.f32(), s, B, N, H, Dh, scale);
        qpoint(b + "attn.logits", QPointRole::logits, s, rows, N);
        if (simulating() && quant_->config().lis)
          lis_softmax(s, s, nullptr, rows, N, quant_->params(b + "attn.logits").scale[0]);
        else
          softmax_f32(s, rows, N);
        qpoint(b + "attn.softmax", QPointRole::softmax, s, rows, N);
        attention_context_f32(s, qkv_.f32(), attn_.f32(), B, N, H, Dh);
        qpoint(b + "attn.context", QPointRole::activation, attn_.f32(), B * N, D);
      } else {
        attention_f32(qkv_.f32(), attn_.f32(), B, N, H, Dh, scale, nullptr, nullptr, 0);
      }
      blk.proj.op.forward(attn_.f32(), h, B * N);
      qpoint(b + "attn.proj", QPointRole::activation, h, B * N, D);
      add_f32(x, h, x, B * N * D);
      layer_norm(blk.norm2, x, h, B * N);
      blk.fc1.op.forward(h, mlp_.f32(), B * N);
      gelu_f32(mlp_.f32(), mlp_.f32(), B * N * hidden);
      qpoint(b + "mlp.gelu", QPointRole::activation, mlp_.f32(), B * N, hidden);
      blk.fc2.op.forward(mlp_.f32(), h, B * N);
      qpoint(b + "mlp.fc2", QPointRole::activation, h, B * N, D);
      add_f32(x, h, x, B * N * D);
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
    qpoint(ln.name + ".in", QPointRole::ln_input, in, rows, D);
    if (simulating() && quant_->config().ptf) {
      int_layernorm_ptf(in, out, rows, D, quant_->params(ln.name + ".in"), ln.gamma.f32(),
                        ln.beta.f32(), quant_->params(ln.name + ".out").scale[0]);
    } else {
      layernorm_f32(in, ln.gamma.f32(), ln.beta.f32(), out, rows, D, cfg_.ln_eps);
    }
    qpoint(ln.name + ".out", QPointRole::activation, out, rows, D);
  }

  void prepare_weights() override {
    patch_embed_.prepare(quant_);
    for (Block& b : blocks_)
      for (QLinear* l : {&b.qkv, &b.proj, &b.fc1, &b.fc2}) l->prepare(quant_);
    head_.prepare(quant_);
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
  }

  QLinear patch_embed_, head_;
  Tensor cls_token_, pos_embed_;
  LayerNormW norm_;
  std::vector<Block> blocks_;
  int64_t ws_batch_ = 0;
  Tensor patches_, x_, h_, qkv_, attn_, mlp_, scores_, pos_q_;
};

}  // namespace

std::unique_ptr<Model> create_vit(const ModelConfig& cfg, const WeightFile& weights) {
  return std::make_unique<VitModel>(cfg, weights);
}

}  // namespace qvit
