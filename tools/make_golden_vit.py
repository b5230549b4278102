"""Golden fixtures for the ViT/DeiT family, from torchvision's independent VisionTransformer.

Writes tests/fixtures/vit/:
  deit_tiny_real.json + .f32   logits of the real DeiT-Tiny weights on a few real images
                               (torchvision preprocessing: PIL bicubic resize 256, crop 224)
  deit_tiny_sample_top1.json   PyTorch top-1/top-5 on every image of imagenet-sample
  <model>_synthetic.json/.f32  logits and block-output slices on qvit's seeded synthetic weights
                               (tools/synthetic_weights.py) for deit_small/base, vit_base/large

Run with Debian's python3-torch: /usr/bin/python3 tools/make_golden_vit.py [--data DIR]
"""
import argparse
import json
import os
import sys

import torch
import torchvision
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synthetic_weights import synthetic_input, synthetic_state_dict  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "vit")

CONFIGS = {  # name: (dim, depth, heads, deit)
    "deit_tiny_patch16_224": (192, 12, 3, True),
    "deit_small_patch16_224": (384, 12, 6, True),
    "deit_base_patch16_224": (768, 12, 12, True),
    "vit_base_patch16_224": (768, 12, 12, False),
    "vit_large_patch16_224": (1024, 24, 16, False),
}
REAL_IMAGES = [
    "n01440764/n01440764_tench.JPEG",
    "n02123045/n02123045_tabby.JPEG",
    "n03000134/n03000134_chainlink_fence.JPEG",
    "n04592741/n04592741_wing.JPEG",
]


def timm_specs(dim, depth):
    """The float tensors of a timm ViT, in qvit::vit_weight_specs order."""
    s = [("patch_embed.proj.weight", (dim, 3, 16, 16)), ("patch_embed.proj.bias", (dim,)),
         ("cls_token", (1, 1, dim)), ("pos_embed", (1, 197, dim))]
    for i in range(depth):
        b = f"blocks.{i}."
        s += [(b + "norm1.weight", (dim,)), (b + "norm1.bias", (dim,)),
              (b + "attn.qkv.weight", (3 * dim, dim)), (b + "attn.qkv.bias", (3 * dim,)),
              (b + "attn.proj.weight", (dim, dim)), (b + "attn.proj.bias", (dim,)),
              (b + "norm2.weight", (dim,)), (b + "norm2.bias", (dim,)),
              (b + "mlp.fc1.weight", (4 * dim, dim)), (b + "mlp.fc1.bias", (4 * dim,)),
              (b + "mlp.fc2.weight", (dim, 4 * dim)), (b + "mlp.fc2.bias", (dim,))]
    s += [("norm.weight", (dim,)), ("norm.bias", (dim,)), ("head.weight", (1000, dim)),
          ("head.bias", (1000,))]
    return s


def torchvision_vit(name, timm_sd):
    dim, depth, heads, _ = CONFIGS[name]
    m = torchvision.models.VisionTransformer(224, 16, depth, heads, dim, 4 * dim)
    tv = {"class_token": timm_sd["cls_token"], "conv_proj.weight": timm_sd["patch_embed.proj.weight"],
          "conv_proj.bias": timm_sd["patch_embed.proj.bias"],
          "encoder.pos_embedding": timm_sd["pos_embed"],
          "encoder.ln.weight": timm_sd["norm.weight"], "encoder.ln.bias": timm_sd["norm.bias"],
          "heads.head.weight": timm_sd["head.weight"], "heads.head.bias": timm_sd["head.bias"]}
    names = {"ln_1": "norm1", "self_attention.in_proj_": "attn.qkv.", "self_attention.out_proj.":
             "attn.proj.", "ln_2": "norm2", "mlp.0.": "mlp.fc1.", "mlp.3.": "mlp.fc2."}
    for i in range(depth):
        for k in m.state_dict():
            p = f"encoder.layers.encoder_layer_{i}."
            if not k.startswith(p):
                continue
            rest = k[len(p):]
            for a, b in names.items():
                if rest.startswith(a):
                    tv[k] = timm_sd[f"blocks.{i}." + b + rest[len(a):]]
    missing, unexpected = m.load_state_dict(tv, strict=True), None
    del missing, unexpected
    return m.eval()


def run_with_taps(m, x):
    taps = {}
    hooks = [layer.register_forward_hook(lambda mod, i, o, k=k: taps.__setitem__(k, o.detach()))
             for k, layer in enumerate(m.encoder.layers)]
    with torch.no_grad():
        logits = m(x)
    for h in hooks:
        h.remove()
    return logits, taps


def eval_transform(deit):
    size, mean, std = (256, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) if deit else \
        (248, (0.5,) * 3, (0.5,) * 3)
    return transforms.Compose([transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
                               transforms.CenterCrop(224), transforms.ToTensor(),
                               transforms.Normalize(mean, std)])


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
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("QVIT_DATA", os.path.join(HERE, "..", "..", "shared", "data")))
    ap.add_argument("--skip-sample", action="store_true", help="skip the 1000-image top-1 run")
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)

    # Real DeiT-Tiny.
    sd = torch.load(os.path.join(args.data, "models", "deit_tiny_patch16_224.pth"), map_location="cpu")["model"]
    m = torchvision_vit("deit_tiny_patch16_224", sd)
    tf = eval_transform(True)
    x = torch.stack([tf(Image.open(os.path.join(args.data, "imagenet-sample", p)).convert("RGB"))
                     for p in REAL_IMAGES])
    logits, taps = run_with_taps(m, x)
    write("deit_tiny_real", {"model": "deit_tiny_patch16_224", "images": REAL_IMAGES},
          [("logits", logits), ("blocks.0", taps[0][:, :4].reshape(len(REAL_IMAGES), -1)),
           ("blocks.11", taps[11][:, :4].reshape(len(REAL_IMAGES), -1))])
    print("deit_tiny real logits top-1:", logits.argmax(1).tolist())

    if not args.skip_sample:
        root = os.path.join(args.data, "imagenet-sample")
        classes = sorted(os.listdir(root))
        results, correct1, correct5 = {}, 0, 0
        items = [(c, f) for ci, c in enumerate(classes) for f in sorted(os.listdir(os.path.join(root, c)))]
        for start in range(0, len(items), 50):
            chunk = items[start:start + 50]
            xb = torch.stack([tf(Image.open(os.path.join(root, c, f)).convert("RGB")) for c, f in chunk])
            with torch.no_grad():
                lb = m(xb)
            top5 = lb.topk(5, dim=1).indices.tolist()
            for (c, f), t5 in zip(chunk, top5):
                label = classes.index(c)
                results[f"{c}/{f}"] = {"label": label, "top5": t5}
                correct1 += t5[0] == label
                correct5 += label in t5
        n = len(items)
        print(f"deit_tiny on imagenet-sample: top-1 {100 * correct1 / n:.2f} top-5 {100 * correct5 / n:.2f}")
        with open(os.path.join(OUT, "deit_tiny_sample_top1.json"), "w") as f:
            json.dump({"model": "deit_tiny_patch16_224", "images": n, "top1": 100 * correct1 / n,
                       "top5": 100 * correct5 / n, "per_image": results}, f, indent=0)

    # Synthetic weights, other sizes.
    for name in ["deit_small_patch16_224", "deit_base_patch16_224", "vit_base_patch16_224",
                 "vit_large_patch16_224"]:
        dim, depth, heads, deit = CONFIGS[name]
        wseed = 0 if deit else 7  # deit_base and vit_base share an architecture
        sd = synthetic_state_dict(timm_specs(dim, depth), seed=wseed)
        m = torchvision_vit(name, sd)
        x = synthetic_input((2, 3, 224, 224), seed=1)
        logits, taps = run_with_taps(m, x)
        write(name + "_synthetic", {"model": name, "weights_seed": wseed, "input_seed": 1,
                                     "input_shape": [2, 3, 224, 224]},
              [("logits", logits), ("blocks.0", taps[0][:, :4].reshape(2, -1)),
               (f"blocks.{depth - 1}", taps[depth - 1][:, :4].reshape(2, -1))])
        print(name, "synthetic logits std", float(logits.std()), "top-1", logits.argmax(1).tolist())


if __name__ == "__main__":
    main()
