"""PyTorch version of the Jackpot weight computation timed by bench/obrs/main.ts: the yardstick.

The same pipeline in plain PyTorch ops: log-softmax of p_inf and p_new logits, two top-k, the
de-duplicated union Z_approx = sum over topk(p_inf) U topk(p_new) of min(p_inf, p_new / lambda),
the acceptance and mask of the sampled tokens, kappa = accept_rate / mean(Z_approx), and the
weights w = kappa Z_approx max(lambda, p_new/p_inf), rho = min(w, c1) min(p_ref/p_new, c2) with
their statistics. p_ref is given at the sampled token only (target "new"), as in the WGSL bench.
Timed eager and under torch.compile with CUDA events (median of `repeats` after warm-up); top-k
alone (torch.topk on one matrix) is timed too.

    python bench/torch/obrs_pipeline.py --out torch_obrs.json          # 4096 and 16384 x 151936
    python bench/torch/obrs_pipeline.py --small                         # 256 x 4096, CPU if no CUDA

Prints one JSON object per shape (and writes the list to --out).
"""

import argparse
import json
import math
import statistics
import sys
import time

import torch


def jackpot(inf_logits, new_logits, tokens, ref_lp, u, k, lam, c1, c2):
    """Returns (mask, w, rho, stats tensor) for one batch; every op a plain PyTorch op."""
    log_lam = math.log(lam)
    lp_inf = torch.log_softmax(inf_logits, dim=-1)
    lp_new = torch.log_softmax(new_logits, dim=-1)
    ti = torch.topk(inf_logits, k, dim=-1).indices
    tn = torch.topk(new_logits, k, dim=-1).indices
    dup = (tn.unsqueeze(-1) == ti.unsqueeze(-2)).any(-1)  # p_new's ids already in p_inf's
    ids = torch.cat([ti, tn], dim=-1)
    keep = torch.cat([torch.ones_like(dup), ~dup], dim=-1)
    a = lp_inf.gather(-1, ids)
    b = lp_new.gather(-1, ids) - log_lam
    z = (torch.minimum(a, b).exp() * keep).sum(-1)
    l_inf = lp_inf.gather(-1, tokens[:, None])[:, 0]
    l_new = lp_new.gather(-1, tokens[:, None])[:, 0]
    log_a = torch.clamp(l_new - l_inf - log_lam, max=0.0)
    mask = u < log_a.exp()
    accept = mask.float().mean()
    kappa = torch.where(z.sum() > 0, accept / z.mean(), torch.zeros_like(accept))
    ratio = torch.clamp(l_new - l_inf, -20.0, 20.0)
    w = kappa * z * torch.exp(torch.clamp(ratio, min=log_lam))
    q = torch.exp(torch.clamp(ref_lp - l_new, -20.0, 20.0))
    rho = torch.clamp(w, max=c1) * torch.clamp(q, max=c2)
    m = mask.float()
    n_acc = m.sum().clamp(min=1.0)
    stats = torch.stack([
        accept,
        kappa,
        z.mean(),
        (w * m).sum() / n_acc,
        (w * m).max(),
        (((w > c1) | (q > c2)).float() * m).sum() / n_acc,
        (w * m).sum() ** 2 / (w * w * m).sum().clamp(min=1e-30),
    ])
    return mask, w, rho, stats


def median_ms(fn, device, repeats, warmup):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        if device == "cuda":
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def bench_shape(rows, vocab, k, device, repeats, warmup, compile_too):
    gen = torch.Generator(device=device).manual_seed(1234)
    inf_logits = 3 * torch.randn((rows, vocab), device=device, generator=gen)
    new_logits = inf_logits + 0.3 * torch.randn((rows, vocab), device=device, generator=gen)
    tokens = torch.randint(0, vocab, (rows,), device=device, generator=gen)
    ref_lp = torch.full((rows,), -2.0, device=device)
    u = torch.rand((rows,), device=device, generator=gen)
    args = (inf_logits, new_logits, tokens, ref_lp, u, k, 1.0, 3.0, 3.0)
    out = {"rows": rows, "vocab": vocab, "k": k, "device": device,
           "torch": torch.__version__}
    if device == "cuda":
        out["gpu"] = torch.cuda.get_device_name()
    out["topk_ms"] = median_ms(lambda: torch.topk(inf_logits, k, dim=-1), device, repeats, warmup)
    out["eager_ms"] = median_ms(lambda: jackpot(*args), device, repeats, warmup)
    if compile_too:
        compiled = torch.compile(jackpot)
        out["compiled_ms"] = median_ms(lambda: compiled(*args), device, repeats, warmup + 3)
    stats = jackpot(*args)[3].tolist()
    out["sanity"] = {"accept_rate": stats[0], "kappa": stats[1], "mean_z_approx": stats[2]}
    # Bytes of logits the pipeline must read at least once (both matrices), for a TB/s figure.
    out["bytes_read"] = 2 * rows * vocab * 4
    out["eager_tb_per_s"] = out["bytes_read"] / (out["eager_ms"] * 1e9)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--small", action="store_true")
    p.add_argument("--rows", type=int)
    p.add_argument("--vocab", type=int)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--out")
    a = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    vocab = a.vocab or (4096 if a.small else 151936)
    rows_list = [a.rows] if a.rows else ([256] if a.small else [4096, 16384])
    results = []
    for rows in rows_list:
        r = bench_shape(rows, vocab, a.k, device, a.repeats, a.warmup, not a.no_compile)
        print(json.dumps(r))
        sys.stdout.flush()
        results.append(r)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
