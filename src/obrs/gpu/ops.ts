/**
 * Recorders for the OBRS kernels: each adds dispatches to a {@link ComputeBatch} and never reads
 * back, so a whole step is one pass and one submit. Buffers are f32/u32 storage buffers laid out
 * row-major; `info` is the per-row summary `[regions * N, 4]` = (max logit, sampled log-prob, flags,
 * log Σ exp(x − max)) that topk_stream writes and the later kernels read: the log-sum-exp is max +
 * log Σ, kept in two parts so that log-probs (x − max) − log Σ stay exact when |max| is huge.
 *
 * @module
 */
import type { GpuContext } from "../../gpu/device.ts";
import { type ComputeBatch, grid } from "../../gpu/batch.ts";
import {
  gatherKernel,
  logSoftmaxKernel,
  obrsBatchKernel,
  obrsRowKernel,
  zExactKernel,
} from "./kernels.ts";
import { pairedTiles, sourceTiles } from "./tiles.ts";
import type { LogitsSource } from "./inputs.ts";
import { dummy, u32s } from "./placeholders.ts";

// The row top-k recorders live in topk.ts; re-exported here, where callers found them first.
export {
  recordRowTopk,
  type RowTopkArgs,
  STREAM_CAP,
  STREAM_MAX_K,
  streamShape,
  streamVec4,
} from "./topk.ts";

/** Arguments of {@link recordLogSoftmax}. */
export interface LogSoftmaxArgs {
  /** Input `[rows, vocab]` f32: one buffer or row blocks. */
  x: LogitsSource;
  /** Rows N. */
  rows: number;
  /** Row length V. */
  vocab: number;
  /** Output `[N]` f32 log-sum-exp of each row. */
  lse: GPUBuffer;
  /** Output `[N, V]` f32 log-softmax, split into the same row blocks as `x`; omit for the lse alone. */
  out?: LogitsSource;
  /** Binding limit below the device's (tests use it to force row tiles). */
  maxBindingBytes?: number;
  /** vec4 loads each thread issues before using them: 1, 2, 4 (default) or 8. */
  loads?: 1 | 2 | 4 | 8;
  /** Read each row's aligned body as vec4 (default true); false reads the same elements as f32. */
  vec4?: boolean;
}

/**
 * Records row log-sum-exp (and log-softmax when `out` is given), tiled by rows.
 *
 * @example
 * ```ts
 * recordLogSoftmax(gpu, batch, { x: logits, rows: 4, vocab: 1000, lse, out: logp });
 * ```
 */
export function recordLogSoftmax(gpu: GpuContext, batch: ComputeBatch, a: LogSoftmaxArgs): void {
  const mismatch = "log-softmax input and output must be split into the same row blocks";
  const tiles = a.out
    ? pairedTiles(gpu, a.x, a.out, a.rows, a.vocab, mismatch, a.maxBindingBytes)
    : sourceTiles(gpu, a.x, a.rows, a.vocab, a.maxBindingBytes).map((t) => {
      const x = { buffer: t.buffer, offset: t.offset, size: t.size };
      return { row0: t.row0, rows: t.rows, a: x, b: x };
    });
  const loads = a.loads ?? 4;
  if (![1, 2, 4, 8].includes(loads)) {
    throw new RangeError(`log-softmax loads must be 1, 2, 4 or 8, got ${loads}`);
  }
  for (const t of tiles) {
    const x = t.a;
    const params = u32s(a.vocab, t.rows, t.row0);
    // The vec4 view of the same tile, cut to whole vec4s (the body never reads past them).
    const size4 = Math.floor(x.size / 16) * 16;
    const vec4 = (a.vec4 ?? true) && size4 > 0;
    batch.dispatch({
      kernel: logSoftmaxKernel,
      entryPoint: "lse",
      constants: { LOADS: loads, VEC4: vec4 ? 1 : 0 },
      bindings: [x, a.lse, params, vec4 ? { ...x, size: size4 } : dummy(gpu, 2)],
      workgroups: grid(t.rows),
    });
    if (a.out) {
      batch.dispatch({
        kernel: logSoftmaxKernel,
        entryPoint: "apply",
        bindings: [x, a.lse, params, t.b],
        workgroups: grid(Math.ceil((t.rows * a.vocab) / 256)),
      });
    }
  }
}

/** Arguments of {@link recordGather}. */
export interface GatherArgs {
  /** Logits `[rows, vocab]` f32: one buffer or row blocks. */
  logits: LogitsSource;
  /** Rows N. */
  rows: number;
  /** Vocabulary size V. */
  vocab: number;
  /** Ids `[N, kk]` u32. */
  ids: GPUBuffer;
  /** Ids per row. */
  kk: number;
  /** Row summary with this matrix's max (column 0) and log Σ exp(x − max) (column 3). */
  info: GPUBuffer;
  /** Row offset of this matrix's region in `info`; default 0. */
  infoRow0?: number;
  /** Output f32: `out[outOffset + row * kk + j]` = log-prob at `ids[row, j]` (NaN when id ≥ V). */
  out: GPUBuffer;
  /** Element offset of the output region; default 0. */
  outOffset?: number;
  /** Binding limit below the device's (tests use it to force row tiles). */
  maxBindingBytes?: number;
}

/**
 * Records the gather of log-probs at given ids (logit − lse), tiled by rows.
 *
 * @example
 * ```ts
 * recordGather(gpu, batch, { logits, rows, vocab, ids, kk: 20, info, out });
 * ```
 */
export function recordGather(gpu: GpuContext, batch: ComputeBatch, a: GatherArgs): void {
  for (const t of sourceTiles(gpu, a.logits, a.rows, a.vocab, a.maxBindingBytes)) {
    batch.dispatch({
      kernel: gatherKernel,
      entryPoint: "gather",
      bindings: [
        { buffer: t.buffer, offset: t.offset, size: t.size },
        a.ids,
        a.out,
        a.info,
        u32s(a.vocab, t.rows, t.row0, a.kk, a.infoRow0 ?? 0, a.outOffset ?? 0),
      ],
      workgroups: grid(Math.ceil((t.rows * a.kk) / 256)),
    });
  }
}

/**
 * Records the packing of log-probs captured at generation (sampled token `[N]`, and optionally
 * the captured top-k ids/log-probs `[N, kk]`, which are checked) into region `infoRow0` of `info`.
 */
export function recordPackSampled(
  gpu: GpuContext,
  batch: ComputeBatch,
  a: {
    sampled: GPUBuffer;
    rows: number;
    vocab: number;
    info: GPUBuffer;
    infoRow0: number;
    ids?: GPUBuffer;
    vals?: GPUBuffer;
    kk?: number;
  },
): void {
  batch.dispatch({
    kernel: gatherKernel,
    entryPoint: "pack_sampled",
    bindings: [
      a.sampled,
      a.ids ?? dummy(gpu, 0),
      a.vals ?? dummy(gpu, 1),
      a.info,
      u32s(a.vocab, a.rows, 0, a.ids ? a.kk ?? 0 : 0, a.infoRow0, 0),
    ],
    workgroups: grid(Math.ceil(a.rows / 256)),
  });
}

/** Parameters of {@link recordObrsRow}. */
export interface ObrsRowArgs {
  rows: number;
  ki: number;
  kn: number;
  seed: number;
  lambda: number;
  target: "ref" | "new";
  hasRef: boolean;
  hasInfAtNew: boolean;
  infIds: GPUBuffer;
  infVals: GPUBuffer;
  newIds: GPUBuffer;
  /** Gathered regions: target at inf ids, target at new ids, inf at new ids (element offsets). */
  gath: GPUBuffer;
  offsets: { tgtAtInf: number; tgtAtNew: number; infAtNew: number };
  info: GPUBuffer;
  valid?: GPUBuffer;
  rowData: GPUBuffer;
  mask: GPUBuffer;
}

/** Records the per-row Z_approx, acceptance and mask kernel. */
export function recordObrsRow(gpu: GpuContext, batch: ComputeBatch, a: ObrsRowArgs): void {
  const p = new DataView(new ArrayBuffer(48));
  const u = [a.rows, a.ki, a.kn, a.seed >>> 0];
  u.forEach((v, i) => p.setUint32(i * 4, v, true));
  p.setFloat32(16, Math.log(a.lambda), true);
  const rest = [
    a.target === "new" ? 1 : 2,
    a.hasRef ? 1 : 0,
    a.hasInfAtNew ? 1 : 0,
    a.valid ? 1 : 0,
    a.offsets.tgtAtInf,
    a.offsets.tgtAtNew,
    a.offsets.infAtNew,
  ];
  rest.forEach((v, i) => p.setUint32(20 + i * 4, v, true));
  batch.dispatch({
    kernel: obrsRowKernel,
    bindings: [
      a.infIds,
      a.infVals,
      a.newIds,
      a.gath,
      a.info,
      a.valid ?? dummy(gpu),
      a.rowData,
      a.mask,
      new Uint8Array(p.buffer),
    ],
    workgroups: grid(a.rows),
  });
}

/** Records the exact-Z diagnostic (reads both full logits matrices again). */
export function recordZExact(
  gpu: GpuContext,
  batch: ComputeBatch,
  a: {
    /** p_inf logits: one buffer or row blocks. */
    infLogits: LogitsSource;
    /** p_target logits, split like `infLogits` (or at boundaries that keep offsets aligned). */
    tgtLogits: LogitsSource;
    rows: number;
    vocab: number;
    target: "ref" | "new";
    lambda: number;
    info: GPUBuffer;
    /** Region of `info` with p_inf's lse; default 0. */
    infRegion?: number;
    rowData: GPUBuffer;
    /** Output `[N, 2]` f32: KL(p_inf ‖ p_target), KL(p_target ‖ p_inf) over the vocabulary. */
    kl: GPUBuffer;
    maxBindingBytes?: number;
  },
): void {
  const mismatch =
    `p_inf and p_${a.target} logits must be split into the same row blocks for exactZ`;
  const tiles = pairedTiles(
    gpu,
    a.infLogits,
    a.tgtLogits,
    a.rows,
    a.vocab,
    mismatch,
    a.maxBindingBytes,
  );
  for (const t of tiles) {
    const p = new DataView(new ArrayBuffer(28));
    p.setUint32(24, a.infRegion ?? 0, true);
    [a.vocab, t.rows, t.row0, a.rows, a.target === "new" ? 1 : 2].forEach((v, i) =>
      p.setUint32(i * 4, v, true)
    );
    p.setFloat32(20, Math.log(a.lambda), true);
    batch.dispatch({
      kernel: zExactKernel,
      bindings: [
        t.a,
        t.b,
        a.info,
        a.rowData,
        new Uint8Array(p.buffer),
        a.kl,
      ],
      workgroups: grid(t.rows),
    });
  }
}

/** Parameters of {@link recordObrsBatch}. */
export interface ObrsBatchArgs {
  rows: number;
  lambda: number;
  c1: number;
  c2: number;
  target: "ref" | "new";
  baseline?: { tisCap: number; icepopLow: number; icepopHigh: number };
  rowData: GPUBuffer;
  mask: GPUBuffer;
  w: GPUBuffer;
  rho: GPUBuffer;
  /** `[N, 4]` is, tis, icepop weight, icepop mask; required with `baseline`. */
  baselineOut?: GPUBuffer;
  /** `[32]` f32 raw sums (see kernels/obrs_batch.wgsl). */
  stats: GPUBuffer;
  /** `[N, 2]` full-vocabulary KLs from {@link recordZExact}; only with exact Z. */
  kl?: GPUBuffer;
}

/** Records the one-workgroup batch kernel: κ, weights, baselines and statistics. */
export function recordObrsBatch(gpu: GpuContext, batch: ComputeBatch, a: ObrsBatchArgs): void {
  const p = new DataView(new ArrayBuffer(48));
  [a.rows, a.target === "new" ? 1 : 0, a.baseline ? 1 : 0, a.kl ? 1 : 0].forEach((v, i) =>
    p.setUint32(i * 4, v, true)
  );
  const b = a.baseline ?? { tisCap: 0, icepopLow: 0, icepopHigh: 0 };
  [a.lambda, Math.log(a.lambda), a.c1, a.c2, b.tisCap, b.icepopLow, b.icepopHigh].forEach((v, i) =>
    p.setFloat32(16 + i * 4, v, true)
  );
  batch.dispatch({
    kernel: obrsBatchKernel,
    bindings: [
      a.rowData,
      a.mask,
      a.w,
      a.rho,
      a.baselineOut ?? dummy(gpu),
      a.stats,
      new Uint8Array(p.buffer),
      a.kl ?? dummy(gpu, 3),
    ],
    workgroups: [1],
  });
}
