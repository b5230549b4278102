"""Golden gradients for qvit's backward pass (tests/grad_test.cpp): a tiny ViT written out in
PyTorch (float64, autograd), with qvit's seeded synthetic weights (tools/synthetic_weights.py),
loss = sum over the batch of cross-entropy with fixed labels; dumps dL/dY of named outputs.

Run with Debian's python3-torch: /usr/bin/python3 tools/make_golden_grad.py
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from synthetic_weights import synthetic_input, synthetic_state_dict  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "grad")
IMG, PATCH, DIM, DEPTH, HEADS, CLASSES, SEED, BATCH = 32, 8, 32, 2, 2, 10, 5, 2
LABELS = [3, 7]


def specs():
    t = (IMG // PATCH) ** 2 + 1
    s = [("patch_embed.proj.weight", (DIM, 3, PATCH, PATCH)), ("patch_embed.proj.bias", (DIM,)),
         ("cls_token", (1, 1, DIM)), ("pos_embed", (1, t, DIM))]
    for i in range(DEPTH):
        b = f"blocks.{i}."
        s += [(b + "norm1.weight", (DIM,)), (b + "norm1.bias", (DIM,)),
              (b + "attn.qkv.weight", (3 * DIM, DIM)), (b + "attn.qkv.bias", (3 * DIM,)),
              (b + "attn.proj.weight", (DIM, DIM)), (b + "attn.proj.bias", (DIM,)),
              (b + "norm2.weight", (DIM,)), (b + "norm2.bias", (DIM,)),
              (b + "mlp.fc1.weight", (4 * DIM, DIM)), (b + "mlp.fc1.bias", (4 * DIM,)),
              (b + "mlp.fc2.weight", (DIM, 4 * DIM)), (b + "mlp.fc2.bias", (DIM,))]
    s += [("norm.weight", (DIM,)), ("norm.bias", (DIM,)), ("head.weight", (CLASSES, DIM)),
          ("head.bias", (CLASSES,))]
    return s


def main():
    w = {k: v.double() for k, v in synthetic_state_dict(specs(), SEED).items()}
    x = synthetic_input((BATCH, 3, IMG, IMG), 3).double().requires_grad_(True)
    keep = {}

    def tap(name, t):
        t.retain_grad()
        keep[name] = t
        return t

    ln = lambda t, n: torch.nn.functional.layer_norm(t, (DIM,), w[n + ".weight"], w[n + ".bias"], 1e-6)
    lin = lambda t, n: t @ w[n + ".weight"].T + w[n + ".bias"]
    h = torch.nn.functional.conv2d(x, w["patch_embed.proj.weight"], w["patch_embed.proj.bias"], stride=PATCH)
    h = h.flatten(2).transpose(1, 2)
    h = torch.cat([w["cls_token"].expand(BATCH, -1, -1), h], 1) + w["pos_embed"]
    T, dh = h.shape[1], DIM // HEADS
    for i in range(DEPTH):
        b = f"blocks.{i}"
        qkv = tap(b + ".attn.qkv", lin(ln(h, b + ".norm1"), b + ".attn.qkv"))
        q, k, v = qkv.reshape(BATCH, T, 3, HEADS, dh).permute(2, 0, 3, 1, 4)
        s = tap(b + ".attn.matmul1", (q @ k.transpose(-2, -1)) * dh ** -0.5)
        ctx = tap(b + ".attn.matmul2", (s.softmax(-1) @ v).transpose(1, 2).reshape(BATCH, T, DIM))
        h = h + tap(b + ".attn.proj", lin(ctx, b + ".attn.proj"))
        f1 = tap(b + ".mlp.fc1", lin(ln(h, b + ".norm2"), b + ".mlp.fc1"))
        h = tap(b, h + tap(b + ".mlp.fc2", lin(torch.nn.functional.gelu(f1), b + ".mlp.fc2")))
    logits = tap("head", lin(ln(h, "norm")[:, 0], "head"))
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(LABELS), reduction="sum")
    loss.backward()
    arrays = [("logits", logits.detach())] + [(k, t.grad) for k, t in keep.items()]
    meta = {"img": IMG, "patch": PATCH, "dim": DIM, "depth": DEPTH, "heads": HEADS,
            "classes": CLASSES, "seed": SEED, "input_seed": 3, "labels": LABELS, "arrays": {}}
    os.makedirs(OUT, exist_ok=True)
    blob, off = b"", 0
    for k, a in arrays:
        blob += a.contiguous().to(torch.float32).numpy().tobytes()
        meta["arrays"][k] = {"offset": off, "shape": list(a.shape)}
        off += a.numel()
    with open(os.path.join(OUT, "tiny_vit.f32"), "wb") as f:
        f.write(blob)
    with open(os.path.join(OUT, "tiny_vit.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print("wrote", off, "floats")


if __name__ == "__main__":
    main()
