/**
 * A checkpoint folder: the weights under Hugging Face Qwen names, in `model.safetensors` or in
 * shards listed by `model.safetensors.index.json` (F32, or BF16/F16 as the Hub ships them), and
 * `config.json` (Hugging Face Qwen keys, `torch_dtype`, plus `"jackpot": {task, step, …}`), the
 * layout `transformers.AutoModelForCausalLM.from_pretrained(folder)` reads.
 *
 * @module
 */
import { type JsonValue, parseQwenConfig, type QwenConfig, qwenConfigToJson } from "./config.ts";
import type { FloatDType } from "./dtype.ts";
import {
  CheckpointError,
  ensureDir,
  joinPath,
  readText,
  removeFile,
  writeBytesAtomic,
  writeTextAtomic,
} from "./fs.ts";
import { validateQwenTensors } from "./names.ts";
import {
  checkFloatDType,
  checkHostTensor,
  encodeSafetensors,
  type HostTensor,
  type LoadedTensor,
} from "./safetensors.ts";
import { planShards, shardIndexText } from "./shard_plan.ts";
import {
  parseShardIndex,
  readCheckpointWeights,
  WEIGHTS_FILE,
  WEIGHTS_INDEX_FILE,
} from "./shards.ts";

export { WEIGHTS_FILE } from "./shards.ts";

/** File name of the configuration inside a checkpoint folder. */
export const CONFIG_FILE = "config.json";

/** `torch_dtype` of config.json for each stored float type, as transformers writes it. */
export const TORCH_DTYPE: Readonly<Record<FloatDType, string>> = {
  F32: "float32",
  BF16: "bfloat16",
  F16: "float16",
};

/** What `saveCheckpoint` writes. */
export interface Checkpoint<T extends HostTensor = HostTensor> {
  /** The model configuration. */
  config: QwenConfig;
  /** Tensors by Hugging Face name. */
  tensors: ReadonlyMap<string, T>;
  /** safetensors `__metadata__`; `format: "pt"` is added when absent (transformers expects it). */
  metadata?: Record<string, string>;
}

/** Options of `saveCheckpoint` / `loadCheckpoint`. */
export interface CheckpointOptions {
  /** Check the tensor names and shapes against the config (default true). */
  validate?: boolean;
}

/** Options of `saveCheckpoint`. */
export interface SaveCheckpointOptions extends CheckpointOptions {
  /**
   * How float tensors are stored: "F32" (default, exact), "BF16" (as Qwen ships on the Hub) or
   * "F16", rounded to nearest, ties to even. config.json's `torch_dtype` says which.
   */
  dtype?: FloatDType;
  /**
   * Largest data bytes per file: above it the weights go into shards
   * (`model-00001-of-0000N.safetensors`, …) with `model.safetensors.index.json`, as
   * transformers' `save_pretrained(max_shard_size=…)` writes them. Default: one file.
   */
  maxShardBytes?: number;
}

/**
 * Writes the weights and `dir/config.json`, each file atomically (see `fs.ts`), creating `dir` if
 * needed. With `validate` (default) the tensors must match the config exactly. Float tensors are
 * stored as `options.dtype`; above `options.maxShardBytes` they go into shards (see
 * `planShards`), encoded one shard at a time so that the peak is one shard's bytes.
 *
 * Replacing a checkpoint in place never leaves a folder that loads stale weights:
 * - Shards: an old `model.safetensors` and index are removed first (the loader prefers the single
 *   file), then the shards and config.json are written, and the index last. A crash before the
 *   index is in place leaves a folder the loader refuses ("shard files without an index"); shards
 *   of the old index that the new one does not list are removed at the end.
 * - One file: `model.safetensors` then config.json are written, then an old index and the shards
 *   it lists are removed (until then the loader already reads the new single file).
 *
 * Each file is replaced whole, but the set is not: a crash between two renames can leave new
 * weights beside the old config, which `loadCheckpoint` refuses when the shapes disagree. Save
 * each step to its own folder (`step-000100/`) when that matters.
 *
 * @example
 * ```ts
 * await saveCheckpoint("runs/a/step-100", { config: { ...cfg, jackpot: { task: "wordsort", step: 100 } }, tensors });
 * await saveCheckpoint("export/qwen", ckpt, { dtype: "BF16", maxShardBytes: 2 ** 30 });
 * ```
 */
export async function saveCheckpoint(
  dir: string,
  checkpoint: Checkpoint,
  options: SaveCheckpointOptions = {},
): Promise<void> {
  const dtype = checkFloatDType(options.dtype, "dtype", "saveCheckpoint");
  const { maxShardBytes } = options;
  if (
    maxShardBytes !== undefined &&
    !(typeof maxShardBytes === "number" && Number.isSafeInteger(maxShardBytes) &&
      maxShardBytes >= 1)
  ) {
    throw new RangeError(
      `saveCheckpoint: option maxShardBytes must be a positive integer (bytes), got ${
        JSON.stringify(maxShardBytes)
      }`,
    );
  }
  const weightsPath = joinPath(dir, WEIGHTS_FILE);
  const indexPath = joinPath(dir, WEIGHTS_INDEX_FILE);
  const { tensors } = checkpoint;
  if (options.validate ?? true) validateQwenTensors(checkpoint.config, tensors, weightsPath);
  // Every tensor is checked before any file is touched (encoding checks too, but shard by shard).
  for (const [name, t] of tensors) checkHostTensor(name, t);
  // Re-parse what the config will say, so an invalid config is refused before anything is written.
  const configJson = configJsonFor(checkpoint.config, dtype);
  parseQwenConfig(configJson, joinPath(dir, CONFIG_FILE));
  const configText = JSON.stringify(configJson, null, 2) + "\n";
  const metadata = { format: "pt", ...checkpoint.metadata };
  const plan = planShards(tensors, dtype, maxShardBytes);
  const encode = (names: string[]) =>
    encodeSafetensors(new Map(names.map((n) => [n, tensors.get(n)!])), metadata, {
      floatDType: dtype,
    });
  await ensureDir(dir);
  const oldShards = await listedShards(dir);
  if (plan.length === 1) {
    await writeBytesAtomic(weightsPath, encode(plan[0].names));
    await writeTextAtomic(joinPath(dir, CONFIG_FILE), configText);
    if (oldShards !== null) {
      await removeFile(indexPath);
      for (const f of oldShards) if (f !== WEIGHTS_FILE) await removeFile(joinPath(dir, f));
    }
    return;
  }
  // The loader reads model.safetensors before any index: it must go before the first shard is
  // written, and the old index too, lest it pair new shards with old ones of the same names.
  await removeFile(weightsPath);
  await removeFile(indexPath);
  for (const shard of plan) await writeBytesAtomic(joinPath(dir, shard.file), encode(shard.names));
  await writeTextAtomic(joinPath(dir, CONFIG_FILE), configText);
  await writeTextAtomic(indexPath, shardIndexText(plan));
  const kept = new Set(plan.map((s) => s.file));
  for (const f of oldShards ?? []) if (!kept.has(f)) await removeFile(joinPath(dir, f));
}

/** config.json's object for `config` stored as `dtype` (`torch_dtype`, and `dtype` if present). */
function configJsonFor(config: QwenConfig, dtype: FloatDType): Record<string, JsonValue> {
  const torchDType = TORCH_DTYPE[dtype];
  const extra: Record<string, JsonValue> = { ...config.extra, torch_dtype: torchDType };
  // transformers 5 writes `dtype` instead: keep the two from disagreeing.
  if (Object.hasOwn(extra, "dtype")) extra.dtype = torchDType;
  return qwenConfigToJson({ ...config, extra });
}

/**
 * The safetensors files the index of `dir` lists (null without an index). An unreadable or
 * corrupt old index lists nothing: it is replaced, and only files it names are ever removed.
 */
async function listedShards(dir: string): Promise<string[] | null> {
  const path = joinPath(dir, WEIGHTS_INDEX_FILE);
  let text: string;
  try {
    text = await readText(path);
  } catch (e) {
    if (e instanceof CheckpointError && e.notFound) return null;
    return [];
  }
  try {
    const files = new Set(parseShardIndex(text, path).values());
    return [...files].filter((f) => f.endsWith(".safetensors"));
  } catch {
    return [];
  }
}

/**
 * Reads a checkpoint folder: `config.json` and `model.safetensors`, or the shards listed by
 * `model.safetensors.index.json` (transformers' layout for large models; see `shards.ts`). Any
 * problem (missing file, corrupt safetensors, bad config, tensors that do not match the config)
 * is one `CheckpointError` naming the file.
 */
export async function loadCheckpoint(
  dir: string,
  options: CheckpointOptions = {},
): Promise<Required<Checkpoint<LoadedTensor>>> {
  const config = await readQwenConfig(dir);
  const { tensors, metadata, file } = await readCheckpointWeights(dir);
  if (options.validate ?? true) validateQwenTensors(config, tensors, file);
  return { config, tensors, metadata };
}

/**
 * The `config.json` of a checkpoint folder, parsed and checked (`parseQwenConfig`); a missing
 * file, bad JSON or a bad key is a `CheckpointError` naming the file.
 */
export async function readQwenConfig(dir: string): Promise<QwenConfig> {
  const configPath = joinPath(dir, CONFIG_FILE);
  const text = await readText(configPath);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(configPath, `not JSON (${e instanceof Error ? e.message : e})`);
  }
  return parseQwenConfig(json, configPath);
}
