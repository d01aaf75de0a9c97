/**
 * Copy bandwidth: the yardstick for every memory-bound kernel. A vec4 copy reads and writes each
 * byte once, so bytes moved = 2 × size; on an H100 it reaches ~3.0 TB/s, as PyTorch's copy does.
 *
 * @module
 */
import {
  ComputeBatch,
  copyKernel,
  createStorageBuffer,
  type GpuContext,
  grid,
  timeBatches,
} from "../src/gpu/mod.ts";

/** One measured size. */
export interface CopyResult {
  /** Bytes in each buffer. */
  bytes: number;
  /** Median GPU time. */
  medianMs: number;
  /** Bytes read plus written per second, in GB/s (1e9). */
  gbPerSecond: number;
}

/**
 * Measures the copy kernel at each size in `megabytes` (per buffer).
 *
 * @example
 * ```ts
 * const [r] = await benchCopy(gpu, { megabytes: [64] });
 * console.log(r.gbPerSecond);
 * ```
 */
export async function benchCopy(
  gpu: GpuContext,
  { megabytes = [16, 64, 256], repeats = 10 }: { megabytes?: number[]; repeats?: number } = {},
): Promise<CopyResult[]> {
  const results: CopyResult[] = [];
  const maxBinding = gpu.limits.maxStorageBufferBindingSize;
  for (const mb of megabytes) {
    const bytes = Math.min(
      Math.floor(mb * 1024 * 1024 / 16) * 16,
      Math.floor(maxBinding / 16) * 16,
    );
    const src = createStorageBuffer(gpu, bytes, "copy src");
    const dst = createStorageBuffer(gpu, bytes, "copy dst");
    const vec4s = bytes / 16;
    const t = await timeBatches(gpu, (b: ComputeBatch) =>
      b.dispatch({
        kernel: copyKernel,
        bindings: [src, dst, new Uint32Array([vec4s])],
        workgroups: grid(Math.ceil(vec4s / 256)),
      }), { repeats });
    results.push({ bytes, medianMs: t.medianMs, gbPerSecond: (2 * bytes) / (t.medianMs * 1e6) });
    src.destroy();
    dst.destroy();
  }
  return results;
}
