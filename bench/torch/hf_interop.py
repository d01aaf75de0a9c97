"""Checkpoints between jackpot and Hugging Face transformers, both ways (bench/interop/hf.ts has
the jackpot side and the order of the three commands).

1. Every `DIR/ours-*/` folder (written by `bench/interop/hf.ts --export`) is loaded with
   `AutoModelForCausalLM.from_pretrained`: no key may be missing, unexpected or mismatched, and the
   logits on the tokens of its `expected.json` must match jackpot's within --tolerance. Two of
   them have nonzero q/k/v biases (a Qwen2 model, and a Qwen3 one with attention_bias); one is
   saved in BF16 shards with model.safetensors.index.json, as the Hub ships Qwen: its config's
   torch_dtype and shard count must be what jackpot says, and loaded at its own dtype
   (dtype="auto") its parameters must be bfloat16 and equal, bit for bit, to the fp32 load's.
2. Random Qwen3 and Qwen2 models (one in shards) are saved with `save_pretrained` into
   `DIR/theirs-*/`, each with `expected.json` (the tokens and transformers' logits) for
   `bench/interop/hf.ts --check`. One Qwen2 model has zero q/k/v biases (jackpot loads it as a
   model without them), one nonzero ones (as in most Qwen2.5 checkpoints: jackpot loads them and
   must give the same logits), and one Qwen3 model has attention_bias with nonzero q/k/v biases
   (its o_proj bias, which transformers' Qwen3 also has then, stays zero: jackpot refuses a
   nonzero one).

Runs on the CPU in fp32 with eager attention (the reference; jackpot runs on its GPU).

    python3 bench/torch/hf_interop.py --dir /tmp/interop --out /tmp/interop/python.json
"""

import argparse
import glob
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM


def load(folder, dtype=torch.float32):
    # transformers 5 names the dtype argument `dtype`; 4.x `torch_dtype`.
    try:
        return AutoModelForCausalLM.from_pretrained(
            folder, dtype=dtype, attn_implementation="eager", output_loading_info=True)
    except TypeError:
        return AutoModelForCausalLM.from_pretrained(
            folder, torch_dtype=dtype, attn_implementation="eager", output_loading_info=True)


def check_layout(folder, expected, model):
    """Problems with a folder's torch_dtype and shards, against what jackpot says it wrote."""
    problems = []
    config = json.load(open(os.path.join(folder, "config.json")))
    want_dtype = expected.get("torch_dtype")
    if want_dtype is not None and config.get("torch_dtype") != want_dtype:
        problems.append(f"config torch_dtype {config.get('torch_dtype')!r}, expected {want_dtype!r}")
    index_path = os.path.join(folder, "model.safetensors.index.json")
    if "shards" in expected:
        if not os.path.exists(index_path):
            problems.append("no model.safetensors.index.json")
        else:
            shards = set(json.load(open(index_path))["weight_map"].values())
            if len(shards) != expected["shards"]:
                problems.append(f"{len(shards)} shards in the index, expected {expected['shards']}")
    if want_dtype == "bfloat16":
        # At its own dtype: bfloat16 parameters that widen exactly to the fp32 load's.
        native, _ = load(folder, "auto")
        ours = dict(model.named_parameters())
        for name, p in native.named_parameters():
            if p.dtype != torch.bfloat16:
                problems.append(f"dtype='auto' gives {name} as {p.dtype}, not bfloat16")
                break
            if not torch.equal(p.float(), ours[name].detach()):
                problems.append(f"{name}: the bfloat16 load differs from the fp32 one")
                break
    return problems


def logits_of(model, tokens):
    with torch.no_grad():
        ids = torch.tensor(tokens, dtype=torch.long)
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float()


def check_ours(folder, tolerance):
    name = os.path.basename(folder.rstrip("/"))
    expected = json.load(open(os.path.join(folder, "expected.json")))
    model, info = load(folder)
    model.eval()
    problems = [f"{k}: {v}" for k, v in info.items() if v]
    problems += check_layout(folder, expected, model)
    got = logits_of(model, expected["tokens"]).reshape(-1)
    want = torch.tensor(expected["logits"], dtype=torch.float32)
    if got.shape != want.shape:
        return {"name": name, "ok": False, "detail": f"{got.numel()} logits, expected {want.numel()}"}
    diff = (got - want).abs().max().item()
    ok = diff <= tolerance and not problems
    detail = f"{type(model).__name__}: max |dlogit| {diff:.2e} (|logit| up to {want.abs().max().item():.2f})"
    if problems:
        detail += "; problems: " + "; ".join(problems)
    return {"name": name, "ok": ok, "max_abs_diff": diff, "detail": detail}


def theirs_configs():
    common = dict(vocab_size=389, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                  max_position_embeddings=64, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return {
        "qwen3-tied-gqa": (Qwen3ForCausalLM, Qwen3Config(
            **common, num_attention_heads=4, num_key_value_heads=2, head_dim=20, rope_theta=1e6,
            rms_norm_eps=1e-6, tie_word_embeddings=True, attention_bias=False)),
        "qwen3-untied-mha": (Qwen3ForCausalLM, Qwen3Config(
            **common, num_attention_heads=3, num_key_value_heads=3, head_dim=16, rope_theta=10000.0,
            rms_norm_eps=1e-5, tie_word_embeddings=False, attention_bias=False)),
        "qwen2-zero-bias": (Qwen2ForCausalLM, Qwen2Config(
            **common, num_attention_heads=4, num_key_value_heads=2, rope_theta=10000.0,
            rms_norm_eps=1e-6, tie_word_embeddings=True)),
        "qwen2-bias": (Qwen2ForCausalLM, Qwen2Config(
            **common, num_attention_heads=4, num_key_value_heads=2, rope_theta=1e6,
            rms_norm_eps=1e-6, tie_word_embeddings=False)),
        "qwen3-bias": (Qwen3ForCausalLM, Qwen3Config(
            **common, num_attention_heads=4, num_key_value_heads=1, head_dim=12, rope_theta=10000.0,
            rms_norm_eps=1e-6, tie_word_embeddings=True, attention_bias=True)),
    }


# The cases whose q/k/v biases are drawn nonzero (the others' are zero, as jackpot writes them
# for a model without biases).
NONZERO_BIAS = ("qwen2-bias", "qwen3-bias")


def write_theirs(directory):
    written = []
    for i, (name, (cls, cfg)) in enumerate(theirs_configs().items()):
        torch.manual_seed(100 + i)
        model = cls(cfg).to(torch.float32).eval()
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if pname.endswith("norm.weight"):
                    p.copy_(0.5 + torch.rand_like(p))  # init is 1: a misplaced norm would hide
                elif pname.endswith(".bias"):
                    # q/k/v biases; Qwen3's attention_bias also gives o_proj one, which jackpot
                    # does not implement (it loads only a zero one)
                    nonzero = name in NONZERO_BIAS and not pname.endswith("o_proj.bias")
                    p.copy_(torch.randn_like(p) * 0.3 if nonzero else torch.zeros_like(p))
                else:
                    p.copy_(torch.randn_like(p) * 0.3)
        folder = os.path.join(directory, f"theirs-{name}")
        # The untied model in ~100 KB shards: model.safetensors.index.json and its shards, the
        # layout of large models on the Hub.
        shard = {"max_shard_size": "100KB"} if name == "qwen3-untied-mha" else {}
        model.save_pretrained(folder, safe_serialization=True, **shard)
        g = torch.Generator().manual_seed(200 + i)
        tokens = torch.randint(0, cfg.vocab_size, (2, 11), generator=g).tolist()
        expected = {"tokens": tokens, "logits": logits_of(model, tokens).reshape(-1).tolist()}
        json.dump(expected, open(os.path.join(folder, "expected.json"), "w"))
        written.append(folder)
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True, help="folder with ours-* (read) and theirs-* (written)")
    ap.add_argument("--tolerance", type=float, default=2e-4, help="largest |dlogit| that passes")
    ap.add_argument("--out", help="write the results of step 1 here (JSON)")
    args = ap.parse_args()
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    ours = sorted(glob.glob(os.path.join(args.dir, "ours-*")))
    if not ours:
        sys.exit(f"no ours-* folders in {args.dir}: run bench/interop/hf.ts --export first")
    results = [check_ours(f, args.tolerance) for f in ours]
    for r in results:
        print(f"{'ok  ' if r['ok'] else 'FAIL'} {r['name']}: {r['detail']}")
    for folder in write_theirs(args.dir):
        print(f"wrote {folder}")
    if args.out:
        json.dump({"transformers": transformers.__version__, "torch": torch.__version__,
                   "results": results}, open(args.out, "w"), indent=2)
    sys.exit(0 if all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()
