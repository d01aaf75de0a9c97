/**
 * A folder laid out as the Hugging Face Hub ships a Qwen3 model, from a random one: config.json
 * (Qwen3-0.6B's keys, `torch_dtype`), BF16 weights in shards with model.safetensors.index.json,
 * a synthetic tokenizer.json (bench/text/synthetic.ts: prefix-chain BPE merges of mixed text,
 * Qwen's special tokens at Qwen's ids), tokenizer_config.json and generation_config.json (Qwen3's
 * sampling defaults). `jackpot generate --checkpoint DIR` then runs on it end to end at real size
 * without a download.
 *
 * ```sh
 * deno run -A bench/bigvocab/hub_folder.ts --out /tmp/qwen-like            # 28 layers, BF16, 3 shards
 * deno task jackpot generate --checkpoint /tmp/qwen-like --chat --prompt "Hello" --max-new 3
 * deno run -A bench/bigvocab/hub_folder.ts --out /tmp/small --layers 2 --shard-mb 100
 * ```
 *
 * @module
 */
import {
  makeQwenConfig,
  type QwenConfig,
  qwenTensorSpecs,
  saveCheckpoint,
} from "../../src/nn/checkpoint/mod.ts";
import type { HostTensor } from "../../src/nn/checkpoint/mod.ts";
import { Rng } from "../../src/util/rng.ts";
import { benchArgs, benchChoice, benchInt, benchUsageError } from "../args.ts";
import { mixedText, prefixChainTokenizer } from "../text/synthetic.ts";
import { peakRssMiB, QWEN3_VOCAB } from "./qwen_shape.ts";

const SCRIPT = "bench/bigvocab/hub_folder.ts";

/** Qwen's special tokens, which the synthetic tokenizer must have (`--chat`, stop tokens). */
export const QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] as const;

/** Ids of the special tokens of a tokenizer.json object. */
export function specialIds(tokenizer: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of tokenizer.added_tokens as { id: number; content: string }[]) {
    out[t.content] = t.id;
  }
  return out;
}

/** Widths of the Qwen3 sizes a stand-in can take (their config.json values). */
export const QWEN3_WIDTHS = {
  "0.6b": { hidden_size: 1024, intermediate_size: 3072 },
  "1.7b": { hidden_size: 2048, intermediate_size: 6144 },
} as const;

/** A key of {@link QWEN3_WIDTHS}. */
export type Qwen3Size = keyof typeof QWEN3_WIDTHS;

/**
 * Qwen3-0.6B's (or `size`'s) config with `layers` decoder blocks; `ids` places bos/eos (Qwen's
 * tokenizer has them at 151,643 and 151,645, the synthetic one right after its BPE vocabulary).
 */
export function qwen3SmallConfig(
  layers: number,
  ids: Record<string, number>,
  size: Qwen3Size = "0.6b",
): QwenConfig {
  const config = makeQwenConfig({
    vocab_size: QWEN3_VOCAB,
    ...QWEN3_WIDTHS[size],
    num_hidden_layers: layers,
    num_attention_heads: 16,
    num_key_value_heads: 8,
    head_dim: 128,
    max_position_embeddings: 40_960,
    rms_norm_eps: 1e-6,
    rope_theta: 1_000_000,
    tie_word_embeddings: true,
    model_type: "qwen3",
    attention_bias: false,
  });
  config.extra = {
    attention_dropout: 0,
    bos_token_id: ids["<|endoftext|>"],
    eos_token_id: ids["<|im_end|>"],
    hidden_act: "silu",
    initializer_range: 0.02,
    max_window_layers: layers,
    rope_scaling: null,
    sliding_window: null,
    use_cache: true,
    use_sliding_window: false,
    transformers_version: "4.51.0",
  };
  return config;
}

/**
 * Random weights for `config`: norm weights 1 (as transformers initialises them), every matrix
 * uniform with standard deviation 0.02 (the `initializer_range`), one Rng stream per tensor.
 */
export function randomQwenWeights(config: QwenConfig, seed: number): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  const half = 0.02 * Math.sqrt(3); // U(-a, a) has std a / √3
  qwenTensorSpecs(config).forEach(({ name, shape }, stream) => {
    const data = new Float32Array(shape.reduce((p, d) => p * d, 1));
    if (name.endsWith("norm.weight")) data.fill(1);
    else if (!name.endsWith(".bias")) {
      const rng = new Rng(seed, stream);
      const scale = (2 * half) / 2 ** 32;
      for (let i = 0; i < data.length; i++) data[i] = rng.nextU32() * scale - half;
    }
    out.set(name, { shape, data });
  });
  return out;
}

/**
 * A Qwen2-layout tokenizer.json with about `merges` merges (bench/text/synthetic.ts) and Qwen's
 * special tokens, added after the BPE vocabulary when it lacks them. (They cannot sit at Qwen's
 * ids, 151,643 …: tokenizers numbers added tokens right after the vocabulary, and so does
 * src/text, which refuses a file that says otherwise.)
 */
export function qwenLikeTokenizer(merges: number, seed = 1): Record<string, unknown> {
  const tok = prefixChainTokenizer(mixedText(2_000_000, seed), merges);
  const added = [...(tok.added_tokens as Record<string, unknown>[])];
  const have = specialIds(tok);
  let next = Object.keys((tok.model as { vocab: object }).vocab).length + added.length;
  for (const content of QWEN_SPECIALS) {
    if (content in have) continue;
    added.push({ ...added[0], id: next++, content, special: true });
  }
  return { ...tok, added_tokens: added };
}

/** Total bytes of the files in `dir`. */
async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile) total += (await Deno.stat(`${dir}/${e.name}`)).size;
  }
  return total;
}

if (import.meta.main) {
  const values = benchArgs(
    SCRIPT,
    "a Hub-like Qwen3 folder (BF16 shards, tokenizer) from a random model",
    {
      out: { type: "string", help: "the folder to write (required)" },
      layers: { type: "string", default: "28", help: "decoder blocks (Qwen3-0.6B and 1.7B: 28)" },
      size: { type: "string", default: "0.6b", help: "widths of Qwen3-0.6B or Qwen3-1.7B" },
      dtype: { type: "string", default: "bf16", help: "bf16, f16 or f32" },
      "shard-mb": {
        type: "string",
        default: "512",
        help: "largest shard in MB (10^6 bytes); 512 gives 28 layers in BF16 3 shards",
      },
      merges: { type: "string", default: "30000", help: "BPE merges of the synthetic tokenizer" },
      seed: { type: "string", default: "1", help: "seed of the weights" },
    },
  );
  if (values.out === undefined || values.out === "") {
    benchUsageError(SCRIPT, "--out DIR is required");
  }
  const out = String(values.out);
  const layers = benchInt(SCRIPT, values, "layers", 28, { min: 1 });
  const dtype = { bf16: "BF16", f16: "F16", f32: "F32" } as const;
  const dt = dtype[benchChoice(SCRIPT, values, "dtype", ["bf16", "f16", "f32"] as const, "bf16")];
  const shardMb = benchInt(SCRIPT, values, "shard-mb", 512, { min: 1 });
  const merges = benchInt(SCRIPT, values, "merges", 30_000, { min: 1 });
  const seed = benchInt(SCRIPT, values, "seed", 1, { min: 0 });
  const size = benchChoice(SCRIPT, values, "size", ["0.6b", "1.7b"] as const, "0.6b");

  const t0 = performance.now();
  const tokenizer = qwenLikeTokenizer(merges);
  const ids = specialIds(tokenizer);
  const config = qwen3SmallConfig(layers, ids, size);
  const tensors = randomQwenWeights(config, seed);
  const tWeights = performance.now();
  await saveCheckpoint(out, { config, tensors }, { dtype: dt, maxShardBytes: shardMb * 1e6 });
  const tSave = performance.now();
  await Deno.writeTextFile(`${out}/tokenizer.json`, JSON.stringify(tokenizer));
  await Deno.writeTextFile(
    `${out}/tokenizer_config.json`,
    JSON.stringify(
      {
        add_bos_token: false,
        add_prefix_space: false,
        bos_token: null,
        eos_token: "<|im_end|>",
        pad_token: "<|endoftext|>",
        errors: "replace",
        model_max_length: 131_072,
        split_special_tokens: false,
        tokenizer_class: "Qwen2Tokenizer",
        unk_token: null,
      },
      null,
      2,
    ) + "\n",
  );
  await Deno.writeTextFile(
    `${out}/generation_config.json`,
    JSON.stringify(
      {
        bos_token_id: ids["<|endoftext|>"],
        do_sample: true,
        eos_token_id: [ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id: ids["<|endoftext|>"],
        temperature: 0.6,
        top_k: 20,
        top_p: 0.95,
        transformers_version: "4.51.0",
      },
      null,
      2,
    ) + "\n",
  );
  const tEnd = performance.now();
  const files: string[] = [];
  for await (const e of Deno.readDir(out)) files.push(e.name);
  const parameters = [...tensors.values()].reduce((s, t) => s + t.data.length, 0);
  const vocab = Object.keys((tokenizer.model as { vocab: object }).vocab).length;
  console.log(
    `wrote ${out}: ${layers} layers, ${(parameters / 1e6).toFixed(1)}M parameters in ${dt}, ` +
      `${(await folderBytes(out) / 1e6).toFixed(0)} MB in ${files.length} files ` +
      `(${files.sort().join(", ")}); tokenizer ${vocab} BPE tokens + 3 specials`,
  );
  console.log(
    `time: tokenizer and weights ${((tWeights - t0) / 1000).toFixed(1)} s, save ${
      ((tSave - tWeights) / 1000).toFixed(1)
    } s, tokenizer.json and configs ${((tEnd - tSave) / 1000).toFixed(1)} s; peak RSS ${
      peakRssMiB().toFixed(0)
    } MiB`,
  );
}
