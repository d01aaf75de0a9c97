/**
 * Timing GPU work with timestamp queries: the time the GPU spent inside a pass, free of the
 * ~10 ms JavaScript wait that wall-clock timing would add in Deno.
 *
 * @module
 */
import type { GpuContext } from "./device.ts";
import type { ComputeBatch } from "./batch.ts";
import { median } from "../util/stats.ts";
import { createTrackedBuffer } from "./memory.ts";

// WebGPU caps a query set at 4,096 queries; each repeat writes two.
const MAX_REPEATS_PER_SET = 2048;

/** Summary of repeated timings, in milliseconds. */
export interface TimingSummary {
  /** Median over the repeats: the figure benchmarks report. */
  medianMs: number;
  /** Fastest repeat. */
  minMs: number;
  /** Slowest repeat. */
  maxMs: number;
  /** Every repeat, in order. */
  samplesMs: number[];
  /** "gpu-timestamps" or "wall-clock" (when the adapter lacks timestamp-query). */
  method: "gpu-timestamps" | "wall-clock";
}

/**
 * Times `record` (which records work into a fresh batch) over `repeats` submissions after `warmup`
 * untimed ones (`repeats` >= 1, `warmup` >= 0, integers). All timestamps are resolved and read back
 * with a single wait at the end.
 *
 * @example
 * ```ts
 * const t = await timeBatches(gpu, (b) => b.dispatch({ kernel, bindings, workgroups: [n] }));
 * console.log(t.medianMs);
 * ```
 */
export async function timeBatches(
  gpu: GpuContext,
  record: (batch: ComputeBatch) => void,
  { warmup = 2, repeats = 10 }: { warmup?: number; repeats?: number } = {},
): Promise<TimingSummary> {
  if (!Number.isInteger(repeats) || repeats < 1) {
    throw new RangeError(`timeBatches: repeats must be a positive integer, got ${repeats}`);
  }
  if (!Number.isInteger(warmup) || warmup < 0) {
    throw new RangeError(`timeBatches: warmup must be a non-negative integer, got ${warmup}`);
  }
  const { ComputeBatch } = await import("./batch.ts");
  const { device } = gpu;
  for (let i = 0; i < warmup; i++) {
    const b = new ComputeBatch(gpu);
    record(b);
    b.submit();
  }
  await device.queue.onSubmittedWorkDone();
  if (!gpu.hasTimestamps) {
    const samplesMs: number[] = [];
    for (let i = 0; i < repeats; i++) {
      const t0 = performance.now();
      const b = new ComputeBatch(gpu);
      record(b);
      b.submit();
      await device.queue.onSubmittedWorkDone();
      samplesMs.push(performance.now() - t0);
    }
    return summarise(samplesMs, "wall-clock");
  }
  // A query set holds at most 4,096 timestamps, two per repeat: longer runs use several sets,
  // all submitted before the single wait.
  const sets: { querySet: GPUQuerySet; count: number }[] = [];
  for (let first = 0; first < repeats; first += MAX_REPEATS_PER_SET) {
    const count = Math.min(MAX_REPEATS_PER_SET, repeats - first);
    const querySet = device.createQuerySet({ type: "timestamp", count: 2 * count });
    for (let i = 0; i < count; i++) {
      const b = new ComputeBatch(gpu);
      record(b);
      b.submit({ querySet, beginIndex: 2 * i, endIndex: 2 * i + 1 });
    }
    sets.push({ querySet, count: 2 * count });
  }
  const samplesMs: number[] = [];
  for (const ticks of await readTimestamps(device, sets)) {
    for (let i = 0; i < ticks.length; i += 2) samplesMs.push(Number(ticks[i + 1] - ticks[i]) / 1e6);
  }
  return summarise(samplesMs, "gpu-timestamps");
}

/**
 * Resolves the first `count` timestamps of each query set and reads them all back with one wait,
 * then destroys the sets. Timestamps are nanoseconds (WebGPU; on the H100 the matmul bench's busy
 * line, the sum of pass times over wall time, confirms the unit).
 */
export async function readTimestamps(
  device: GPUDevice,
  sets: readonly { querySet: GPUQuerySet; count: number }[],
): Promise<BigUint64Array[]> {
  const staged = sets.map(({ querySet, count }) => {
    const bytes = Math.max(8, 8 * count);
    const resolve = createTrackedBuffer(device, {
      size: bytes,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    const staging = createTrackedBuffer(device, {
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const encoder = device.createCommandEncoder();
    if (count > 0) encoder.resolveQuerySet(querySet, 0, count, resolve, 0);
    encoder.copyBufferToBuffer(resolve, 0, staging, 0, bytes);
    device.queue.submit([encoder.finish()]);
    return { resolve, staging, count };
  });
  await Promise.all(staged.map((s) => s.staging.mapAsync(GPUMapMode.READ)));
  const out = staged.map(({ resolve, staging, count }) => {
    const ticks = new BigUint64Array(staging.getMappedRange().slice(0, 8 * count));
    staging.unmap();
    staging.destroy();
    resolve.destroy();
    return ticks;
  });
  for (const { querySet } of sets) querySet.destroy();
  return out;
}

function summarise(samplesMs: number[], method: TimingSummary["method"]): TimingSummary {
  return {
    medianMs: median(samplesMs),
    minMs: Math.min(...samplesMs),
    maxMs: Math.max(...samplesMs),
    samplesMs,
    method,
  };
}
