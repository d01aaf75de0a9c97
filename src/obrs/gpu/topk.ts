/**
 * Row top-k recorders: the fused streaming pass (kernels/topk_stream.wgsl: log-sum-exp, top-k,
 * sampled log-prob and flags, each row read once), its split-row form (each row streamed as
 * several segments, then merged by kernels/topk_split.wgsl), and the bitonic sort for any k.
 *
 * @module
 */
import type { GpuContext } from "../../gpu/device.ts";
import { type ComputeBatch, grid } from "../../gpu/batch.ts";
import { createStorageBuffer } from "../../gpu/buffers.ts";
import { topkSortKernel, topkSplitKernel, topkStreamKernel } from "./kernels.ts";
import { type BoundTile, sourceTiles } from "./tiles.ts";
import type { LogitsSource } from "./inputs.ts";
import { dummy, u32s } from "./placeholders.ts";

/** Largest k that topk_stream handles at full speed; larger k goes to the bitonic sort. */
export const STREAM_MAX_K = 256;

/**
 * Threads per row and candidate-buffer entries of topk_stream for a given k: 128 threads, and the
 * smallest buffer that leaves room above k (CAP/2 > k): 128 entries up to k = 32, 256 up to 64,
 * compacted by rank counting. On the H100 (k = 20) 128/128 ran 1.65× faster and 128/256 1.4×
 * faster than 256 threads and 1,024 entries, whose compactions were bitonic sorts
 * (bench/obrs/versions.ts, v9). Larger k takes 256 threads and 1,024 entries (k ≤ threads).
 */
export function streamShape(k: number): { wg: number; cap: number } {
  if (k <= 32) return { wg: 128, cap: 128 };
  return k <= 64 ? { wg: 128, cap: 256 } : { wg: 256, cap: STREAM_CAP };
}

/** Candidate-buffer entries of topk_stream for k > 64 (8 KiB of workgroup memory). */
export const STREAM_CAP = 1024;

/** Whether topk_stream can read rows as vec4 (V % 4 == 0; otherwise it reads scalars). */
export function streamVec4(vocab: number): boolean {
  return vocab % 4 === 0;
}

/** Most candidates the split-row merge holds per row (segments · k; 16 KiB of workgroup memory). */
export const SPLIT_MAX_CANDIDATES = 2048;

/**
 * Checks the split-row options: `segments` an integer ≥ 1 with segments · k ≤
 * {@link SPLIT_MAX_CANDIDATES}, `groups` 4 or 8. Throws a RangeError naming the problem.
 */
export function checkStreamOptions(k: number, segments: number, groups: number): void {
  if (!Number.isInteger(segments) || segments < 1) {
    throw new RangeError(`top-k segments must be an integer >= 1, got ${segments}`);
  }
  if (segments * k > SPLIT_MAX_CANDIDATES) {
    throw new RangeError(
      `top-k segments · k must be <= ${SPLIT_MAX_CANDIDATES}, got ${segments} · ${k}`,
    );
  }
  if (groups !== 4 && groups !== 8) {
    throw new RangeError(`top-k groups must be 4 or 8, got ${groups}`);
  }
}

/** Elements per row segment: ⌈V / segments⌉ rounded up to a multiple of 4 (vec4 alignment). */
export function segmentLength(vocab: number, segments: number): number {
  return Math.ceil(Math.ceil(vocab / segments) / 4) * 4;
}

/** Arguments of {@link recordRowTopk}. */
export interface RowTopkArgs {
  /** Logits `[rows, vocab]` f32: one buffer or row blocks. */
  logits: LogitsSource;
  /** Rows N. */
  rows: number;
  /** Vocabulary size V. */
  vocab: number;
  /** k, 1 ≤ k ≤ V. */
  k: number;
  /** Sampled token ids `[N]` u32 (their log-probs go to info column 1). */
  tokens?: GPUBuffer;
  /** Output `[N, k]` f32: log-probs of the top k (raw values when `withLse` is false). */
  vals: GPUBuffer;
  /** Output `[N, k]` u32: their ids, best first, ties to the lower id. */
  ids: GPUBuffer;
  /** Output `[regions * N, 4]` f32 row summary. */
  info: GPUBuffer;
  /** Row offset of this matrix's region in `info`; default 0. */
  infoRow0?: number;
  /** Compute the log-sum-exp (and log-probs); default true. False gives a plain top-k of values. */
  withLse?: boolean;
  /** "stream" (k ≤ {@link STREAM_MAX_K}), "sort" (any k) or "auto" (default). */
  method?: "auto" | "stream" | "sort";
  /** Let topk_stream read vec4 when V % 4 == 0 (default true; false gives the scalar version). */
  vec4?: boolean;
  /** Binding limit below the device's (tests use it to force row tiles). */
  maxBindingBytes?: number;
  /**
   * Let topk_stream issue the next chunk's loads before ranking the current one (default false:
   * no faster on an H100, see bench/obrs/versions.ts). The results are identical either way.
   */
  prefetch?: boolean;
  /**
   * Split-row pass: stream each row as this many segments, one workgroup each, then merge their
   * top-k and (max, Σ exp) partials per row (kernels/topk_split.wgsl). Default 1 (the fused pass).
   * Stream method only; segments · k ≤ {@link SPLIT_MAX_CANDIDATES}. Same results as 1, up to the
   * rounding of the log-sum-exp.
   */
  segments?: number;
  /** vec4 groups each thread loads per chunk: 4 (16 elements, default) or 8 (32). */
  groups?: 4 | 8;
  /**
   * Read the candidate count per chunk with one workgroupUniformLoad of the atomic (2 barriers)
   * instead of a barrier and a copy (3); default false until timed. Identical results.
   */
  uniformCount?: boolean;
}

/**
 * Records the fused row pass (log-sum-exp, top-k, sampled log-prob, non-finite flags) over
 * `logits`. Returns scratch buffers to destroy once the batch has been submitted.
 *
 * @example
 * ```ts
 * const batch = new ComputeBatch(gpu);
 * const temps = recordRowTopk(gpu, batch, { logits, rows, vocab, k: 20, vals, ids, info });
 * batch.submit();
 * temps.forEach((b) => b.destroy());
 * ```
 */
export function recordRowTopk(gpu: GpuContext, batch: ComputeBatch, a: RowTopkArgs): GPUBuffer[] {
  const { rows, vocab, k } = a;
  const withLse = a.withLse ?? true;
  const infoRow0 = a.infoRow0 ?? 0;
  const method = a.method === "auto" || a.method === undefined
    ? (k <= STREAM_MAX_K ? "stream" : "sort")
    : a.method;
  if (method === "stream" && k > STREAM_MAX_K) {
    throw new RangeError(`topk_stream handles k <= ${STREAM_MAX_K}, got k = ${k}`);
  }
  // The sort path still runs the stream pass with k = 1 for the lse, sampled log-prob and flags.
  const kStream = method === "stream" ? k : 1;
  const streamVals = method === "stream" ? a.vals : createStorageBuffer(gpu, rows * 4, "topk k1");
  const streamIds = method === "stream" ? a.ids : createStorageBuffer(gpu, rows * 4, "topk k1 ids");
  const temps = method === "stream" ? [] : [streamVals, streamIds];
  const groups = a.groups ?? 4;
  const segments = method === "stream" ? a.segments ?? 1 : 1;
  checkStreamOptions(kStream, segments, groups);
  const tiles = sourceTiles(gpu, a.logits, rows, vocab, a.maxBindingBytes);
  const vec4 = (a.vec4 ?? true) && streamVec4(vocab);
  const shape = streamShape(kStream);
  const segLen = segmentLength(vocab, segments);
  // With segments, the pass writes per-segment partials to scratch, and the merge the outputs.
  const split = segments > 1
    ? {
      vals: createStorageBuffer(gpu, rows * segments * k * 4, "topk split vals"),
      ids: createStorageBuffer(gpu, rows * segments * k * 4, "topk split ids"),
      info: createStorageBuffer(gpu, rows * segments * 16, "topk split info"),
    }
    : undefined;
  if (split) temps.push(split.vals, split.ids, split.info);
  for (const t of tiles) {
    const tile = { buffer: t.buffer, offset: t.offset, size: t.size };
    batch.dispatch({
      kernel: topkStreamKernel,
      constants: {
        WG: shape.wg,
        K: kStream,
        CAP: shape.cap,
        GROUPS: groups,
        SEGS: segments,
        WITH_LSE: withLse ? 1 : 0,
        HAS_TOKENS: a.tokens ? 1 : 0,
        VEC4: vec4 ? 1 : 0,
        PREFETCH: a.prefetch ? 1 : 0,
        UNIFORM_COUNT: a.uniformCount ? 1 : 0,
      },
      bindings: [
        tile,
        a.tokens ?? dummy(gpu),
        split?.vals ?? streamVals,
        split?.ids ?? streamIds,
        split?.info ?? a.info,
        u32s(vocab, t.rows, t.row0, infoRow0, segLen),
        vec4 ? tile : dummy(gpu, 2),
      ],
      workgroups: grid(t.rows * segments),
    });
  }
  if (split) {
    batch.dispatch({
      kernel: topkSplitKernel,
      entryPoint: "merge",
      constants: {
        WG: 64,
        K: k,
        SEGS: segments,
        NC: segments * k,
        WITH_LSE: withLse ? 1 : 0,
        HAS_TOKENS: a.tokens ? 1 : 0,
      },
      bindings: [
        a.tokens ?? dummy(gpu),
        split.vals,
        split.ids,
        split.info,
        a.vals,
        a.ids,
        a.info,
        u32s(vocab, rows, segLen, infoRow0),
      ],
      workgroups: grid(rows),
    });
  }
  if (method === "sort") temps.push(...recordSortTopk(gpu, batch, a, tiles, withLse, infoRow0));
  return temps;
}

function recordSortTopk(
  gpu: GpuContext,
  batch: ComputeBatch,
  a: RowTopkArgs,
  tiles: BoundTile[],
  withLse: boolean,
  infoRow0: number,
): GPUBuffer[] {
  const { vocab, k } = a;
  let pad = 2;
  while (pad < vocab) pad *= 2;
  // Scratch for a sub-tile of rows; each sub-tile reuses it (dispatches in a pass are ordered).
  const limit = Math.min(gpu.limits.maxStorageBufferBindingSize ?? 134217728, 256 << 20);
  const subRows = Math.max(1, Math.min(a.rows, Math.floor(limit / (pad * 4))));
  const keys = createStorageBuffer(gpu, subRows * pad * 4, "topk sort keys");
  const sids = createStorageBuffer(gpu, subRows * pad * 4, "topk sort ids");
  // Without the lse the emitted values must be raw: point `emit` at a zero lse.
  const zeroInfo = withLse ? a.info : createStorageBuffer(gpu, (infoRow0 + a.rows) * 16, "zero");
  const wg = (n: number) => grid(Math.ceil(n / 256));
  for (const t of tiles) {
    for (let s0 = 0; s0 < t.rows; s0 += subRows) {
      const n = Math.min(subRows, t.rows - s0);
      const row0 = t.row0 + s0;
      const params = (block: number, stride: number) =>
        u32s(vocab, n, row0, pad, block, stride, k, infoRow0, s0);
      const src = { buffer: t.buffer, offset: t.offset, size: t.size };
      batch.dispatch({
        kernel: topkSortKernel,
        entryPoint: "init",
        bindings: [keys, sids, params(0, 0), src],
        workgroups: wg(n * pad),
      });
      for (let block = 2; block <= pad; block *= 2) {
        for (let stride = block / 2; stride >= 1; stride /= 2) {
          batch.dispatch({
            kernel: topkSortKernel,
            entryPoint: "step",
            bindings: [keys, sids, params(block, stride)],
            workgroups: wg(n * pad),
          });
        }
      }
      batch.dispatch({
        kernel: topkSortKernel,
        entryPoint: "emit",
        bindings: [keys, sids, params(0, 0), zeroInfo, a.vals, a.ids],
        workgroups: wg(n * k),
      });
    }
  }
  return withLse ? [keys, sids] : [keys, sids, zeroInfo];
}
