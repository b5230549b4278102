"""Golden logits for qvit's PTQ4ViT/APQ-ViT simulation (tests/apq_model_test.cpp): a tiny ViT
written out in PyTorch (float32) with fake quantizers at PTQ4ViT's places (the input and weight of
every Linear, both operands of both attention matmuls, patch-embedding weights), for three
parameter sets: plain uniform (base), twin uniform softmax + GELU (ptq4vit), MPQ softmax (apq).
Intervals are fixed fractions of the initial absmax intervals of the FP activations, so no search
is involved; the files hold qvit-apq-params JSON and the logits.

Run with Debian's python3-torch: /usr/bin/python3 tools/make_golden_apq.py
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from synthetic_weights import synthetic_input, synthetic_state_dict  # noqa: E402
from make_golden_grad import specs, IMG, PATCH, DIM, DEPTH, HEADS, CLASSES, SEED  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "apq")
BATCH = 3
GELU_NEG = 0.16997


def q_sym(x, d, k):
    return torch.clamp(torch.round(x / d), -2 ** (k - 1), 2 ** (k - 1) - 1) * d


def q_twin_softmax(x, k, e):
    m = 2 ** (k - 1) - 1
    s = 2.0 ** -e
    low = torch.clamp(torch.round(x / (s / m)), 0, m) * (s / m)
    high = torch.clamp(torch.round(x / (1.0 / m)), 0, m) * (1.0 / m)
    return torch.where(x < s, low, high)


def q_twin_gelu(x, k, dpos):
    dn = GELU_NEG / 2 ** (k - 1)
    neg = torch.clamp(torch.round(x / dn), -2 ** (k - 1), 0) * dn
    pos = torch.clamp(torch.round(x / dpos), 0, 2 ** (k - 1) - 1) * dpos
    return torch.where(x < 0, neg, pos)


def q_mpq(x, k, p):
    levels = 2 ** k - 1
    if p["kind"] == "log2":
        c = torch.round(-torch.log2(x.clamp_min(1e-30)))
        out = torch.pow(2.0, -c.clamp_min(0))
        return torch.where((x > 0) & (c <= levels), out, torch.zeros_like(x))
    return torch.clamp(torch.round(x / p["step"]), 0, levels) * p["step"]


def init(absmax, k):
    return absmax / (2 ** (k - 1) - 0.5)


def forward(w, x, cfg, params, record):
    """record=True: fill params from FP activations (FP forward); else quantized forward."""
    k_w, k_a = cfg["wbits"], cfg["abits"]
    frac = 0.8

    def wq(name, groups):
        t = w[name + ".weight"]
        rows = t.shape[0]
        flat = t.reshape(rows, -1)
        if record:
            per = rows // groups
            params[name] = {"w": [float(init(flat[g * per:(g + 1) * per].abs().max(), k_w)) * frac
                                  for g in range(groups)]}
            return t
        iv = params[name]["w"]
        per = rows // len(iv)
        rows_q = [q_sym(flat[r:r + 1], iv[r // per], k_w) for r in range(rows)]
        return torch.cat(rows_q, 0).reshape(t.shape)

    def aq(name, key, t, kind="sym"):
        if record:
            if kind == "gelu_twin":
                params[name][key] = float(init(t.max(), k_a)) * frac
            else:
                params[name][key] = float(init(t.abs().max(), k_a)) * frac
            return t
        if kind == "gelu_twin":
            return q_twin_gelu(t, k_a, params[name][key])
        return q_sym(t, params[name][key], k_a)

    ln = lambda t, n: torch.nn.functional.layer_norm(t, (DIM,), w[n + ".weight"], w[n + ".bias"], 1e-6)

    def lin(t, n, groups=1, kind="sym"):
        W = wq(n, groups)
        return aq(n, "a", t, kind) @ W.T + w[n + ".bias"]

    pw = wq("patch_embed.proj", DIM)  # per channel
    h = torch.nn.functional.conv2d(x, pw, w["patch_embed.proj.bias"], stride=PATCH).flatten(2).transpose(1, 2)
    h = torch.cat([w["cls_token"].expand(BATCH, -1, -1), h], 1) + w["pos_embed"]
    T, dh = h.shape[1], DIM // HEADS
    for i in range(DEPTH):
        b = f"blocks.{i}"
        qkv = lin(ln(h, b + ".norm1"), b + ".attn.qkv", groups=3)
        q, k, v = qkv.reshape(BATCH, T, 3, HEADS, dh).permute(2, 0, 3, 1, 4)
        m1 = b + ".attn.matmul1"
        if record:
            params[m1] = {}
        s = (aq(m1, "a", q) @ aq(m1, "b", k).transpose(-2, -1)) * dh ** -0.5
        p = s.softmax(-1)
        m2 = b + ".attn.matmul2"
        if record:
            params[m2] = {}
            if cfg["softmax"] == "uniform":
                params[m2]["a"] = float(init(p.abs().max(), k_a)) * frac
            elif cfg["softmax"] == "twin":
                params[m2]["split_exp"] = 3 + i
            else:
                params[m2]["mpq"] = ({"kind": "uniform", "step": float(p.max()) * 0.9 / (2 ** k_a - 1)}
                                     if i == 0 else {"kind": "log2"})
        else:
            if cfg["softmax"] == "uniform":
                p = q_sym(p, params[m2]["a"], k_a)
            elif cfg["softmax"] == "twin":
                p = q_twin_softmax(p, k_a, params[m2]["split_exp"])
            else:
                p = q_mpq(p, k_a, params[m2]["mpq"])
        ctx = (p @ aq(m2, "b", v)).transpose(1, 2).reshape(BATCH, T, DIM)
        h = h + lin(ctx, b + ".attn.proj")
        f1 = torch.nn.functional.gelu(lin(ln(h, b + ".norm2"), b + ".mlp.fc1"))
        h = h + lin(f1, b + ".mlp.fc2", kind="gelu_twin" if cfg["gelu"] == "twin" else "sym")
    return lin(ln(h, "norm")[:, 0], "head")


def main():
    torch.set_num_threads(1)
    w = synthetic_state_dict(specs(), SEED)
    x = synthetic_input((BATCH, 3, IMG, IMG), 7)
    os.makedirs(OUT, exist_ok=True)
    cases = {
        "base_w8a8": {"method": "base", "wbits": 8, "abits": 8, "softmax": "uniform", "gelu": "uniform",
                      "patch_weights": "channel"},
        "ptq4vit_w6a6": {"method": "ptq4vit", "wbits": 6, "abits": 6, "softmax": "twin", "gelu": "twin"},
        "apq_w8a8": {"method": "apq", "wbits": 8, "abits": 8, "softmax": "mpq", "gelu": "uniform"},
    }
    for name, cfg in cases.items():
        params = {}
        with torch.no_grad():
            forward(w, x, cfg, params, True)
            logits = forward(w, x, cfg, params, False)
        doc = {"format": "qvit-apq-params", "version": 1, "model": "tiny_vit_test", "config": cfg,
               "layers": params, "input_seed": 7, "batch": BATCH, "seed": SEED,
               "logits": [float(v) for v in logits.flatten()]}
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(doc, f, indent=1)
        print("wrote", name, float(logits.abs().max()))


if __name__ == "__main__":
    main()
