/**
 * The numbered row top-k versions, llm.c style: what each changed and how fast it ran. The promoted
 * one is kernels/topk_stream.wgsl (recordRowTopk, method "stream"); the sort survives as the
 * any-k fallback (method "sort").
 *
 * Figures: "llvmpipe" is the CPU fallback adapter (Mesa llvmpipe, 2 cores shared with other jobs, so
 * ±30% run to run), median of GPU timestamps, `deno run -A bench/obrs/main.ts --small` (256 × 4,096,
 * k = 20, top-k alone, no lse). It only shows that a version runs and how the versions rank on a CPU,
 * where barriers are very expensive; H100 figures come from the same command without --small on the
 * device host (not measured yet: no GPU in this task).
 *
 * - v1 bitonic sort of each whole row in global scratch (topk_sort.wgsl): O(V log² V) traffic,
 *   171 dispatches at V = 151,936. llvmpipe 470–630 ms. Kept as the any-k fallback.
 * - v2 streaming selection (topk_stream.wgsl), one element per thread between barriers: each row
 *   read once; elements that beat the running k-th best go to a candidate buffer in workgroup
 *   memory, bitonic-sorted and cut to k when it could overflow. llvmpipe 214 ms.
 * - v3 = v2 with PER = ⌊(CAP − k_max) / WG⌋ elements per thread between barriers (7 with 32 KiB of
 *   workgroup memory): more loads in flight. llvmpipe 205 ms; on llvmpipe the cost was the
 *   compactions (without insertions the pass takes 14 ms): the second chunk inserted up to 1,792
 *   candidates before any threshold existed, and a 2,048-entry bitonic sort is 66 barriers.
 * - v4 = v3 with a 256-element first chunk compacted at once (a threshold from the start), and
 *   compaction of ≤ 512 candidates by rank counting (n²/WG compares per thread, 3 barriers) instead
 *   of bitonic sorting. llvmpipe 72 ms.
 * - v5 = v4 reading the row as vec4 after the first chunk when V % 4 == 0 (V = 151,936 is): a
 *   quarter of the load and index instructions, which matters once the pass is near bandwidth.
 *   llvmpipe at 256 × 4,096: 0.6–0.8× v4's time in interleaved A/B runs (the machine was shared
 *   and loaded, so absolute times varied 4× between runs); at 16 × 151,936 (only 16 workgroups
 *   on 2 cores) v5 47 ms against v4 35 ms. Promoted provisionally (VEC4 = true by default;
 *   `recordRowTopk(..., { vec4: false })` gave v4). H100 (first run, 4,096 × 151,936, k = 20):
 *   v4 14.8 ms (168 GB/s), v5 6.9 ms (358 GB/s), against 1.5 ms for the log-sum-exp kernel alone
 *   over the same matrix: far from bandwidth. Each workgroup held 34 KB of workgroup memory (CAP
 *   4,096, sized so that a whole chunk fits), so few workgroups shared an SM, and each thread used
 *   every load (with a possible atomic append) before issuing the next: too few bytes in flight.
 * - v6 (kernels/topk_stream.wgsl, promoted): each thread loads its 16 elements of a 4,096-element
 *   chunk (4 vec4, or 16 scalars when V % 4 != 0) before using any; the first chunk sets the
 *   threshold from the K-th best of the threads' maxima (a lower bound on the row's K-th best);
 *   candidates go to an 8 KiB buffer (CAP 1,024), compacted past half full; a chunk that would
 *   overflow it keeps its surplus in registers, compacts and inserts again, so no input can
 *   overflow; the log-sum-exp rescales once per chunk instead of per element. H100: 2.74 ms
 *   (909 GB/s), fused with the log-sum-exp 2.97 ms; the whole Jackpot pipeline 16.0 → 6.0 ms.
 * - v7 = v6 issuing the next chunk's four loads before ranking the current chunk (twice the
 *   registers), so that a workgroup keeps loads in flight across its three barriers per chunk.
 *   H100: 2.70 ms, and the fused pass slower (3.50 ms): latency was not the limit. Kept as the
 *   `prefetch` option (off by default).
 * - v8 = v6 with the per-element work cut to what almost every element needs: one float compare
 *   against the threshold's value (necessary to pass) and one for NaN/+Inf; keys, ids, ties and
 *   range checks only for a thread with a hit. v6 spent ~25 instructions per element, ~0.5 ms
 *   of issue time at this shape even with perfect overlap. H100: 2.68 ms: not the limit either.
 *   Ablations in the same run (top-k alone, ms): 64 threads 4.13, 128 threads 2.60, 512 threads
 *   3.6–6.5, 1,024 threads 6.0–12.4; a 256-entry buffer 2.20, and with 128 threads 1.90. The
 *   workgroup memory's zero-initialisation is not the cost (bench/probe/workgroup_memory.ts:
 *   under 4 ns per workgroup even at 32 KiB); the compactions are: with 1,024 entries they ran
 *   as bitonic sorts (55 barriers) once 512 candidates had gathered.
 * - v9 = v8 with 128 threads and a small buffer (CAP/2 > k: 128 entries up to k = 32, 256 up to
 *   64; 256 threads and 1,024 entries above), every compaction of up to 2 × threads candidates by
 *   rank counting (3 barriers). H100, k = 20 (one run, versions one after another): 128 threads
 *   and 256 entries 1.92 ms, 64/128 1.71, 128/128 1.61 (promoted), 256/512 2.34.
 *
 * - v10 (kernels/topk_stream.wgsl now; default = v9's arithmetic and shape) = v9 restructured so
 *   that one kernel takes three options as override constants, each a hypothesis for the gap
 *   between the fused pass (1.9 ms, 1.6 for top-k alone) and the copy rate (0.82 ms per matrix):
 *   - v10-g8, GROUPS = 8: 32 elements per thread per chunk instead of 16, so half the chunks, half
 *     the barriers and twice the bytes in flight (16 KiB per 128-thread workgroup) per chunk. Tests
 *     "the per-chunk fixed cost (barriers, count read) dominates". Also a first-chunk threshold
 *     over 4,096 elements instead of 2,048 (fewer early candidates).
 *   - v10-uc, UNIFORM_COUNT: the candidate count read by one workgroupUniformLoad of the atomic (2
 *     barriers per chunk instead of 3, no copy by thread 0). Tests "barriers dominate" on its own.
 *   - v11-sS, SEGS = S (2, 4, 8): the split-row design. Each row is streamed as S segments, one
 *     workgroup each (S × more, S × shorter workgroups), each writing its top-k and (max, Σ exp)
 *     partial; kernels/topk_split.wgsl merges the S · k candidates per row (binary searches in
 *     the sorted lists) and the partials in segment order. Tests "long per-row workgroups
 *     (74 chunks in sequence, few rows per SM at a time, a tail at the end) are the limit".
 *   Not measured on a GPU yet (no GPU in the session that wrote them).
 *
 * Runnable here: v1, v4 with PER pinned to 1 (ablation of the v2 → v3 step), v4, v5 (v2–v5's
 * kernel is kept in this folder as v5_topk_stream.wgsl), v8 and v9 (v9's kernel is kept as
 * v9_topk_stream.wgsl; v6 and v7 were the same kernel before v8's change;
 * `recordRowTopk(..., { prefetch: true })` is v7's change), v10 and v11. The log-sum-exp alone
 * has its own versions ({@link LSE_VERSIONS}), and the fused pass with the lse its variants
 * ({@link FUSED_VARIANTS}).
 *
 * @module
 */
import type { ComputeBatch } from "../../src/gpu/batch.ts";
import type { GpuContext } from "../../src/gpu/device.ts";
import type { Kernel } from "../../src/gpu/pipelines.ts";
import { type LogitsSource, recordLogSoftmax, recordRowTopk } from "../../src/obrs/gpu/mod.ts";
import { STREAM_CAP, streamShape } from "../../src/obrs/gpu/topk.ts";
import type { RowTopkArgs } from "../../src/obrs/gpu/topk.ts";
import { rowTiles, sourceTiles } from "../../src/obrs/gpu/tiles.ts";
import { grid } from "../../src/gpu/batch.ts";
import v5Source from "./v5_topk_stream.wgsl" with { type: "text" };
import v9Source from "./v9_topk_stream.wgsl" with { type: "text" };
import v1LseSource from "./v1_logsoftmax.wgsl" with { type: "text" };

/** v2–v5's kernel (kernels/topk_stream.wgsl before v6), kept here as history. */
const v5Kernel: Kernel = { name: "topk_bench_v5", code: v5Source };
/** v6–v9's kernel (kernels/topk_stream.wgsl before v10), kept here as history. */
const v9Kernel: Kernel = { name: "topk_bench_v9", code: v9Source };
/** The log-sum-exp before LOADS (one scalar load per thread at a time). */
const v1LseKernel: Kernel = { name: "logsoftmax_bench_v1", code: v1LseSource };

/** v5's candidate buffer: as large a power of two as the workgroup memory holds. */
function v5Capacity(gpu: GpuContext): number {
  const bytes = gpu.limits.maxComputeWorkgroupStorageSize ?? 16384;
  let cap = 4096;
  while (cap * 8 + 256 * 8 + 32 > bytes) cap >>= 1;
  return cap;
}

/**
 * Records `kernel` (topk_stream's bindings; values only, no lse or tokens) over the matrix's row
 * tiles with the given constants; VEC4 follows `vec4`.
 */
function recordStreamTiles(
  gpu: GpuContext,
  batch: ComputeBatch,
  b: TopkBuffers,
  kernel: Kernel,
  constants: Record<string, number>,
  vec4: boolean,
): GPUBuffer[] {
  for (const t of rowTiles(gpu, b.rows, b.vocab)) {
    const tile = { buffer: b.logits, offset: t.offset, size: t.size };
    batch.dispatch({
      kernel,
      constants: { ...constants, K: b.k, WITH_LSE: 0, HAS_TOKENS: 0, VEC4: vec4 ? 1 : 0 },
      bindings: [
        tile,
        b.placeholder,
        b.vals,
        b.ids,
        b.info,
        new Uint32Array([b.vocab, t.rows, t.row0, 0, b.vocab]), // seg_len = V: one segment
        vec4 ? tile : b.placeholder,
      ],
      workgroups: grid(t.rows),
    });
  }
  return [];
}

/** Records the v5 kernel; `per` pinned or as v5 chose it. */
function recordV5(
  gpu: GpuContext,
  batch: ComputeBatch,
  b: TopkBuffers,
  opts: { vec4: boolean; per?: number },
): GPUBuffer[] {
  const cap = v5Capacity(gpu);
  const lanes = opts.vec4 ? 4 * 256 : 256;
  const per = opts.per ?? Math.max(1, Math.min(8, Math.floor((cap - 256) / lanes)));
  return recordStreamTiles(gpu, batch, b, v5Kernel, { WG: 256, PER: per, CAP: cap }, opts.vec4);
}

/** Records the promoted kernel with `wg` threads per row and `cap` candidate entries. */
function recordWorkgroupSize(
  gpu: GpuContext,
  batch: ComputeBatch,
  b: TopkBuffers,
  wg: number,
  cap = Math.max(STREAM_CAP, 2 * wg),
): GPUBuffer[] {
  const constants = { WG: wg, CAP: cap, PREFETCH: 0 };
  return recordStreamTiles(gpu, batch, b, v9Kernel, constants, b.vocab % 4 === 0);
}

/** Records the library's stream top-k (values only) with the given options. */
function recordStream(
  gpu: GpuContext,
  batch: ComputeBatch,
  b: TopkBuffers,
  opts: Partial<RowTopkArgs>,
): GPUBuffer[] {
  return recordRowTopk(gpu, batch, {
    ...b,
    maxBindingBytes: undefined,
    withLse: false,
    method: "stream",
    ...opts,
  });
}

/** Skip reason for a split version: segments · k over the merge's limit. */
function splitSkip(b: TopkBuffers, segments: number): string | undefined {
  return segments * b.k > 2048 ? "needs segments · k <= 2048" : undefined;
}

/** What a top-k version needs: one logits matrix and its outputs. */
export interface TopkBuffers {
  logits: GPUBuffer;
  rows: number;
  vocab: number;
  k: number;
  vals: GPUBuffer;
  ids: GPUBuffer;
  info: GPUBuffer;
  /** A small read-only buffer for unused bindings. */
  placeholder: GPUBuffer;
  /** The device's maxStorageBufferBindingSize. */
  maxBindingBytes: number;
}

/** One numbered version. */
export interface TopkVersion {
  id: string;
  note: string;
  /** Why it is skipped for this shape, or undefined. */
  skip(b: TopkBuffers): string | undefined;
  /** Records one top-k (values only, no lse); returns scratch to free after the timing. */
  record(gpu: GpuContext, batch: ComputeBatch, b: TopkBuffers): GPUBuffer[];
}

/** Every version, oldest first. */
export const TOPK_VERSIONS: TopkVersion[] = [
  {
    id: "v1",
    note: "bitonic sort of the whole row in global scratch",
    skip: (b) => (b.rows * b.vocab > 1 << 24 ? "too slow beyond 2^24 elements" : undefined),
    record: (gpu, batch, b) =>
      recordRowTopk(gpu, batch, {
        ...b,
        maxBindingBytes: undefined,
        withLse: false,
        method: "sort",
      }),
  },
  {
    id: "v4-per1",
    note: "v4 with PER pinned to 1 (ablation of the v3 change)",
    skip: () => undefined,
    record: (gpu, batch, b) => recordV5(gpu, batch, b, { vec4: false, per: 1 }),
  },
  {
    id: "v4",
    note: "streaming selection, PER = (CAP - 256) / WG, rank-count compaction",
    skip: () => undefined,
    record: (gpu, batch, b) => recordV5(gpu, batch, b, { vec4: false }),
  },
  {
    id: "v5",
    note: "v4 reading vec4 after the first chunk",
    skip: (b) => (b.vocab % 4 ? "needs V % 4 == 0" : undefined),
    record: (gpu, batch, b) => recordV5(gpu, batch, b, { vec4: true }),
  },
  {
    id: "v8",
    note: "v6 with one float compare per element against the threshold's value; keys, ids and " +
      "ties only for a thread with a hit (256 threads, 1,024 entries)",
    skip: (b) => (b.k > 256 ? "needs k <= 256" : undefined),
    record: (gpu, batch, b) => recordWorkgroupSize(gpu, batch, b, 256, STREAM_CAP),
  },
  {
    id: "v9",
    note: "v8 with 128 threads and 128 entries up to k = 32 (256 up to 64), compacted by rank " +
      "counting up to 2 × threads",
    skip: (b) => (b.k > 256 ? "needs k <= 256" : undefined),
    record: (gpu, batch, b) => {
      const { wg, cap } = streamShape(b.k);
      return recordWorkgroupSize(gpu, batch, b, wg, cap);
    },
  },
  {
    id: "v9-wg64-cap128",
    note: "v9 with 64 threads and 128 entries (ablation)",
    skip: (b) => (2 * b.k >= 128 || b.k > 64 ? "needs k < 64 and k <= 64" : undefined),
    record: (gpu, batch, b) => recordWorkgroupSize(gpu, batch, b, 64, 128),
  },
  {
    id: "v9-wg128-cap128",
    note: "v9 with 128 threads and 128 entries (ablation)",
    skip: (b) => (2 * b.k >= 128 || b.k > 128 ? "needs k < 64 and k <= 128" : undefined),
    record: (gpu, batch, b) => recordWorkgroupSize(gpu, batch, b, 128, 128),
  },
  {
    id: "v9-wg256-cap512",
    note: "v9 with 256 threads and 512 entries (ablation)",
    skip: (b) => (2 * b.k >= 512 || b.k > 256 ? "needs k < 256 and k <= 256" : undefined),
    record: (gpu, batch, b) => recordWorkgroupSize(gpu, batch, b, 256, 512),
  },
  {
    id: "v10",
    note: "v9 restructured for GROUPS/SEGS/UNIFORM_COUNT, at their defaults (library default)",
    skip: (b) => (b.k > 256 ? "needs k <= 256" : undefined),
    record: (gpu, batch, b) => recordStream(gpu, batch, b, {}),
  },
  {
    id: "v10-g8",
    note: "v10 with 32 elements per thread per chunk (GROUPS = 8)",
    skip: (b) => (b.k > 256 ? "needs k <= 256" : undefined),
    record: (gpu, batch, b) => recordStream(gpu, batch, b, { groups: 8 }),
  },
  {
    id: "v10-uc",
    note: "v10 reading the candidate count with 2 barriers per chunk instead of 3",
    skip: (b) => (b.k > 256 ? "needs k <= 256" : undefined),
    record: (gpu, batch, b) => recordStream(gpu, batch, b, { uniformCount: true }),
  },
  {
    id: "v10-g8-uc",
    note: "v10 with both GROUPS = 8 and the 2-barrier count",
    skip: (b) => (b.k > 256 ? "needs k <= 256" : undefined),
    record: (gpu, batch, b) => recordStream(gpu, batch, b, { groups: 8, uniformCount: true }),
  },
  ...[2, 4, 8].map((segments): TopkVersion => ({
    id: `v11-s${segments}`,
    note: `split rows: ${segments} segments per row, one workgroup each, then a merge per row`,
    skip: (b) => splitSkip(b, segments),
    record: (gpu, batch, b) => recordStream(gpu, batch, b, { segments }),
  })),
  {
    id: "v11-s4-g8",
    note: "split rows (4 segments) with 32 elements per thread per chunk",
    skip: (b) => splitSkip(b, 4),
    record: (gpu, batch, b) => recordStream(gpu, batch, b, { segments: 4, groups: 8 }),
  },
];

/** What a log-sum-exp version needs: the input (one buffer or blocks) and the `[N]` output. */
export interface LseBuffers {
  x: LogitsSource;
  rows: number;
  vocab: number;
  lse: GPUBuffer;
}

/** One numbered log-sum-exp version (kernels/logsoftmax.wgsl `lse`). */
export interface LseVersion {
  id: string;
  note: string;
  record(gpu: GpuContext, batch: ComputeBatch, b: LseBuffers): void;
}

/**
 * The log-sum-exp versions. lse-v1 read one f32 per thread at a time with branches per element
 * (H100: 1.50–1.60 ms at 4,096 × 151,936, 1.66 TB/s: 1 KiB in flight per 256-thread workgroup,
 * latency-bound). lse-v2 (the library's) issues LOADS vec4 loads per thread before using them
 * (16 KiB per workgroup at LOADS = 4), one rescale per step and one exp per element; -l1, -l2
 * and -l8 ask how many loads in flight are needed. Not measured on a GPU yet.
 */
export const LSE_VERSIONS: LseVersion[] = [
  {
    id: "lse-v1",
    note: "one scalar load per thread at a time (bench/obrs/v1_logsoftmax.wgsl)",
    record: (gpu, batch, b) => {
      for (const t of sourceTiles(gpu, b.x, b.rows, b.vocab)) {
        batch.dispatch({
          kernel: v1LseKernel,
          entryPoint: "lse",
          bindings: [
            { buffer: t.buffer, offset: t.offset, size: t.size },
            b.lse,
            new Uint32Array([b.vocab, t.rows, t.row0]),
          ],
          workgroups: grid(t.rows),
        });
      }
    },
  },
  ...([1, 2, 4, 8] as const).map((loads): LseVersion => ({
    id: loads === 4 ? "lse-v2" : `lse-v2-l${loads}`,
    note: `${loads} vec4 loads per thread before use${loads === 4 ? " (library default)" : ""}`,
    record: (gpu, batch, b) => recordLogSoftmax(gpu, batch, { ...b, loads }),
  })),
];

/** One set of options of the fused pass (lse + top-k + sampled log-prob), as Jackpot runs it. */
export interface FusedVariant {
  id: string;
  note: string;
  opts: Pick<RowTopkArgs, "groups" | "segments" | "uniformCount">;
}

/** The fused pass's variants: the same hypotheses as v10/v11, with the lse and tokens. */
export const FUSED_VARIANTS: FusedVariant[] = [
  { id: "fused", note: "library default (v10)", opts: {} },
  { id: "fused-g8", note: "32 elements per thread per chunk", opts: { groups: 8 } },
  { id: "fused-uc", note: "2 barriers per chunk", opts: { uniformCount: true } },
  { id: "fused-g8-uc", note: "both", opts: { groups: 8, uniformCount: true } },
  { id: "fused-s2", note: "split rows, 2 segments", opts: { segments: 2 } },
  { id: "fused-s4", note: "split rows, 4 segments", opts: { segments: 4 } },
  { id: "fused-s8", note: "split rows, 8 segments", opts: { segments: 8 } },
  {
    id: "fused-s4-g8",
    note: "4 segments, 32 elements per chunk",
    opts: { segments: 4, groups: 8 },
  },
];
