"""PyTorch fp32 matmul at the shapes of bench/matmul/main.ts: the yardstick for the WGSL kernels.

TF32 is off (torch.backends.cuda.matmul.allow_tf32 = False, float32 matmul precision "highest"),
so the GPU does the same IEEE fp32 arithmetic as the WGSL kernels. Each shape is timed with CUDA
events around `per_pass` back-to-back products (as the WGSL bench records several products per
pass), `repeats` times after warm-up; the median is reported.

    python bench/torch/matmul.py --out torch_matmul.json
    python bench/torch/matmul.py --small            # the --small shapes, on CPU if no CUDA
    python bench/torch/matmul.py --decode --out torch_decode.json   # the anchors' decode steps

The JSON's "rows" carry M, N, K, layout ("NN", "NT", "TN": whether A, B are stored transposed),
ms and tflops; `deno run -A bench/matmul/main.ts --torch=torch_matmul.json` prints the ratio.
"""

import argparse
import json
import statistics
import sys
import time

import torch

from anchors import ANCHORS, GENERATE

GPU_SHAPES = [
    (1024, 1024, 1024, "NN"),
    (2048, 2048, 2048, "NN"),
    (2000, 2000, 2000, "NN"),
    (4096, 4096, 4096, "NN"),
    (4000, 4000, 4000, "NN"),
    (4096, 4096, 1024, "NN"),
    (1024, 1024, 4096, "NN"),
    (8192, 1536, 512, "NN"),
    (8192, 1536, 512, "NT"),
    (8192, 1536, 512, "TN"),
    (512, 1536, 8192, "TN"),
    (256, 256, 64, "NT", 128),
    (256, 64, 256, "NN", 128),
]
SMALL_SHAPES = [
    (128, 128, 128, "NN"),
    (256, 256, 256, "NN"),
    (512, 512, 512, "NN"),
    (512, 384, 128, "NN"),
    (512, 384, 128, "NT"),
    (64, 96, 2048, "TN"),
    (64, 64, 32, "NT", 16),
]


def decode_shapes(names=None):
    """One decode step's distinct products per anchor (bench/matmul/decode.ts): activations
    [batch, in] times a weight stored [out, in], read transposed (NT)."""
    out = []
    for name, a in ANCHORS.items():
        if names and name not in names:
            continue
        c, q, kv = a["hidden"], a["heads"] * a["head_dim"], a["kv_heads"] * a["head_dim"]
        for n, k in [(q, c), (kv, c), (c, q), (a["intermediate"], c), (c, a["intermediate"]),
                     (a["vocab"], c)]:
            shape = (GENERATE["batch"], n, k, "NT")
            if shape not in out:
                out.append(shape)
    return out


def operands(m, n, k, layout, batch, device, gen):
    """A and B stored as the layout says (batch × ...); returns the views whose product is M×N."""
    a = torch.rand((batch,) + ((k, m) if layout[0] == "T" else (m, k)), device=device,
                   generator=gen) * 2 - 1
    b = torch.rand((batch,) + ((n, k) if layout[1] == "T" else (k, n)), device=device,
                   generator=gen) * 2 - 1
    a = a.transpose(1, 2) if layout[0] == "T" else a
    b = b.transpose(1, 2) if layout[1] == "T" else b
    return (a[0], b[0]) if batch == 1 else (a, b)


def time_shape(m, n, k, layout, batch, device, repeats, warmup):
    gen = torch.Generator(device=device).manual_seed(2026)
    a, b = operands(m, n, k, layout, batch, device, gen)
    c = torch.empty((m, n) if batch == 1 else (batch, m, n), device=device)
    flops = 2 * m * n * k * batch
    per_pass = 1 if device == "cpu" else min(50, max(1, -(-int(2e10) // flops)))
    for _ in range(warmup):
        torch.matmul(a, b, out=c)
    samples = []
    for _ in range(repeats):
        if device == "cuda":
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(per_pass):
                torch.matmul(a, b, out=c)
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / per_pass)
        else:
            t0 = time.perf_counter()
            torch.matmul(a, b, out=c)
            samples.append((time.perf_counter() - t0) * 1e3)
    # Check the timed product against float64 on a few rows: a fast wrong answer is no yardstick.
    a0, b0, c0 = (a, b, c) if batch == 1 else (a[0], b[0], c[0])
    rows = sorted({0, m // 2, m - 1})
    ref = a0[rows].double() @ b0.double()
    err = (c0[rows].double() - ref).abs().max().item()
    ms = statistics.median(samples)
    return {
        "M": m, "N": n, "K": k, "layout": layout, "batch": batch, "ms": ms,
        "tflops": flops / (ms * 1e-3) / 1e12, "per_pass": per_pass,
        "max_abs_err_sampled_rows": err,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="the small (CPU fallback) shapes")
    p.add_argument("--decode", action="store_true",
                   help="the anchors' decode-step products (with --small: the 0.8M anchor's)")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--out", help="write JSON here (default: stdout)")
    args = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.decode:
        shapes = decode_shapes(["0.8M"] if args.small else None)
    else:
        shapes = SMALL_SHAPES if args.small else GPU_SHAPES
    rows = [time_shape(*s[:4], s[4] if len(s) > 4 else 1, device, args.repeats, args.warmup)
            for s in shapes]
    out = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "method": "cuda-events" if device == "cuda" else "wall-clock",
        "command": "python bench/torch/matmul.py " + " ".join(sys.argv[1:]),
        "rows": rows,
    }
    for r in rows:
        print(f"torch {r['batch']}×{r['M']}×{r['N']}×{r['K']} {r['layout']}: {r['ms']:.3f} ms "
              f"{r['tflops']:.2f} TFLOP/s", file=sys.stderr)
    text = json.dumps(out, indent=2) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
