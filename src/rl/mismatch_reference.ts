/**
 * Float64 reference of the actor–policy mismatch metrics (SPEC §8, §10) and the histogram that
 * both it and the GPU decode (src/rl/mismatch.ts) take the p95 of |Δ log p| from. It knows nothing
 * of the GPU.
 *
 * Tokens: k1 = mean(ℓ_inf − ℓ_new), k3 = mean(r − 1 − log r) with log r = clamp(ℓ_new − ℓ_inf, ±20)
 * (both estimate KL(p_inf ‖ p_new) on tokens drawn from p_inf; k3 is never negative), mean / p95 /
 * max of |ℓ_new − ℓ_inf|, and the raw log-ratio's max and min (before any clamp). A kept token
 * with a non-finite log-prob is left out of all of them and counted. Rows of logits: the mean
 * policy and actor entropies and both full-vocabulary KLs, non-finite rows left out and counted.
 *
 * @module
 */
import { distillKLRef } from "./distill_reference.ts";

/** Bins of the |Δ log p| histogram: [0, 1e-6), 128 bins of 1/16 decade up to 1e2, [1e2, ∞). */
export const HIST_BINS = 130;
/** Bins per decade: a p95 from the histogram is within a factor 10^(1/16) ≈ 1.155 above the exact. */
export const HIST_PER_DECADE = 16;
const LO_EXP = -6;

/** Upper edge of histogram bin `i` (+inf for the last). */
export function histUpper(i: number): number {
  if (i >= HIST_BINS - 1) return Infinity;
  return 10 ** (LO_EXP + i / HIST_PER_DECADE);
}

/** The bin of |Δ| = `a` ≥ 0 (float64; the GPU bins the same way in f32). */
export function histBin(a: number): number {
  if (a < 1e-6) return 0;
  if (a >= 100) return HIST_BINS - 1;
  const b = Math.floor(HIST_PER_DECADE * (Math.log10(a) - LO_EXP));
  return Math.min(Math.max(b, 0) + 1, HIST_BINS - 2);
}

/**
 * The q-quantile (nearest rank: the ⌈q·count⌉-th smallest) read from a histogram: the upper edge
 * of the bin that holds it, but at most `max` (the largest value). An upper bound on the exact
 * quantile, within one bin (a factor 10^(1/16)) of it when it is ≥ 1e-6; 0 when `count` is 0.
 *
 * @example
 * ```ts
 * quantileFromHistogram(hist, 0.95, tokens, absMax);
 * ```
 */
export function quantileFromHistogram(
  hist: ArrayLike<number>,
  q: number,
  count: number,
  max: number,
): number {
  if (count <= 0) return 0;
  const k = Math.max(1, Math.ceil(q * count));
  let cum = 0;
  for (let i = 0; i < hist.length; i++) {
    cum += hist[i];
    if (cum >= k) return Math.min(histUpper(i), max);
  }
  return max;
}

/** The metrics of one step, as the GPU decode and the reference both report them. */
export interface MismatchStats {
  /** Kept tokens with finite log-probs (the denominator of every token value). */
  tokens: number;
  /** mean(ℓ_inf − ℓ_new). */
  k1: number;
  /** mean(r − 1 − log r), log r = clamp(ℓ_new − ℓ_inf, ±20). */
  k3: number;
  /** mean |ℓ_new − ℓ_inf|. */
  absLogRatioMean: number;
  /** p95 of |ℓ_new − ℓ_inf| (exact in the reference; from the histogram on the GPU, see {@link quantileFromHistogram}). */
  absLogRatioP95: number;
  /** max |ℓ_new − ℓ_inf|. */
  absLogRatioMax: number;
  /** max of the raw ℓ_new − ℓ_inf (before the ±20 clamp). */
  logRatioMax: number;
  /** min of the raw ℓ_new − ℓ_inf. */
  logRatioMin: number;
  /** exp(logRatioMax): the raw ratio's max p_new / p_inf (may be +inf). */
  ratioMax: number;
  /** Kept tokens with a NaN or infinite log-prob, left out of everything above. */
  nonFiniteTokens: number;
  /** Kept logits rows with finite statistics (0 without logits). */
  rows: number;
  /** Mean policy entropy over rows (null without logits). */
  entropyPolicy: number | null;
  /** Mean actor entropy (null without actor logits). */
  entropyActor: number | null;
  /** Mean full-vocabulary KL(p_actor ‖ p_policy) (null without actor logits). */
  klActorPolicy: number | null;
  /** Mean full-vocabulary KL(p_policy ‖ p_actor) (null without actor logits). */
  klPolicyActor: number | null;
  /** Kept rows with a non-finite entropy or KL, left out of the row means. */
  nonFiniteRows: number;
  /** [HIST_BINS] counts of |ℓ_new − ℓ_inf| per bin. */
  histogram: Float64Array;
}

/** Inputs of {@link mismatchRef}: host arrays, row-major. */
export interface MismatchRefInputs {
  /** [B·T] log-prob of each sampled token under the rollout model. */
  logpInf: ArrayLike<number>;
  /** [B·T] under the policy. */
  logpNew: ArrayLike<number>;
  /** [B·T] 0 leaves a token out. */
  mask?: ArrayLike<number>;
  /** [N·V] policy logits (entropy; with `actorLogits` the full-vocabulary KLs). */
  policyLogits?: ArrayLike<number>;
  /** [N·V] rollout-model logits at the same positions. */
  actorLogits?: ArrayLike<number>;
  /** Vocabulary size (with logits). */
  V?: number;
  /** [N] 0 leaves a row out (default: `mask` when N = B·T, else every row). */
  rowMask?: ArrayLike<number>;
  /** Softmax temperature of the logits (default 1). */
  temperature?: number;
}

const finite = Number.isFinite;

/**
 * The mismatch metrics in float64 with the exact (nearest-rank) p95.
 *
 * @example
 * ```ts
 * const m = mismatchRef({ logpInf: [-1, -2], logpNew: [-1.1, -1.9] }); // m.k1 ≈ 0
 * ```
 */
export function mismatchRef(inp: MismatchRefInputs): MismatchStats {
  const n = inp.logpInf.length;
  if (inp.logpNew.length !== n) {
    throw new RangeError(`mismatchRef: logpNew has ${inp.logpNew.length} values, logpInf ${n}`);
  }
  const hist = new Float64Array(HIST_BINS);
  const abs: number[] = [];
  let k1 = 0, k3 = 0, absSum = 0, lrMax = -Infinity, lrMin = Infinity, bad = 0;
  for (let i = 0; i < n; i++) {
    if (inp.mask && inp.mask[i] === 0) continue;
    const a = inp.logpInf[i], b = inp.logpNew[i];
    if (!finite(a) || !finite(b)) {
      bad++;
      continue;
    }
    const lr = b - a;
    const c = Math.min(20, Math.max(-20, lr));
    k1 += -lr;
    k3 += Math.expm1(c) - c;
    absSum += Math.abs(lr);
    abs.push(Math.abs(lr));
    hist[histBin(Math.abs(lr))]++;
    lrMax = Math.max(lrMax, lr);
    lrMin = Math.min(lrMin, lr);
  }
  const t = abs.length;
  abs.sort((x, y) => x - y);
  const out: MismatchStats = {
    tokens: t,
    k1: t ? k1 / t : 0,
    k3: t ? k3 / t : 0,
    absLogRatioMean: t ? absSum / t : 0,
    absLogRatioP95: t ? abs[Math.max(1, Math.ceil(0.95 * t)) - 1] : 0,
    absLogRatioMax: t ? abs[t - 1] : 0,
    logRatioMax: t ? lrMax : 0,
    logRatioMin: t ? lrMin : 0,
    ratioMax: t ? Math.exp(lrMax) : 0,
    nonFiniteTokens: bad,
    rows: 0,
    entropyPolicy: null,
    entropyActor: null,
    klActorPolicy: null,
    klPolicyActor: null,
    nonFiniteRows: 0,
    histogram: hist,
  };
  if (!inp.policyLogits) return out;
  const V = inp.V ?? 0;
  const N = V > 0 ? inp.policyLogits.length / V : 0;
  if (!Number.isInteger(N)) throw new RangeError(`mismatchRef: logits are not rows of V = ${V}`);
  const rowMask = inp.rowMask ?? (inp.mask && N === n ? inp.mask : undefined);
  const r = distillKLRef(inp.policyLogits, inp.actorLogits ?? inp.policyLogits, N, V, {
    temperature: inp.temperature,
  });
  const sums = [0, 0, 0, 0];
  for (let i = 0; i < N; i++) {
    if (rowMask && rowMask[i] === 0) continue;
    const v = [r.entropyStudent[i], r.entropyTeacher[i], r.forwardKl[i], r.reverseKl[i]];
    if (!v.every(finite)) {
      out.nonFiniteRows++;
      continue;
    }
    out.rows++;
    v.forEach((x, k) => (sums[k] += x));
  }
  const mean = (s: number) => (out.rows ? s / out.rows : 0);
  out.entropyPolicy = mean(sums[0]);
  if (inp.actorLogits) {
    out.entropyActor = mean(sums[1]);
    out.klActorPolicy = mean(sums[2]);
    out.klPolicyActor = mean(sums[3]);
  }
  return out;
}
