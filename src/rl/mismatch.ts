/**
 * Actor–policy mismatch metrics on the GPU (SPEC §8, §10), with no readback inside the step: one
 * kernel (kernels/rl_mismatch.wgsl) reads the sampled tokens' log-probs under both models and,
 * when logits are given, the per-row entropies and full-vocabulary KLs that the distillation's
 * forward kernel computes (src/rl/distill.ts `klRows`, one pass over both logit rows), and writes
 * one small f32 tensor; {@link decodeMismatch} turns its readback into {@link MismatchStats}.
 *
 * The p95 of |Δ log p| comes from a histogram of 16 bins per decade, read on the host: an upper
 * bound within a factor 10^(1/16) ≈ 1.155 of the exact nearest-rank p95 (at most 1e-6 when the
 * exact one is below 1e-6), capped at the max. A sort on the GPU would cost more than the whole
 * step's metrics, and the histogram keeps the readback small and fixed.
 *
 * @module
 */
import rowsSource from "../../kernels/ops_rows.wgsl" with { type: "text" };
import mismatchSource from "../../kernels/rl_mismatch.wgsl" with { type: "text" };
import type { Kernel } from "../gpu/mod.ts";
import {
  empty,
  fmtShape,
  materialize,
  params,
  runtime,
  sameShape,
  type Tensor,
} from "../tensor/mod.ts";
import { klRows } from "./distill.ts";
import { HIST_BINS, type MismatchStats, quantileFromHistogram } from "./mismatch_reference.ts";

export type { MismatchStats } from "./mismatch_reference.ts";

const kernel: Kernel = { name: "rl_mismatch", code: rowsSource + mismatchSource };
const F_TMASK = 1, F_TMASK_F32 = 2, F_ROWS = 4, F_RMASK = 8, F_RMASK_F32 = 16, F_ACTOR = 32;
const HEAD = 16;

/** Length of the stats tensor of {@link mismatchStats}: 16 values and the histogram. */
export const MISMATCH_STATS_LEN: number = HEAD + HIST_BINS;

/** Inputs of {@link mismatchStats}. */
export interface MismatchInputs {
  /** [B, T] (any shape) f32: log-prob of each sampled token under the rollout model, as sampled. */
  logpInf: Tensor;
  /** Same shape: under the policy being trained. */
  logpNew: Tensor;
  /** Same size, f32 / u32 / i32: 0 leaves a token out (prompt, padding). */
  mask?: Tensor;
  /** [N, V] policy logits: the entropy; with `actorLogits`, both full-vocabulary KLs. */
  policyLogits?: Tensor;
  /** [N, V] rollout-model logits at the same positions (needs `policyLogits`). */
  actorLogits?: Tensor;
  /** [N]: 0 leaves a row out. Default: `mask` when N equals the token count, else every row. */
  rowMask?: Tensor;
  /** Temperature of the logits' softmax (the sampling temperature; default 1). */
  temperature?: number;
}

// Whether a mask is bound (`has`) and holds f32 (`f32`) flag bits; throws on a bad mask.
function maskFlags(
  op: string,
  m: Tensor | undefined,
  n: number,
  what: string,
  has: number,
  f32: number,
): number {
  if (!m) return 0;
  m.expectDtype(op, "f32", "u32", "i32");
  if (m.size !== n) {
    throw new RangeError(`${op}: ${what} ${m.describe()} needs ${n} values`);
  }
  return has | (m.dtype === "f32" ? f32 : 0);
}

/**
 * Records the mismatch metrics of one step into a new `[MISMATCH_STATS_LEN]` f32 tensor (no
 * readback). Dispatches: one, plus one per block of logits rows when logits are given.
 *
 * @example
 * ```ts
 * const stats = mismatchStats({ logpInf, logpNew, mask, policyLogits, actorLogits });
 * // ... the rest of the step ...
 * const m = decodeMismatch(await read(stats)); // m.k3, m.absLogRatioP95, m.klActorPolicy, ...
 * ```
 */
export function mismatchStats(inp: MismatchInputs): Tensor {
  const op = "mismatchStats";
  inp.logpInf.expectDtype(op, "f32");
  inp.logpNew.expectDtype(op, "f32");
  if (!sameShape(inp.logpInf.shape, inp.logpNew.shape)) {
    throw new RangeError(
      `${op}: logpInf ${fmtShape(inp.logpInf.shape)} and logpNew ${
        fmtShape(inp.logpNew.shape)
      } need the same shape`,
    );
  }
  const nTok = inp.logpInf.size;
  let flags = maskFlags(op, inp.mask, nTok, "mask", F_TMASK, F_TMASK_F32);
  const li = materialize(inp.logpInf), ln = materialize(inp.logpNew);
  const tmask = inp.mask ? materialize(inp.mask) : null;
  const out = empty([MISMATCH_STATS_LEN], "f32", op);
  const temps: Tensor[] = [];
  let rowStats: Tensor | null = null, rmask: Tensor | null = null, nRows = 0;
  if (inp.actorLogits && !inp.policyLogits) {
    throw new RangeError(`${op}: actorLogits need policyLogits (the KL is between the two)`);
  }
  if (inp.policyLogits) {
    const pl = inp.policyLogits;
    if (pl.rank < 1) throw new RangeError(`${op}: policyLogits ${pl.describe()} need [N, V]`);
    nRows = pl.size / pl.shape[pl.rank - 1];
    const rm = inp.rowMask ?? (inp.mask && nRows === nTok ? inp.mask : undefined);
    flags |= F_ROWS | maskFlags(op, rm, nRows, "rowMask", F_RMASK, F_RMASK_F32);
    if (inp.actorLogits) flags |= F_ACTOR;
    // student = policy, teacher = actor: KL(t ‖ s) = KL(actor ‖ policy); without an actor the
    // policy stands in for both (its entropy; the KLs are 0 and not reported)
    const rows = klRows(pl, inp.actorLogits ?? pl, { temperature: inp.temperature, mask: rm });
    temps.push(rows.rowKl, rows.rowStats);
    rowStats = rows.rowStats;
    rmask = rm ? materialize(rm) : null;
  }
  runtime().dispatch({
    kernel,
    entryPoint: "mismatch_stats",
    // unused bindings get a read-only stand-in (the kernel reads them only under their flag)
    bindings: [
      li.binding,
      ln.binding,
      (tmask ?? li).binding,
      (rowStats ?? li).binding,
      (rmask ?? li).binding,
      out.binding,
      params([nTok, nRows, flags, 0]),
    ],
    workgroups: [1],
  });
  for (const [copy, input] of [[li, inp.logpInf], [ln, inp.logpNew], [tmask, inp.mask]] as const) {
    if (copy && copy !== input) temps.push(copy);
  }
  if (rmask && rmask !== inp.rowMask && rmask !== inp.mask) temps.push(rmask);
  out.adopt(temps);
  return out;
}

/**
 * Decodes a readback of {@link mismatchStats}: means in float64, the p95 from the histogram.
 *
 * @example
 * ```ts
 * const m = decodeMismatch(await read(stats));
 * ```
 */
export function decodeMismatch(host: ArrayLike<number>): MismatchStats {
  if (host.length !== MISMATCH_STATS_LEN) {
    throw new RangeError(
      `decodeMismatch: ${host.length} values, a mismatchStats tensor has ${MISMATCH_STATS_LEN}`,
    );
  }
  const flags = host[14];
  const t = host[0];
  const mean = (s: number, n: number) => (n > 0 ? s / n : 0);
  const hist = Float64Array.from({ length: HIST_BINS }, (_, i) => host[HEAD + i]);
  const rows = host[8];
  const hasRows = (flags & F_ROWS) !== 0, hasActor = (flags & F_ACTOR) !== 0;
  return {
    tokens: t,
    k1: mean(host[1], t),
    k3: mean(host[2], t),
    absLogRatioMean: mean(host[3], t),
    absLogRatioP95: quantileFromHistogram(hist, 0.95, t, host[4]),
    absLogRatioMax: host[4],
    logRatioMax: host[5],
    logRatioMin: host[6],
    ratioMax: t > 0 ? Math.exp(host[5]) : 0,
    nonFiniteTokens: host[7],
    rows,
    entropyPolicy: hasRows ? mean(host[9], rows) : null,
    entropyActor: hasActor ? mean(host[10], rows) : null,
    klActorPolicy: hasActor ? mean(host[11], rows) : null,
    klPolicyActor: hasActor ? mean(host[12], rows) : null,
    nonFiniteRows: host[13],
    histogram: hist,
  };
}
