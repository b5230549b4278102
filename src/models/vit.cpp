// ViT / DeiT (timm VisionTransformer, global_pool='token'): patch embedding, class token,
// learned position embedding, pre-norm blocks (fused qkv attention, GELU MLP), final LayerNorm and
// the classifier on the class token. Covers deit_{tiny,small,base}_patch16_224 and
// vit_{base,large}_patch16_224.
#include <cmath>
#include <cstring>

#include "models/family.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"

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

class VitModel final : public Model {
 public:
  VitModel(const ModelConfig& cfg, const WeightFile& wf) : Model(cfg) {
    const WeightMap& w = wf.tensors;
    auto get = [&](const std::string& n) { return w.at(n); };
    const int64_t D = cfg.dim;
    patch_embed_ = LinearF32(get("patch_embed.proj.weight").reshaped({D, int64_t(cfg.in_chans) * cfg.patch * cfg.patch}),
                             get("patch_embed.proj.bias"));
    cls_token_ = get("cls_token");
    pos_embed_ = get("pos_embed");
    for (int i = 0; i < cfg.depth; ++i) {
      const std::string b = "blocks." + std::to_string(i) + ".";
      Block blk;
      blk.norm1_w = get(b + "norm1.weight");
      blk.norm1_b = get(b + "norm1.bias");
      blk.qkv = LinearF32(get(b + "attn.qkv.weight"), get(b + "attn.qkv.bias"));
      blk.proj = LinearF32(get(b + "attn.proj.weight"), get(b + "attn.proj.bias"));
      blk.norm2_w = get(b + "norm2.weight");
      blk.norm2_b = get(b + "norm2.bias");
      blk.fc1 = LinearF32(get(b + "mlp.fc1.weight"), get(b + "mlp.fc1.bias"));
      blk.fc2 = LinearF32(get(b + "mlp.fc2.weight"), get(b + "mlp.fc2.bias"));
      blocks_.push_back(std::move(blk));
    }
    norm_w_ = get("norm.weight");
    norm_b_ = get("norm.bias");
    head_ = LinearF32(get("head.weight"), get("head.bias"));
  }

  Tensor forward(const Tensor& images) override {
    const ModelConfig& c = cfg_;
    if (images.ndim() != 4 || images.dim(1) != c.in_chans || images.dim(2) != c.img_size ||
        images.dim(3) != c.img_size)
      fail("vit", "{}: input has shape {}, expected [B,{},{},{}]", c.name,
           shape_str(images.shape()), c.in_chans, c.img_size, c.img_size);
    const int64_t B = images.dim(0), D = c.dim, P = c.patch;
    const int64_t grid = c.img_size / P, np = grid * grid, N = np + 1;
    const int64_t hidden = int64_t(c.mlp_ratio) * D, H = c.heads, Dh = D / H;
    ensure_workspace(B);
    float* x = x_.f32();
    float* h = h_.f32();

    // Patch embedding: a stride-P conv = non-overlapping patches times the flattened kernel.
    im2patch_f32(images.f32(), patches_.f32(), B, c.in_chans, c.img_size, c.img_size, P);
    patch_embed_.forward(patches_.f32(), h, B * np);
    const float* cls = cls_token_.f32();
    const float* pos = pos_embed_.f32();
    parallel_for(B * N, 64, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t b = r / N, t = r % N;
        const float* src = t == 0 ? cls : h + (b * np + t - 1) * D;
        float* dst = x + r * D;
        for (int64_t d = 0; d < D; ++d) dst[d] = src[d] + pos[t * D + d];
      }
    });

    const float scale = 1.0f / std::sqrt(static_cast<float>(Dh));
    for (size_t i = 0; i < blocks_.size(); ++i) {
      const Block& blk = blocks_[i];
      layernorm_f32(x, blk.norm1_w.f32(), blk.norm1_b.f32(), h, B * N, D, c.ln_eps);
      blk.qkv.forward(h, qkv_.f32(), B * N);
      attention_f32(qkv_.f32(), attn_.f32(), B, N, H, Dh, scale, nullptr, nullptr, 0);
      blk.proj.forward(attn_.f32(), h, B * N);
      add_f32(x, h, x, B * N * D);
      layernorm_f32(x, blk.norm2_w.f32(), blk.norm2_b.f32(), h, B * N, D, c.ln_eps);
      blk.fc1.forward(h, mlp_.f32(), B * N);
      gelu_f32(mlp_.f32(), mlp_.f32(), B * N * hidden);
      blk.fc2.forward(mlp_.f32(), h, B * N);
      add_f32(x, h, x, B * N * D);
      tap("blocks." + std::to_string(i), x, {B, N, D});
    }

    // Final norm and head on the class token only (LayerNorm is per token).
    for (int64_t b = 0; b < B; ++b) std::memcpy(h + b * D, x + b * N * D, D * sizeof(float));
    layernorm_f32(h, norm_w_.f32(), norm_b_.f32(), h, B, D, c.ln_eps);
    Tensor logits({B, c.num_classes});
    head_.forward(h, logits.f32(), B);
    return logits;
  }

 private:
  struct Block {
    Tensor norm1_w, norm1_b, norm2_w, norm2_b;
    LinearF32 qkv, proj, fc1, fc2;
  };

  void ensure_workspace(int64_t B) {
    if (B <= ws_batch_) return;
    const ModelConfig& c = cfg_;
    const int64_t D = c.dim, P = c.patch, np = (c.img_size / P) * (c.img_size / P), N = np + 1;
    patches_ = Tensor({B * np, int64_t(c.in_chans) * P * P});
    x_ = Tensor({B * N, D});
    h_ = Tensor({B * N, D});
    qkv_ = Tensor({B * N, 3 * D});
    attn_ = Tensor({B * N, D});
    mlp_ = Tensor({B * N, int64_t(c.mlp_ratio) * D});
    ws_batch_ = B;
  }

  LinearF32 patch_embed_, head_;
  Tensor cls_token_, pos_embed_, norm_w_, norm_b_;
  std::vector<Block> blocks_;
  int64_t ws_batch_ = 0;
  Tensor patches_, x_, h_, qkv_, attn_, mlp_;
};

}  // namespace

std::unique_ptr<Model> create_vit(const ModelConfig& cfg, const WeightFile& weights) {
  return std::make_unique<VitModel>(cfg, weights);
}

}  // namespace qvit
