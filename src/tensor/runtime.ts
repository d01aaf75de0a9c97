/**
 * The tensor runtime: one device, one buffer pool and one open {@link ComputeBatch} into which every
 * op records its dispatches. Nothing is submitted until a readback (or an upload that could race
 * with recorded work) needs it, so a whole training step is one pass and one submit.
 *
 * @module
 */
import {
  ComputeBatch,
  type Dispatch,
  getGpu,
  type GpuContext,
  readBuffers,
  type ReadRequest,
  writeBuffer,
} from "../gpu/mod.ts";
import { BufferPool } from "./pool.ts";

/** Counters that tests and benchmarks use to prove batching. */
export interface RuntimeCounters {
  /** Dispatches recorded since the runtime was created. */
  dispatches: number;
  /** Submits (one per flushed batch). */
  submits: number;
  /** Readback waits. */
  reads: number;
}

// A batch this long is submitted even without a readback, to bound the encoder's memory.
const MAX_BATCH = 8192;

/** Device, pool and the batch being recorded. Create with {@link initTensors}. */
export class TensorRuntime {
  /** The device. */
  readonly gpu: GpuContext;
  /** The buffer pool every tensor allocates from. */
  readonly pool: BufferPool;
  /** Dispatch/submit/read counters. */
  readonly counters: RuntimeCounters = { dispatches: 0, submits: 0, reads: 0 };
  /** Bytes a storage binding's offset must be a multiple of (the device's limit, usually 256). */
  readonly storageOffsetAlignment: number;
  /** The device's `maxStorageBufferBindingSize`: the most bytes one storage binding may span. */
  readonly deviceBindingLimit: number;
  #bindingLimit: number;
  #batch: ComputeBatch | null = null;
  // Depth of recordInto calls: while > 0 the open batch belongs to a caller, who submits it.
  #foreign = 0;

  /** @param gpu the device to run on. */
  constructor(gpu: GpuContext) {
    this.gpu = gpu;
    this.pool = new BufferPool(gpu);
    this.storageOffsetAlignment = gpu.limits.minStorageBufferOffsetAlignment ?? 256;
    this.deviceBindingLimit = gpu.limits.maxStorageBufferBindingSize ?? 2 ** 27;
    this.#bindingLimit = this.deviceBindingLimit;
  }

  /**
   * Most bytes one storage binding may span: the device's limit, unless lowered. Ops that touch a
   * tensor larger than this (the embedding table and classifier of a large vocabulary) split it
   * into blocks of rows that each fit; lowering it (tests, at small shapes) exercises those paths
   * on any device. Set it back to {@link deviceBindingLimit} afterwards.
   *
   * @example
   * ```ts
   * rt.storageBindingLimit = 4096; // every op now splits what spans more than 4 KiB
   * try { ... } finally { rt.storageBindingLimit = rt.deviceBindingLimit; }
   * ```
   */
  get storageBindingLimit(): number {
    return this.#bindingLimit;
  }

  set storageBindingLimit(bytes: number) {
    if (!(Number.isInteger(bytes) && bytes >= 256 && bytes % 16 === 0)) {
      throw new RangeError(
        `storageBindingLimit: ${bytes} must be an integer number of bytes >= 256, a multiple of 16`,
      );
    }
    if (bytes > this.deviceBindingLimit) {
      throw new RangeError(
        `storageBindingLimit: ${bytes} is over the device's maxStorageBufferBindingSize ` +
          `(${this.deviceBindingLimit})`,
      );
    }
    this.#bindingLimit = bytes;
  }

  /** Records one dispatch into the open batch. */
  dispatch(d: Dispatch): void {
    this.#batch ??= new ComputeBatch(this.gpu);
    this.#batch.dispatch(d);
    this.counters.dispatches++;
    if (this.#batch.length >= MAX_BATCH && this.#foreign === 0) this.flush();
  }

  /**
   * Lets `encode` record into the open batch directly (for encoders such as `encodeMatmul` that take
   * a ComputeBatch); its dispatches are counted.
   */
  encode(encode: (batch: ComputeBatch, gpu: GpuContext) => void): void {
    this.#batch ??= new ComputeBatch(this.gpu);
    const before = this.#batch.length;
    encode(this.#batch, this.gpu);
    this.counters.dispatches += this.#batch.length - before;
    if (this.#batch.length >= MAX_BATCH && this.#foreign === 0) this.flush();
  }

  /**
   * Records everything `fn` dispatches into `batch` instead of the open batch (benchmarks hand in
   * the batches `timeBatches` submits). The caller submits `batch`; inside `fn` nothing is
   * submitted, so a readback or upload there (which would need one) is an error rather than an
   * early submit of the caller's batch.
   */
  recordInto<T>(batch: ComputeBatch, fn: () => T): T {
    const saved = this.#batch;
    this.#batch = batch;
    this.#foreign++;
    try {
      return fn();
    } finally {
      this.#foreign--;
      this.#batch = saved;
    }
  }

  /** Submits the open batch (a no-op when nothing is recorded). */
  flush(): void {
    if (this.#foreign > 0) {
      throw new Error(
        "recordInto: the work recorded into the caller's batch cannot be read back, uploaded to " +
          "or flushed before the caller submits it",
      );
    }
    const b = this.#batch;
    this.#batch = null;
    if (b && b.length > 0) {
      b.submit();
      this.counters.submits++;
    }
  }

  /**
   * Writes host data into `buffer`. The open batch is submitted first: `queue.writeBuffer` lands
   * before any later submit, and a pooled buffer may still be read by recorded work.
   */
  write(buffer: GPUBuffer, data: ArrayBufferView, byteOffset = 0): void {
    this.flush();
    writeBuffer(this.gpu, buffer, data, byteOffset);
  }

  /**
   * Submits the open batch and waits until the GPU has done everything submitted, uploads
   * included. `queue.writeBuffer` keeps a staging copy of its data until the next submit has
   * run, so a loader writing more than memory holds waits here every few hundred MiB.
   */
  async settle(): Promise<void> {
    this.flush();
    this.gpu.device.queue.submit([]);
    await this.gpu.device.queue.onSubmittedWorkDone();
  }

  /** Submits the open batch and reads every region with one wait. */
  async read(requests: ReadRequest[]): Promise<ArrayBuffer[]> {
    this.flush();
    this.counters.reads++;
    return await readBuffers(this.gpu, requests);
  }
}

let current: TensorRuntime | undefined;

/**
 * Creates the default tensor runtime on `gpu` (default: the process-wide device) and returns it.
 * Calling it again returns the same runtime unless another device is given.
 *
 * @example
 * ```ts
 * await initTensors();
 * const x = randn([2, 3], { seed: 1 });
 * ```
 */
export async function initTensors(gpu?: GpuContext): Promise<TensorRuntime> {
  const g = gpu ?? await getGpu();
  if (!current || current.gpu !== g) current = new TensorRuntime(g);
  return current;
}

/** The default runtime; throws when {@link initTensors} has not been awaited. */
export function runtime(): TensorRuntime {
  if (!current) {
    throw new Error("no tensor runtime: call `await initTensors()` before creating tensors");
  }
  return current;
}
