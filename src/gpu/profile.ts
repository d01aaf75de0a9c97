/**
 * Per-dispatch GPU profiling: where the time of a training step or a sampling batch goes.
 *
 * A whole step is timed as one pass (`timeBatches`); that says how long, not which kernels. While
 * a {@link DispatchProfiler} is active, every {@link ComputeBatch} submit encodes each dispatch in
 * a pass of its own with GPU timestamps at its start and end, so any code path (the tape's
 * training step, the rollout engine's decode loop) can be profiled unchanged. A pass per dispatch
 * adds a little time between dispatches, so the sum of the profile is compared with the step's
 * one-pass time by the caller; the profile's figure per kernel is the kernel's own time.
 *
 * @module
 */
import type { GpuContext } from "./device.ts";
import type { Dispatch } from "./batch.ts";
import { median } from "../util/stats.ts";
import { readTimestamps } from "./timing.ts";

// WebGPU caps a query set at 4,096 queries; each dispatch writes two.
const DISPATCHES_PER_SET = 2048;

/** What one profiled dispatch ran. */
export interface DispatchRecord {
  /** Kernel name (src/gpu/kernels.ts names, e.g. "matmul_vec4"). */
  kernel: string;
  /** Entry point. */
  entryPoint: string;
  /** Override constants as `NAME=value` pairs, sorted; "" when none. */
  constants: string;
  /** Workgroup counts. */
  workgroups: [number, number, number];
}

/** One profiled dispatch and its GPU time. */
export interface DispatchTiming extends DispatchRecord {
  /** Milliseconds between the start and the end of its pass. */
  ms: number;
}

/** The dispatches of one group (see {@link summariseProfile}) and their time. */
export interface ProfileRow {
  /** `kernel:entryPoint`, followed by the constants and workgroups when grouped by dispatch. */
  label: string;
  /** Dispatches in the group. */
  count: number;
  /** Sum of their times, ms. */
  totalMs: number;
  /** Median time of one, ms. */
  medianMs: number;
  /** totalMs over the profile's total. */
  share: number;
}

interface QueryChunk {
  querySet: GPUQuerySet;
  records: DispatchRecord[];
}

let active: DispatchProfiler | undefined;

/** The profiler that {@link ComputeBatch.submit} is writing into, if any. */
export function activeProfiler(): DispatchProfiler | undefined {
  return active;
}

/**
 * Collects the GPU time of every dispatch submitted between {@link startProfiling} and
 * {@link DispatchProfiler.finish}.
 */
export class DispatchProfiler {
  #gpu: GpuContext;
  #chunks: QueryChunk[] = [];
  #finished = false;

  /** @param gpu the device whose submits are profiled (needs `timestamp-query`). */
  constructor(gpu: GpuContext) {
    this.#gpu = gpu;
  }

  /** The device whose submits this profiler records. */
  get device(): GPUDevice {
    return this.#gpu.device;
  }

  /** Dispatches recorded so far. */
  get length(): number {
    return this.#chunks.reduce((n, c) => n + c.records.length, 0);
  }

  /**
   * Reserves the two timestamps of one dispatch's pass (called by `ComputeBatch.submit`).
   * @returns the pass's `timestampWrites`
   */
  slot(d: Dispatch): GPUComputePassTimestampWrites {
    if (this.#finished) throw new Error("DispatchProfiler: already finished");
    let chunk = this.#chunks.at(-1);
    if (!chunk || chunk.records.length === DISPATCHES_PER_SET) {
      const querySet = this.#gpu.device.createQuerySet({
        type: "timestamp",
        count: 2 * DISPATCHES_PER_SET,
      });
      chunk = { querySet, records: [] };
      this.#chunks.push(chunk);
    }
    const i = chunk.records.length;
    const [x, y = 1, z = 1] = d.workgroups;
    chunk.records.push({
      kernel: d.kernel.name,
      entryPoint: d.entryPoint ?? "main",
      constants: Object.entries(d.constants ?? {}).sort(([a], [b]) => a < b ? -1 : 1)
        .map(([k, v]) => `${k}=${v}`).join(","),
      workgroups: [x, y, z],
    });
    return {
      querySet: chunk.querySet,
      beginningOfPassWriteIndex: 2 * i,
      endOfPassWriteIndex: 2 * i + 1,
    };
  }

  /**
   * Stops profiling, resolves every timestamp with one wait and returns the dispatches in
   * submission order.
   */
  async finish(): Promise<DispatchTiming[]> {
    if (this.#finished) throw new Error("DispatchProfiler: already finished");
    this.#finished = true;
    if (active === this) active = undefined;
    const chunks = this.#chunks.filter((c) => c.records.length > 0);
    const ticks = await readTimestamps(
      this.#gpu.device,
      chunks.map((c) => ({ querySet: c.querySet, count: 2 * c.records.length })),
    );
    for (const c of this.#chunks) if (c.records.length === 0) c.querySet.destroy();
    const out: DispatchTiming[] = [];
    chunks.forEach((chunk, j) => {
      chunk.records.forEach((r, i) => {
        out.push({ ...r, ms: Number(ticks[j][2 * i + 1] - ticks[j][2 * i]) / 1e6 });
      });
    });
    return out;
  }
}

/**
 * Starts profiling every submit on `gpu` until the returned profiler's `finish()`. Only one
 * profiler runs at a time; the adapter must have `timestamp-query`.
 *
 * @example
 * ```ts
 * const profiler = startProfiling(rt.gpu);
 * step();
 * rt.flush();
 * console.log(formatProfile(summariseProfile(await profiler.finish())));
 * ```
 */
export function startProfiling(gpu: GpuContext): DispatchProfiler {
  if (!gpu.hasTimestamps) {
    throw new Error("startProfiling: this adapter has no timestamp-query feature");
  }
  if (active) throw new Error("startProfiling: a profiler is already running; finish it first");
  active = new DispatchProfiler(gpu);
  return active;
}

/**
 * Groups dispatch timings by kernel and entry point ("kernel"), or also by constants and
 * workgroup counts ("dispatch", which tells the shapes of one kernel apart); rows sorted by total
 * time, largest first. `repeats` divides counts and totals (a profile of several identical steps).
 */
export function summariseProfile(
  timings: readonly DispatchTiming[],
  { groupBy = "kernel", repeats = 1 }: { groupBy?: "kernel" | "dispatch"; repeats?: number } = {},
): ProfileRow[] {
  if (!Number.isInteger(repeats) || repeats < 1) {
    throw new RangeError(`summariseProfile: repeats must be a positive integer, got ${repeats}`);
  }
  const groups = new Map<string, number[]>();
  for (const t of timings) {
    let label = `${t.kernel}:${t.entryPoint}`;
    if (groupBy === "dispatch") {
      label += ` [${t.workgroups.join("×")}]${t.constants ? ` {${t.constants}}` : ""}`;
    }
    const g = groups.get(label);
    if (g) g.push(t.ms);
    else groups.set(label, [t.ms]);
  }
  const total = timings.reduce((s, t) => s + t.ms, 0);
  return [...groups].map(([label, ms]) => {
    const sum = ms.reduce((s, x) => s + x, 0);
    return {
      label,
      count: ms.length / repeats,
      totalMs: sum / repeats,
      medianMs: median(ms),
      share: total > 0 ? sum / total : 0,
    };
  }).sort((a, b) => b.totalMs - a.totalMs);
}

/** Aligned text table of the first `top` rows (default 20) and the total. */
export function formatProfile(rows: readonly ProfileRow[], { top = 20 } = {}): string {
  const total = rows.reduce((s, r) => s + r.totalMs, 0);
  const count = rows.reduce((s, r) => s + r.count, 0);
  const width = Math.min(70, Math.max(10, ...rows.slice(0, top).map((r) => r.label.length)));
  const lines = rows.slice(0, top).map((r) =>
    `${r.label.padEnd(width)} ${String(+r.count.toFixed(2)).padStart(7)} × ` +
    `${(r.medianMs * 1000).toFixed(1).padStart(8)} µs = ${r.totalMs.toFixed(3).padStart(8)} ms ` +
    `${(100 * r.share).toFixed(1).padStart(5)}%`
  );
  if (rows.length > top) {
    const rest = rows.slice(top);
    const restMs = rest.reduce((s, r) => s + r.totalMs, 0);
    lines.push(`(${rest.length} more groups: ${restMs.toFixed(3)} ms)`);
  }
  lines.push(`total ${+count.toFixed(2)} dispatches, ${total.toFixed(3)} ms`);
  return lines.join("\n");
}
