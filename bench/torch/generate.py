"""Hugging Face transformers sampling throughput at the anchor sizes: the yardstick for the
rollout engine (`bench/nn/`, benchTransformer). A randomly initialised Qwen3ForCausalLM with each
anchor's sizes (src/nn/anchors.ts, mirrored in anchors.py), fp32, KV cache on, batch 64, prompts of
8 random tokens, exactly 128 new tokens per row (no stop token), plain sampling (temperature 1, no
top-k/top-p). Reports tokens/s = batch × new tokens / wall time of `generate` (CUDA synchronised),
the median over `repeats` after one warm-up call.

    python bench/torch/generate.py --out torch/generate.json
    python bench/torch/generate.py --anchors 0.8M --device cpu --new-tokens 16
"""

import argparse
import json
import statistics
import sys
import time

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from anchors import ANCHORS, GENERATE, MAX_POSITIONS, NORM_EPS, ROPE_THETA


def model_for(a, device):
    cfg = Qwen3Config(
        vocab_size=a["vocab"], hidden_size=a["hidden"], intermediate_size=a["intermediate"],
        num_hidden_layers=a["layers"], num_attention_heads=a["heads"], num_key_value_heads=a["kv_heads"],
        head_dim=a["head_dim"], max_position_embeddings=MAX_POSITIONS, rms_norm_eps=NORM_EPS,
        rope_theta=ROPE_THETA, tie_word_embeddings=True, attention_bias=False, torch_dtype="float32",
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    torch.manual_seed(0)
    return Qwen3ForCausalLM(cfg).to(device=device, dtype=torch.float32).eval()


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def bench(name, a, device, batch, new_tokens, prompt_length, repeats):
    model = model_for(a, device)
    prompts = torch.randint(3, a["vocab"], (batch, prompt_length), device=device)
    kw = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=True, temperature=1.0,
              top_k=0, top_p=1.0, use_cache=True, eos_token_id=None, pad_token_id=0,
              attention_mask=torch.ones_like(prompts))
    with torch.no_grad():
        model.generate(prompts, **kw)  # warm-up
        times = []
        for _ in range(repeats):
            sync(device)
            t0 = time.perf_counter()
            out = model.generate(prompts, **kw)
            sync(device)
            times.append(time.perf_counter() - t0)
    assert out.shape[1] == prompt_length + new_tokens
    s = statistics.median(times)
    return {"anchor": name, "batch": batch, "new_tokens": new_tokens, "seconds": s,
            "tokens_per_s": batch * new_tokens / s}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--anchors", default=",".join(ANCHORS))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=GENERATE["batch"])
    ap.add_argument("--new-tokens", type=int, default=GENERATE["new_tokens"])
    ap.add_argument("--prompt-length", type=int, default=GENERATE["prompt_length"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    rows = []
    for name in args.anchors.split(","):
        if name not in ANCHORS:
            sys.exit(f"unknown anchor '{name}'; known: {', '.join(ANCHORS)}")
        r = bench(name, ANCHORS[name], args.device, args.batch, args.new_tokens, args.prompt_length, args.repeats)
        rows.append(r)
        print(f"{name:>5}  batch {r['batch']}  {r['new_tokens']} new tokens  {r['seconds']:.3f} s  "
              f"{r['tokens_per_s']:10.0f} tokens/s")
    report = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
              "torch": torch.__version__, "rows": rows}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
