/**
 * The weights of a checkpoint folder in either of transformers' layouts: one `model.safetensors`,
 * or shards (`model-00001-of-00002.safetensors`, …) listed by `model.safetensors.index.json`
 * (`{"metadata": {…}, "weight_map": {tensor name: shard file}}`), which `save_pretrained` writes
 * for models above its shard size (Qwen3-1.7B and larger on the Hub), and `saveCheckpoint` with
 * `maxShardBytes` (see `shard_plan.ts`).
 *
 * @module
 */
import { CheckpointError, joinPath, listFiles, readBytes, readText } from "./fs.ts";
import { decodeSafetensors, type LoadedTensor } from "./safetensors.ts";

/** File name of the weights inside a checkpoint folder. */
export const WEIGHTS_FILE = "model.safetensors";
/** File name of the shard index of a checkpoint saved in several files. */
export const WEIGHTS_INDEX_FILE = "model.safetensors.index.json";

/** The tensors of a checkpoint folder and where they came from. */
export interface CheckpointWeights {
  /** Tensors by name. */
  tensors: Map<string, LoadedTensor>;
  /** safetensors `__metadata__` (of the single file, or the shards' merged). */
  metadata: Record<string, string>;
  /** The file named in errors about the tensor set: the weights file or the index. */
  file: string;
}

/**
 * Reads `dir/model.safetensors`, or, when it does not exist, every shard that
 * `dir/model.safetensors.index.json` lists. Any problem (neither exists, a shard missing or
 * corrupt, a tensor in another shard than the index says, in two shards, or in none) is one
 * `CheckpointError` naming the file.
 *
 * @example
 * ```ts
 * const { tensors } = await readCheckpointWeights("models/Qwen3-1.7B");
 * ```
 */
export async function readCheckpointWeights(dir: string): Promise<CheckpointWeights> {
  const single = joinPath(dir, WEIGHTS_FILE);
  let bytes: Uint8Array;
  try {
    bytes = await readBytes(single);
  } catch (e) {
    if (!(e instanceof CheckpointError && e.notFound)) throw e;
    const index = joinPath(dir, WEIGHTS_INDEX_FILE);
    let text: string;
    try {
      text = await readText(index);
    } catch (e2) {
      if (e2 instanceof CheckpointError && e2.notFound) {
        // Shards without their index: a save that stopped before writing it (the index is
        // written last), or a partial copy. Never guess which shards belong together.
        const orphans = (await listFiles(dir)).filter((f) => /^model-.*\.safetensors$/.test(f));
        throw new CheckpointError(
          single,
          `neither this file nor ${WEIGHTS_INDEX_FILE} (the index of a sharded checkpoint) exists` +
            (orphans.length > 0
              ? ` (${orphans.length} shard file${orphans.length > 1 ? "s" : ""} such as ` +
                `'${orphans[0]}' without an index: an interrupted save or an incomplete copy?)`
              : ""),
          true,
        );
      }
      throw e2;
    }
    return await readShards(dir, index, parseShardIndex(text, index));
  }
  return { ...decodeSafetensors(bytes, single), file: single };
}

/**
 * The weight map of a shard index (tensor name → shard file name), checked: JSON, an object
 * `weight_map` of strings, each a plain file name in the same folder.
 */
export function parseShardIndex(text: string, file: string): Map<string, string> {
  const fail = (problem: string): never => {
    throw new CheckpointError(file, problem);
  };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(`not JSON (${e instanceof Error ? e.message : e})`);
  }
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    fail("has no 'weight_map' object (tensor name → shard file)");
  }
  const out = new Map<string, string>();
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    // A shard is a file beside the index: no paths, so an index cannot point outside the folder.
    if (typeof shard !== "string" || !/^[^/\\]+$/.test(shard) || shard === "." || shard === "..") {
      fail(`weight_map['${name}'] is ${JSON.stringify(shard)}, not a file name in this folder`);
    }
    out.set(name, shard as string);
  }
  if (out.size === 0) fail("weight_map is empty");
  return out;
}

async function readShards(
  dir: string,
  index: string,
  weightMap: Map<string, string>,
): Promise<CheckpointWeights> {
  const tensors = new Map<string, LoadedTensor>();
  const metadata: Record<string, string> = {};
  const from = new Map<string, string>();
  for (const shard of [...new Set(weightMap.values())].sort()) {
    const path = joinPath(dir, shard);
    let bytes: Uint8Array;
    try {
      bytes = await readBytes(path);
    } catch (e) {
      if (e instanceof CheckpointError && e.notFound) {
        throw new CheckpointError(index, `lists shard '${shard}', which does not exist`);
      }
      throw e;
    }
    const part = decodeSafetensors(bytes, path);
    for (const [name, t] of part.tensors) {
      if (from.has(name)) {
        throw new CheckpointError(path, `tensor '${name}' is also in '${from.get(name)}'`);
      }
      const listed = weightMap.get(name);
      if (listed !== shard) {
        throw new CheckpointError(
          path,
          listed === undefined
            ? `tensor '${name}' is not in ${WEIGHTS_INDEX_FILE}'s weight_map`
            : `tensor '${name}' is here, but ${WEIGHTS_INDEX_FILE} says it is in '${listed}'`,
        );
      }
      from.set(name, shard);
      tensors.set(name, t);
    }
    Object.assign(metadata, part.metadata);
  }
  const lost = [...weightMap.keys()].filter((name) => !tensors.has(name));
  if (lost.length > 0) {
    throw new CheckpointError(
      index,
      `lists tensor '${lost[0]}' in '${weightMap.get(lost[0])}', which does not hold it` +
        (lost.length > 1 ? ` (${lost.length} such tensors)` : ""),
    );
  }
  return { tensors, metadata, file: index };
}
