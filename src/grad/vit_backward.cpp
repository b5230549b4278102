// Model-level backward of ViT/DeiT (timm VisionTransformer, class-token head): an FP32 forward
// that keeps each block's activations (same kernels as src/models/vit.cpp, attention in the
// split form so the probabilities exist), the summed cross-entropy, and the backward through
// head, final norm, and every block (two pre-norm residual sub-blocks), recording dL/dY of the
// outputs the caller names. Memory: per block ~ B T (10 D + H T) floats are kept.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "qvit/error.h"
#include "qvit/grad.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"

namespace qvit {

namespace {

struct BlockActs {
  Tensor x_in, ln1, qkv, probs, ctx, x_mid, ln2, fc1;
};

const Tensor& get(const WeightMap& w, const std::string& n) {
  auto it = w.find(n);
  if (it == w.end()) fail("grad", "missing tensor '{}'", n);
  return it->second;
}

}  // namespace

WeightMap output_gradients(const ModelConfig& cfg, const WeightMap& weights, const Tensor& images,
                           const std::vector<std::string>& names, const std::vector<int>& labels) {
  if (cfg.family != "vit") fail("grad", "output gradients are not supported for {} (family {}); only ViT/DeiT", cfg.name, cfg.family);
  const int64_t B = images.dim(0), D = cfg.dim, H = cfg.heads, Dh = D / H, P = cfg.patch;
  const int64_t side = cfg.img_size / P, np = side * side, T = np + 1, hidden = int64_t(cfg.mlp_ratio) * D;
  const int64_t classes = cfg.num_classes, R = B * T;
  if (images.ndim() != 4 || images.dim(1) != cfg.in_chans || images.dim(2) != cfg.img_size || images.dim(3) != cfg.img_size) {
    fail("grad", "images have shape {}, expected [B,{},{},{}]", shape_str(images.shape()), cfg.in_chans, cfg.img_size, cfg.img_size);
  }
  if (!labels.empty() && static_cast<int64_t>(labels.size()) != B) fail("grad", "{} labels for {} images", labels.size(), B);
  std::set<std::string> known = {"head", "logits", "patch_embed"};
  for (int i = 0; i < cfg.depth; ++i) {
    const std::string b = "blocks." + std::to_string(i);
    for (const char* s : {"", ".attn.qkv", ".attn.matmul1", ".attn.matmul2", ".attn.proj", ".mlp.fc1", ".mlp.fc2"}) known.insert(b + s);
  }
  std::set<std::string> want;
  for (const std::string& n : names) {
    if (!known.count(n)) fail("grad", "unknown output '{}' (known: patch_embed, blocks.N, blocks.N.attn.qkv|matmul1|matmul2|proj, blocks.N.mlp.fc1|fc2, head, logits)", n);
    want.insert(n);
  }
  WeightMap out;
  auto record = [&](const std::string& n, const float* g, Shape shape) {
    if (!want.count(n)) return;
    Tensor t(std::move(shape));
    std::memcpy(t.f32(), g, static_cast<size_t>(t.numel()) * sizeof(float));
    out[n] = std::move(t);
  };
  auto lin = [&](const std::string& n, Shape wshape = {}) {
    const Tensor& w = get(weights, n + ".weight");
    return LinearF32(wshape.empty() ? w : w.reshaped(wshape), get(weights, n + ".bias"));
  };
  const float eps = cfg.ln_eps, scale = 1.0f / std::sqrt(static_cast<float>(Dh));

  // ---- forward ----
  Tensor patches({B * np, int64_t(cfg.in_chans) * P * P}), emb({B * np, D});
  im2patch_f32(images.f32(), patches.f32(), B, cfg.in_chans, cfg.img_size, cfg.img_size, P);
  lin("patch_embed.proj", {D, int64_t(cfg.in_chans) * P * P}).forward(patches.f32(), emb.f32(), B * np);
  Tensor x({R, D});
  const float* cls = get(weights, "cls_token").f32();
  const float* pos = get(weights, "pos_embed").f32();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const float* src = t == 0 ? cls : emb.f32() + (b * np + t - 1) * D;
      float* dst = x.f32() + (b * T + t) * D;
      for (int64_t c = 0; c < D; ++c) dst[c] = src[c] + pos[t * D + c];
    }
  std::vector<BlockActs> acts(static_cast<size_t>(cfg.depth));
  Tensor tmp({R, std::max(D, hidden)});
  for (int i = 0; i < cfg.depth; ++i) {
    const std::string bn = "blocks." + std::to_string(i) + ".";
    BlockActs& a = acts[i];
    a.x_in = x.clone();
    a.ln1 = Tensor({R, D});
    layernorm_f32(x.f32(), get(weights, bn + "norm1.weight").f32(), get(weights, bn + "norm1.bias").f32(), a.ln1.f32(), R, D, eps);
    a.qkv = Tensor({R, 3 * D});
    lin(bn + "attn.qkv").forward(a.ln1.f32(), a.qkv.f32(), R);
    a.probs = Tensor({B, H, T, T});
    attention_scores_f32(a.qkv.f32(), a.probs.f32(), B, T, H, Dh, scale);
    softmax_f32(a.probs.f32(), B * H * T, T);
    a.ctx = Tensor({R, D});
    attention_context_f32(a.probs.f32(), a.qkv.f32(), a.ctx.f32(), B, T, H, Dh);
    lin(bn + "attn.proj").forward(a.ctx.f32(), tmp.f32(), R);
    add_f32(x.f32(), tmp.f32(), x.f32(), R * D);
    a.x_mid = x.clone();
    a.ln2 = Tensor({R, D});
    layernorm_f32(x.f32(), get(weights, bn + "norm2.weight").f32(), get(weights, bn + "norm2.bias").f32(), a.ln2.f32(), R, D, eps);
    a.fc1 = Tensor({R, hidden});
    lin(bn + "mlp.fc1").forward(a.ln2.f32(), a.fc1.f32(), R);
    Tensor g({R, hidden});
    gelu_f32(a.fc1.f32(), g.f32(), R * hidden);
    lin(bn + "mlp.fc2").forward(g.f32(), tmp.f32(), R);
    add_f32(x.f32(), tmp.f32(), x.f32(), R * D);
  }
  // final norm on the class tokens only (the head reads nothing else)
  Tensor xcls({B, D}), ncls({B, D}), logits({B, classes});
  for (int64_t b = 0; b < B; ++b) std::memcpy(xcls.f32() + b * D, x.f32() + b * T * D, D * sizeof(float));
  layernorm_f32(xcls.f32(), get(weights, "norm.weight").f32(), get(weights, "norm.bias").f32(), ncls.f32(), B, D, eps);
  lin("head").forward(ncls.f32(), logits.f32(), B);
  record("logits", logits.f32(), {B, classes});

  // ---- loss: L = sum_b CE; dlogits = softmax - onehot ----
  Tensor g_logits({B, classes});
  for (int64_t b = 0; b < B; ++b) {
    const float* l = logits.f32() + b * classes;
    int label = labels.empty() ? static_cast<int>(std::max_element(l, l + classes) - l) : labels[b];
    if (label < 0 || label >= classes) fail("grad", "label {} out of range [0, {})", label, classes);
    const double mx = *std::max_element(l, l + classes);
    double z = 0;
    for (int64_t c = 0; c < classes; ++c) z += std::exp(l[c] - mx);
    for (int64_t c = 0; c < classes; ++c) g_logits.f32()[b * classes + c] = static_cast<float>(std::exp(l[c] - mx) / z - (c == label ? 1.0 : 0.0));
  }
  record("head", g_logits.f32(), {B, classes});

  // ---- backward ----
  Tensor g_ncls({B, D}), g_xcls({B, D});
  linear_backward_input(g_logits.f32(), get(weights, "head.weight").f32(), g_ncls.f32(), B, classes, D);
  layernorm_backward(g_ncls.f32(), xcls.f32(), get(weights, "norm.weight").f32(), g_xcls.f32(), B, D, eps);
  Tensor g_x({R, D});  // dL/d(current residual stream)
  std::memset(g_x.f32(), 0, static_cast<size_t>(R * D) * sizeof(float));
  for (int64_t b = 0; b < B; ++b) std::memcpy(g_x.f32() + b * T * D, g_xcls.f32() + b * D, D * sizeof(float));
  Tensor g_h({R, hidden}), g_d({R, D}), g_qkv({R, 3 * D}), g_s({B, H, T, T});
  for (int i = cfg.depth - 1; i >= 0; --i) {
    const std::string bn = "blocks." + std::to_string(i);
    const BlockActs& a = acts[i];
    record(bn, g_x.f32(), {B, T, D});
    // MLP sub-block: x_out = x_mid + fc2(gelu(fc1(ln2(x_mid))))
    record(bn + ".mlp.fc2", g_x.f32(), {B, T, D});
    linear_backward_input(g_x.f32(), get(weights, bn + ".mlp.fc2.weight").f32(), g_h.f32(), R, D, hidden);
    gelu_backward(g_h.f32(), a.fc1.f32(), g_h.f32(), R * hidden);
    record(bn + ".mlp.fc1", g_h.f32(), {B, T, hidden});
    linear_backward_input(g_h.f32(), get(weights, bn + ".mlp.fc1.weight").f32(), g_d.f32(), R, hidden, D);
    layernorm_backward(g_d.f32(), a.x_mid.f32(), get(weights, bn + ".norm2.weight").f32(), g_d.f32(), R, D, eps);
    add_f32(g_x.f32(), g_d.f32(), g_x.f32(), R * D);  // now dL/dx_mid
    // attention sub-block: x_mid = x_in + proj(attn(ln1(x_in)))
    record(bn + ".attn.proj", g_x.f32(), {B, T, D});
    linear_backward_input(g_x.f32(), get(weights, bn + ".attn.proj.weight").f32(), g_d.f32(), R, D, D);
    record(bn + ".attn.matmul2", g_d.f32(), {B, T, D});
    parallel_for(B * H, 1, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) {
        const int64_t b = j / H, h = j % H;
        const float* base = a.qkv.f32() + b * T * 3 * D;
        float* gbase = g_qkv.f32() + b * T * 3 * D;
        attention_backward_head(g_d.f32() + b * T * D + h * Dh, D, base + h * Dh, base + D + h * Dh,
                                base + 2 * D + h * Dh, 3 * D, a.probs.f32() + j * T * T, T, Dh, scale,
                                g_s.f32() + j * T * T, gbase + h * Dh, gbase + D + h * Dh, gbase + 2 * D + h * Dh);
      }
    });
    record(bn + ".attn.matmul1", g_s.f32(), {B, H, T, T});
    record(bn + ".attn.qkv", g_qkv.f32(), {B, T, 3 * D});
    linear_backward_input(g_qkv.f32(), get(weights, bn + ".attn.qkv.weight").f32(), g_d.f32(), R, 3 * D, D);
    layernorm_backward(g_d.f32(), a.x_in.f32(), get(weights, bn + ".norm1.weight").f32(), g_d.f32(), R, D, eps);
    add_f32(g_x.f32(), g_d.f32(), g_x.f32(), R * D);  // dL/dx_in = dL/d(previous block output)
  }
  if (want.count("patch_embed")) {  // tokens 1..T-1 of block 0's input (+ pos_embed is linear)
    Tensor g({B, np, D});
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(g.f32() + b * np * D, g_x.f32() + (b * T + 1) * D, static_cast<size_t>(np * D) * sizeof(float));
    out["patch_embed"] = std::move(g);
  }
  return out;
}

}  // namespace qvit
