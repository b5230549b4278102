// The search-based calibration of PTQ4ViT (base / ptq4vit) and our reading of APQ-ViT (apq),
// survey §1.9, §1.10, §2.1; every choice is an ApqConfig field (docs/quantization.md).
//
// For every layer, in forward order (patch embedding, blocks, head):
//   * initial intervals: absmax / (2^(k-1) - 0.5) of the weight (per group) and of the input;
//   * `rounds` rounds of: search the weight intervals (Linear) or operand A (matmul) with the
//     other operand fixed, then the input (Linear) or operand B (matmul); a round that changes
//     nothing ends the search early (the next would repeat it);
//   * a search tries the candidates (alpha + i (beta - alpha) / grid) x initial interval,
//     i = 0 .. grid-1 (every `stride`-th first, then the neighbours of the best), and keeps the
//     one with the highest score (ties: the first tried);
//   * scores (higher = better, apq_metric.h): cosine or hessian on the layer output against the
//     FP model's layer output; bbc on the output of the layer's block (or residual sub-block)
//     computed with the candidate inserted and the block's later layers in float.
// Grouped weights (qkv's three intervals, per-channel) pick each group's best candidate on the
// layer metrics (separable over output columns); under bbc qkv's groups are searched one after
// the other, per-channel weights inside blocks share one factor, and the patch embedding and
// head (no block around them) use the layer Hessian metric per group.
// Post-softmax: uniform (interval grid), twin (split 2^-e, e = 0..19), mpq (uniform steps
// factor x max/(2^k-1) plus the log2 quantizer, scored by the metric, or mpq_search's x^gamma
// objective with mpq_select = weighted).
// Refinement (bbc, `refine` = N > 0): after a block's first pass, N more passes search its six
// quantizers again in order, one round each, starting from the current values, with all the
// block's other quantizers on (the later ones included, float in the first pass). The current
// value is always a candidate, so no step lowers the block score (coordinate descent);
// `refine_window` W > 0 restricts a refinement search to the grid within +-W of the current value.
// Gradients g = dL/dY come from output_gradients (CE with pseudo-labels or labels).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

#include "apq/qsim.h"
#include "qvit/error.h"
#include "qvit/grad.h"
#include "qvit/kernels.h"
#include "qvit/parallel.h"

namespace qvit::apq {

namespace {

using namespace detail;
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

float factor(const ApqConfig& c, int i) {
  return c.alpha + static_cast<float>(i) * (c.beta - c.alpha) / static_cast<float>(c.grid);
}

float absmax(const float* x, int64_t n) {
  float m = 0.0f;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m > 0.0f ? m : 1e-8f;
}

float maxval(const float* x, int64_t n) {
  float m = 0.0f;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  return m > 0.0f ? m : 1e-8f;
}

// Candidate search over indices 0..n-1: every stride-th, then the neighbours (within stride) of
// each group's best, plus `always` (visited once). eval(i, scores) fills one score per group.
// With center >= 0 (a refinement pass): `always` first, then only center-window .. center+window.
std::vector<int> search(int n, int stride, int groups, const std::vector<int>& always,
                        const std::function<void(int, std::vector<double>&)>& eval, int center = -1,
                        int window = 0) {
  std::vector<double> best(static_cast<size_t>(groups), kNegInf), sc(static_cast<size_t>(groups));
  std::vector<int> arg(static_cast<size_t>(groups), -1);
  std::vector<char> done(static_cast<size_t>(n), 0);
  auto visit = [&](int i) {
    if (i < 0 || i >= n || done[i]) return;
    done[i] = 1;
    eval(i, sc);
    for (int g = 0; g < groups; ++g)
      if (!std::isnan(sc[g]) && (arg[g] < 0 || sc[g] > best[g])) best[g] = sc[g], arg[g] = i;
  };
  if (center >= 0) {
    for (int i : always) visit(i);
    for (int i = center - window; i <= center + window; ++i) visit(i);
    for (int& a : arg) a = std::max(a, 0);
    return arg;
  }
  for (int i = 0; i < n; i += stride) visit(i);
  for (int i : always) visit(i);
  if (stride > 1) {
    const std::vector<int> coarse = arg;
    for (int a : coarse)
      for (int j = a - stride + 1; j < a + stride; ++j) visit(j);
  }
  for (int& a : arg) a = std::max(a, 0);
  return arg;
}

// Layer metric per column group of O/Q [rows, N] (N split into `groups` equal ranges).
void layer_scores(MetricKind m, const float* o, const float* q, const float* g, int64_t rows, int64_t N,
                  int groups, std::vector<double>& out) {
  const int64_t per = N / groups;
  constexpr int64_t kRows = 256;
  const int64_t chunks = (rows + kRows - 1) / kRows;
  // partial sums per chunk and group: cosine (oq, oo, qq) / hessian (sum)
  std::vector<double> part(static_cast<size_t>(chunks * groups * 3), 0.0);
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double* p = part.data() + c * groups * 3;
      for (int64_t r = c * kRows; r < std::min(rows, (c + 1) * kRows); ++r)
        for (int gi = 0; gi < groups; ++gi) {
          double s0 = 0, s1 = 0, s2 = 0;
          for (int64_t j = gi * per; j < (gi + 1) * per; ++j) {
            const int64_t e = r * N + j;
            if (m == MetricKind::cosine) {
              s0 += double(o[e]) * q[e];
              s1 += double(o[e]) * o[e];
              s2 += double(q[e]) * q[e];
            } else {
              const double t = double(g[e]) * (double(o[e]) - q[e]);
              s0 += t * t;
            }
          }
          p[gi * 3] += s0, p[gi * 3 + 1] += s1, p[gi * 3 + 2] += s2;
        }
    }
  });
  for (int gi = 0; gi < groups; ++gi) {
    double s0 = 0, s1 = 0, s2 = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      const double* p = part.data() + (c * groups + gi) * 3;
      s0 += p[0], s1 += p[1], s2 += p[2];
    }
    out[static_cast<size_t>(gi)] =
        m == MetricKind::cosine ? s0 / (std::sqrt(s1) * std::sqrt(s2)) : -s0 / double(rows * per);
  }
}

class Calibrator {
 public:
  Calibrator(const ModelConfig& mcfg, const WeightMap& w, const Tensor& images, const std::vector<int>& labels,
             const ApqConfig& c, const CalibProgress& pr)
      : m_(mcfg), w_(w), images_(images), labels_(labels), c_(c), pr_(pr), d_(vit_dims(mcfg, images.dim(0))) {}

  ApqParams run() {
    const auto t0 = std::chrono::steady_clock::now();
    c_.validate();
    if (c_.use_labels && static_cast<int64_t>(labels_.size()) != d_.B)
      fail("apq", "--use-labels needs one label per calibration image ({} labels for {} images)", labels_.size(), d_.B);
    out_.model = m_.name;
    out_.config = c_;
    compute_gradients();
    total_ = layer_names(m_).size();
    if (c_.metric == MetricKind::bbc) total_ += static_cast<size_t>(c_.refine * m_.depth * kStages);
    F_.allocate(d_), U_.allocate(d_), C_.allocate(d_), sc_.allocate(d_);
    if (c_.refine > 0 && c_.metric == MetricKind::bbc) sd_.allocate(d_);

    // ---- patch embedding (weights only; the image is not quantized) ----
    const int64_t rows = d_.B * d_.np;
    Tensor patches({rows, d_.patch_k}), emb_fp({rows, d_.D}), emb({rows, d_.D});
    im2patch_f32(images_.f32(), patches.f32(), d_.B, m_.in_chans, m_.img_size, m_.img_size, m_.patch);
    const float* pw = weight(w_, "patch_embed.proj.weight").f32();
    const float* pb = weight(w_, "patch_embed.proj.bias").f32();
    linear_nt(patches.f32(), pw, pb, emb_fp.f32(), rows, d_.D, d_.patch_k);
    {
      LinearJob job{"patch_embed.proj", patches.f32(), pw, pb, rows, d_.D, d_.patch_k, false, true,
                    c_.patch_weights == Granularity::channel ? int(d_.D) : 1, emb_fp.f32(), grad("patch_embed"),
                    emb.f32(), -1};
      search_linear(job);
    }
    Tensor x_fp({d_.R(), d_.D}), x_q({d_.R(), d_.D});
    embed(d_, w_, emb_fp.f32(), x_fp.f32());
    fq_weight(pw, sc_.wq.f32(), d_.D, d_.patch_k, out_.layers["patch_embed.proj"].w, c_.wbits);
    linear_nt(patches.f32(), sc_.wq.f32(), pb, emb.f32(), rows, d_.D, d_.patch_k);
    embed(d_, w_, emb.f32(), x_q.f32());

    // ---- blocks ----
    for (int i = 0; i < m_.depth; ++i) {
      const BlockWeights bw = block_weights(w_, i);
      const std::string bn = "blocks." + std::to_string(i);
      F_.x_in = x_fp.f32();
      run_stages(c_, d_, bw, BlockQuant{}, F_, sc_, kQkv);
      const float* in = c_.quantized_inputs ? x_q.f32() : x_fp.f32();
      for (int k = 0; k < kStages; ++k) search_in_block(i, k, bw, in, c_.calibrated_upstream);
      // Refinement passes: every stage searched again with all the block's other quantizers
      // calibrated, the later ones included (the first pass had them float).
      for (int pass = 0; pass < c_.refine && c_.metric == MetricKind::bbc; ++pass) {
        refining_ = true;
        for (int k = 0; k < kStages; ++k) {
          for (int j = k + 1; j < kStages; ++j) down_.p[j] = &out_.layers.at(bn + "." + kStageNames[j]);
          down_.p[k] = nullptr;
          search_in_block(i, k, bw, in, true);
        }
        refining_ = false;
        down_ = BlockQuant{};
      }
      BlockQuant all;
      for (int k = 0; k < kStages; ++k) all.p[k] = &out_.layers.at(bn + "." + kStageNames[k]);
      U_.x_in = x_q.f32();
      run_stages(c_, d_, bw, all, U_, sc_, kQkv);
      std::memcpy(x_q.f32(), U_.x_out.f32(), x_q.nbytes());
      std::memcpy(x_fp.f32(), F_.x_out.f32(), x_fp.nbytes());
    }

    // ---- head (class token after the final LayerNorm) ----
    Tensor cls_fp({d_.B, d_.D}), cls_in({d_.B, d_.D}), logits_fp({d_.B, d_.classes}), logits({d_.B, d_.classes});
    final_norm_cls(d_, w_, x_fp.f32(), cls_fp.f32());
    final_norm_cls(d_, w_, c_.quantized_inputs ? x_q.f32() : x_fp.f32(), cls_in.f32());
    const float* hw = weight(w_, "head.weight").f32();
    const float* hb = weight(w_, "head.bias").f32();
    linear_nt(cls_fp.f32(), hw, hb, logits_fp.f32(), d_.B, d_.classes, d_.D);
    LinearJob job{"head", cls_in.f32(), hw, hb, d_.B, d_.classes, d_.D, false, false,
                  c_.weights == Granularity::channel ? int(d_.classes) : 1, logits_fp.f32(), grad("head"),
                  logits.f32(), -1};
    search_linear(job);
    out_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return std::move(out_);
  }

 private:
  // One Linear layer's search. `y` receives candidate outputs (a stage buffer of C_ when
  // stage >= 0, so the bbc score can run the rest of the block from it).
  struct LinearJob {
    std::string name;
    const float* x;
    const float* w;
    const float* b;
    int64_t M, N, K;
    bool gelu_input, weights_only;
    int groups;
    const float* target;  // FP layer output
    const float* g;       // dL/d(layer output) (hessian / bbc on the layer)
    float* y;
    int stage;            // block stage (bbc runs the block from it), -1: layer-level
  };

  const float* grad(const std::string& n) const {
    auto it = grads_.find(n);
    return it == grads_.end() ? nullptr : it->second.f32();
  }

  void compute_gradients() {
    std::vector<std::string> names;
    if (c_.metric == MetricKind::cosine) return;
    names = {"patch_embed", "head"};
    for (int i = 0; i < m_.depth; ++i) {
      const std::string b = "blocks." + std::to_string(i);
      if (c_.metric == MetricKind::hessian) {
        for (int k = 0; k < kStages; ++k) names.push_back(b + "." + kStageNames[k]);
      } else {
        names.push_back(b);
        if (c_.scope == BlockScope::subblock) names.push_back(b + ".attn.proj");  // = dL/d x_mid
      }
    }
    grads_ = output_gradients(m_, w_, images_, names, c_.use_labels ? labels_ : std::vector<int>{});
  }

  // Score of a candidate whose output is in y (layer-level) or in C_'s stage buffer.
  void score(int block, int stage, const float* y, const float* target, const float* g, int64_t rows, int64_t N,
             int groups, const BlockWeights* bw, std::vector<double>& out) {
    if (c_.metric != MetricKind::bbc) return layer_scores(c_.metric, target, y, g, rows, N, groups, out);
    if (stage < 0) {  // patch embedding / head: the layer is its own block
      if (groups > 1) return layer_scores(MetricKind::hessian, target, y, g, rows, N, groups, out);
      out[0] = metric_bbc(target, y, g, static_cast<size_t>(rows * N), c_.keep, c_.rank);
      return;
    }
    const bool sub = c_.scope == BlockScope::subblock && stage <= kProj;
    const int last = sub ? kProj : kFc2;
    stage_post(d_, *bw, C_, stage);
    // (own scratch: the searches keep quantized operands in sc_ across candidates)
    if (stage < last) run_stages(c_, d_, *bw, down_, C_, sd_, stage + 1, last);
    const std::string bn = "blocks." + std::to_string(block);
    const float* o = sub ? F_.x_mid.f32() : F_.x_out.f32();
    const float* q = sub ? C_.x_mid.f32() : C_.x_out.f32();
    const float* gb = grad(sub ? bn + ".attn.proj" : bn);
    out[0] = metric_bbc(o, q, gb, static_cast<size_t>(d_.R() * d_.D), c_.keep, c_.rank);
  }

  void search_linear(const LinearJob& j, int block = -1, const BlockWeights* bw = nullptr) {
    LayerParams p;
    const int wb = c_.wbits, ab = c_.abits;
    const int G = j.groups;
    std::vector<float> w0(static_cast<size_t>(G));
    const int64_t per = j.N / G;
    for (int gi = 0; gi < G; ++gi) w0[gi] = initial_interval(absmax(j.w + gi * per * j.K, per * j.K), wb);
    const bool twin_gelu = j.gelu_input && c_.gelu == GeluQuant::twin;
    const float a0 = j.weights_only ? 0.0f
                     : initial_interval(twin_gelu ? maxval(j.x, j.M * j.K) : absmax(j.x, j.M * j.K), ab);
    p.w = w0;
    p.a = a0;
    if (refining_) p = out_.layers.at(j.name);  // refinement: start from the first pass's result
    // Groups chosen independently where the score separates over output columns (layer metrics;
    // under bbc the patch embedding and head, scored per group with the layer Hessian metric);
    // under bbc inside a block: one group at a time with the others fixed (qkv's three), or one
    // shared factor (per-channel weights).
    const bool block_bbc = c_.metric == MetricKind::bbc && j.stage >= 0;
    const int sg = block_bbc ? 1 : G;
    const bool coordinate = block_bbc && G > 1 && G <= 3;
    std::vector<float> iv(static_cast<size_t>(G));
    Tensor xq_keep({j.M * j.K});
    for (int r = 0; r < rounds(); ++r) {
      const LayerParams before = p;
      // weights, input fixed
      const float* xq = j.x;
      if (!j.weights_only) {
        fq_linear_input(c_, j.gelu_input, p, j.x, xq_keep.f32(), j.M * j.K);
        xq = xq_keep.f32();
      }
      std::vector<int> best;
      if (coordinate) {
        for (int cg = 0; cg < G; ++cg) {
          best = search(n_cand(), c_.stride, 1, current(), [&](int i, std::vector<double>& s) {
            iv = p.w;
            iv[cg] = pick(p.w[cg], w0[cg], i);
            fq_weight(j.w, sc_.wq.f32(), j.N, j.K, iv, wb);
            linear_nt(xq, sc_.wq.f32(), j.b, j.y, j.M, j.N, j.K);
            score(block, j.stage, j.y, j.target, j.g, j.M, j.N, 1, bw, s);
          }, center(p.w[cg], w0[cg]), c_.refine_window);
          p.w[cg] = pick(p.w[cg], w0[cg], best[0]);
        }
      } else {
        best = search(n_cand(), c_.stride, sg, current(), [&](int i, std::vector<double>& s) {
          for (int gi = 0; gi < G; ++gi) iv[gi] = pick(p.w[gi], w0[gi], i);
          fq_weight(j.w, sc_.wq.f32(), j.N, j.K, iv, wb);
          linear_nt(xq, sc_.wq.f32(), j.b, j.y, j.M, j.N, j.K);
          score(block, j.stage, j.y, j.target, j.g, j.M, j.N, sg, bw, s);
        }, sg == 1 ? center(p.w[0], w0[0]) : -1, c_.refine_window);
        for (int gi = 0; gi < G; ++gi) p.w[gi] = pick(p.w[gi], w0[gi], best[sg == 1 ? 0 : gi]);
      }
      if (j.weights_only) {
        if (p == before) break;
        continue;
      }
      // input, weights fixed
      Tensor wq_keep({j.N * j.K});
      fq_weight(j.w, wq_keep.f32(), j.N, j.K, p.w, wb);
      best = search(n_cand(), c_.stride, 1, current(), [&](int i, std::vector<double>& s) {
        LayerParams cand = p;
        cand.a = pick(p.a, a0, i);
        fq_linear_input(c_, j.gelu_input, cand, j.x, sc_.xq.f32(), j.M * j.K);
        linear_nt(sc_.xq.f32(), wq_keep.f32(), j.b, j.y, j.M, j.N, j.K);
        score(block, j.stage, j.y, j.target, j.g, j.M, j.N, 1, bw, s);
      }, center(p.a, a0), c_.refine_window);
      p.a = pick(p.a, a0, best[0]);
      if (p == before) break;
    }
    finish(j.name, std::move(p));
  }

  void finish(const std::string& name, LayerParams p) {
    out_.layers[name] = std::move(p);
    if (pr_.on_layer) pr_.on_layer(++searched_, total_, name);
  }

  // Stage k of block i: its input computed from the block input `in` with the earlier stages
  // quantized (`upstream`, calibrated by now) or float, then its search.
  void search_in_block(int i, int k, const BlockWeights& bw, const float* in, bool upstream) {
    const std::string bn = "blocks." + std::to_string(i);
    BlockQuant up;
    if (upstream)
      for (int j = 0; j < k; ++j) up.p[j] = &out_.layers.at(bn + "." + kStageNames[j]);
    U_.x_in = in;
    run_stages(c_, d_, bw, up, U_, sc_, kQkv, k - 1);
    C_.copy_from(U_);
    search_stage(i, k, bw);
  }

  void search_stage(int block, int k, const BlockWeights& bw) {
    const std::string bn = "blocks." + std::to_string(block);
    const std::string name = bn + "." + kStageNames[k];
    const int64_t R = d_.R(), D = d_.D;
    const float* g = grad(name);
    switch (k) {
      case kQkv:
        return search_linear({name, U_.ln1.f32(), bw.qkv_w, bw.qkv_b, R, 3 * D, D, false, false,
                              c_.weights == Granularity::channel ? int(3 * D) : 3, F_.qkv.f32(), g, C_.qkv.f32(), k},
                             block, &bw);
      case kProj:
        return search_linear({name, U_.ctx.f32(), bw.proj_w, bw.proj_b, R, D, D, false, false,
                              c_.weights == Granularity::channel ? int(D) : 1, F_.proj.f32(), g, C_.proj.f32(), k},
                             block, &bw);
      case kFc1:
        return search_linear({name, U_.ln2.f32(), bw.fc1_w, bw.fc1_b, R, d_.hidden, D, false, false,
                              c_.weights == Granularity::channel ? int(d_.hidden) : 1, F_.h.f32(), g, C_.h.f32(), k},
                             block, &bw);
      case kFc2:
        return search_linear({name, U_.g.f32(), bw.fc2_w, bw.fc2_b, R, D, d_.hidden, true, false,
                              c_.weights == Granularity::channel ? int(D) : 1, F_.fc2.f32(), g, C_.fc2.f32(), k},
                             block, &bw);
      case kMatmul1:
        return search_matmul1(block, name, bw, g);
      case kMatmul2:
        return search_matmul2(block, name, bw, g);
    }
  }

  // q·kᵀ: A = q, B = k (parts 0 and 1 of qkv), output = scaled scores.
  void search_matmul1(int block, const std::string& name, const BlockWeights& bw, const float* g) {
    const int ab = c_.abits;
    const int64_t R = d_.R(), D = d_.D, n = C_.scores.numel();
    float mq = 0, mk = 0;
    for (int64_t r = 0; r < R; ++r)
      for (int64_t j = 0; j < D; ++j) {
        mq = std::max(mq, std::fabs(U_.qkv.f32()[r * 3 * D + j]));
        mk = std::max(mk, std::fabs(U_.qkv.f32()[r * 3 * D + D + j]));
      }
    LayerParams p;
    const float a0 = initial_interval(std::max(mq, 1e-8f), ab), b0 = initial_interval(std::max(mk, 1e-8f), ab);
    p.a = a0, p.b = b0;
    if (refining_) p = out_.layers.at(name);
    float* qq = sc_.qkvq.f32();
    for (int r = 0; r < rounds(); ++r) {
      const LayerParams before = p;
      for (int operand = 0; operand < 2; ++operand) {
        std::memcpy(qq, U_.qkv.f32(), U_.qkv.nbytes());
        quant_qkv_part(U_.qkv.f32(), qq, d_, 1 - operand, operand == 0 ? p.b : p.a, ab);
        const float base = operand == 0 ? a0 : b0;
        float& cur = operand == 0 ? p.a : p.b;
        auto best = search(n_cand(), c_.stride, 1, current(), [&](int i, std::vector<double>& s) {
          quant_qkv_part(U_.qkv.f32(), qq, d_, operand, pick(cur, base, i), ab);
          attention_scores_f32(qq, C_.scores.f32(), d_.B, d_.T, d_.H, d_.Dh, d_.scale);
          score(block, kMatmul1, C_.scores.f32(), F_.scores.f32(), g, n / d_.T, d_.T, 1, &bw, s);
        }, center(cur, base), c_.refine_window);
        cur = pick(cur, base, best[0]);
      }
      if (p == before) break;
    }
    finish(name, std::move(p));
  }

  // softmax·v: A = probabilities (the post-softmax quantizer), B = v; output = context.
  void search_matmul2(int block, const std::string& name, const BlockWeights& bw, const float* g) {
    const int ab = c_.abits;
    const int64_t R = d_.R(), D = d_.D, np = U_.probs.numel();
    float mv = 0;
    for (int64_t r = 0; r < R; ++r)
      for (int64_t j = 0; j < D; ++j) mv = std::max(mv, std::fabs(U_.qkv.f32()[r * 3 * D + 2 * D + j]));
    const float pmax = maxval(U_.probs.f32(), np);
    LayerParams p;
    const float b0 = initial_interval(std::max(mv, 1e-8f), ab);
    const float a0 = initial_interval(pmax, ab);
    const float step0 = pmax / static_cast<float>((1 << ab) - 1);
    p.b = b0;
    switch (c_.softmax) {
      case SoftmaxQuant::uniform: p.a = a0; break;
      case SoftmaxQuant::twin: p.split_exp = 0; break;
      case SoftmaxQuant::mpq: p.mpq = {MpqKind::uniform, step0}; break;
    }
    if (c_.softmax == SoftmaxQuant::mpq && c_.mpq_select == MpqSelect::weighted)
      p.mpq = mpq_search(U_.probs.f32(), static_cast<size_t>(np), ab,
                         MpqSearch{MpqKind::best, c_.mpq_gamma, c_.alpha, c_.beta, c_.grid});
    if (refining_) p = out_.layers.at(name);
    float* qq = sc_.qkvq.f32();
    float* pq = sc_.pq.f32();
    auto run = [&](const float* probs, const float* qkv, std::vector<double>& s) {
      attention_context_f32(probs, qkv, C_.ctx.f32(), d_.B, d_.T, d_.H, d_.Dh);
      score(block, kMatmul2, C_.ctx.f32(), F_.ctx.f32(), g, R, D, 1, &bw, s);
    };
    for (int r = 0; r < rounds(); ++r) {
      const LayerParams before = p;
      // A: the softmax quantizer, v fixed
      std::memcpy(qq, U_.qkv.f32(), U_.qkv.nbytes());
      quant_qkv_part(U_.qkv.f32(), qq, d_, 2, p.b, ab);
      auto cand = [&](int i) {
        LayerParams c = p;
        if (c_.softmax == SoftmaxQuant::uniform) c.a = pick(p.a, a0, i);
        else if (c_.softmax == SoftmaxQuant::twin) c.split_exp = i;
        else if (i == c_.grid + 1) c.mpq = p.mpq;  // refinement: the current parameters
        else c.mpq = i == c_.grid ? MpqParams{MpqKind::log2, 0.0f} : MpqParams{MpqKind::uniform, step0 * factor(c_, i)};
        return c;
      };
      if (!(c_.softmax == SoftmaxQuant::mpq && c_.mpq_select == MpqSelect::weighted)) {
        const bool twin = c_.softmax == SoftmaxQuant::twin;
        const bool mpq = c_.softmax == SoftmaxQuant::mpq;
        const int n = twin ? 20 : mpq ? c_.grid + 1 + (refining_ ? 1 : 0) : n_cand();
        // Always tried: twin: nothing more (every split is tried, the current one too); mpq:
        // the log2 quantizer, and the current parameters in a refinement pass; uniform: current().
        std::vector<int> always;
        if (mpq) {
          always.push_back(c_.grid);
          if (refining_) always.push_back(c_.grid + 1);
        } else if (!twin) {
          always = current();
        }
        auto best = search(n, twin ? 1 : c_.stride, 1, always, [&](int i, std::vector<double>& s) {
          fq_softmax(c_, cand(i), U_.probs.f32(), pq, np);
          run(pq, qq, s);
        }, twin ? -1 : mpq ? (p.mpq.kind == MpqKind::uniform ? center(p.mpq.step, step0) : -1) : center(p.a, a0),
           c_.refine_window);
        p = cand(best[0]);
      }
      // B: v, softmax quantizer fixed
      fq_softmax(c_, p, U_.probs.f32(), pq, np);
      std::memcpy(qq, U_.qkv.f32(), U_.qkv.nbytes());
      auto best = search(n_cand(), c_.stride, 1, current(), [&](int i, std::vector<double>& s) {
        quant_qkv_part(U_.qkv.f32(), qq, d_, 2, pick(p.b, b0, i), ab);
        run(pq, qq, s);
      }, center(p.b, b0), c_.refine_window);
      p.b = pick(p.b, b0, best[0]);
      if (p == before) break;
    }
    finish(name, std::move(p));
  }

  // Rounds of the current search: `rounds` in the first pass, one in a refinement pass. A round
  // is a deterministic function of the parameters it starts from, so a round that changes
  // nothing ends the search (the remaining rounds would repeat it): same result, less time.
  int rounds() const { return refining_ ? 1 : c_.rounds; }
  // Candidates of a search: the grid 0..grid-1, and in a refinement pass one more, index grid =
  // the current value, always tried, so that a refinement step never lowers the block score (the
  // grid is relative to the absmax of an input that upstream refinements may have changed).
  int n_cand() const { return c_.grid + (refining_ ? 1 : 0); }
  std::vector<int> current() const { return refining_ ? std::vector<int>{c_.grid} : std::vector<int>{}; }
  float pick(float cur, float base, int i) const { return i == c_.grid ? cur : base * factor(c_, i); }
  // Refinement passes with refine_window > 0 search only the grid indices within the window
  // around the current value's position (-1: the whole grid, coarse to fine).
  int center(float cur, float base) const {
    if (!refining_ || c_.refine_window <= 0) return -1;
    const double i = std::nearbyint((double(cur) / base - c_.alpha) * c_.grid / (double(c_.beta) - c_.alpha));
    return static_cast<int>(std::clamp(i, 0.0, double(c_.grid - 1)));
  }

  const ModelConfig& m_;
  const WeightMap& w_;
  const Tensor& images_;
  const std::vector<int>& labels_;
  ApqConfig c_;
  const CalibProgress& pr_;
  Dims d_;
  WeightMap grads_;
  BlockState F_, U_, C_;
  Scratch sc_;
  Scratch sd_;  // the later stages' quantized operands in a refinement pass
  ApqParams out_;
  size_t total_ = 0, searched_ = 0;  // searches in all (refinement passes included), done
  bool refining_ = false;  // a refinement pass (ApqConfig::refine): start from out_, one round
  BlockQuant down_;        // quantizers of the block's later stages in a refinement pass (else float)
};

}  // namespace

ApqParams calibrate(const ModelConfig& mcfg, const WeightMap& weights, const Tensor& images,
                    const std::vector<int>& labels, const ApqConfig& cfg, const CalibProgress& progress) {
  if (images.ndim() != 4 || images.dim(1) != mcfg.in_chans || images.dim(2) != mcfg.img_size ||
      images.dim(3) != mcfg.img_size)
    fail("apq", "calibration images have shape {}, expected [B,{},{},{}]", shape_str(images.shape()),
         mcfg.in_chans, mcfg.img_size, mcfg.img_size);
  return Calibrator(mcfg, weights, images, labels, cfg, progress).run();
}

}  // namespace qvit::apq
