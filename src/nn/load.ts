/**
 * Loading a checkpoint folder into a GPU model without holding the model in host memory.
 *
 * `loadCheckpoint` + `Transformer.fromTensors` read every tensor into host memory as f32 first
 * (the weights file, its f32 conversion and the upload staging side by side): 8.7 GB of peak
 * resident memory for a 0.6B model on a CPU adapter. Here the parameters are allocated in their
 * final layout first ({@link Transformer.allocate}), then each checkpoint tensor is read from its
 * file in blocks of rows, converted to f32 (BF16 and F16 exactly) and written in place, waiting
 * for the GPU every {@link DEFAULT_SETTLE_BYTES} so that upload staging never piles up. Host
 * memory then stays at one block plus that much staging, whatever the model's size.
 *
 * @module
 */
import { runtime, type Tensor } from "../tensor/mod.ts";
import {
  CheckpointError,
  CheckpointReader,
  qwenBiasNames,
  type QwenConfig,
  qwenLayerNames,
  readQwenConfig,
  type TensorData,
  validateQwenTensors,
} from "./checkpoint/mod.ts";
import { fromQwenConfig, type ModelConfig } from "./config.ts";
import { Transformer } from "./transformer.ts";

/** Bytes of f32 values converted and written per piece by default (64 MiB). */
export const DEFAULT_CHUNK_BYTES = 64 * 2 ** 20;
/** Bytes written between waits for the GPU by default (256 MiB). */
export const DEFAULT_SETTLE_BYTES = 256 * 2 ** 20;

/** Options of {@link ModelCheckpoint.load} and {@link loadTransformer}. */
export interface ModelLoadOptions {
  /** Called after each piece with the f32 bytes written so far and in all. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  /** Most f32 bytes converted and written at once (default {@link DEFAULT_CHUNK_BYTES}). */
  chunkBytes?: number;
  /** Bytes written between waits for the GPU (default {@link DEFAULT_SETTLE_BYTES}). */
  settleBytes?: number;
}

/** A model loaded by {@link loadTransformer}, with what its folder said about it. */
export interface LoadedModel {
  /** The model, its parameters on the GPU. */
  model: Transformer;
  /** The folder's config.json. */
  qwen: QwenConfig;
  /** safetensors `__metadata__`. */
  metadata: Record<string, string>;
}

/**
 * A checkpoint folder opened for loading: config.json parsed, the weights' headers read and
 * checked against it, and the model configuration worked out (a qwen2 folder's q/k/v biases are
 * read to decide whether the model has them), all before any weight is read. Lets a command
 * check its other inputs against {@link config} before the long part, {@link load}.
 *
 * @example
 * ```ts
 * const ckpt = await ModelCheckpoint.open("models/Qwen3-0.6B");
 * try {
 *   console.log(ckpt.config.vocabSize);
 *   const model = await ckpt.load({ onProgress: (done, total) => bar.update(done / total) });
 * } finally {
 *   ckpt.close();
 * }
 * ```
 */
export class ModelCheckpoint {
  /** The folder's config.json. */
  readonly qwen: QwenConfig;
  /** The model it describes. */
  readonly config: ModelConfig;
  /** The weights' headers; files stay open until {@link close}. */
  readonly reader: CheckpointReader;

  private constructor(qwen: QwenConfig, config: ModelConfig, reader: CheckpointReader) {
    this.qwen = qwen;
    this.config = config;
    this.reader = reader;
  }

  /**
   * Opens `dir`. Errors are `CheckpointError`s (missing or corrupt files, tensors that do not
   * match the config) or `ModelConfigError`s (a configuration this transformer cannot compute).
   */
  static async open(dir: string): Promise<ModelCheckpoint> {
    const qwen = await readQwenConfig(dir);
    const reader = await CheckpointReader.open(dir);
    try {
      validateQwenTensors(qwen, reader.entries, reader.file);
      for (const [name, at] of reader.entries) {
        if (at.dtype !== "F32" && at.dtype !== "BF16" && at.dtype !== "F16") {
          throw new CheckpointError(
            at.path,
            `tensor '${name}' is ${at.dtype}; model weights must be F32, BF16 or F16`,
          );
        }
      }
      // The biases decide the configuration (zero q/k/v ones of a qwen2 folder are no parameters;
      // nonzero o_proj ones are refused): read them now, they are small.
      const biases = new Map<string, { data: TensorData }>();
      const outputBiases = Array.from(
        { length: qwen.num_hidden_layers },
        (_, i) => qwenLayerNames(qwen, i).oBias,
      ).filter((n): n is string => n !== undefined);
      for (const name of [...qwenBiasNames(qwen), ...outputBiases]) {
        if (reader.entries.has(name)) biases.set(name, { data: await reader.read(name) });
      }
      return new ModelCheckpoint(qwen, fromQwenConfig(qwen, biases), reader);
    } catch (e) {
      reader.close();
      throw e;
    }
  }

  /** Bytes of f32 values {@link load} writes: the model's parameters. */
  get bytesToLoad(): number {
    let n = 0;
    for (const shape of Transformer.shapes(this.config).values()) {
      n += shape.reduce((p, d) => p * d, 1) * 4;
    }
    return n;
  }

  /** safetensors `__metadata__`. */
  get metadata(): Record<string, string> {
    return this.reader.metadata;
  }

  /**
   * Allocates the model and streams every weight into it (see the module comment). The model is
   * disposed again if reading fails midway.
   */
  async load(options: ModelLoadOptions = {}): Promise<Transformer> {
    const chunkBytes = positive(options.chunkBytes ?? DEFAULT_CHUNK_BYTES, "chunkBytes");
    const settleBytes = positive(options.settleBytes ?? DEFAULT_SETTLE_BYTES, "settleBytes");
    const rt = runtime();
    const model = Transformer.allocate(this.config);
    try {
      const params = model.namedParameters();
      // Checkpoint tensors that are no parameters (zero biases, see `open`) are skipped.
      const work = [...this.reader.entries].filter(([name]) => params.has(name));
      const total = work.reduce((s, [name]) => s + params.get(name)!.size * 4, 0);
      let done = 0, sinceSettle = 0;
      for (const [name, at] of work) {
        const dst = params.get(name)!;
        const rows = at.shape.length === 0 ? 1 : at.shape[0];
        const rowElems = rows === 0 ? 0 : dst.size / rows;
        const step = Math.max(1, Math.floor(chunkBytes / Math.max(1, rowElems * 4)));
        const buffer = denseStorage(dst, name);
        for (let r = 0; r < rows; r += step) {
          const end = Math.min(rows, r + step);
          const data = await this.reader.read(name, r, end);
          rt.write(buffer, data, (dst.offset + r * rowElems) * 4);
          done += data.byteLength;
          sinceSettle += data.byteLength;
          if (sinceSettle >= settleBytes) {
            await rt.settle();
            sinceSettle = 0;
          }
          options.onProgress?.(done, total);
        }
      }
      await rt.settle();
      return model;
    } catch (e) {
      model.dispose();
      throw e;
    }
  }

  /** Closes the weight files (idempotent). */
  close(): void {
    this.reader.close();
  }
}

/**
 * Loads the checkpoint folder `dir` (config.json and `model.safetensors`, or shards with
 * `model.safetensors.index.json`) into a GPU model, one block of rows at a time (see the module
 * comment): the way to load a Hugging Face Qwen download. {@link ModelCheckpoint} splits the
 * checks from the load.
 *
 * @example
 * ```ts
 * await initTensors();
 * const { model } = await loadTransformer("models/Qwen2.5-0.5B");
 * ```
 */
export async function loadTransformer(
  dir: string,
  options: ModelLoadOptions = {},
): Promise<LoadedModel> {
  const ckpt = await ModelCheckpoint.open(dir);
  try {
    const model = await ckpt.load(options);
    return { model, qwen: ckpt.qwen, metadata: ckpt.metadata };
  } finally {
    ckpt.close();
  }
}

// The buffer under `t`, which must be dense row-major: parameters and their row views are.
function denseStorage(t: Tensor, name: string): GPUBuffer {
  let acc = 1;
  for (let i = t.rank - 1; i >= 0; i--) {
    if (t.shape[i] !== 1 && t.strides[i] !== acc) {
      throw new Error(`loadTransformer: parameter ${name} is not dense (${t.describe()})`);
    }
    acc *= t.shape[i];
  }
  return t.storageBuffer;
}

function positive(x: number, name: string): number {
  if (!Number.isFinite(x) || x <= 0) {
    throw new RangeError(`loadTransformer: ${name} must be a positive number of bytes, got ${x}`);
  }
  return x;
}
