/**
 * A checkpoint folder: `model.safetensors` (F32 weights under Hugging Face Qwen names) and
 * `config.json` (Hugging Face Qwen keys plus `"jackpot": {task, step, …}`), the layout
 * `transformers.AutoModelForCausalLM.from_pretrained(folder)` reads.
 *
 * @module
 */
import { type JsonValue, parseQwenConfig, type QwenConfig, qwenConfigToJson } from "./config.ts";
import {
  CheckpointError,
  ensureDir,
  joinPath,
  readText,
  writeBytesAtomic,
  writeTextAtomic,
} from "./fs.ts";
import { validateQwenTensors } from "./names.ts";
import { encodeSafetensors, type HostTensor, type LoadedTensor } from "./safetensors.ts";
import { readCheckpointWeights, WEIGHTS_FILE } from "./shards.ts";

export { WEIGHTS_FILE } from "./shards.ts";

/** File name of the configuration inside a checkpoint folder. */
export const CONFIG_FILE = "config.json";

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

/**
 * Writes `dir/model.safetensors` then `dir/config.json`, each atomically (see `fs.ts`), creating
 * `dir` if needed. With `validate` (default) the tensors must match the config exactly.
 * Each file is replaced whole, but the pair is not: a crash between the two renames leaves new
 * weights beside the old config, which `loadCheckpoint` refuses when the shapes disagree. Save
 * each step to its own folder (`step-000100/`) when that matters.
 *
 * @example
 * ```ts
 * await saveCheckpoint("runs/a/step-100", { config: { ...cfg, jackpot: { task: "wordsort", step: 100 } }, tensors });
 * ```
 */
export async function saveCheckpoint(
  dir: string,
  checkpoint: Checkpoint,
  options: CheckpointOptions = {},
): Promise<void> {
  const weightsPath = joinPath(dir, WEIGHTS_FILE);
  if (options.validate ?? true) {
    validateQwenTensors(checkpoint.config, checkpoint.tensors, weightsPath);
  }
  const bytes = encodeSafetensors(checkpoint.tensors, { format: "pt", ...checkpoint.metadata });
  // Re-parse what the config will say, so an invalid config is refused before anything is written.
  const configJson: Record<string, JsonValue> = qwenConfigToJson(checkpoint.config);
  parseQwenConfig(configJson, joinPath(dir, CONFIG_FILE));
  await ensureDir(dir);
  await writeBytesAtomic(weightsPath, bytes);
  await writeTextAtomic(joinPath(dir, CONFIG_FILE), JSON.stringify(configJson, null, 2) + "\n");
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
  const configPath = joinPath(dir, CONFIG_FILE);
  const text = await readText(configPath);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(configPath, `not JSON (${e instanceof Error ? e.message : e})`);
  }
  const config = parseQwenConfig(json, configPath);
  const { tensors, metadata, file } = await readCheckpointWeights(dir);
  if (options.validate ?? true) validateQwenTensors(config, tensors, file);
  return { config, tensors, metadata };
}
