"""FP32 speed of qvit beside PyTorch, measured side by side in one run.

For every (model, batch, threads) the two engines are timed alternately (rounds of qvit, then
PyTorch, repeated), and the table reports medians and the ratio qvit/PyTorch in images/s.
PyTorch runs torchvision's VisionTransformer / swin_t in eval mode under torch.inference_mode with
torch.set_num_threads(threads); start it with OMP_WAIT_POLICY=PASSIVE (set here if unset) and
without OMP_PROC_BIND, otherwise its 2-thread timings are erratic on this machine.

Usage: /usr/bin/python3 bench/compare_pytorch.py [--models deit_tiny,deit_small] [--batches 1,32]
       [--threads 1,2] [--rounds 3] [--out docs/bench_fp32.md]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.pop("OMP_PROC_BIND", None)
import torch  # noqa: E402
import torchvision  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
QVIT = os.path.join(HERE, "..", "build", "qvit")
VIT = {"deit_tiny": (192, 12, 3), "deit_small": (384, 12, 6), "deit_base": (768, 12, 12),
       "vit_base": (768, 12, 12), "vit_large": (1024, 24, 16)}


def torch_model(name):
    if name in VIT:
        d, depth, heads = VIT[name]
        return torchvision.models.VisionTransformer(224, 16, depth, heads, d, 4 * d).eval()
    if name == "swin_tiny":
        return torchvision.models.swin_t().eval()
    if name == "swin_small":
        return torchvision.models.swin_s().eval()
    if name == "swin_base":
        return torchvision.models.swin_b().eval()
    raise SystemExit(f"no PyTorch model for {name}")


def time_torch(model, batch, threads, iters):
    torch.set_num_threads(threads)
    x = torch.randn(batch, 3, 224, 224)
    with torch.inference_mode():
        for _ in range(2):
            model(x)
        ms = []
        for _ in range(iters):
            t0 = time.perf_counter()
            model(x)
            ms.append((time.perf_counter() - t0) * 1000)
    return ms


def time_qvit(name, batch, threads, iters):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run([QVIT, "bench", "--model", name, "--batch", str(batch), "--threads",
                        str(threads), "--iters", str(iters), "--warmup", "2", "--json", f.name],
                       check=True, stdout=subprocess.DEVNULL)
        return json.load(open(f.name))["runs_ms"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="deit_tiny,deit_small")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    rows = []
    for name in args.models.split(","):
        model = torch_model(name)
        for batch in map(int, args.batches.split(",")):
            iters = 10 if batch == 1 else 2
            for threads in map(int, args.threads.split(",")):
                q, t = [], []
                for _ in range(args.rounds):  # alternate so both see the same machine load
                    q += time_qvit(name, batch, threads, iters)
                    t += time_torch(model, batch, threads, iters)
                qm, tm = statistics.median(q), statistics.median(t)
                rows.append((name, batch, threads, qm / batch, tm / batch, tm / qm))
                print(f"{name} b{batch} t{threads}: qvit {qm / batch:.2f} ms/img, "
                      f"torch {tm / batch:.2f} ms/img, ratio {tm / qm:.2f}x", file=sys.stderr)
    lines = ["| model | batch | threads | qvit ms/image | PyTorch ms/image | qvit speed-up |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {n} | {b} | {th} | {q:.2f} | {t:.2f} | {r:.2f}x |" for n, b, th, q, t, r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out + ".tmp", "w") as f:
            f.write(text)
        os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
