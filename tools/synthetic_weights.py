"""Seeded synthetic weights, bit-identical with qvit::synthetic_weights (src/models/registry.cpp).

u = hash32(index, seed ^ fnv1a32(name)) / 2^32 * 2 - 1 (float64, then float32):
LayerNorm weights 1 + 0.2u, biases 0.05u, tokens/position embeddings/relative position tables
0.5u, other weights u * sqrt(3 / fan_in) with fan_in = numel / shape[0].
Also `synthetic_input(shape, seed)`: 2u (name "input"), used as the model input by the golden
tests. Run with Debian's /usr/bin/python3 (python3-torch).
"""
import math

import torch

M32 = 0xFFFFFFFF


def fnv1a32(s: str) -> int:
    h = 2166136261
    for c in s.encode():
        h ^= c
        h = (h * 16777619) & M32
    return h


def hash32(idx: torch.Tensor, seed: int) -> torch.Tensor:
    # every product stays below 2^63, so int64 arithmetic is exact
    x = (idx + ((seed * 0x9E3779B9) & M32)) & M32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & M32
    x = x ^ (x >> 15)
    x = (x * 0x5BD1E995) & M32
    x = x ^ (x >> 16)
    return x


def uniform(name: str, numel: int, seed: int) -> torch.Tensor:
    tseed = (seed ^ fnv1a32(name)) & M32
    out = torch.empty(numel, dtype=torch.float64)
    chunk = 1 << 24
    for start in range(0, numel, chunk):
        idx = torch.arange(start, min(numel, start + chunk), dtype=torch.int64)
        out[start:start + idx.numel()] = hash32(idx, tseed).to(torch.float64) * (1.0 / 4294967296.0) * 2.0 - 1.0
    return out


def synthetic_tensor(name: str, shape, seed: int) -> torch.Tensor:
    numel = math.prod(shape)
    u = uniform(name, numel, seed)
    is_norm = "norm" in name and len(shape) == 1
    is_embed = name.endswith("cls_token") or name.endswith("pos_embed") or name.endswith(
        "relative_position_bias_table")
    offset = 0.0
    if is_norm and name.endswith(".weight"):
        scale, offset = 0.2, 1.0
    elif name.endswith(".bias"):
        scale = 0.05
    elif is_embed:
        scale = 0.5
    else:
        scale = math.sqrt(3.0 / (numel / shape[0]))
    return (offset + scale * u).to(torch.float32).reshape(shape)


def synthetic_state_dict(specs, seed: int):
    """specs: list of (name, shape) for float tensors, as qvit::weight_specs lists them."""
    return {n: synthetic_tensor(n, s, seed) for n, s in specs}


def synthetic_input(shape, seed: int) -> torch.Tensor:
    return (2.0 * uniform("input", math.prod(shape), seed)).to(torch.float32).reshape(shape)
