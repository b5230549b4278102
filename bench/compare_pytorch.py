"""FP32 speed of qvit beside PyTorch, measured side by side in one run.

For every (model, batch, threads) the two engines are timed alternately (rounds of qvit, then
PyTorch, repeated), and the table reports medians and the ratio qvit/PyTorch in images/s.
PyTorch runs torchvision's VisionTransformer / swin_t in eval mode under torch.inference_mode with
torch.set_num_threads(threads); start it with OMP_WAIT_POLICY=PASSIVE (set here if unset) and
without OMP_PROC_BIND, otherwise its 2-thread timings are erratic on this machine.

Usage: /usr/bin/python3 bench/compare_pytorch.py [--models deit_tiny,deit_small] [--batches 1,32]
       [--threads 1,2] [--rounds 3] [--out docs/bench_fp32.md]
       [--qmodels deit_tiny=a.qvit,deit_small=b.qvit]

With --qmodels the table has four engines per row, alternated the same way: qvit FP32, the qvit
integer engine (`qvit bench --engine int --qmodel F`), PyTorch FP32 and PyTorch dynamic int8
(torch.ao.quantization.quantize_dynamic on the nn.Linear layers of the same torchvision model).
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
QVIT = os.environ.get("QVIT_BIN", os.path.join(HERE, "..", "build", "qvit"))
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


def time_qvit(name, batch, threads, iters, qmodel=None):
    extra = ["--engine", "int", "--qmodel", qmodel] if qmodel else []
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run([QVIT, "bench", "--model", name, "--batch", str(batch), "--threads",
                        str(threads), "--iters", str(iters), "--warmup", "2", "--json", f.name]
                       + extra, check=True, stdout=subprocess.DEVNULL)
        return json.load(open(f.name))["runs_ms"]


def main_int(args):
    qmodels = dict(kv.split("=", 1) for kv in args.qmodels.split(","))
    rows = []
    for name in args.models.split(","):
        model = torch_model(name)
        dyn = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        for batch in map(int, args.batches.split(",")):
            iters = 10 if batch == 1 else 2
            for threads in map(int, args.threads.split(",")):
                q, qi, t, td = [], [], [], []
                for _ in range(args.rounds):  # alternate so all see the same machine load
                    q += time_qvit(name, batch, threads, iters)
                    qi += time_qvit(name, batch, threads, iters, qmodels[name])
                    t += time_torch(model, batch, threads, iters)
                    td += time_torch(dyn, batch, threads, iters)
                m = [statistics.median(v) / batch for v in (q, qi, t, td)]
                rows.append((name, batch, threads, *m))
                print(f"{name} b{batch} t{threads}: qvit fp32 {m[0]:.2f}, qvit int {m[1]:.2f}, "
                      f"torch fp32 {m[2]:.2f}, torch dyn int8 {m[3]:.2f} ms/img", file=sys.stderr)
    lines = ["| model | batch | threads | qvit FP32 | qvit int | PyTorch FP32 | PyTorch dyn int8 "
             "| int vs qvit FP32 | int vs PyTorch FP32 | int vs PyTorch int8 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {n} | {b} | {th} | {a:.2f} | {i:.2f} | {t:.2f} | {d:.2f} | {a / i:.2f}x "
              f"| {t / i:.2f}x | {d / i:.2f}x |" for n, b, th, a, i, t, d in rows]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="deit_tiny,deit_small")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="")
    ap.add_argument("--qmodels", default="", help="name=file.qvit,...: also time the integer engine")
    args = ap.parse_args()
    if args.qmodels:
        text = main_int(args)
        print(text)
        if args.out:
            with open(args.out + ".tmp", "w") as f:
                f.write(text)
            os.replace(args.out + ".tmp", args.out)
        return
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
