/**
 * A buffer pool with size-class free lists, so that a training step reuses the buffers of the
 * previous step instead of creating (and later destroying) a GPU buffer per activation.
 *
 * Sizes are rounded up to a class with four steps per doubling (at most 25% waste). A released
 * buffer goes back to its class's free list; it is only reused by work recorded after the release,
 * and recorded work runs in queue order, so no fence is needed (uploads flush first, see runtime.ts).
 *
 * @module
 */
import { createStorageBuffer, type GpuContext } from "../gpu/mod.ts";

/** Memory accounting of a {@link BufferPool}, in bytes. */
export interface PoolStats {
  /** Bytes in buffers currently held by tensors. */
  liveBytes: number;
  /** Bytes in buffers waiting on free lists. */
  freeBytes: number;
  /** Bytes of every buffer the pool has created and not destroyed (live + free). */
  totalBytes: number;
  /** Buffers held by tensors. */
  liveBuffers: number;
  /** Buffers ever created by this pool (a steady-state step creates none). */
  created: number;
}

/** The size class of a request: the smallest of 2^k·{1, 1.25, 1.5, 1.75} (k >= 8) that fits. */
export function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes));
  const k = Math.floor(Math.log2(b));
  const base = 2 ** k;
  for (const f of [1, 1.25, 1.5, 1.75, 2]) {
    const c = base * f;
    if (c >= b) return Math.ceil(c / 4) * 4;
  }
  return base * 2;
}

/**
 * Free lists of storage buffers keyed by size class.
 *
 * @example
 * ```ts
 * const pool = new BufferPool(gpu);
 * const buf = pool.acquire(1024);
 * pool.release(buf);
 * console.log(pool.stats());
 * ```
 */
export class BufferPool {
  #gpu: GpuContext;
  #free = new Map<number, GPUBuffer[]>();
  #live = new Set<GPUBuffer>();
  #liveBytes = 0;
  #freeBytes = 0;
  #created = 0;

  /** @param gpu the device whose buffers are pooled. */
  constructor(gpu: GpuContext) {
    this.#gpu = gpu;
  }

  /** A buffer of at least `bytes` bytes (contents undefined). */
  acquire(bytes: number): GPUBuffer {
    const cls = sizeClass(bytes);
    const list = this.#free.get(cls);
    let buf = list?.pop();
    if (buf) {
      this.#freeBytes -= cls;
    } else {
      buf = createStorageBuffer(this.#gpu, cls, "jackpot tensor");
      this.#created++;
    }
    this.#live.add(buf);
    this.#liveBytes += cls;
    return buf;
  }

  /** Returns `buf` to its free list. Releasing a buffer twice or a foreign buffer throws. */
  release(buf: GPUBuffer): void {
    if (!this.#live.delete(buf)) {
      throw new Error("BufferPool.release: buffer is not live in this pool");
    }
    const cls = buf.size;
    this.#liveBytes -= cls;
    this.#freeBytes += cls;
    let list = this.#free.get(cls);
    if (!list) this.#free.set(cls, list = []);
    list.push(buf);
  }

  /** Destroys every free buffer (live ones are untouched). */
  trim(): void {
    for (const list of this.#free.values()) for (const b of list) b.destroy();
    this.#free.clear();
    this.#freeBytes = 0;
  }

  /** Current accounting. */
  stats(): PoolStats {
    return {
      liveBytes: this.#liveBytes,
      freeBytes: this.#freeBytes,
      totalBytes: this.#liveBytes + this.#freeBytes,
      liveBuffers: this.#live.size,
      created: this.#created,
    };
  }
}
