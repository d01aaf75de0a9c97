"""PyTorch fp32 eager training step of jackpot's transformer at the anchor sizes: the yardstick for
`bench/nn/` (benchTransformer). Same architecture as src/nn/transformer.ts: token embedding,
L × (RMSNorm → q/k/v projections → per-head RMSNorm of q and k (QK-norm) → RoPE (rotate-half) →
causal grouped-query attention → o projection → residual; RMSNorm → SwiGLU → residual), final
RMSNorm, classifier tied to the embedding; mean cross-entropy over every position; AdamW
(lr 1e-3, weight decay 0.01 on matrices) with global-norm clipping at 1.

fp32 throughout, TF32 off, no torch.compile (eager). Attention is written out (matmul, mask,
softmax, matmul) as ours is; `--sdpa` uses F.scaled_dot_product_attention instead.

    python bench/torch/train_step.py --out torch/train_step.json       # CUDA, the three anchors
    python bench/torch/train_step.py --anchors 0.8M --device cpu       # anywhere

Each step (forward, backward, clip, optimizer) is timed with CUDA events (wall clock on CPU),
`repeats` times after `warmup` steps; the median ms and tokens/s are reported.
"""

import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from anchors import ANCHORS, MAX_POSITIONS, NORM_EPS, ROPE_THETA


class RMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + NORM_EPS) * self.weight


def rope_tables(T, D, device):
    inv = ROPE_THETA ** (-torch.arange(0, D, 2, device=device, dtype=torch.float32) / D)
    ang = torch.arange(T, device=device, dtype=torch.float32)[:, None] * inv[None, :]
    return ang.cos(), ang.sin()  # [T, D/2]


def rope(x, cos, sin):
    # x [B, T, H, D], rotate-half pairing (j with j + D/2)
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)


class Block(nn.Module):
    def __init__(self, a, sdpa):
        super().__init__()
        C, H, KV, D, I = a["hidden"], a["heads"], a["kv_heads"], a["head_dim"], a["intermediate"]
        self.H, self.KV, self.D, self.sdpa = H, KV, D, sdpa
        self.input_layernorm = RMSNorm(C)
        self.q_proj = nn.Linear(C, H * D, bias=False)
        self.k_proj = nn.Linear(C, KV * D, bias=False)
        self.v_proj = nn.Linear(C, KV * D, bias=False)
        self.o_proj = nn.Linear(H * D, C, bias=False)
        self.q_norm = RMSNorm(D)
        self.k_norm = RMSNorm(D)
        self.post_attention_layernorm = RMSNorm(C)
        self.gate_proj = nn.Linear(C, I, bias=False)
        self.up_proj = nn.Linear(C, I, bias=False)
        self.down_proj = nn.Linear(I, C, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        h = self.input_layernorm(x)
        q = rope(self.q_norm(self.q_proj(h).view(B, T, self.H, self.D)), cos, sin)
        k = rope(self.k_norm(self.k_proj(h).view(B, T, self.KV, self.D)), cos, sin)
        v = self.v_proj(h).view(B, T, self.KV, self.D)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, T, D]
        G = self.H // self.KV
        if self.sdpa:
            att = F.scaled_dot_product_attention(q, k.repeat_interleave(G, 1), v.repeat_interleave(G, 1),
                                                 is_causal=True)
        else:
            k, v = k.repeat_interleave(G, 1), v.repeat_interleave(G, 1)
            s = (q @ k.transpose(-2, -1)) / math.sqrt(self.D) + mask
            att = s.softmax(-1) @ v
        x = x + self.o_proj(att.transpose(1, 2).reshape(B, T, self.H * self.D))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Model(nn.Module):
    def __init__(self, a, sdpa=False):
        super().__init__()
        self.embed_tokens = nn.Embedding(a["vocab"], a["hidden"])
        self.layers = nn.ModuleList([Block(a, sdpa) for _ in range(a["layers"])])
        self.norm = RMSNorm(a["hidden"])
        self.D = a["head_dim"]
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * a["layers"]) if ("o_proj" in name or "down_proj" in name) else 0.02
                nn.init.normal_(p, std=std)

    def forward(self, tokens, targets):
        T = tokens.shape[1]
        assert T <= MAX_POSITIONS
        cos, sin = rope_tables(T, self.D, tokens.device)
        mask = torch.full((T, T), float("-inf"), device=tokens.device).triu(1)
        x = self.embed_tokens(tokens)
        for b in self.layers:
            x = b(x, cos, sin, mask)
        logits = self.norm(x) @ self.embed_tokens.weight.t()
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def bench(name, a, device, warmup, repeats, sdpa):
    torch.manual_seed(0)
    model = Model(a, sdpa).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": other, "weight_decay": 0.0}],
                            lr=1e-3, foreach=True)
    B, T = a["B"], a["T"]
    tokens = torch.randint(0, a["vocab"], (B, T), device=device)
    targets = torch.randint(0, a["vocab"], (B, T), device=device)

    def step():
        loss = model(tokens, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=False)
        return loss

    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            step()
            e.record()
            torch.cuda.synchronize()
            times.append(s.elapsed_time(e))
        else:
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1000)
    ms = statistics.median(times)
    return {"anchor": name, "params": n_params, "B": B, "T": T, "ms": ms, "tokens_per_s": B * T / (ms / 1000),
            "attention": "sdpa" if sdpa else "naive"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--anchors", default=",".join(ANCHORS))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--sdpa", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    rows = []
    for name in args.anchors.split(","):
        if name not in ANCHORS:
            sys.exit(f"unknown anchor '{name}'; known: {', '.join(ANCHORS)}")
        r = bench(name, ANCHORS[name], args.device, args.warmup, args.repeats, args.sdpa)
        rows.append(r)
        print(f"{name:>5}  {r['params'] / 1e6:6.2f}M params  B={r['B']} T={r['T']}  {r['ms']:8.2f} ms/step  "
              f"{r['tokens_per_s']:10.0f} tokens/s")
    report = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
              "torch": torch.__version__, "rows": rows}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
