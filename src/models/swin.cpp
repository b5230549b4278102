// Swin Transformer v1 (timm SwinTransformer, current key layout): 4x4 patch embedding with
// LayerNorm, four stages of window-attention blocks (odd blocks use cyclically shifted windows),
// patch merging at the start of stages 1..3, final LayerNorm, mean over tokens and the
// classifier. Covers swin_{tiny,small,base}_patch4_window7_224. Checkpoints in the older timm /
// Microsoft layout (merging at the end of a stage, persistent index and mask buffers) are renamed
// to the current layout by swin_normalize_weights, which also validates the buffers.
//
// Quantization points follow FQ-ViT's swin_quant.py (qvit names; FQ-ViT module in brackets):
//   embed.input [qact_input], patch_embed.norm.in [patch_embed.qact_before_norm: per tensor, not
//   PTF], patch_embed.norm.out [patch_embed.qact; also the input quantizer of the first block's
//   norm1, so layers.0.blocks.0 has no norm1.in];
//   per block layers.{i}.blocks.{j}.: norm1.in [previous qact4 / PatchMerging.qact2, PTF],
//   norm1.out [qact1], attn.qkv, attn.scores [qact_attn1], attn.table [qact_table],
//   attn.logits [attn.qact2, LIS input scale; the -100 shift mask is added after it],
//   attn.softmax (none with LIS), attn.context [qact3], attn.proj [qact4], norm2.in [qact2, PTF],
//   norm2.out [qact3], mlp.gelu [mlp.qact1], mlp.fc2 [mlp.qact2], then the residual point [qact4,
//   PTF] named after the LayerNorm it feeds: the next norm1.in, layers.{i+1}.downsample.norm.in
//   or norm.in;
//   patch merging layers.{i}.downsample.: norm.in (the previous stage's last residual point, C
//   channels; its parameters tiled 4x in concatenation order for the 4C LayerNorm), norm.out
//   [qact1], then layers.{i}.blocks.0.norm1.in [qact2, PTF];
//   norm.in, norm.out [qact2], avgpool [qact3], head.out [act_out];
//   weights: NAME.weight of every Linear (patch_embed.proj, attn.qkv/proj, mlp.fc1/fc2,
//   downsample.reduction, head.fc), int8 per output channel.
// With --ptf every LayerNorm is FQ-ViT's integer LayerNorm while simulating, also the two whose
// input quantizer is per tensor (patch_embed.norm, layers.0.blocks.0.norm1), as in FQ-ViT.
// Without an active session the forward is the plain FP32 path with fused attention.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <string_view>

#include "models/family.h"
#include "models/qlinear.h"
#include "models/swin_attention.h"
#include "qvit/error.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"
#include "qvit/quant.h"

namespace qvit {

namespace {

// Shape of one stage. timm and torchvision use a window that covers the whole map when the map is
// not larger than the configured window, and then do not shift it.
struct StageGeometry {
  int64_t dim = 0, heads = 0, res = 0, window = 0, shift = 0;
  int64_t tokens() const { return res * res; }
  int64_t window_tokens() const { return window * window; }
  int64_t windows() const { return (res / window) * (res / window); }
};

int num_stages(const ModelConfig& c) {
  return static_cast<int>(c.depths.size());
}

StageGeometry stage_geometry(const ModelConfig& c, int i) {
  const int stages = num_stages(c);
  if (stages == 0 || c.stage_heads.size() != c.depths.size())
    fail("swin", "{}: depths and stage_heads must be non-empty and of equal length", c.name);
  const int64_t grid = c.img_size / c.patch;
  if (c.img_size % c.patch != 0 || grid % (int64_t(1) << (stages - 1)) != 0)
    fail("swin", "{}: image size {} does not give a patch grid divisible by {}", c.name, c.img_size,
         int64_t(c.patch) << (stages - 1));
  StageGeometry g;
  g.dim = int64_t(c.dim) << i;
  g.heads = c.stage_heads[i];
  g.res = grid >> i;
  g.window = std::min<int64_t>(c.window, g.res);
  g.shift = g.res <= c.window ? 0 : c.window / 2;
  if (g.res % g.window != 0 || g.heads <= 0 || g.dim % g.heads != 0)
    fail("swin", "{}: stage {} ({}x{} tokens, dim {}, {} heads) does not fit window {}", c.name, i,
         g.res, g.res, g.dim, g.heads, g.window);
  return g;
}

// Index into the relative position bias table for every (query, key) pair of a ws x ws window,
// row-major [N, N] (the relative_position_index buffer of timm, torchvision and Microsoft).
std::vector<int64_t> relative_position_index(int64_t ws) {
  const int64_t N = ws * ws;
  std::vector<int64_t> idx(N * N);
  for (int64_t p = 0; p < N; ++p)
    for (int64_t q = 0; q < N; ++q)
      idx[p * N + q] = (p / ws - q / ws + ws - 1) * (2 * ws - 1) + (p % ws - q % ws + ws - 1);
  return idx;
}

// Mask [windows, N, N] of the shifted-window attention: after the cyclic shift a window may hold
// tokens of up to 3x3 regions that were not neighbours; pairs from different regions get -100.
Tensor shifted_window_mask(const StageGeometry& g) {
  const int64_t N = g.window_tokens(), per_row = g.res / g.window;
  auto region = [&](int64_t y) { return y < g.res - g.window ? 0 : y < g.res - g.shift ? 1 : 2; };
  Tensor mask({g.windows(), N, N});
  std::vector<int> label(N);
  for (int64_t w = 0; w < g.windows(); ++w) {
    for (int64_t p = 0; p < N; ++p) {
      const int64_t y = (w / per_row) * g.window + p / g.window;
      const int64_t x = (w % per_row) * g.window + p % g.window;
      label[p] = region(y) * 3 + region(x);
    }
    float* m = mask.f32() + w * N * N;
    for (int64_t p = 0; p < N; ++p)
      for (int64_t q = 0; q < N; ++q) m[p * N + q] = label[p] == label[q] ? 0.0f : -100.0f;
  }
  return mask;
}

// For every token in window order (window-major, then row-major inside the window) the token of
// the image it comes from after torch.roll(x, -shift): window partition and cyclic shift as one
// permutation, used as a gather before attention and as a scatter after it.
std::vector<int32_t> window_order(const StageGeometry& g, int64_t shift) {
  const int64_t N = g.window_tokens(), per_row = g.res / g.window;
  std::vector<int32_t> order(g.tokens());
  for (int64_t r = 0; r < g.tokens(); ++r) {
    const int64_t w = r / N, p = r % N;
    const int64_t y = ((w / per_row) * g.window + p / g.window + shift) % g.res;
    const int64_t x = ((w % per_row) * g.window + p % g.window + shift) % g.res;
    order[r] = static_cast<int32_t>(y * g.res + x);
  }
  return order;
}

// Key parsing helpers: consume a decimal number (no leading zeros) or a fixed prefix from the
// front of s; false (s unchanged) when it is not there.
bool take_number(std::string_view& s, int* out) {
  size_t n = 0;
  int v = 0;
  while (n < s.size() && n < 6 && s[n] >= '0' && s[n] <= '9') v = v * 10 + (s[n++] - '0');
  if (n == 0 || (n > 1 && s[0] == '0') || (n < s.size() && s[n] >= '0' && s[n] <= '9'))
    return false;
  *out = v;
  s.remove_prefix(n);
  return true;
}

bool take_prefix(std::string_view& s, std::string_view prefix) {
  if (s.substr(0, prefix.size()) != prefix) return false;
  s.remove_prefix(prefix.size());
  return true;
}

// "layers.{i}.blocks.{j}.attn.relative_position_index" etc.: stage and block of a block key.
bool parse_block_key(std::string_view key, std::string_view suffix, int* stage, int* block) {
  return take_prefix(key, "layers.") && take_number(key, stage) && take_prefix(key, ".blocks.") &&
         take_number(key, block) && take_prefix(key, ".") && key == suffix;
}

// A stored relative_position_index buffer must equal the one computed here: a different buffer
// would mean a different bias layout that this engine would silently misread.
void check_index_buffer(const std::string& file, const std::string& key, const Tensor& t,
                        const StageGeometry& g) {
  const int64_t N = g.window_tokens();
  if (t.dtype() != DType::i64 && t.dtype() != DType::i32)
    fail("swin", "{}: tensor '{}' has dtype {}, expected an integer index", file, key,
         dtype_name(t.dtype()));
  if (t.shape() != Shape{N * N} && t.shape() != Shape{N, N})
    fail("swin", "{}: tensor '{}' has shape {}, expected [{},{}] for a {}x{} window", file, key,
         shape_str(t.shape()), N, N, g.window, g.window);
  const std::vector<int64_t> want = relative_position_index(g.window);
  for (int64_t i = 0; i < N * N; ++i) {
    const int64_t v = t.dtype() == DType::i64 ? t.data<int64_t>()[i] : t.data<int32_t>()[i];
    if (v != want[i])
      fail("swin",
           "{}: tensor '{}' is not the relative position index of a {}x{} window: "
           "element [{},{}] is {}, expected {}",
           file, key, g.window, g.window, i / N, i % N, v, want[i]);
  }
}

void check_mask_buffer(const std::string& file, const std::string& key, const Tensor& t,
                       const StageGeometry& g, bool shifted) {
  if (!shifted)
    fail("swin", "{}: tensor '{}' is an attention mask for a block without shifted windows", file,
         key);
  const Tensor want = shifted_window_mask(g);
  if (t.dtype() != DType::f32 || t.shape() != want.shape())
    fail("swin", "{}: tensor '{}' has {} {}, expected {} {}", file, key, dtype_name(t.dtype()),
         shape_str(t.shape()), dtype_name(DType::f32), shape_str(want.shape()));
  if (std::memcmp(t.raw(), want.raw(), want.nbytes()) != 0)
    fail("swin", "{}: tensor '{}' differs from the shifted-window mask computed for {}x{} tokens",
         file, key, g.res, g.res);
}

}  // namespace

std::vector<WeightSpec> swin_weight_specs(const ModelConfig& c) {
  const int64_t C0 = c.dim, P = c.patch;
  std::vector<WeightSpec> s = {
      {"patch_embed.proj.weight", {C0, c.in_chans, P, P}},
      {"patch_embed.proj.bias", {C0}},
      {"patch_embed.norm.weight", {C0}},
      {"patch_embed.norm.bias", {C0}},
  };
  for (int i = 0; i < num_stages(c); ++i) {
    const StageGeometry g = stage_geometry(c, i);
    const int64_t D = g.dim, hidden = int64_t(c.mlp_ratio) * D;
    const std::string l = "layers." + std::to_string(i) + ".";
    if (i > 0) {
      s.push_back({l + "downsample.norm.weight", {2 * D}});
      s.push_back({l + "downsample.norm.bias", {2 * D}});
      s.push_back({l + "downsample.reduction.weight", {D, 2 * D}});
    }
    for (int j = 0; j < c.depths[i]; ++j) {
      const std::string b = l + "blocks." + std::to_string(j) + ".";
      s.push_back({b + "norm1.weight", {D}});
      s.push_back({b + "norm1.bias", {D}});
      s.push_back({b + "attn.relative_position_bias_table",
                   {(2 * g.window - 1) * (2 * g.window - 1), g.heads}});
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
  }
  const int64_t C = stage_geometry(c, num_stages(c) - 1).dim;
  s.push_back({"norm.weight", {C}});
  s.push_back({"norm.bias", {C}});
  s.push_back({"head.fc.weight", {c.num_classes, C}});
  s.push_back({"head.fc.bias", {c.num_classes}});
  return s;
}

// Older timm (< 0.9) and the Microsoft release store the patch merging of stage i+1 at the end of
// stage i (layers.{i}.downsample.*), the classifier as head.* and the relative_position_index /
// attn_mask buffers; timm's checkpoint_filter_fn does the same renaming.
void swin_normalize_weights(const ModelConfig& cfg, WeightFile& weights) {
  const std::string file = weights.path.empty() ? std::string("<weights>") : weights.path;
  WeightMap& w = weights.tensors;
  int stage = 0, block = 0;
  for (auto it = w.begin(); it != w.end();) {
    const bool is_index =
        parse_block_key(it->first, "attn.relative_position_index", &stage, &block);
    const bool is_mask = !is_index && parse_block_key(it->first, "attn_mask", &stage, &block);
    if ((!is_index && !is_mask) || stage >= num_stages(cfg) || block >= cfg.depths[stage]) {
      ++it;  // not a buffer of this model: check_weights reports it
      continue;
    }
    const StageGeometry g = stage_geometry(cfg, stage);
    if (is_index)
      check_index_buffer(file, it->first, it->second, g);
    else
      check_mask_buffer(file, it->first, it->second, g, block % 2 == 1 && g.shift > 0);
    it = w.erase(it);
  }

  // The current layout never has a merge in stage 0, the older one always has.
  const bool merge_at_end = std::any_of(w.begin(), w.end(), [](const auto& kv) {
    return kv.first.rfind("layers.0.downsample.", 0) == 0;
  });
  WeightMap renamed;
  for (auto& [key, t] : w) {
    std::string name = key;
    std::string_view rest = key;
    int i = 0;
    if (merge_at_end && take_prefix(rest, "layers.") && take_number(rest, &i) &&
        take_prefix(rest, ".downsample.")) {
      if (i + 1 >= num_stages(cfg))
        fail("swin",
             "{}: tensor '{}' belongs to the current Swin key layout, but the file also has "
             "'layers.0.downsample.*' of the older one",
             file, key);
      name = "layers." + std::to_string(i + 1) + ".downsample." + std::string(rest);
    } else if ((key == "head.weight" || key == "head.bias") && !w.count("head.fc." + key.substr(5)))
      name = "head.fc." + key.substr(5);
    if (!renamed.emplace(name, std::move(t)).second)
      fail("swin", "{}: tensor '{}' is present in both the old and the current Swin key layout",
           file, name);
  }
  w = std::move(renamed);
}

namespace {

struct Norm {
  std::string name;  // e.g. "layers.0.blocks.1.norm1"; output point NAME.out
  Tensor gamma, beta;
};

// Parameters of a C-channel point repeated `times` times along the channels, for a LayerNorm over
// the concatenation of `times` tensors that all passed through that point (FQ-ViT's
// in_scale_expand in PatchMerging: channel k * C + c gets the parameters of channel c).
QuantParams tile_channels(const QuantParams& p, int times) {
  QuantParams t = p;
  auto tile = [times](auto& v) {
    if (v.size() <= 1) return;  // per tensor (or the shared PTF zero point)
    const auto one = v;
    for (int k = 1; k < times; ++k) v.insert(v.end(), one.begin(), one.end());
  };
  tile(t.scale);
  tile(t.zero_point);
  tile(t.alpha);
  return t;
}

// Cyclic shift + window partition as one gather: dst row r (batch-major windows, so attention
// batch index b * windows + w gives mask[w]) = src token order[r % L] of image r / L.
void gather_windows(const float* src, float* dst, const int32_t* order, int64_t rows, int64_t L,
                    int64_t C) {
  parallel_for(rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      std::memcpy(dst + r * C, src + ((r / L) * L + order[r % L]) * C, C * sizeof(float));
  });
}

// Window reverse + reverse shift + residual as one scatter-add (order is a permutation).
void scatter_add_windows(const float* src, float* dst, const int32_t* order, int64_t rows,
                         int64_t L, int64_t C) {
  parallel_for(rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* d = dst + ((r / L) * L + order[r % L]) * C;
      const float* s = src + r * C;
      for (int64_t c = 0; c < C; ++c) d[c] += s[c];
    }
  });
}

class SwinModel final : public Model {
 public:
  SwinModel(const ModelConfig& cfg, const WeightFile& wf) : Model(cfg) {
    auto get = [&](const std::string& n) -> const Tensor& {
      auto it = wf.tensors.find(n);
      if (it == wf.tensors.end()) fail("swin", "{}: missing tensor '{}'", wf.path, n);
      return it->second;
    };
    auto linear = [&](const std::string& n, bool has_bias) {
      return QLinear{n, get(n + ".weight"), has_bias ? get(n + ".bias") : Tensor(), {}, {}, {}};
    };
    auto norm = [&](const std::string& n) { return Norm{n, get(n + ".weight"), get(n + ".bias")}; };
    const int64_t C0 = cfg.dim, P = cfg.patch;
    patch_embed_ =
        QLinear{"patch_embed.proj",
                get("patch_embed.proj.weight").reshaped({C0, int64_t(cfg.in_chans) * P * P}),
                get("patch_embed.proj.bias"),
                {}, {}, {}};
    patch_norm_ = norm("patch_embed.norm");
    for (int i = 0; i < num_stages(cfg); ++i) {
      Stage st;
      st.g = stage_geometry(cfg, i);
      const std::string l = "layers." + std::to_string(i) + ".";
      if (i > 0) {
        st.merge_norm = norm(l + "downsample.norm");
        st.merge = linear(l + "downsample.reduction", false);
      }
      st.order[0] = window_order(st.g, 0);
      if (st.g.shift > 0) {
        st.order[1] = window_order(st.g, st.g.shift);
        st.mask = shifted_window_mask(st.g);
      }
      st.index = relative_position_index(st.g.window);
      for (int j = 0; j < cfg.depths[i]; ++j) {
        const std::string b = l + "blocks." + std::to_string(j) + ".";
        Block blk;
        blk.prefix = b;
        blk.shifted = j % 2 == 1 && st.g.shift > 0;
        blk.norm1 = norm(b + "norm1");
        blk.table = get(b + "attn.relative_position_bias_table");
        blk.rel_bias = gather_bias(blk.table, st.index, st.g);
        blk.qkv = linear(b + "attn.qkv", true);
        blk.proj = linear(b + "attn.proj", true);
        blk.norm2 = norm(b + "norm2");
        blk.fc1 = linear(b + "mlp.fc1", true);
        blk.fc2 = linear(b + "mlp.fc2", true);
        st.blocks.push_back(std::move(blk));
      }
      stages_.push_back(std::move(st));
    }
    norm_ = norm("norm");
    head_ = linear("head.fc", true);
  }

  Tensor forward(const Tensor& images) override {
    const ModelConfig& c = cfg_;
    if (images.ndim() != 4 || images.dim(1) != c.in_chans || images.dim(2) != c.img_size ||
        images.dim(3) != c.img_size)
      fail("swin", "{}: input has shape {}, expected [B,{},{},{}]", c.name,
           shape_str(images.shape()), c.in_chans, c.img_size, c.img_size);
    sync_quant();
    const int64_t B = images.dim(0);
    const bool quant = quant_active();
    ensure_workspace(B, quant);
    float* x = x_.f32();

    // Patch embedding: a stride-4 conv = non-overlapping patches times the flattened kernel.
    const StageGeometry& g0 = stages_[0].g;
    const int64_t T0 = B * g0.tokens();
    im2patch_f32(images.f32(), patches_.f32(), B, c.in_chans, c.img_size, c.img_size, c.patch);
    if (quant && quantizes_input())  // per tensor, so the patch layout does not matter
      qpoint("embed.input", QPointRole::activation, patches_.f32(), T0, patches_.dim(1));
    patch_embed_.op.forward(patches_.f32(), x, T0);
    // Quantized: the point x last passed through, whose parameters the next LayerNorm uses.
    std::string in_point;
    if (quant) {
      // FQ-ViT's qact_before_norm: per tensor with the configured observer, never PTF.
      in_point = patch_norm_.name + ".in";
      qpoint(in_point, QPointRole::activation, x, T0, g0.dim);
      layer_norm(patch_norm_, in_point, x, x, T0, g0.dim);
      in_point = patch_norm_.name + ".out";  // also the first block's norm1 input quantizer
    } else {
      layernorm_f32(x, patch_norm_.gamma.f32(), patch_norm_.beta.f32(), x, T0, g0.dim, c.ln_eps);
    }

    for (size_t i = 0; i < stages_.size(); ++i) {
      const Stage& st = stages_[i];
      if (!quant) {
        if (i > 0) merge_patches(st, B);
        for (const Block& blk : st.blocks) run_block(st, blk, B);
      } else {
        if (i > 0) in_point = merge_patches_quant(st, B, in_point);
        for (size_t j = 0; j < st.blocks.size(); ++j) {
          // The residual stream after the block is quantized (PTF) for the LayerNorm it feeds.
          const std::string next = j + 1 < st.blocks.size() ? st.blocks[j + 1].norm1.name + ".in"
                                   : i + 1 < stages_.size() ? stages_[i + 1].merge_norm.name + ".in"
                                                            : norm_.name + ".in";
          run_block_quant(st, st.blocks[j], B, in_point, next);
          in_point = next;
        }
      }
      tap("layers." + std::to_string(i), x, {B, st.g.res, st.g.res, st.g.dim});
    }

    // Final norm (per token), mean over the tokens, classifier.
    const StageGeometry& gl = stages_.back().g;
    const int64_t L = gl.tokens(), C = gl.dim;
    if (quant)
      layer_norm(norm_, in_point, x, x, B * L, C);
    else
      layernorm_f32(x, norm_.gamma.f32(), norm_.beta.f32(), x, B * L, C, c.ln_eps);
    float* pooled = h_.f32();
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t d = 0; d < C; ++d) {
        double sum = 0;
        for (int64_t t = 0; t < L; ++t) sum += x[(b * L + t) * C + d];
        pooled[b * C + d] = static_cast<float>(sum / double(L));
      }
    }
    if (quant) qpoint("avgpool", QPointRole::activation, pooled, B, C);
    Tensor logits({B, c.num_classes});
    head_.op.forward(pooled, logits.f32(), B);
    if (quant) qpoint("head.out", QPointRole::activation, logits.f32(), B, c.num_classes);
    return logits;
  }

 private:
  struct Block {
    std::string prefix;  // "layers.{i}.blocks.{j}."
    Norm norm1, norm2;
    Tensor table;     // relative_position_bias_table [(2w-1)^2, heads] (quantized path)
    Tensor rel_bias;  // [heads, N, N], gathered from the table once (FP32 path)
    QLinear qkv, proj, fc1, fc2;
    bool shifted = false;
  };
  struct Stage {
    StageGeometry g;
    Norm merge_norm;  // stages > 0: patch merging at the start of the stage
    QLinear merge;
    std::vector<int32_t> order[2];  // window order without / with the cyclic shift
    Tensor mask;                    // [windows, N, N] for shifted blocks
    std::vector<int64_t> index;     // relative position index [N * N]
    std::vector<Block> blocks;
  };

  static Tensor gather_bias(const Tensor& table, const std::vector<int64_t>& index,
                            const StageGeometry& g) {
    const int64_t NN = g.window_tokens() * g.window_tokens(), H = g.heads;
    Tensor bias({H, NN});
    for (int64_t h = 0; h < H; ++h)
      for (int64_t p = 0; p < NN; ++p) bias.f32()[h * NN + p] = table.f32()[index[p] * H + h];
    return bias;
  }

  void prepare_weights() override {
    patch_embed_.prepare(quant_);
    for (Stage& st : stages_) {
      if (!st.merge.weight.empty()) st.merge.prepare(quant_);
      for (Block& b : st.blocks)
        for (QLinear* l : {&b.qkv, &b.proj, &b.fc1, &b.fc2}) l->prepare(quant_);
    }
    head_.prepare(quant_);
  }

  // x [B, 2R, 2R, C/2] -> h [B, R, R, 2C]: concatenates the 2x2 neighbours in timm's (and
  // FQ-ViT's) order (0,0), (1,0), (0,1), (1,1) as (row, column) offsets.
  void concat_neighbours(const Stage& st, int64_t B) {
    const int64_t R = st.g.res, Cin = st.g.dim / 2, Rin = 2 * R, L = R * R;
    const float* x = x_.f32();
    float* h = h_.f32();
    parallel_for(B * L, 64, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t b = r / L, i = (r % L) / R, j = r % R;
        for (int64_t q = 0; q < 4; ++q) {
          const float* src = x + (b * Rin * Rin + (2 * i + (q & 1)) * Rin + 2 * j + (q >> 1)) * Cin;
          std::memcpy(h + (r * 4 + q) * Cin, src, Cin * sizeof(float));
        }
      }
    });
  }

  // Patch merging: concatenation, LayerNorm(2C), Linear 2C -> C (no bias).
  void merge_patches(const Stage& st, int64_t B) {
    const int64_t L = st.g.tokens();
    concat_neighbours(st, B);
    float* h = h_.f32();
    layernorm_f32(h, st.merge_norm.gamma.f32(), st.merge_norm.beta.f32(), h, B * L, 2 * st.g.dim,
                  cfg_.ln_eps);
    st.merge.op.forward(h, x_.f32(), B * L);
  }

  void run_block(const Stage& st, const Block& blk, int64_t B) {
    const StageGeometry& g = st.g;
    const int64_t L = g.tokens(), C = g.dim, rows = B * L;
    const int32_t* order = st.order[blk.shifted ? 1 : 0].data();
    float* x = x_.f32();
    float* h = h_.f32();
    // LayerNorm is per token and can follow the gather.
    gather_windows(x, h, order, rows, L, C);
    layernorm_f32(h, blk.norm1.gamma.f32(), blk.norm1.beta.f32(), h, rows, C, cfg_.ln_eps);
    blk.qkv.op.forward(h, qkv_.f32(), rows);
    const int64_t head_dim = C / g.heads;
    attention_f32(qkv_.f32(), attn_.f32(), B * g.windows(), g.window_tokens(), g.heads, head_dim,
                  1.0f / std::sqrt(static_cast<float>(head_dim)), blk.rel_bias.f32(),
                  blk.shifted ? st.mask.f32() : nullptr, blk.shifted ? g.windows() : 0);
    blk.proj.op.forward(attn_.f32(), h, rows);
    scatter_add_windows(h, x, order, rows, L, C);
    layernorm_f32(x, blk.norm2.gamma.f32(), blk.norm2.beta.f32(), h, rows, C, cfg_.ln_eps);
    blk.fc1.op.forward(h, mlp_.f32(), rows);
    gelu_f32(mlp_.f32(), mlp_.f32(), rows * int64_t(cfg_.mlp_ratio) * C);
    blk.fc2.op.forward(mlp_.f32(), h, rows);
    add_f32(x, h, x, rows * C);
  }

  // ---- Quantized path (a session in calibrate or simulate mode) -------------------------------

  // LayerNorm whose input `in` has passed through the point `in_point` (FQ-ViT's in_quantizer),
  // with the output point NAME.out. While simulating with PTF, FQ-ViT's integer LayerNorm
  // (QIntLayerNorm "int" mode, used for every LayerNorm once --ptf is on) replaces the float one;
  // its input scales are those of in_point: per channel for the residual-stream (PTF) points, one
  // per-tensor scale for the patch-embedding ones (then x / s are the codes q - z, and the shift
  // to the smallest scale is 1). `tile` > 1: `in` is a concatenation of `tile` tensors that each
  // passed through in_point (patch merging), whose parameters are repeated accordingly.
  void layer_norm(const Norm& ln, const std::string& in_point, const float* in, float* out,
                  int64_t rows, int64_t C, int tile = 1) {
    if (simulating() && quant_->config().ptf) {
      const QuantParams& p = quant_->params(in_point);
      const float s_out = quant_->params(ln.name + ".out").scale[0];
      if (tile == 1)
        int_layernorm_ptf(in, out, rows, C, p, ln.gamma.f32(), ln.beta.f32(), s_out);
      else
        int_layernorm_ptf(in, out, rows, C, tile_channels(p, tile), ln.gamma.f32(), ln.beta.f32(),
                          s_out);
    } else {
      layernorm_f32(in, ln.gamma.f32(), ln.beta.f32(), out, rows, C, cfg_.ln_eps);
    }
    qpoint(ln.name + ".out", QPointRole::activation, out, rows, C);
  }

  // Patch merging, quantized. x has passed through `in_point` (the previous stage's last residual
  // point, PTF over C/2 channels); the LayerNorm over 2C = 4 x C/2 channels reuses it tiled 4x.
  // Returns the output point (FQ-ViT's PatchMerging.qact2, PTF), named after the LayerNorm it
  // feeds: the stage's first norm1.
  std::string merge_patches_quant(const Stage& st, int64_t B, const std::string& in_point) {
    const int64_t L = st.g.tokens();
    concat_neighbours(st, B);
    float* h = h_.f32();
    layer_norm(st.merge_norm, in_point, h, h, B * L, 2 * st.g.dim, 4);
    st.merge.op.forward(h, x_.f32(), B * L);
    const std::string out = st.blocks.front().norm1.name + ".in";
    qpoint(out, QPointRole::ln_input, x_.f32(), B * L, st.g.dim);
    return out;
  }

  // One block, quantized, in FQ-ViT's order: x (raster order) has passed through in_point; norm1
  // and its output point run on the token map before the shift and window partition (as in
  // FQ-ViT); window attention (swin_attention.cpp); proj; residual -> norm2.in (PTF); norm2;
  // fc1, GELU -> mlp.gelu; fc2 -> mlp.fc2; residual -> out_point (PTF, named after the LayerNorm
  // it feeds).
  void run_block_quant(const Stage& st, const Block& blk, int64_t B, const std::string& in_point,
                       const std::string& out_point) {
    const StageGeometry& g = st.g;
    const int64_t L = g.tokens(), C = g.dim, rows = B * L, hidden = int64_t(cfg_.mlp_ratio) * C;
    const int32_t* order = st.order[blk.shifted ? 1 : 0].data();
    float* x = x_.f32();
    float* h = h_.f32();
    float* a = attn_.f32();
    layer_norm(blk.norm1, in_point, x, a, rows, C);
    gather_windows(a, h, order, rows, L, C);
    blk.qkv.op.forward(h, qkv_.f32(), rows);
    SwinAttentionArgs args;
    args.batch_windows = B * g.windows();
    args.windows = g.windows();
    args.tokens = g.window_tokens();
    args.heads = g.heads;
    args.head_dim = C / g.heads;
    args.table = blk.table.f32();
    args.table_rows = blk.table.dim(0);
    args.index = st.index.data();
    args.mask = blk.shifted ? st.mask.f32() : nullptr;
    swin_window_attention_quant(*quant_, blk.prefix + "attn.", args, qkv_.f32(), scores_.f32(), a);
    blk.proj.op.forward(a, h, rows);
    qpoint(blk.prefix + "attn.proj", QPointRole::activation, h, rows, C);
    scatter_add_windows(h, x, order, rows, L, C);
    const std::string norm2_in = blk.norm2.name + ".in";
    qpoint(norm2_in, QPointRole::ln_input, x, rows, C);
    layer_norm(blk.norm2, norm2_in, x, h, rows, C);
    blk.fc1.op.forward(h, mlp_.f32(), rows);
    gelu_f32(mlp_.f32(), mlp_.f32(), rows * hidden);
    qpoint(blk.prefix + "mlp.gelu", QPointRole::activation, mlp_.f32(), rows, hidden);
    blk.fc2.op.forward(mlp_.f32(), h, rows);
    qpoint(blk.prefix + "mlp.fc2", QPointRole::activation, h, rows, C);
    add_f32(x, h, x, rows * C);
    qpoint(out_point, QPointRole::ln_input, x, rows, C);
  }

  void ensure_workspace(int64_t B, bool quant) {
    const ModelConfig& c = cfg_;
    if (B > ws_batch_) {
      int64_t act = 0;  // largest tokens x channels; patch merging keeps tokens x channels / 2
      for (const Stage& st : stages_) act = std::max(act, st.g.tokens() * st.g.dim);
      const int64_t P = c.patch;
      patches_ = Tensor({B * stages_[0].g.tokens(), int64_t(c.in_chans) * P * P});
      x_ = Tensor({B * act});
      h_ = Tensor({B * act});
      qkv_ = Tensor({B * 3 * act});
      attn_ = Tensor({B * act});
      mlp_ = Tensor({B * int64_t(c.mlp_ratio) * act});
      scores_ = Tensor();
      ws_batch_ = B;
    }
    if (quant && scores_.empty()) {  // attention probabilities [B * windows, heads, N, N]
      int64_t s = 0;
      for (const Stage& st : stages_)
        s = std::max(s, st.g.windows() * st.g.heads * st.g.window_tokens() * st.g.window_tokens());
      scores_ = Tensor({ws_batch_ * s});
    }
  }

  QLinear patch_embed_, head_;
  Norm patch_norm_, norm_;
  std::vector<Stage> stages_;
  int64_t ws_batch_ = 0;
  Tensor patches_, x_, h_, qkv_, attn_, mlp_, scores_;
};

}  // namespace

std::unique_ptr<Model> create_swin(const ModelConfig& cfg, const WeightFile& weights) {
  return std::make_unique<SwinModel>(cfg, weights);
}

}  // namespace qvit
