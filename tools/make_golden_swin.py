"""Golden fixtures for the Swin family, from torchvision's independent SwinTransformer (v1).

Builds torchvision's swin_t / swin_s / swin_b, fills them with qvit's seeded synthetic weights
(tools/synthetic_weights.py, generated under the timm names of qvit::weight_specs and mapped onto
torchvision's parameters), runs synthetic_input([1,3,224,224]) and writes tests/fixtures/swin/:
  <model>_synthetic.f32   raw float32: logits, then the first 2048 values of each stage output
                          (NHWC, as qvit's "layers.i" taps), then a few synthetic weight values
  <model>_synthetic.json  offsets/shapes of those arrays, the full-tensor sum and sum of |x| of
                          every stage output (float64), and the weight tensors sampled

Run with Debian's python3-torch: /usr/bin/python3 tools/make_golden_swin.py
"""
import json
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synthetic_weights import synthetic_input, synthetic_state_dict  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "swin")

CONFIGS = {  # name: (torchvision builder, dim, depths, heads, weights seed)
    "swin_tiny_patch4_window7_224": (torchvision.models.swin_t, 96, (2, 2, 6, 2), (3, 6, 12, 24), 0),
    "swin_small_patch4_window7_224": (torchvision.models.swin_s, 96, (2, 2, 18, 2), (3, 6, 12, 24), 0),
    "swin_base_patch4_window7_224": (torchvision.models.swin_b, 128, (2, 2, 18, 2), (4, 8, 16, 32), 0),
}
INPUT_SEED = 1
SLICE = 2048
# Synthetic weight tensors whose first values the C++ test compares bit for bit.
SAMPLED = ["patch_embed.proj.weight", "layers.0.blocks.1.attn.relative_position_bias_table",
           "layers.2.downsample.norm.weight", "layers.3.blocks.1.mlp.fc2.bias", "head.fc.weight"]
SAMPLE_COUNT = 64


def timm_specs(dim, depths, heads, window=7, grid=56):
    """The float tensors of a timm SwinTransformer (current layout), in qvit::swin_weight_specs
    order."""
    s = [("patch_embed.proj.weight", (dim, 3, 4, 4)), ("patch_embed.proj.bias", (dim,)),
         ("patch_embed.norm.weight", (dim,)), ("patch_embed.norm.bias", (dim,))]
    for i, (depth, nh) in enumerate(zip(depths, heads)):
        d, res = dim * 2 ** i, grid >> i
        ws = min(window, res)
        l = f"layers.{i}."
        if i > 0:
            s += [(l + "downsample.norm.weight", (2 * d,)), (l + "downsample.norm.bias", (2 * d,)),
                  (l + "downsample.reduction.weight", (d, 2 * d))]
        for j in range(depth):
            b = f"{l}blocks.{j}."
            s += [(b + "norm1.weight", (d,)), (b + "norm1.bias", (d,)),
                  (b + "attn.relative_position_bias_table", ((2 * ws - 1) ** 2, nh)),
                  (b + "attn.qkv.weight", (3 * d, d)), (b + "attn.qkv.bias", (3 * d,)),
                  (b + "attn.proj.weight", (d, d)), (b + "attn.proj.bias", (d,)),
                  (b + "norm2.weight", (d,)), (b + "norm2.bias", (d,)),
                  (b + "mlp.fc1.weight", (4 * d, d)), (b + "mlp.fc1.bias", (4 * d,)),
                  (b + "mlp.fc2.weight", (d, 4 * d)), (b + "mlp.fc2.bias", (d,))]
    c = dim * 2 ** (len(depths) - 1)
    s += [("norm.weight", (c,)), ("norm.bias", (c,)), ("head.fc.weight", (1000, c)),
          ("head.fc.bias", (1000,))]
    return s


def torchvision_name(timm_name):
    """timm (current layout) -> torchvision 0.14 swin_t/s/b parameter name.

    torchvision: features.0 = (conv, permute, LayerNorm), features.{2i+1} = blocks of stage i,
    features.{2i+2} = PatchMerging after stage i (timm: layers.{i+1}.downsample)."""
    parts = timm_name.split(".")
    if parts[0] == "patch_embed":
        return {"proj": "features.0.0.", "norm": "features.0.2."}[parts[1]] + parts[2]
    if parts[0] == "layers":
        i = int(parts[1])
        if parts[2] == "downsample":
            return f"features.{2 * i}." + ".".join(parts[3:])
        rest = ".".join(parts[4:]).replace("mlp.fc1.", "mlp.0.").replace("mlp.fc2.", "mlp.3.")
        return f"features.{2 * i + 1}.{parts[3]}.{rest}"
    if parts[0] == "head":
        return "head." + parts[2]
    return timm_name  # norm.*


def torchvision_swin(name, timm_sd):
    builder = CONFIGS[name][0]
    m = builder(weights=None)
    sd = m.state_dict()
    tv = {k: v for k, v in sd.items() if k.endswith("relative_position_index")}
    for k, v in timm_sd.items():
        tk = torchvision_name(k)
        assert tk in sd and sd[tk].shape == v.shape, (k, tk)
        tv[tk] = v
    m.load_state_dict(tv, strict=True)
    return m.eval()


def run_with_taps(m, x):
    taps = {}
    stages = [m.features[2 * i + 1] for i in range(4)]
    hooks = [s.register_forward_hook(lambda mod, i, o, k=k: taps.__setitem__(k, o.detach()))
             for k, s in enumerate(stages)]
    with torch.no_grad():
        logits = m(x)
    for h in hooks:
        h.remove()
    return logits, taps


def write(name, meta, arrays):
    blob = b"".join(a.contiguous().to(torch.float32).numpy().tobytes() for _, a in arrays)
    offset = 0
    meta["arrays"] = {}
    for key, a in arrays:
        meta["arrays"][key] = {"offset": offset, "shape": list(a.shape)}
        offset += a.numel()
    with open(os.path.join(OUT, name + ".f32"), "wb") as f:
        f.write(blob)
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(meta, f, indent=1)


def main():
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    for name, (_, dim, depths, heads, wseed) in CONFIGS.items():
        sd = synthetic_state_dict(timm_specs(dim, depths, heads), seed=wseed)
        m = torchvision_swin(name, sd)
        x = synthetic_input((1, 3, 224, 224), seed=INPUT_SEED)
        logits, taps = run_with_taps(m, x)
        arrays = [("logits", logits)]
        stats = {}
        for i in range(4):
            t = taps[i].to(torch.float64)  # [1, H, W, C] (NHWC)
            arrays.append((f"layers.{i}", taps[i].reshape(-1)[:SLICE]))
            stats[f"layers.{i}"] = {"shape": list(taps[i].shape), "sum": float(t.sum()),
                                    "abs_sum": float(t.abs().sum())}
        for w in SAMPLED:
            arrays.append(("weight:" + w, sd[w].reshape(-1)[:SAMPLE_COUNT]))
        arrays.append(("input", x.reshape(-1)[:SAMPLE_COUNT]))
        write(name + "_synthetic", {"model": name, "weights_seed": wseed, "input_seed": INPUT_SEED,
                                     "input_shape": [1, 3, 224, 224], "stages": stats}, arrays)
        print(name, "synthetic logits std", float(logits.std()), "top-1", logits.argmax(1).tolist(),
              "stage abs means", [round(s["abs_sum"] / taps[i].numel(), 3)
                                  for i, s in enumerate(stats.values())])


if __name__ == "__main__":
    main()
