/**
 * Timing GPU work with timestamp queries: the time the GPU spent inside a pass, free of the
 * ~10 ms JavaScript wait that wall-clock timing would add in Deno.
 *
 * @module
 */
import type { GpuContext } from "./device.ts";
import type { ComputeBatch } from "./batch.ts";
import { median } from "../util/stats.ts";

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
 * untimed ones. All timestamps are resolved and read back with a single wait at the end.
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
  const querySet = device.createQuerySet({ type: "timestamp", count: 2 * repeats });
  for (let i = 0; i < repeats; i++) {
    const b = new ComputeBatch(gpu);
    record(b);
    b.submit({ querySet, beginIndex: 2 * i, endIndex: 2 * i + 1 });
  }
  const bytes = 16 * repeats;
  const resolve = device.createBuffer({
    size: bytes,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  const staging = device.createBuffer({
    size: bytes,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const encoder = device.createCommandEncoder();
  encoder.resolveQuerySet(querySet, 0, 2 * repeats, resolve, 0);
  encoder.copyBufferToBuffer(resolve, 0, staging, 0, bytes);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const ticks = new BigUint64Array(staging.getMappedRange().slice(0));
  staging.unmap();
  for (const b of [resolve, staging]) b.destroy();
  querySet.destroy();
  const samplesMs: number[] = [];
  for (let i = 0; i < repeats; i++) samplesMs.push(Number(ticks[2 * i + 1] - ticks[2 * i]) / 1e6);
  return summarise(samplesMs, "gpu-timestamps");
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
