/**
 * Checkpoints against Hugging Face `transformers`, both ways, on a host that has it (the GPU
 * host; bench/device/run.sh stage `interop`):
 *
 * 1. `--export DIR` writes `DIR/ours-<case>/`: small random Qwen3 and Qwen2 models saved by
 *    jackpot (`saveCheckpoint`), two of them with nonzero q/k/v biases (qwen2, and qwen3 with
 *    `attention_bias`), one in BF16 shards with an index (as the Hub ships Qwen), each with
 *    `expected.json`, the logits of our forward (of the weights as saved) on fixed tokens.
 *    bench/torch/hf_interop.py loads each with `AutoModelForCausalLM.from_pretrained`, checks
 *    that no key is missing or unexpected, and compares its logits with ours.
 * 2. The Python script also writes `DIR/theirs-<case>/`: random models saved by transformers'
 *    `save_pretrained`, among them Qwen2 models with zero and with nonzero q/k/v biases, with
 *    their logits (or, for a case jackpot must refuse, the error it must give). `--check DIR`
 *    loads each through the CLI's checkpoint loader and compares.
 *
 * ```sh
 * deno run -A bench/interop/hf.ts --export /tmp/interop
 * python3 bench/torch/hf_interop.py --dir /tmp/interop --out /tmp/interop/python.json
 * deno run -A bench/interop/hf.ts --check /tmp/interop --json /tmp/interop/deno.json
 * ```
 *
 * Exit 0 when every comparison is within `--tolerance` (absolute, on logits), 1 otherwise.
 *
 * @module
 */
import { noGrad } from "../../src/autograd/mod.ts";
import { loadCheckpointOrExplain } from "../../src/cli/commands/pretrain.ts";
import {
  loadCheckpoint,
  saveCheckpoint,
  type SaveCheckpointOptions,
  TORCH_DTYPE,
} from "../../src/nn/checkpoint/mod.ts";
import { type ModelConfig, validateModelConfig } from "../../src/nn/config.ts";
import { Transformer } from "../../src/nn/transformer.ts";
import { initTensors, readAll, tensor, tidy } from "../../src/tensor/mod.ts";
import { Rng } from "../../src/util/rng.ts";
import { benchArgs, benchNumber, benchUsageError } from "../args.ts";

const SCRIPT = "bench/interop/hf.ts";

/** What `expected.json` of a case folder holds. */
export interface ExpectedLogits {
  /** Token ids [B][T]. */
  tokens: number[][];
  /** Logits [B, T, V], flattened row-major (absent when an error is expected). */
  logits?: number[];
  /** jackpot must refuse the checkpoint with a message containing this. */
  expect_error?: string;
  /** config.json's `torch_dtype`, which transformers must see (exported cases). */
  torch_dtype?: string;
  /** The weights are in this many shards with an index (exported sharded cases). */
  shards?: number;
}

/** One comparison of `--check`. */
export interface InteropResult {
  /** Case folder name. */
  name: string;
  /** Whether the check passed. */
  ok: boolean;
  /** Largest |ours − theirs| over the logits (when compared). */
  maxAbsDiff?: number;
  /** Largest |logit| of the reference (for scale). */
  maxAbsLogit?: number;
  /** What happened, in one line. */
  detail: string;
}

const BASE = {
  vocabSize: 517,
  hidden: 64,
  layers: 2,
  intermediate: 96,
  maxSeqLen: 64,
};

/**
 * The exported cases: QK-norm on and off, tied and untied classifier, head_dim other than
 * hidden / heads, GQA, MHA and MQA, two RoPE bases and eps values, q/k/v biases (Qwen2's, and
 * Qwen3's with `attention_bias`).
 */
export const EXPORT_CASES: Record<string, ModelConfig> = {
  "qwen3-tied-gqa": validateModelConfig({
    ...BASE,
    heads: 4,
    kvHeads: 2,
    headDim: 24,
    ropeTheta: 1e6,
    normEps: 1e-6,
    tiedEmbeddings: true,
    qkNorm: true,
  }),
  "qwen3-untied-mha": validateModelConfig({
    ...BASE,
    heads: 4,
    kvHeads: 4,
    headDim: 16,
    ropeTheta: 10000,
    normEps: 1e-5,
    tiedEmbeddings: false,
    qkNorm: true,
  }),
  "qwen2-tied-mqa": validateModelConfig({
    ...BASE,
    heads: 4,
    kvHeads: 1,
    headDim: 16,
    ropeTheta: 10000,
    normEps: 1e-6,
    tiedEmbeddings: true,
    qkNorm: false,
  }),
  "qwen2-bias-gqa": validateModelConfig({
    ...BASE,
    heads: 4,
    kvHeads: 2,
    headDim: 16,
    ropeTheta: 1e6,
    normEps: 1e-6,
    tiedEmbeddings: false,
    qkNorm: false,
    attentionBias: true,
  }),
  "qwen3-bias-gqa": validateModelConfig({
    ...BASE,
    heads: 4,
    kvHeads: 2,
    headDim: 16,
    ropeTheta: 10000,
    normEps: 1e-6,
    tiedEmbeddings: true,
    qkNorm: true,
    attentionBias: true,
  }),
  "qwen3-bf16-sharded": validateModelConfig({
    ...BASE,
    heads: 4,
    kvHeads: 2,
    headDim: 16,
    ropeTheta: 1e6,
    normEps: 1e-6,
    tiedEmbeddings: false,
    qkNorm: true,
  }),
};

/**
 * How a case is saved when not in one F32 file. The BF16 case's shards hold ~48 KB each: each of
 * its embedding and classifier (517 × 64 × 2 bytes = 66 KB) is over the limit, alone in a shard.
 */
export const EXPORT_SAVE_OPTIONS: Record<string, SaveCheckpointOptions> = {
  "qwen3-bf16-sharded": { dtype: "BF16", maxShardBytes: 48_000 },
};

/** Token ids [B][T] drawn from `seed` (B = 2, T = 11: not multiples of anything). */
export function interopTokens(vocab: number, seed: number): number[][] {
  const rng = new Rng(seed, 7);
  return [0, 1].map(() => Array.from({ length: 11 }, () => rng.int(vocab)));
}

async function logitsOf(model: Transformer, tokens: number[][]): Promise<Float32Array> {
  const B = tokens.length, T = tokens[0].length;
  const [out] = await noGrad(() =>
    readAll(tidy(() => [model.forward(tensor(Int32Array.from(tokens.flat()), [B, T]))]))
  );
  return out as Float32Array;
}

/**
 * Writes every `ours-<case>/` folder under `dir`: a random model (matrices N(0, 0.3²), norm
 * weights uniform in [0.5, 1.5] so that a misplaced norm shows, q/k/v biases N(0, 0.3²) where the
 * model has them), saved as `EXPORT_SAVE_OPTIONS` says, and the logits of the weights as saved.
 */
export async function exportCases(dir: string): Promise<string[]> {
  const written: string[] = [];
  let seed = 0;
  for (const [name, config] of Object.entries(EXPORT_CASES)) {
    seed++;
    const init = Transformer.init(config, { seed, std: 0.3 });
    const ck = await init.toCheckpoint({ role: "interop", case: name });
    init.dispose();
    const rng = new Rng(seed, 3);
    for (const [tname, t] of ck.tensors) {
      if (tname.endsWith("norm.weight")) {
        (t.data as Float32Array).forEach((_, i, a) => a[i] = 0.5 + rng.uniform());
      }
      if (/[qkv]_proj\.bias$/.test(tname) && config.attentionBias) {
        (t.data as Float32Array).forEach((_, i, a) => a[i] = 0.3 * rng.normal());
      }
    }
    const folder = `${dir}/ours-${name}`;
    const options = EXPORT_SAVE_OPTIONS[name] ?? {};
    await saveCheckpoint(folder, ck, options);
    // The logits of the weights as saved (BF16 rounds them), read back by the loader.
    const saved = await loadCheckpoint(folder);
    const model = Transformer.fromTensors(saved.config, saved.tensors);
    const tokens = interopTokens(config.vocabSize, seed);
    const logits = await logitsOf(model, tokens);
    const shards = (await shardFiles(folder)).length;
    const expected: ExpectedLogits = {
      tokens,
      logits: [...logits],
      torch_dtype: TORCH_DTYPE[options.dtype ?? "F32"],
      ...(shards > 0 ? { shards } : {}),
    };
    await Deno.writeTextFile(`${folder}/expected.json`, JSON.stringify(expected));
    model.dispose();
    written.push(folder);
  }
  return written;
}

/** The shard files of a folder's index (none when it has no index). */
async function shardFiles(folder: string): Promise<string[]> {
  try {
    const index = JSON.parse(await Deno.readTextFile(`${folder}/model.safetensors.index.json`));
    return [...new Set(Object.values(index.weight_map as Record<string, string>))];
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

/** Loads one `theirs-<case>/` folder through the CLI's loader and compares with its logits. */
export async function checkCase(
  folder: string,
  name: string,
  tolerance: number,
): Promise<InteropResult> {
  const expected = JSON.parse(await Deno.readTextFile(`${folder}/expected.json`)) as ExpectedLogits;
  let model: Transformer;
  try {
    const ck = await loadCheckpointOrExplain(folder, "--check");
    model = Transformer.fromTensors(ck.config, ck.tensors);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (expected.expect_error !== undefined && message.includes(expected.expect_error)) {
      return { name, ok: true, detail: `refused as expected: ${message}` };
    }
    return { name, ok: false, detail: `load failed: ${message}` };
  }
  if (expected.expect_error !== undefined || expected.logits === undefined) {
    model.dispose();
    return { name, ok: false, detail: `loaded, but expected: ${expected.expect_error}` };
  }
  const got = await logitsOf(model, expected.tokens);
  model.dispose();
  const want = expected.logits;
  if (got.length !== want.length) {
    return { name, ok: false, detail: `${got.length} logits, expected ${want.length}` };
  }
  let maxAbsDiff = 0, maxAbsLogit = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    maxAbsDiff = Number.isNaN(d) ? NaN : Math.max(maxAbsDiff, d);
    maxAbsLogit = Math.max(maxAbsLogit, Math.abs(want[i]));
  }
  const ok = maxAbsDiff <= tolerance;
  return {
    name,
    ok,
    maxAbsDiff,
    maxAbsLogit,
    detail: `max |Δlogit| ${maxAbsDiff.toExponential(2)} (|logit| up to ${
      maxAbsLogit.toFixed(2)
    }; tolerance ${tolerance})`,
  };
}

/** Checks every `theirs-*` folder of `dir`, in name order. */
export async function checkCases(dir: string, tolerance: number): Promise<InteropResult[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory && e.name.startsWith("theirs-")) names.push(e.name);
  }
  names.sort();
  const results: InteropResult[] = [];
  for (const name of names) results.push(await checkCase(`${dir}/${name}`, name, tolerance));
  return results;
}

if (import.meta.main) {
  const values = benchArgs(SCRIPT, "Checkpoints against Hugging Face transformers, both ways", {
    export: { type: "string", help: "write jackpot's checkpoints (ours-*) with their logits here" },
    check: { type: "string", help: "load transformers' checkpoints (theirs-*) from here, compare" },
    tolerance: { type: "string", default: "2e-4", help: "largest |Δlogit| that passes" },
    json: { type: "string", help: "write the --check results here" },
  });
  const tolerance = benchNumber(SCRIPT, values, "tolerance", 2e-4, { min: 0 });
  if ((values.export === undefined) === (values.check === undefined)) {
    benchUsageError(SCRIPT, "give exactly one of --export DIR and --check DIR");
  }
  await initTensors();
  if (values.export !== undefined) {
    for (const folder of await exportCases(values.export)) console.log(`wrote ${folder}`);
  } else {
    const results = await checkCases(values.check!, tolerance);
    if (results.length === 0) {
      console.error(`${SCRIPT}: no theirs-* folders in ${values.check}`);
      Deno.exit(1);
    }
    for (const r of results) console.log(`${r.ok ? "ok  " : "FAIL"} ${r.name}: ${r.detail}`);
    if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(results, null, 2));
    Deno.exit(results.every((r) => r.ok) ? 0 : 1);
  }
}
