/**
 * The weights of a checkpoint folder in either of transformers' layouts: one `model.safetensors`,
 * or shards (`model-00001-of-00002.safetensors`, …) listed by `model.safetensors.index.json`
 * (`{"metadata": {…}, "weight_map": {tensor name: shard file}}`), which `save_pretrained` writes
 * for models above its shard size (Qwen3-1.7B and larger on the Hub), and `saveCheckpoint` with
 * `maxShardBytes` (see `shard_plan.ts`). Only the headers are read up front; tensors are read one
 * at a time by range, so a folder larger than memory can be streamed into a model.
 *
 * @module
 */
import type { SafetensorsDType } from "./dtype.ts";
import { CheckpointError, joinPath, listFiles, RangeReader, readText } from "./fs.ts";
import {
  decodeSafetensorsHeader,
  decodeTensorBytes,
  type LoadedTensor,
  MAX_HEADER_BYTES,
  type SafetensorsHeader,
  type TensorData,
} from "./safetensors.ts";

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
 * `CheckpointError` naming the file. Every tensor is held in memory; {@link CheckpointReader}
 * reads one at a time.
 *
 * @example
 * ```ts
 * const { tensors } = await readCheckpointWeights("models/Qwen3-1.7B");
 * ```
 */
export async function readCheckpointWeights(dir: string): Promise<CheckpointWeights> {
  const reader = await CheckpointReader.open(dir);
  try {
    const tensors = new Map<string, LoadedTensor>();
    for (const [name, at] of reader.entries) {
      tensors.set(name, { dtype: at.dtype, shape: at.shape, data: await reader.read(name) });
    }
    return { tensors, metadata: reader.metadata, file: reader.file };
  } finally {
    reader.close();
  }
}

/** Where one tensor of a checkpoint folder lies. */
export interface WeightLocation {
  /** The safetensors file holding it. */
  path: string;
  /** Stored element type. */
  dtype: SafetensorsDType;
  /** Dimensions. */
  shape: number[];
  /** Absolute byte offset of its data in the file. */
  begin: number;
  /** Absolute byte offset just past its data. */
  end: number;
}

/**
 * A checkpoint folder's weights, located but not read: the headers of `model.safetensors` or of
 * every shard its index lists, checked as {@link readCheckpointWeights} checks them; then
 * {@link read} brings in one tensor, or a block of its rows, at a time. A model larger than
 * memory loads this way (src/nn/load.ts). Holds the files open until {@link close}.
 *
 * @example
 * ```ts
 * const reader = await CheckpointReader.open("models/Qwen3-0.6B");
 * const norm = await reader.read("model.norm.weight"); // Float32Array (BF16 converted exactly)
 * reader.close();
 * ```
 */
export class CheckpointReader {
  /** Every tensor by name, in file order (shards in name order). */
  readonly entries: ReadonlyMap<string, WeightLocation>;
  /** safetensors `__metadata__` (of the single file, or the shards' merged). */
  readonly metadata: Record<string, string>;
  /** The file named in errors about the tensor set: the weights file or the index. */
  readonly file: string;
  #files: Map<string, RangeReader>;

  private constructor(
    entries: Map<string, WeightLocation>,
    metadata: Record<string, string>,
    file: string,
    files: Map<string, RangeReader>,
  ) {
    this.entries = entries;
    this.metadata = metadata;
    this.file = file;
    this.#files = files;
  }

  /** Reads the headers of `dir`'s weights (see {@link readCheckpointWeights} for the errors). */
  static async open(dir: string): Promise<CheckpointReader> {
    const files = new Map<string, RangeReader>();
    try {
      const single = joinPath(dir, WEIGHTS_FILE);
      let reader: RangeReader;
      try {
        reader = await RangeReader.open(single);
      } catch (e) {
        if (!(e instanceof CheckpointError && e.notFound)) throw e;
        const index = joinPath(dir, WEIGHTS_INDEX_FILE);
        const weightMap = parseShardIndex(await readIndex(dir, index, single), index);
        const { entries, metadata } = await locateShards(dir, index, weightMap, files);
        return new CheckpointReader(entries, metadata, index, files);
      }
      files.set(single, reader);
      const { entries, metadata } = locate(await readHeader(reader), reader.path);
      return new CheckpointReader(entries, metadata, single, files);
    } catch (e) {
      for (const f of files.values()) f.close();
      throw e;
    }
  }

  /**
   * The tensor `name`, or its rows `[rowBegin, rowEnd)` (along the first axis), decoded: F16 and
   * BF16 as exact Float32Array values, F32, I32 and I64 bit for bit.
   */
  async read(name: string, rowBegin = 0, rowEnd?: number): Promise<TensorData> {
    const at = this.entries.get(name);
    if (!at) throw new RangeError(`CheckpointReader.read: no tensor '${name}' in ${this.file}`);
    const rows = at.shape.length === 0 ? 1 : at.shape[0];
    const end = rowEnd ?? rows;
    if (
      !(Number.isInteger(rowBegin) && Number.isInteger(end) && 0 <= rowBegin && rowBegin <= end &&
        end <= rows)
    ) {
      throw new RangeError(
        `CheckpointReader.read: rows [${rowBegin}, ${end}) are not within the ${rows} rows of '${name}'`,
      );
    }
    const rowBytes = rows === 0 ? 0 : (at.end - at.begin) / rows;
    const reader = this.#files.get(at.path)!;
    const bytes = await reader.read(at.begin + rowBegin * rowBytes, (end - rowBegin) * rowBytes);
    return decodeTensorBytes(bytes, at.dtype);
  }

  /** Closes the files (idempotent). */
  close(): void {
    for (const f of this.#files.values()) f.close();
    this.#files.clear();
  }
}

// The index's text; without it, the error that names the orphaned shards, if any.
async function readIndex(dir: string, index: string, single: string): Promise<string> {
  try {
    return await readText(index);
  } catch (e) {
    if (!(e instanceof CheckpointError && e.notFound)) throw e;
    // Shards without their index: a save that stopped before writing it (the index is written
    // last), or a partial copy. Never guess which shards belong together.
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
}

// The length prefix and the header only: the data is read tensor by tensor later.
async function readHeader(reader: RangeReader): Promise<SafetensorsHeader> {
  const head = await reader.read(0, Math.min(8, reader.size));
  if (head.length < 8) return decodeSafetensorsHeader(head, reader.path, reader.size);
  const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
  // A corrupt length is reported by the decoder from the prefix alone.
  if (n > BigInt(MAX_HEADER_BYTES) || 8 + Number(n) > reader.size) {
    return decodeSafetensorsHeader(head, reader.path, reader.size);
  }
  return decodeSafetensorsHeader(await reader.read(0, 8 + Number(n)), reader.path, reader.size);
}

function locate(
  header: SafetensorsHeader,
  path: string,
): { entries: Map<string, WeightLocation>; metadata: Record<string, string> } {
  const entries = new Map<string, WeightLocation>();
  for (const [name, e] of header.entries) {
    const [begin, end] = e.data_offsets;
    entries.set(name, {
      path,
      dtype: e.dtype,
      shape: e.shape,
      begin: header.dataStart + begin,
      end: header.dataStart + end,
    });
  }
  return { entries, metadata: header.metadata };
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

async function locateShards(
  dir: string,
  index: string,
  weightMap: Map<string, string>,
  files: Map<string, RangeReader>,
): Promise<{ entries: Map<string, WeightLocation>; metadata: Record<string, string> }> {
  const entries = new Map<string, WeightLocation>();
  const metadata: Record<string, string> = {};
  const from = new Map<string, string>();
  for (const shard of [...new Set(weightMap.values())].sort()) {
    const path = joinPath(dir, shard);
    let reader: RangeReader;
    try {
      reader = await RangeReader.open(path);
    } catch (e) {
      if (e instanceof CheckpointError && e.notFound) {
        throw new CheckpointError(index, `lists shard '${shard}', which does not exist`);
      }
      throw e;
    }
    files.set(path, reader);
    const part = locate(await readHeader(reader), path);
    for (const [name, t] of part.entries) {
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
      entries.set(name, t);
    }
    Object.assign(metadata, part.metadata);
  }
  const lost = [...weightMap.keys()].filter((name) => !entries.has(name));
  if (lost.length > 0) {
    throw new CheckpointError(
      index,
      `lists tensor '${lost[0]}' in '${weightMap.get(lost[0])}', which does not hold it` +
        (lost.length > 1 ? ` (${lost.length} such tensors)` : ""),
    );
  }
  return { entries, metadata };
}
